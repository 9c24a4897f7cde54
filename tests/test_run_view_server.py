"""What the server does for the run view: which hosts see it, what it is, and that nobody else's answers
change, for every kind of run. The view itself, in a browser, is tests/test_run_view.py."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from mcp import Client
from mcp.client.extension import advertise
from mcp.server.mcpserver import MCPServer
from mcp.types import TextResourceContents

from retab_mcp.simulator import SimulatedRetab
from retab_mcp.tools.registry import catalog

from .helpers import FINISHED, READ_TOOLS, data_of

pytestmark = pytest.mark.anyio

APPS = "io.modelcontextprotocol/ui"
APP_MIME = "text/html;profile=mcp-app"
VIEW = "ui://retab/run"
SHOWN_IN_VIEW = {
    "get_experiment_run",
    "wait_for_run",
    "triage_experiment_run",
    "compare_experiment_runs",
    "get_run",  # any kind: a workflow run's steps and review gate, an eval run's passed / failed / blocked
    "triage_run",
    "compare_eval_runs",
}
APP_ONLY = {"get_run_document_scores"}
# What the view calls through the host: a host may refuse a call to a tool it was not listed.
CALLED_BY_VIEW = {"wait_for_run", "get_run", "get_experiment_run", "triage_run", "triage_experiment_run"} | {
    "list_eval_results",
    "compare_eval_runs",
    "compare_experiment_runs",
    "get_run_document_scores",
}
VIEW_SIZE_GOAL = 32_000


@pytest.fixture
async def apps_client(server: MCPServer[Any], mode: str) -> AsyncIterator[Client]:
    extensions = [advertise(APPS, {"mimeTypes": [APP_MIME]})]
    async with Client(server, mode=mode, extensions=extensions) as client:  # type: ignore[arg-type]
        yield client


async def test_a_host_that_renders_apps_is_pointed_at_the_view_by_the_tools_that_show_a_run(
    apps_client: Client,
) -> None:
    tools = {tool.name: tool for tool in (await apps_client.list_tools()).tools}
    pointing = {name for name, tool in tools.items() if (tool.meta or {}).get("ui", {}).get("resourceUri") == VIEW}
    assert pointing == SHOWN_IN_VIEW | APP_ONLY
    for name in APP_ONLY:  # listed to the host for the view, kept out of the model's context
        assert (tools[name].meta or {})["ui"]["visibility"] == ["app"], name
    for name in SHOWN_IN_VIEW:
        assert tools[name].meta == {"ui": {"resourceUri": VIEW}}, name
    assert set(tools) == READ_TOOLS | APP_ONLY
    assert set(tools) >= CALLED_BY_VIEW


def test_the_registry_declares_the_same_tools_for_the_view() -> None:
    views = {spec.name: spec.view for spec in catalog()}
    assert {name for name, view in views.items() if view == "shown"} == SHOWN_IN_VIEW
    assert {name for name, view in views.items() if view == "app_only"} == APP_ONLY


@pytest.mark.eras
async def test_a_host_without_apps_gets_the_listing_it_always_had(mcp_client: Client) -> None:
    tools = (await mcp_client.list_tools()).tools
    assert {tool.name for tool in tools} == READ_TOOLS
    assert not {tool.name for tool in tools} & APP_ONLY
    assert all(tool.meta is None or "ui" not in tool.meta for tool in tools)


async def test_the_results_are_the_same_whether_or_not_the_host_renders_apps(
    mcp_client: Client, apps_client: Client, sim: SimulatedRetab
) -> None:
    gate, failed_workflow = sim.workflow_run_ids["awaiting_review"], sim.workflow_run_ids["failed"]
    candidate = sim.eval_run_ids["candidate"]
    calls: list[tuple[str, dict[str, Any]]] = [
        ("get_experiment_run", {"run_id": FINISHED}),
        ("wait_for_run", {"run_id": FINISHED, "timeout_s": 1}),
        ("triage_experiment_run", {"run_id": sim.run_ids["failed"]}),
        ("compare_experiment_runs", {"base_run_id": sim.run_ids["older"], "candidate_run_id": FINISHED}),
        ("get_run", {"run_id": gate}),
        ("get_run", {"run_id": candidate}),
        ("get_run", {"run_id": FINISHED}),
        ("wait_for_run", {"run_id": gate, "timeout_s": 1}),
        ("triage_run", {"run_id": failed_workflow}),
        ("triage_run", {"run_id": candidate}),
        ("triage_run", {"run_id": FINISHED}),
        ("list_eval_results", {"run_id": candidate}),
        ("compare_eval_runs", {"candidate_run_id": candidate}),
    ]
    for name, arguments in calls:
        plain = await mcp_client.call_tool(name, arguments)
        with_apps = await apps_client.call_tool(name, arguments)
        assert with_apps.model_dump(mode="json") == plain.model_dump(mode="json"), name


async def test_the_view_is_one_small_self_contained_document(apps_client: Client) -> None:
    (contents,) = (await apps_client.read_resource(VIEW)).contents
    assert isinstance(contents, TextResourceContents)
    assert contents.mime_type == APP_MIME
    html = contents.text
    assert len(html.encode()) < VIEW_SIZE_GOAL
    assert html.startswith("<!doctype html>")
    # Nothing to fetch from anywhere: no URL, no external script, style, image or frame.
    assert not re.search(r"https?://|\bsrc\s*=|<link\b|@import|url\(", html)


async def test_the_view_calls_only_tools_an_apps_host_is_listed(apps_client: Client) -> None:
    (contents,) = (await apps_client.read_resource(VIEW)).contents
    assert isinstance(contents, TextResourceContents)
    listed = {tool.name for tool in (await apps_client.list_tools()).tools}
    named = {spec.name for spec in catalog() if f'"{spec.name}"' in contents.text}
    assert named == CALLED_BY_VIEW
    assert named <= listed


async def test_the_view_never_builds_markup_from_strings(apps_client: Client) -> None:
    (contents,) = (await apps_client.read_resource(VIEW)).contents
    assert isinstance(contents, TextResourceContents)
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in contents.text, sink


async def test_the_view_s_own_tool_gives_every_scored_document_worst_first(apps_client: Client) -> None:
    report = data_of(await apps_client.call_tool("get_run_document_scores", {"run_id": FINISHED}))
    documents = report["lowest"]
    assert len(documents) == report["item_count"] == report["scored_documents"] == 9
    scores = [d["score"] for d in documents]
    assert scores == sorted(scores)
    assert all(d["prior_score"] is not None for d in documents)


async def test_the_server_says_it_speaks_the_apps_extension(apps_client: Client, mode: str) -> None:
    capabilities = apps_client.server_capabilities
    assert capabilities is not None
    # The 2025-11-25 handshake has no place for extensions; such hosts go by the tools' _meta.ui alone.
    assert (APPS in (capabilities.extensions or {})) == (mode == "auto")

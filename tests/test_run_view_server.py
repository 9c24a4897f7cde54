"""What the server does for the run view: which hosts see it, what it is, and that nobody else's answers
change. The view itself, in a browser, is tests/test_run_view.py."""

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

from .helpers import FINISHED, READ_TOOLS, data_of

pytestmark = pytest.mark.anyio

APPS = "io.modelcontextprotocol/ui"
APP_MIME = "text/html;profile=mcp-app"
VIEW = "ui://retab/run"
SHOWN_IN_VIEW = {"get_experiment_run", "wait_for_run", "triage_experiment_run", "compare_experiment_runs"}
VIEW_SIZE_GOAL = 60_000


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
    assert pointing == SHOWN_IN_VIEW | {"get_run_document_scores"}
    assert (tools["get_run_document_scores"].meta or {})["ui"]["visibility"] == ["app"]  # not in the model's context
    assert tools["get_experiment_run"].meta == {"ui": {"resourceUri": VIEW}}


async def test_a_host_without_apps_gets_the_listing_it_always_had(mcp_client: Client) -> None:
    tools = (await mcp_client.list_tools()).tools
    assert {tool.name for tool in tools} == READ_TOOLS
    assert all(tool.meta is None or "ui" not in tool.meta for tool in tools)


async def test_the_results_are_the_same_whether_or_not_the_host_renders_apps(
    mcp_client: Client, apps_client: Client, sim: SimulatedRetab
) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("get_experiment_run", {"run_id": FINISHED}),
        ("wait_for_run", {"run_id": FINISHED, "timeout_s": 1}),
        ("triage_experiment_run", {"run_id": sim.run_ids["failed"]}),
        ("compare_experiment_runs", {"base_run_id": sim.run_ids["older"], "candidate_run_id": FINISHED}),
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

"""The tools' schemas kept in tools/prebuilt.json: current with the sources, used only when current, and a
server started from them lists and answers exactly as one whose tools the SDK made at start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.server.mcpserver.tools import Tool
from mcp.types import CallToolResult

from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.tools import prebuilt
from retab_mcp.tools.registry import catalog
from retab_mcp.tools.server import build_server

from .helpers import SIM_URL, TEST_KEY

pytestmark = pytest.mark.anyio

REMAKE = "the kept tool schemas are stale: run `uv run python -m retab_mcp.tools.prebuilt --write` and commit the file"


def test_the_kept_schemas_are_the_ones_the_sources_make() -> None:
    entries = prebuilt.kept()
    assert entries is not None, REMAKE
    assert [entry.dump() for entry in entries] == [prebuilt.Entry.made(spec).dump() for spec in catalog()], REMAKE


def _stale(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, how: str) -> None:
    if how == "made from other sources":
        monkeypatch.setattr(prebuilt, "digest", lambda: "0" * 64)
    elif how == "missing":
        monkeypatch.setattr(prebuilt, "KEPT", tmp_path / "absent.json")
    else:
        broken = tmp_path / "broken.json"
        shapeless = json.dumps({"digest": prebuilt.digest(), "tools": [{}]})
        broken.write_text('{"digest": ' if how == "cut short" else shapeless)
        monkeypatch.setattr(prebuilt, "KEPT", broken)


async def _listing_and_answers(server: Any, sim: SimulatedRetab) -> tuple[list[dict[str, Any]], list[CallToolResult]]:
    async with Client(server) as client:
        listing = [tool.model_dump(mode="json") for tool in (await client.list_tools()).tools]
        calls = [
            ("get_experiment_run", {"run_id": sim.run_ids["latest"]}),
            ("get_experiment_run", {"run_id": 42}),  # a wrong type: the SDK's validation, in this server's words
            ("list_runs", {"kind": "workflow", "limit": 3}),
            ("triage_run", {"run_id": sim.run_ids["failed"]}),
        ]
        answers = [await client.call_tool(name, arguments) for name, arguments in calls]
    return listing, answers


@pytest.mark.parametrize("how", ["made from other sources", "missing", "cut short", "of another shape"])
async def test_a_server_from_the_kept_schemas_lists_and_answers_as_one_whose_tools_the_sdk_made(
    how: str, clock: VirtualClock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = Settings(api_key=TEST_KEY, base_url=SIM_URL, allow_writes=True)
    sim = SimulatedRetab(clock=clock)
    kept_server = build_server(settings, transport=httpx2.ASGITransport(app=sim), clock=clock)
    kept_tools = kept_server._tool_manager.list_tools()  # pyright: ignore[reportPrivateUsage]
    assert all(isinstance(tool, prebuilt.PrebuiltTool) for tool in kept_tools)  # the kept file is in use

    _stale(monkeypatch, tmp_path, how)
    assert prebuilt.kept() is None
    made_server = build_server(settings, transport=httpx2.ASGITransport(app=sim), clock=clock)
    made_tools = made_server._tool_manager.list_tools()  # pyright: ignore[reportPrivateUsage]
    assert [type(tool) for tool in made_tools] == [Tool] * len(kept_tools)  # a file not current is not used

    kept_listing, kept_answers = await _listing_and_answers(kept_server, sim)
    made_listing, made_answers = await _listing_and_answers(made_server, sim)
    assert kept_listing == made_listing
    assert len(kept_listing) == len(catalog()) - 1  # all but the run view's own tool, for hosts that render it
    assert [a.model_dump() for a in kept_answers] == [a.model_dump() for a in made_answers]
    assert kept_answers[1].is_error and "run_id" in str(kept_answers[1].content)


async def test_twenty_first_calls_at_once_to_a_kept_tool_all_answer_from_one_made_tool(
    server: Any, sim: SimulatedRetab
) -> None:
    answers: list[CallToolResult] = []
    async with Client(server) as client:

        async def call() -> None:
            answers.append(await client.call_tool("get_experiment_run", {"run_id": sim.run_ids["latest"]}))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for _ in range(20):
                    group.start_soon(call)
    assert len(answers) == 20 and not any(a.is_error for a in answers)
    assert len({a.model_dump_json() for a in answers}) == 1
    tool = server._tool_manager.get_tool("get_experiment_run")
    assert isinstance(tool, prebuilt.PrebuiltTool) and tool.made() is tool.made()

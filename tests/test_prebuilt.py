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
from mcp.types import CallToolResult, ElicitResult

from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.tools import prebuilt
from retab_mcp.tools.registry import catalog
from retab_mcp.tools.server import build_server

from .helpers import SIM_URL, TEST_KEY

pytestmark = pytest.mark.anyio

CI_PYTHON = "3.11"  # .ci/run's: the kept schemas must be current on it
REMAKE = "the kept tool schemas are stale: run `uv run python -m retab_mcp.tools.prebuilt --write` and commit the file"


def test_the_kept_schemas_are_the_ones_the_sources_make() -> None:
    made_on = json.loads(prebuilt.KEPT.read_text())["made"]
    if prebuilt.python() not in made_on and prebuilt.python() != CI_PYTHON:
        pytest.skip(f"the kept schemas are made on Python {', '.join(made_on)}; on this one they are derived at start")
    entries = prebuilt.kept()
    assert entries is not None, REMAKE
    assert [entry.dump() for entry in entries] == [prebuilt.Entry.made(spec).dump() for spec in catalog()], REMAKE


def test_the_schemas_made_on_another_python_join_the_file_if_the_same_and_start_it_again_if_not(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(prebuilt, "KEPT", tmp_path / "prebuilt.json")
    on = {"python": "3.11", "digest": "a" * 64}
    monkeypatch.setattr(prebuilt, "python", lambda: on["python"])
    monkeypatch.setattr(prebuilt, "digest", lambda: on["digest"])
    assert prebuilt.write() == "3.11"
    on.update(python="3.12", digest="b" * 64)
    assert prebuilt.write() == "3.11, 3.12" and prebuilt.kept() is not None
    on.update(python="3.13")
    assert prebuilt.kept() is None  # not made on it
    on.update(python="3.12", digest="c" * 64)
    assert prebuilt.kept() is None  # made on it from other code
    monkeypatch.setattr(prebuilt, "catalog", lambda: catalog()[:3])  # other sources: other tools
    assert prebuilt.write() == "3.12" and len(prebuilt.kept() or []) == 3


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


async def _decline(context: Any, params: Any) -> ElicitResult:
    del context, params
    return ElicitResult(action="decline")


async def _listing_and_answers(server: Any, sim: SimulatedRetab) -> tuple[list[dict[str, Any]], list[CallToolResult]]:
    experiment = sim.add_experiment("kept", documents=3, n_consensus=3)
    async with Client(server, elicitation_callback=_decline) as client:
        listing = [tool.model_dump(mode="json") for tool in (await client.list_tools()).tools]
        calls = [
            ("get_experiment_run", {"run_id": sim.run_ids["latest"]}),
            ("get_experiment_run", {"run_id": 42}),  # a wrong type: the SDK's validation, in this server's words
            ("list_runs", {"kind": "workflow", "limit": 3}),
            ("triage_run", {"run_id": sim.run_ids["failed"]}),
            ("wait_for_run", {"run_id": sim.run_ids["latest"]}),
            ("start_experiment_run", {"experiment_id": experiment}),  # asks the user (Elicit), who declines
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
    assert [a.is_error for a in kept_answers] == [False, True, False, False, False, False]
    assert "run_id" in str(kept_answers[1].content)
    assert "declined" in str(kept_answers[-1].content) and not any(r.method == "POST" for r in sim.requests)


async def test_twenty_first_calls_at_once_to_a_kept_tool_make_it_once_and_all_answer(
    server: Any, sim: SimulatedRetab, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[str] = []
    from_function = Tool.from_function.__func__  # pyright: ignore[reportFunctionMemberAccess]

    def counted(cls: type[Tool], fn: Any, *args: Any, **kwargs: Any) -> Tool:
        made.append(kwargs["name"])
        return from_function(cls, fn, *args, **kwargs)

    monkeypatch.setattr(Tool, "from_function", classmethod(counted))
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
    assert made == ["get_experiment_run"]


async def test_a_kept_tool_whose_function_cannot_be_found_fails_its_call_without_a_traceback(
    server: Any, sim: SimulatedRetab
) -> None:
    tool = server._tool_manager.get_tool("get_experiment_run")
    assert isinstance(tool, prebuilt.PrebuiltTool)
    tool._function = "gone"  # pyright: ignore[reportPrivateUsage]  # a kept file that outlived its function
    async with Client(server) as client:
        failed = await client.call_tool("get_experiment_run", {"run_id": sim.run_ids["latest"]})
        other = await client.call_tool("list_experiment_runs", {"limit": 1})
    assert failed.is_error and "Traceback" not in str(failed.content) and "gone" not in str(failed.content)
    assert not other.is_error  # the server goes on

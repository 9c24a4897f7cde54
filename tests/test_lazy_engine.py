"""Over stdio the engine (the API client, the poll loops, the start gate) opens at the first request that
needs it rather than at start (tools/opening.py): a host sees the same answers whichever request comes
first, and however many come at once, they share one engine."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import CallToolResult, ResourceTemplateReference

from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.simulator.scenario import opaque_id
from retab_mcp.tools.server import RetabServer, build_server

from .helpers import FINISHED, SIM_URL, TEST_KEY, data_of

pytestmark = pytest.mark.anyio

ROOT = Path(__file__).parents[1]
CALLERS = 20


def opened_at_first_call(sim: SimulatedRetab, clock: VirtualClock) -> RetabServer:
    settings = Settings(api_key=TEST_KEY, base_url=SIM_URL)
    return build_server(settings, transport=httpx2.ASGITransport(app=sim), clock=clock, lazy_engine=True)


async def test_twenty_first_calls_at_once_open_one_engine_and_poll_the_run_as_one(
    sim: SimulatedRetab, clock: VirtualClock
) -> None:
    run_id = sim.add_run(duration_s=30, documents=6)
    results: list[CallToolResult] = []
    with anyio.fail_after(30):
        async with Client(opened_at_first_call(sim, clock)) as client, anyio.create_task_group() as group:
            for _ in range(CALLERS):
                group.start_soon(
                    lambda: _append(results, client.call_tool("wait_for_run", {"run_id": run_id, "timeout_s": 50}))
                )
    data = [data_of(result) for result in results]
    assert len(data) == CALLERS
    assert all(d["finished"] and d["status"] == "completed" for d in data)
    polls = sum(1 for r in sim.requests if r.path.endswith(run_id))
    assert polls <= 25  # one poll loop (19 requests for this run); two engines would each poll it


async def _append(results: list[CallToolResult], call: Any) -> None:
    results.append(await call)


@pytest.mark.parametrize("first", ["resource", "completion", "prompt", "tool"])
async def test_any_request_may_come_first(sim: SimulatedRetab, clock: VirtualClock, first: str) -> None:
    with anyio.fail_after(30):
        async with Client(opened_at_first_call(sim, clock)) as client:
            if first == "resource":
                resource = await client.read_resource(f"retab://experiment-runs/{FINISHED}")
                assert FINISHED in str(resource.contents[0])
            elif first == "completion":
                reference = ResourceTemplateReference(type="ref/resource", uri="retab://experiment-runs/{run_id}")
                completion = await client.complete(reference, {"name": "run_id", "value": "exprun_"})
                assert FINISHED in completion.completion.values
            elif first == "prompt":
                prompt = await client.get_prompt("triage-experiment-run", {"run_id": FINISHED})
                assert FINISHED in str(prompt.messages[0].content)
            # and then a tool, on the engine the first request opened (or opens now)
            result = await client.call_tool("get_experiment_run", {"run_id": FINISHED})
    assert data_of(result)["run_id"] == FINISHED


@pytest.mark.slow
async def test_twenty_first_calls_at_once_over_stdio_all_answer() -> None:
    """The real process: nothing opened before the calls, twenty of them at once, each answered in full."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "retab_mcp", "--demo"], env={"PATH": os.environ["PATH"]}, cwd=ROOT
    )
    failed = opaque_id("exprun", "failed")
    results: list[CallToolResult] = []
    with anyio.fail_after(60):
        async with Client(params) as client:
            await client.list_tools()
            async with anyio.create_task_group() as group:
                for i in range(CALLERS):
                    run_id = FINISHED if i % 2 else failed
                    group.start_soon(_append, results, client.call_tool("get_experiment_run", {"run_id": run_id}))
    data = [data_of(result) for result in results]
    assert sorted(d["run_id"] for d in data) == sorted([FINISHED, failed] * (CALLERS // 2))
    assert {d["status"] for d in data if d["run_id"] == failed} == {"error"}

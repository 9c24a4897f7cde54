"""Over stdio the engine (the API client, the poll loops, the start gate) opens at the first request that
needs it rather than at start (tools/opening.py): a host sees the same answers whichever request comes
first, and however many come at once, they share one engine."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import ResourceTemplateReference

from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.simulator.scenario import opaque_id
from retab_mcp.tools.opening import EngineNotOpenError, EngineOpener
from retab_mcp.tools.server import RetabServer, build_server

from .helpers import FINISHED, SIM_URL, TEST_KEY, all_at_once, data_of

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
    async with Client(opened_at_first_call(sim, clock)) as client:
        wait = {"run_id": run_id, "timeout_s": 50}
        results = await all_at_once([lambda: client.call_tool("wait_for_run", wait)] * CALLERS, within_s=30)
    data = [data_of(result) for result in results]
    assert len(data) == CALLERS
    assert all(d["finished"] and d["status"] == "completed" for d in data)
    polls = sum(1 for r in sim.requests if r.path.endswith(run_id))
    assert polls <= 25  # one poll loop (19 requests for this run); two engines would each poll it


@pytest.mark.parametrize("first", ["resource", "completion", "tool"])
async def test_any_request_may_come_first(sim: SimulatedRetab, clock: VirtualClock, first: str) -> None:
    server = opened_at_first_call(sim, clock)
    with anyio.fail_after(30):
        async with Client(server) as client:
            await client.list_tools()
            await client.get_prompt("triage-experiment-run", {"run_id": FINISHED})
            assert server.state is not None and server.state.engine is None  # listing and prompts need none
            if first == "resource":
                resource = await client.read_resource(f"retab://experiment-runs/{FINISHED}")
                assert FINISHED in str(resource.contents[0])
            elif first == "completion":
                reference = ResourceTemplateReference(type="ref/resource", uri="retab://experiment-runs/{run_id}")
                completion = await client.complete(reference, {"name": "run_id", "value": "exprun_"})
                assert FINISHED in completion.completion.values
            # and then a tool, on the engine the first request opened (or opens now)
            result = await client.call_tool("get_experiment_run", {"run_id": FINISHED})
    assert data_of(result)["run_id"] == FINISHED


class Openings:
    """An engine factory that counts its openings; the first `failing` of them fail."""

    def __init__(self, failing: int = 0) -> None:
        self.started = 0
        self.failing = failing
        self.may_open = anyio.Event()  # the openings wait for it, so that callers pile up meanwhile
        self.may_open.set()

    @asynccontextmanager
    async def open(self) -> AsyncIterator[str]:
        self.started += 1
        await self.may_open.wait()
        if self.started <= self.failing:
            raise OSError("no route to the API")
        yield f"engine {self.started}"


async def test_callers_who_ask_while_it_opens_share_one_opening_even_when_the_first_gives_up() -> None:
    openings = Openings()
    openings.may_open = anyio.Event()
    engines: list[str] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as lifespan:
            opener = EngineOpener(openings.open, lifespan)
            with anyio.move_on_after(0):  # the first caller is cancelled while the engine opens
                await opener.open()

            async def open_once_every_caller_waits() -> None:
                await anyio.wait_all_tasks_blocked()
                openings.may_open.set()

            lifespan.start_soon(open_once_every_caller_waits)
            engines = await all_at_once([opener.open] * CALLERS)
            lifespan.cancel_scope.cancel()
    assert engines == ["engine 1"] * CALLERS and openings.started == 1


async def test_an_opening_that_failed_says_why_and_the_next_caller_opens_it_again() -> None:
    openings = Openings(failing=1)
    with anyio.fail_after(10):
        async with anyio.create_task_group() as lifespan:
            opener = EngineOpener(openings.open, lifespan)
            with pytest.raises(EngineNotOpenError, match="could not open its API client") as failed:
                await opener.open()
            assert isinstance(failed.value.__cause__, OSError)
            assert await opener.open() == "engine 2"
            assert await opener.open() == "engine 2"  # and it stays open
            lifespan.cancel_scope.cancel()
    assert openings.started == 2


async def test_callers_waiting_when_the_server_stops_are_told_so() -> None:
    openings = Openings()
    openings.may_open = anyio.Event()  # never set: the server stops first
    with anyio.fail_after(10):
        async with anyio.create_task_group() as lifespan:
            opener = EngineOpener(openings.open, lifespan)

            async def stop_once_the_caller_waits() -> None:
                await anyio.wait_all_tasks_blocked()
                lifespan.cancel_scope.cancel()

            lifespan.start_soon(stop_once_the_caller_waits)
            with anyio.CancelScope(shield=True), pytest.raises(EngineNotOpenError, match="stopped"):
                await opener.open()


@pytest.mark.slow
async def test_twenty_first_calls_at_once_over_stdio_all_answer() -> None:
    """The real process: nothing opened before the calls, twenty of them at once, each answered in full."""
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "retab_mcp", "--demo"], env={"PATH": os.environ["PATH"]}, cwd=ROOT
    )
    failed = opaque_id("exprun", "failed")
    with anyio.fail_after(60):
        async with Client(params) as client:
            await client.list_tools()
            calls = [
                lambda run_id=FINISHED if i % 2 else failed: client.call_tool("get_experiment_run", {"run_id": run_id})
                for i in range(CALLERS)
            ]
            results = await all_at_once(calls)
    data = [data_of(result) for result in results]
    assert sorted(d["run_id"] for d in data) == sorted([FINISHED, failed] * (CALLERS // 2))
    assert {d["status"] for d in data if d["run_id"] == failed} == {"error"}

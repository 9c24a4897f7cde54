"""Promises a second caller could break, held with 20 callers at once: agent frameworks call tools in
parallel and retry them, and a team runs hundreds of agents against one server.

In process, over the simulated API on the virtual clock, 20 calls at once in one session: starts, a start
whose answer is lost while another caller starts the same experiment, cancels, waits. (In process, each
`Client(server)` runs the server's lifespan of its own, as if it were a server of its own: 20 sessions of
one server are held in real processes, in test_attacks.py, and across replicas in test_replicas.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx2
import pytest
from mcp import Client
from mcp.types import CallToolResult

from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.app import RecordedRequest
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.tools.server import build_server

from .helpers import SIM_URL, TEST_KEY, all_at_once, data_of, text_of

pytestmark = pytest.mark.anyio

CALLERS = 20


def posts(sim: SimulatedRetab) -> int:
    return sum(1 for r in sim.requests if r.method == "POST" and r.path.endswith("/experiments/runs"))


def runs_of(sim: SimulatedRetab, experiment_id: str) -> list[str]:
    return [r.id for r in sim.world.runs if r.experiment.id == experiment_id]


@asynccontextmanager
async def sessions(sim: SimulatedRetab, clock: VirtualClock, count: int) -> AsyncIterator[list[Client]]:
    """`count` sessions of one server that offers the write tools."""
    settings = Settings(api_key=TEST_KEY, base_url=SIM_URL, allow_writes=True)
    server = build_server(settings, transport=httpx2.ASGITransport(app=sim), clock=clock)
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(Client(server, mode="legacy")) for _ in range(count)]


def interleaved(sim: SimulatedRetab) -> None:
    """Every answer of the API takes a real moment, so that concurrent calls interleave as they do over a
    network (in process, each would otherwise run to its end before the next one starts)."""
    sim.inject("slow", times=10_000, delay_s=0.002)


async def at_once(clients: list[Client], tool: str, arguments: dict[str, Any]) -> list[CallToolResult]:
    """Every client calls `tool` at the same moment; the results in the clients' order."""
    return await all_at_once([lambda c=c: c.call_tool(tool, arguments) for c in clients], within_s=30)


def assert_one_run_and_every_caller_names_it(results: list[CallToolResult], sim: SimulatedRetab, exp: str) -> None:
    (run_id,) = runs_of(sim, exp)
    data = [data_of(result) for result in results]
    assert {d["run_id"] for d in data} == {run_id}
    assert sorted(d["outcome"] for d in data).count("already_running") == len(results) - 1
    assert sum(1 for d in data if d["started"]) == 1


async def test_twenty_calls_in_one_session_start_one_run_and_all_name_it(
    sim: SimulatedRetab, clock: VirtualClock
) -> None:
    experiment = sim.add_experiment("burst", documents=12)
    interleaved(sim)
    async with sessions(sim, clock, 1) as (client,):
        results = await at_once([client] * CALLERS, "start_experiment_run", {"experiment_id": experiment})
    assert posts(sim) == 1
    assert_one_run_and_every_caller_names_it(results, sim, experiment)


async def test_a_start_whose_answer_is_lost_while_another_call_starts_makes_one_run_both_name(
    sim: SimulatedRetab, clock: VirtualClock
) -> None:
    experiment = sim.add_experiment("lost-and-raced", documents=12)
    interleaved(sim)
    sim.drop_answer(how="502")
    async with sessions(sim, clock, 1) as (client,):
        results = await at_once([client] * 2, "start_experiment_run", {"experiment_id": experiment})
    (run_id,) = runs_of(sim, experiment)
    data = [data_of(result) for result in results]
    assert posts(sim) == 1
    assert {d["run_id"] for d in data} == {run_id}
    assert sorted(d["outcome"] for d in data) == ["already_running", "found_after_lost_answer"]


async def test_a_run_started_elsewhere_while_the_answer_was_lost_is_named_and_none_is_claimed(
    sim: SimulatedRetab, clock: VirtualClock
) -> None:
    experiment = sim.add_experiment("dashboard-race", documents=12)
    sim.drop_answer(how="502")

    def someone_starts_one_from_the_dashboard(request: RecordedRequest) -> None:
        if request.method == "POST" and request.path.endswith("/experiments/runs"):
            sim.add_consensus_run(experiment, duration_s=60, finished=False)

    sim.request_hook = someone_starts_one_from_the_dashboard
    async with sessions(sim, clock, 1) as (client,):
        result = await client.call_tool("start_experiment_run", {"experiment_id": experiment})
        data = data_of(result)
        assert data["outcome"] == "ambiguous" and data["started"] is False and data["run_id"] is None
        assert sorted(data["appeared_run_ids"]) == sorted(runs_of(sim, experiment))
        assert len(runs_of(sim, experiment)) == 2
        for run_id in runs_of(sim, experiment):
            assert run_id in text_of(result)
        # Another start now sees them going, and starts nothing.
        sim.request_hook = None
        again = data_of(await client.call_tool("start_experiment_run", {"experiment_id": experiment}))
    assert again["outcome"] == "already_running" and posts(sim) == 1


async def test_a_run_just_started_that_retab_does_not_list_yet_is_not_started_again(
    sim: SimulatedRetab, clock: VirtualClock
) -> None:
    """Retab may list a run a moment after creating it: the next start must still see it going."""
    experiment = sim.add_experiment("listed-late", documents=12)
    before = set(runs_of(sim, experiment))

    def listed_only_later(request: RecordedRequest) -> None:
        for run in sim.world.runs:
            if run.experiment.id == experiment and run.id not in before:
                before.add(run.id)
                run.created_t += 5.0  # listed (and started) five seconds from now

    sim.request_hook = listed_only_later
    async with sessions(sim, clock, 1) as (client,):
        first = data_of(await client.call_tool("start_experiment_run", {"experiment_id": experiment}))
        second = data_of(await client.call_tool("start_experiment_run", {"experiment_id": experiment}))
    assert posts(sim) == 1
    assert first["outcome"] == "started"
    assert second["outcome"] == "already_running" and second["run_id"] == first["run_id"]


async def test_twenty_cancels_of_one_run_at_once_all_answer_and_the_run_is_cancelled(
    sim: SimulatedRetab, clock: VirtualClock
) -> None:
    run_id = sim.add_run(duration_s=600)
    interleaved(sim)
    async with sessions(sim, clock, 1) as (client,):
        results = await at_once([client] * CALLERS, "cancel_experiment_run", {"run_id": run_id})
    data = [data_of(result) for result in results]
    assert {d["status"] for d in data} == {"cancelled"}
    assert sum(1 for d in data if d["cancel_sent"]) >= 1
    run = sim.world.run(run_id)
    assert run is not None and run.cancel_requested_t is not None


async def test_twenty_waits_on_one_run_at_once_all_end_with_it_and_poll_as_one(
    sim: SimulatedRetab, clock: VirtualClock
) -> None:
    run_id = sim.add_run(duration_s=30, documents=6)
    async with sessions(sim, clock, 1) as (client,):
        results = await at_once([client] * CALLERS, "wait_for_run", {"run_id": run_id, "timeout_s": 50})
    data = [data_of(result) for result in results]
    assert all(d["finished"] and d["status"] == "completed" and not d["timed_out"] for d in data)
    polls = sum(1 for r in sim.requests if r.path.endswith(run_id))
    assert polls <= 25  # what one waiter costs (19 for this run), not twenty times it

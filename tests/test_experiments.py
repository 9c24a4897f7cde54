"""Experiments: listing and reading them, and starting a run safely (writes only): the POST sent once and
reconciled when its answer is lost, no pile-ups, and the person asked first where the client can."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.types import ElicitResult

from retab_mcp.base.config import Settings
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock

from .helpers import SIM_URL, TEST_KEY, data_of, text_of

pytestmark = pytest.mark.anyio

RUN_KEYS = {
    "run_id",
    "status",
    "finished",
    "score",
    "completed_documents",
    "total_documents",
    "error_count",
    "error",
    "cancel_reason",
}
START_KEYS = RUN_KEYS | {"started", "outcome", "experiment_id", "n_consensus", "wait_call", "hint"}
START_ARGUMENTS = {"experiment_id", "workflow_id", "allow_concurrent"}
EXPERIMENT_ROW_KEYS = {
    "experiment_id",
    "name",
    "block_type",
    "n_consensus",
    "documents",
    "latest_run_id",
    "latest_status",
    "latest_score",
    "stale",
    "stale_reasons",
}
Elicitation = Callable[[Any, Any], Awaitable[ElicitResult]]


@asynccontextmanager
async def writer(
    sim: SimulatedRetab, clock: VirtualClock, mode: str, on_elicit: Elicitation | None = None
) -> AsyncIterator[Client]:
    from retab_mcp.tools.server import build_server

    settings = Settings(api_key=TEST_KEY, base_url=SIM_URL, allow_writes=True)
    server = build_server(settings, transport=httpx2.ASGITransport(app=sim), clock=clock)
    kwargs: dict[str, Any] = {"elicitation_callback": on_elicit} if on_elicit else {}
    async with Client(server, mode=mode, **kwargs) as client:  # type: ignore[arg-type]
        yield client


async def start(client: Client, **arguments: Any) -> Any:
    with anyio.fail_after(10):
        return await client.call_tool("start_experiment_run", arguments)


def posts(sim: SimulatedRetab) -> int:
    return sum(1 for r in sim.requests if r.method == "POST" and r.path.endswith("/runs"))


def runs_of(sim: SimulatedRetab, experiment_id: str) -> list[str]:
    return [r.id for r in sim.world.runs if r.experiment.id == experiment_id]


@pytest.mark.parametrize("how", ["502", "cut"])
async def test_a_run_created_whose_answer_is_lost_is_found_and_not_started_twice(
    sim: SimulatedRetab, clock: VirtualClock, mode: str, how: str
) -> None:
    experiment = sim.add_experiment("lost", documents=12)
    sim.drop_answer(how=how)  # type: ignore[arg-type]
    async with writer(sim, clock, mode) as client:
        result = await start(client, experiment_id=experiment)
    data = data_of(result)
    assert posts(sim) == 1
    assert len(runs_of(sim, experiment)) == 1
    assert data["run_id"] == runs_of(sim, experiment)[0]
    assert data["outcome"] == "found_after_lost_answer" and data["started"] is True
    assert set(data) == START_KEYS
    assert "answer was lost" in text_of(result)


async def test_a_start_that_never_reached_the_api_says_nothing_was_seen_and_how_to_check(
    sim: SimulatedRetab, clock: VirtualClock, mode: str
) -> None:
    experiment = sim.add_experiment("unsent", documents=12)
    sim.drop_answer(how="502-unsent")
    async with writer(sim, clock, mode) as client:
        result = await start(client, experiment_id=experiment)
    assert result.is_error and posts(sim) == 1 and runs_of(sim, experiment) == []
    text = text_of(result)
    assert "no new run was listed" in text and f"list_experiment_runs(experiment_id='{experiment}')" in text


async def test_a_run_already_going_is_returned_instead_of_starting_another(
    sim: SimulatedRetab, clock: VirtualClock, mode: str
) -> None:
    experiment = sim.add_experiment("busy", documents=12)
    going = sim.add_consensus_run(experiment, duration_s=600, finished=False)
    async with writer(sim, clock, mode) as client:
        data = data_of(await start(client, experiment_id=experiment))
        assert data["outcome"] == "already_running" and data["run_id"] == going and data["started"] is False
        assert data["wait_call"] == f"wait_for_run(run_id='{going}', timeout_s=45)"
        assert posts(sim) == 0
        forced = data_of(await start(client, experiment_id=experiment, allow_concurrent=True))
    assert forced["outcome"] == "started" and forced["run_id"] != going and posts(sim) == 1


@pytest.mark.eras
async def test_the_person_is_asked_what_will_run_and_a_yes_starts_it(
    sim: SimulatedRetab, clock: VirtualClock, mode: str
) -> None:
    experiment = sim.add_experiment("ask", documents=12, n_consensus=7)
    asked: list[str] = []

    async def yes(context: Any, params: Any) -> ElicitResult:
        asked.append(params.message)
        return ElicitResult(action="accept", content={"start": True})

    async with writer(sim, clock, mode, yes) as client:
        data = data_of(await start(client, experiment_id=experiment))
    assert data["outcome"] == "started" and posts(sim) == 1
    assert len(asked) == 1 and experiment in asked[0] and "12 documents" in asked[0] and "7 consensus" in asked[0]


@pytest.mark.parametrize("answer", ["decline", "cancel", "accept-no"])
@pytest.mark.eras
async def test_a_no_is_a_normal_answer_and_nothing_starts(
    sim: SimulatedRetab, clock: VirtualClock, mode: str, answer: str
) -> None:
    experiment = sim.add_experiment("no", documents=12)

    async def no(context: Any, params: Any) -> ElicitResult:
        if answer == "accept-no":
            return ElicitResult(action="accept", content={"start": False})
        return ElicitResult(action=answer)  # type: ignore[arg-type]

    async with writer(sim, clock, mode, no) as client:
        result = await start(client, experiment_id=experiment)
    data = data_of(result)
    assert data["outcome"] == "declined" and data["started"] is False and data["run_id"] is None
    assert set(data) == START_KEYS
    assert posts(sim) == 0 and runs_of(sim, experiment) == []


@pytest.mark.eras
async def test_without_elicitation_the_operators_opt_in_is_the_consent(
    sim: SimulatedRetab, clock: VirtualClock, mode: str
) -> None:
    experiment = sim.add_experiment("optin", documents=12)
    async with writer(sim, clock, mode) as client:
        data = data_of(await start(client, experiment_id=experiment))
    assert data["outcome"] == "started" and posts(sim) == 1


async def test_a_workflow_that_does_not_match_is_not_found(sim: SimulatedRetab, clock: VirtualClock, mode: str) -> None:
    experiment = sim.add_experiment("wf", documents=12)
    async with writer(sim, clock, mode) as client:
        result = await start(client, experiment_id=experiment, workflow_id="workflow_other")
    assert result.is_error and "Not found" in text_of(result) and runs_of(sim, experiment) == []


async def test_start_is_offered_only_with_writes_and_annotated_so(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock, mode: str
) -> None:
    assert "start_experiment_run" not in {t.name for t in (await mcp_client.list_tools()).tools}
    async with writer(sim, clock, mode) as client:
        tool = next(t for t in (await client.list_tools()).tools if t.name == "start_experiment_run")
    assert set(tool.input_schema["properties"]) == START_ARGUMENTS
    assert tool.annotations is not None
    assert tool.annotations.read_only_hint is False and tool.annotations.idempotent_hint is False
    assert tool.annotations.destructive_hint is False
    assert set((tool.output_schema or {}).get("properties", {})) >= START_KEYS


async def test_experiments_are_listed_and_one_says_it_is_stale_and_what_to_call(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    experiment = sim.add_experiment("listed", documents=12)
    first = sim.add_consensus_run(experiment)
    second = sim.add_consensus_run(experiment)
    workflow = sim.world.experiments[-1].workflow_id
    listing = data_of(await mcp_client.call_tool("list_experiments", {"workflow_id": workflow}))
    (row,) = listing["experiments"]
    assert set(row) >= EXPERIMENT_ROW_KEYS and row["stale"] is False and row["documents"] == 12
    view = data_of(await mcp_client.call_tool("get_experiment", {"experiment_id": experiment}))
    assert view["next_call"] == f"compare_experiment_runs(base_run_id='{first}', candidate_run_id='{second}')"
    sim.edit_block(experiment, everywhere=0.05)
    stale = data_of(await mcp_client.call_tool("get_experiment", {"experiment_id": experiment}))
    assert stale["stale"] is True and stale["stale_reasons"] == ["block_changed"]
    assert stale["next_call"].startswith(f"start_experiment_run(experiment_id='{experiment}')")


async def test_an_unknown_experiment_is_a_clear_error(mcp_client: Client) -> None:
    result = await mcp_client.call_tool("get_experiment", {"experiment_id": "exp_nope"})
    assert result.is_error and "Not found" in text_of(result) and "exp_nope" in text_of(result)


@pytest.mark.slow
async def test_the_loop_over_stdio_lists_starts_and_compares() -> None:
    env = {"PATH": os.environ["PATH"], "RETAB_MCP_ALLOW_WRITES": "1"}
    params = StdioServerParameters(command=sys.executable, args=["-m", "retab_mcp", "--demo"], env=env)
    with anyio.fail_after(30):
        async with Client(params) as client:
            runs = data_of(await client.call_tool("list_experiment_runs", {"limit": 1}))["runs"]
            run = data_of(await client.call_tool("get_experiment_run", {"run_id": runs[0]["run_id"]}))
            experiment, workflow = run["experiment_id"], run["workflow_id"]
            listed = data_of(await client.call_tool("list_experiments", {"workflow_id": workflow}))
            one = data_of(await client.call_tool("get_experiment", {"experiment_id": experiment}))
            started = data_of(await client.call_tool("start_experiment_run", {"experiment_id": experiment}))
    assert any(row["experiment_id"] == experiment for row in listed["experiments"])
    assert one["experiment_id"] == experiment and one["next_call"]
    assert started["outcome"] in ("started", "already_running") and started["run_id"]


@pytest.mark.slow
@pytest.mark.parametrize("how", ["502", "cut"])
async def test_over_a_real_socket_a_lost_answer_still_makes_exactly_one_run(how: str) -> None:
    """The answer lost as the network loses it: a proxy's 502, or the connection cut mid-answer."""
    from retab_mcp.base.clock import RealClock
    from retab_mcp.tools.server import build_server

    from .helpers import LoopbackAPI

    sim = SimulatedRetab(clock=RealClock())
    experiment = sim.add_experiment("socket", documents=12)
    sim.drop_answer(how=how)  # type: ignore[arg-type]
    answers: list[dict[str, Any]] = []
    async with anyio.create_task_group() as group:
        api = LoopbackAPI(sim, group)
        api.start()
        settings = Settings(api_key=TEST_KEY, base_url=api.url, allow_writes=True, read_timeout_s=2)
        with anyio.fail_after(20):
            async with Client(build_server(settings)) as client:
                answers.append(data_of(await client.call_tool("start_experiment_run", {"experiment_id": experiment})))
        await api.stop()
    (data,) = answers
    assert posts(sim) == 1 and runs_of(sim, experiment) == [data["run_id"]]
    assert data["outcome"] == "found_after_lost_answer"


async def test_the_loop_tools_stay_within_their_budgets(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock, mode: str
) -> None:
    from .helpers import size_of

    long_name = "Supplier invoices, EU and UK, multi-currency, scanned and native PDFs " * 4
    for i in range(25):
        sim.add_experiment(f"{long_name}{i}", documents=10 + i, workflow_id="workflow_crowded")
    listing = await mcp_client.call_tool("list_experiments", {"workflow_id": "workflow_crowded", "limit": 25})
    assert len(data_of(listing)["experiments"]) == 25 and size_of(listing) <= 10_000
    experiment = sim.world.experiments[-1].id
    sim.add_consensus_run(experiment)
    assert size_of(await mcp_client.call_tool("get_experiment", {"experiment_id": experiment})) <= 1_200
    async with writer(sim, clock, mode) as client:
        assert size_of(await start(client, experiment_id=experiment)) <= 1_200
        assert size_of(await start(client, experiment_id=experiment)) <= 1_200  # one already going

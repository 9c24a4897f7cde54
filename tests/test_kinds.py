"""Every kind of Retab run an agent waits on: workflow runs (with their review gates) and eval runs beside
experiment runs, through the tools, over the simulated API on the virtual clock."""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client

from retab_mcp.base.config import Settings
from retab_mcp.kinds.readers import WORKFLOW_KIND, WorkflowSnapshot
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.tools.server import build_server

from .helpers import SIM_URL, TEST_KEY, call, data_of, size_of, text_of

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


def requests_for(sim: SimulatedRetab, run_id: str) -> list[str]:
    return [r.path for r in sim.requests if run_id in r.path or r.query.get("run_id") == run_id]


async def test_a_wait_on_a_workflow_run_at_a_review_gate_ends_at_once_saying_a_person_must_act(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    run_id = sim.workflow_run_ids["awaiting_review"]
    result = await call(mcp_client, "wait_for_run", run_id=run_id, timeout_s=50)
    data = data_of(result)
    assert set(data) >= RUN_KEYS and {"timed_out", "waited_s"} <= set(data)
    assert data["kind"] == "workflow" and data["status"] == "awaiting_review"
    assert data["needs_person"] is True and data["timed_out"] is False and data["waited_s"] < 1
    assert data["finished"] is False  # not over: it waits for a person
    (review,) = data["pending_reviews"]
    assert review["review_id"] == sim.review_ids["pending"] and review["block_id"] and review["step_id"]
    text = text_of(result)
    assert "NEEDS A PERSON" in text and review["review_id"] in text and "Reviews" in text


async def test_once_the_review_is_approved_the_next_wait_sees_the_run_through_to_its_end(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    run_id = sim.workflow_run_ids["awaiting_review"]
    assert data_of(await call(mcp_client, "wait_for_run", run_id=run_id))["needs_person"] is True
    sim.decide_review(sim.review_ids["pending"], "approved")
    data = data_of(await call(mcp_client, "wait_for_run", run_id=run_id, timeout_s=50))
    assert data["status"] == "completed" and data["finished"] is True and not data["needs_person"]
    assert data["steps_done"] and data["steps_done"] > 3


async def test_a_workflow_run_that_failed_names_its_failing_step_and_triage_groups_the_failures(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    run_id = sim.workflow_run_ids["failed"]
    got = data_of(await call(mcp_client, "get_run", run_id=run_id))
    assert got["kind"] == "workflow" and got["status"] == "error" and got["finished"] is True
    assert got["failing_step_id"] and got["error"]["message"] and got["steps_failed"] >= 1
    triage = await call(mcp_client, "triage_run", run_id=run_id)
    report = data_of(triage)
    assert report["kind"] == "workflow" and report["workflow"]["failures"][0]["count"] >= 1
    assert got["failing_step_id"] in text_of(triage) or report["workflow"]["failures"][0]["steps"]
    assert report["verdict"].startswith("Failed") and size_of(triage) <= 4_096


async def test_an_eval_run_says_passed_failed_and_blocked_and_its_results_come_failures_first(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    run_id = sim.eval_run_ids["candidate"]
    got = data_of(await call(mcp_client, "get_run", run_id=run_id))
    assert got["kind"] == "eval" and got["status"] == "completed"
    assert got["passed"] + got["failed"] + got["blocked"] == got["evals_total"] and got["failed"] >= 2
    listing = await call(mcp_client, "list_eval_results", run_id=run_id)
    rows = data_of(listing)["rows"]
    outcomes = [row["outcome"] for row in rows]
    assert outcomes == sorted(outcomes, key=lambda o: {"failed": 0, "blocked": 1, None: 2, "passed": 3}[o])
    failed = [row for row in rows if row["outcome"] == "failed" and not row.get("drifted")]
    assert failed and all("actual" in row and "expected" in row for row in failed)
    assert "actual" in text_of(listing) and "expected" in text_of(listing)
    only_failed = data_of(await call(mcp_client, "list_eval_results", run_id=run_id, outcome="failed"))["rows"]
    assert {row["outcome"] for row in only_failed} == {"failed"}


async def test_eval_triage_groups_failures_by_block_and_names_drifted_evals_apart(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    run_id = sim.eval_run_ids["candidate"]
    triage = await call(mcp_client, "triage_run", run_id=run_id)
    report = data_of(triage)["eval"]
    drifted = {noted["eval_id"] for noted in report["drifted"]}
    assert sim.eval_ids["currency"] in drifted
    grouped = {eval_id for group in report["failures"] for eval_id in group["eval_ids"]}
    assert not grouped & drifted  # a drifted eval is not counted as the block's failure
    assert {sim.eval_ids["total"], sim.eval_ids["line_amounts"]} <= grouped
    assert "not regressions" in text_of(triage) and size_of(triage) <= 4_096


async def test_an_id_whose_prefix_says_nothing_is_read_as_an_experiment_run_and_costs_one_404_then_says_pass_kind(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    workflow_run = sim.workflow_run_ids["completed"]
    disguised = "x" + workflow_run  # no prefix Retab issues
    result = await call(mcp_client, "get_run", run_id=disguised)
    assert result.is_error and "kind='workflow'" in text_of(result)
    assert len([r for r in sim.requests if r.path.endswith(disguised)]) == 1
    named = await call(mcp_client, "get_run", run_id=workflow_run, kind="workflow")
    assert data_of(named)["kind"] == "workflow"


async def test_wait_for_runs_waits_on_runs_of_every_kind_at_once(mcp_client: Client, sim: SimulatedRetab) -> None:
    ids = [sim.run_ids["young"], sim.workflow_run_ids["running"], sim.eval_run_ids["running"]]
    data = data_of(await call(mcp_client, "wait_for_runs", run_ids=ids, mode="all", timeout_s=50))
    assert [row["kind"] for row in data["runs"]] == ["experiment", "workflow", "eval"]
    assert all(row["finished"] for row in data["runs"]) and data["done"] is True


async def test_workflow_runs_are_listed_with_the_ones_waiting_for_a_person_marked(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    listing = await call(mcp_client, "list_runs", kind="workflow", status="awaiting_review")
    rows = data_of(listing)["runs"]
    assert [row["run_id"] for row in rows] == [sim.workflow_run_ids["awaiting_review"]]
    assert rows[0]["needs_person"] is True and "NEEDS A PERSON" in text_of(listing)
    evals = data_of(await call(mcp_client, "list_runs", kind="eval", limit=3))
    assert len(evals["runs"]) == 3 and all(row["total"] for row in evals["runs"])


async def test_progress_of_an_eval_run_counts_evals_finished_of_the_total(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    run_id = sim.add_eval_run(duration_s=20.0, finished=False)
    events: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        events.append((progress, total, message))

    with anyio.fail_after(10):
        await mcp_client.call_tool("wait_for_run", {"run_id": run_id, "timeout_s": 50}, progress_callback=on_progress)
    assert events and [p for p, _, _ in events] == sorted({p for p, _, _ in events})
    assert all(message and "evals" in message for _, _, message in events)
    assert events[-1][1] is not None and events[-1][0] == events[-1][1]


def test_a_workflow_snapshot_shared_between_replicas_reads_back_the_same() -> None:
    sim = SimulatedRetab(clock=VirtualClock(start=1_000.0))
    del sim
    dumped: dict[str, Any] = {
        "id": "run_x",
        "run": {"id": "run_x", "lifecycle": {"status": "awaiting_review", "waiting_for_block_ids": ["block_a"]}},
        "steps": {"done": 3, "failed": 0, "listed": 4},
        "reviews": [{"id": "rev_1", "block_id": "block_a", "step_id": "step_3"}],
    }
    snapshot = WORKFLOW_KIND.parse(json.loads(json.dumps(dumped)))
    assert isinstance(snapshot, WorkflowSnapshot)
    again = WORKFLOW_KIND.parse(snapshot.model_dump(mode="json", by_alias=True))
    assert again == snapshot and again.stops_wait and again.progress.done == 3


async def test_twenty_eval_run_starts_at_once_start_one_run_and_all_name_it(
    sim: SimulatedRetab, clock: VirtualClock
) -> None:
    workflow = sim.workflow_ids["support"]  # no run of its evals is going
    sim.inject("slow", times=10_000, delay_s=0.002)  # interleave, as over a network
    settings = Settings(api_key=TEST_KEY, base_url=SIM_URL, allow_writes=True)
    server = build_server(settings, transport=httpx2.ASGITransport(app=sim), clock=clock)
    before = {run.id for run in sim.eval_world.runs}
    results: list[Any] = []
    async with Client(server) as client:

        async def start() -> None:
            results.append(await client.call_tool("start_eval_run", {"workflow_id": workflow}))

        with anyio.fail_after(30):
            async with anyio.create_task_group() as group:
                for _ in range(20):
                    group.start_soon(start)
    created = [run.id for run in sim.eval_world.runs if run.id not in before]
    data = [data_of(result) for result in results]
    assert len(created) == 1
    assert {d["run_id"] for d in data} == set(created)
    assert sorted(d["outcome"] for d in data) == ["already_running"] * 19 + ["started"]


async def test_comparing_eval_runs_names_each_regression_with_actual_and_expected_and_the_gate_fails(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    result = await call(mcp_client, "compare_eval_runs", candidate_run_id=sim.eval_run_ids["candidate"])
    data = data_of(result)
    assert data["base_run_id"] == sim.eval_run_ids["base"] and data["base_chosen"]  # the run before, found
    regressed = {change["eval_id"]: change for change in data["regressions"]}
    assert set(regressed) == {sim.eval_ids["total"], sim.eval_ids["line_amounts"]}
    assert all(change["actual"] and change["expected"] for change in regressed.values())
    assert data["fixes"] == [sim.eval_ids["vat_format"]]
    assert data["gate"] == "failed" and data["verdict"] == "no detectable change"  # 1 fix vs 2: could be chance
    assert sim.eval_ids["currency"] in data["drifted"] and sim.eval_ids["purchase_order"] in data["blocked"]
    assert "REGRESSED" in text_of(result) and size_of(result) <= 4_096


async def test_eval_runs_of_an_unchanged_configuration_flip_without_a_verdict_of_change(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    data = data_of(await call(mcp_client, "compare_eval_runs", candidate_run_id=sim.eval_run_ids["noisy_candidate"]))
    assert data["regression_count"] >= 1 and data["fix_count"] >= 1  # the judges flipped both ways
    assert data["verdict"] == "no detectable change" and data["p_value"] > 0.05


async def test_an_eval_run_compared_with_itself_or_unfinished_gets_no_verdict_and_why(
    mcp_client: Client, sim: SimulatedRetab
) -> None:
    same = sim.eval_run_ids["candidate"]
    itself = data_of(await call(mcp_client, "compare_eval_runs", base_run_id=same, candidate_run_id=same))
    assert itself["verdict"] == "no verdict" and itself["gate"] is None and "same run" in itself["why_no_verdict"]
    cancelled = sim.eval_run_ids["cancelled"]
    unfinished = data_of(await call(mcp_client, "compare_eval_runs", base_run_id=same, candidate_run_id=cancelled))
    assert unfinished["verdict"] == "no verdict" and cancelled in unfinished["why_no_verdict"]


async def test_the_kth_eval_run_tried_against_one_base_is_judged_at_a_stricter_level(
    mcp_client: Client, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    base = sim.eval_run_ids["noisy_base"]
    workflow = sim.workflow_ids["support"]
    tries: list[str] = []
    for _ in range(3):
        clock.advance(60)
        tries.append(sim.add_eval_run(workflow, flip_rate=0.1))
    data = data_of(await call(mcp_client, "compare_eval_runs", base_run_id=base, candidate_run_id=tries[-1]))
    assert data["candidate_index"] == 4  # the seeded noisy candidate, then these three
    if data["p_value"] is not None:
        k = data["candidate_index"]
        assert data["adjusted_p_value"] == pytest.approx(min(1.0, data["p_value"] * k * (k + 1) / 2), abs=1e-3)


@pytest.mark.parametrize(
    ("tool", "arguments", "budget"),
    [
        ("get_run", {"run_id": "completed"}, 900),
        ("get_run", {"run_id": "candidate"}, 900),
        ("get_run", {"run_id": "awaiting_review"}, 1_500),
        ("get_run", {"run_id": "failed"}, 1_500),
        ("wait_for_run", {"run_id": "awaiting_review"}, 1_500),
        ("list_runs", {"kind": "workflow"}, 2_800),
        ("list_runs", {"kind": "eval"}, 2_800),
        ("list_eval_results", {"run_id": "candidate"}, 5_000),
    ],
)
async def test_results_of_the_other_kinds_stay_within_their_budgets(
    mcp_client: Client, sim: SimulatedRetab, tool: str, arguments: dict[str, str], budget: int
) -> None:
    """Text and structuredContent together, as BENCHMARKS.md's context section measures them."""
    ids = {**sim.workflow_run_ids, **sim.eval_run_ids}
    result = await call(mcp_client, tool, **{name: ids.get(value, value) for name, value in arguments.items()})
    assert not result.is_error and size_of(result) <= budget, (size_of(result), text_of(result))

"""The simulated API's workflow runs and eval runs behave as the scenarios promise: a review gate pauses a
run until a person decides, a failing step carries the error its run reports, eval runs of two versions
pair into regressions and fixes, eval runs of one version differ only by judged assertions that flip, and
the controls every kind shares (created runs, lost answers, organisations, faults) apply to these paths."""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from itertools import pairwise
from typing import Any, Literal

import httpx2
import pytest
from scipy.stats import binomtest

from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.simulator.workflow_controls import ReviewNotPendingError

from .helpers import TEST_KEY

pytestmark = pytest.mark.anyio

RUNS, STEPS, REVIEWS = "/v1/workflows/runs", "/v1/workflows/steps", "/v1/workflows/reviews"
EVAL_RUNS, RESULTS = "/v1/workflows/evals/runs", "/v1/workflows/evals/results"
OTHER_KEY = "sk_test_another_organisation"


@pytest.fixture
async def http(sim: SimulatedRetab) -> Any:
    async with httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=sim),
        base_url="http://retab.test",
        headers={"Authorization": f"Bearer {TEST_KEY}"},
    ) as c:
        yield c


async def get(http: httpx2.AsyncClient, path: str, **params: str) -> Any:
    response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    return response.json()


def at(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp)


async def steps_of(http: httpx2.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    return (await get(http, STEPS, run_id=run_id, limit="1000"))["data"]


async def verdicts(http: httpx2.AsyncClient, run_id: str) -> dict[str, str]:
    rows = (await get(http, RESULTS, run_id=run_id, limit="100"))["data"]
    return {row["eval_id"]: row["verdict"] for row in rows}


# The review gate


async def test_a_run_at_its_review_gate_names_the_pending_review_its_block_and_the_step_under_review(
    http: httpx2.AsyncClient, sim: SimulatedRetab
) -> None:
    run_id = sim.workflow_run_ids["awaiting_review"]
    run = await get(http, f"{RUNS}/{run_id}")
    pending = (await get(http, REVIEWS, run_id=run_id, decision_status="pending"))["data"]
    gated = [s for s in await steps_of(http, run_id) if s["lifecycle"]["status"] == "awaiting_review"]
    assert [r["id"] for r in pending] == [sim.review_ids["pending"]]
    assert run["lifecycle"]["waiting_for_block_ids"] == [pending[0]["block_id"]] == [gated[0]["block_id"]]
    assert pending[0]["step_id"] == gated[0]["step_id"] and pending[0]["decision"] is None
    assert run["timing"]["completed_at"] is None


async def test_an_approved_review_resumes_the_run_which_then_completes(
    http: httpx2.AsyncClient, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    run_id, review_id = sim.workflow_run_ids["awaiting_review"], sim.review_ids["pending"]
    clock.advance(3600)  # nothing happens while nobody decides
    assert (await get(http, f"{RUNS}/{run_id}"))["lifecycle"]["status"] == "awaiting_review"
    sim.decide_review(review_id, "approved")
    assert (await get(http, f"{RUNS}/{run_id}"))["lifecycle"]["status"] == "running"
    clock.advance(60)
    run = await get(http, f"{RUNS}/{run_id}")
    review = await get(http, f"{REVIEWS}/{review_id}")
    steps = await steps_of(http, run_id)
    assert run["lifecycle"] == {"status": "completed"} and review["decision"]["verdict"] == "approved"
    assert {s["lifecycle"]["status"] for s in steps} == {"completed"}
    assert run["timing"]["completed_at"] == max(s["completed_at"] for s in steps) > review["decision"]["created_at"]
    assert (await get(http, REVIEWS, run_id=run_id))["data"] == []  # no longer pending


async def test_a_rejected_review_resumes_the_run_which_skips_the_steps_after_its_gate(
    http: httpx2.AsyncClient, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    run_id = sim.workflow_run_ids["awaiting_review"]
    sim.decide_review(sim.review_ids["pending"], "rejected", reason="wrong vendor")
    clock.advance(1)
    run = await get(http, f"{RUNS}/{run_id}")
    statuses = [s["lifecycle"]["status"] for s in await steps_of(http, run_id)]
    review = await get(http, f"{REVIEWS}/{sim.review_ids['pending']}")
    assert run["lifecycle"]["status"] == "completed" and review["decision"]["reason"] == "wrong vendor"
    assert statuses[:4] == ["completed"] * 4 and set(statuses[4:]) == {"skipped"}


def test_only_a_pending_review_can_be_decided(sim: SimulatedRetab) -> None:
    with pytest.raises(ReviewNotPendingError):
        sim.decide_review(sim.review_ids["approved"], "rejected")
    with pytest.raises(KeyError):
        sim.decide_review("rev_unknown", "approved")


async def test_an_added_run_stops_at_its_gate_and_completes_once_approved(
    http: httpx2.AsyncClient, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    run_id = sim.add_workflow_run(duration_s=20, review_gate=True)
    clock.advance(30)
    review = (await get(http, REVIEWS, run_id=run_id))["data"][0]
    sim.decide_review(review["id"], "approved")
    clock.advance(30)
    assert (await get(http, f"{RUNS}/{run_id}"))["lifecycle"]["status"] == "completed"


# Failed, running, completed


async def test_a_failed_run_reports_the_error_of_its_failing_step_and_the_block_it_ran(
    http: httpx2.AsyncClient, sim: SimulatedRetab
) -> None:
    run_id = sim.workflow_run_ids["failed"]
    lifecycle = (await get(http, f"{RUNS}/{run_id}"))["lifecycle"]
    steps = await steps_of(http, run_id)
    failing = next(s for s in steps if s["lifecycle"]["status"] == "error")
    artifact = await get(http, f"/v1/workflows/artifacts/{failing['artifact']['id']}")
    extraction = next(s for s in steps if s["block_type"] == "extract")["handle_outputs"]["output"]["data"]
    assert lifecycle["failing_step_id"] == failing["step_id"] == lifecycle["details"]["context"]["step_id"]
    assert (
        lifecycle["details"]["block_id"] == failing["block_id"] and lifecycle["details"]["block_name"] == "Check totals"
    )
    assert failing["lifecycle"]["message"] in lifecycle["message"] and artifact["error"] == lifecycle["details"]
    lines = round(sum(line["amount"] for line in extraction["line_items"]), 2)
    assert f"{lines:.2f}" in lifecycle["message"] and f"{extraction['total']:.2f}" in lifecycle["message"]
    assert lines != extraction["total"]


async def test_a_running_run_completes_its_steps_over_time(
    http: httpx2.AsyncClient, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    run_id = sim.workflow_run_ids["running"]
    planned = sim.workflow_world.run(run_id)
    assert planned is not None
    done: list[int] = []
    for _ in range(9):
        clock.advance(5)
        statuses = [s["lifecycle"]["status"] for s in await steps_of(http, run_id)]
        done.append(statuses.count("completed"))
    assert done == sorted(done) and done[0] < done[4] < done[-1] == len(planned.plan)
    assert (await get(http, f"{RUNS}/{run_id}"))["lifecycle"]["status"] == "completed"


async def test_a_loop_gives_one_step_per_iteration(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    steps = await steps_of(http, sim.workflow_run_ids["completed"])
    loop = next(s for s in steps if s["block_type"] == "for_each")
    body = [s for s in steps if s["loop_containers"]]
    assert len({s["block_id"] for s in body}) == 1 and len({s["step_id"] for s in body}) == len(body) == 4
    assert [s["loop_containers"] for s in body] == [
        [{"container_id": loop["block_id"], "iteration": i}] for i in range(4)
    ]


@pytest.mark.parametrize("role", ["completed", "rejected", "failed", "cancelled"])
async def test_a_finished_run_s_times_are_in_order(http: httpx2.AsyncClient, sim: SimulatedRetab, role: str) -> None:
    run = await get(http, f"{RUNS}/{sim.workflow_run_ids[role]}")
    steps = [{k: at(v) for k, v in s.items() if k.endswith("_at")} for s in await steps_of(http, run["id"])]
    timing = {k: at(v) for k, v in run["timing"].items()}
    assert timing["created_at"] < timing["started_at"] == steps[0]["started_at"]
    for before, step in pairwise(steps):
        assert before["started_at"] <= step["created_at"] == step["started_at"] <= step["completed_at"]
    assert max(s["completed_at"] for s in steps) == timing["completed_at"]


# Eval runs


async def test_the_base_and_candidate_eval_runs_pair_into_regressions_and_fixes(
    http: httpx2.AsyncClient, sim: SimulatedRetab
) -> None:
    base = await verdicts(http, sim.eval_run_ids["base"])
    candidate = await verdicts(http, sim.eval_run_ids["candidate"])
    role = {v: k for k, v in sim.eval_ids.items()}
    assert base.keys() == candidate.keys()
    regressions = {role[e] for e in base if (base[e], candidate[e]) == ("passed", "failed")}
    fixes = {role[e] for e in base if (base[e], candidate[e]) == ("failed", "passed")}
    assert regressions == {"total", "line_amounts"} and fixes == {"vat_format"}
    assert base[sim.eval_ids["purchase_order"]] == candidate[sim.eval_ids["purchase_order"]] == "blocked"


async def test_a_blocked_eval_says_its_target_did_not_resolve(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    rows = (await get(http, RESULTS, run_id=sim.eval_run_ids["candidate"], limit="100"))["data"]
    blocked = next(r for r in rows if r["eval_id"] == sim.eval_ids["purchase_order"])
    assert blocked["lifecycle"]["status"] == "completed" and blocked["verdict"] == "blocked"
    assert blocked["assertion_result"]["failure"]["code"] == "target_unresolved"
    assert blocked["verdict_summary"] == {
        "passed": False,
        "assertions_passed": 0,
        "assertions_failed": 0,
        "blocked_assertions": 1,
        "failed_assertion_ids": [],
    }


async def test_assertions_carry_the_values_scores_and_thresholds_their_kind_has(
    http: httpx2.AsyncClient, sim: SimulatedRetab
) -> None:
    rows = (await get(http, RESULTS, run_id=sim.eval_run_ids["candidate"], limit="100"))["data"]
    by_role = {role: next(r for r in rows if r["eval_id"] == eval_id) for role, eval_id in sim.eval_ids.items()}
    total = by_role["total"]["assertion_result"]
    judged = by_role["line_amounts"]["assertion_result"]
    similar = by_role["vendor_name"]["assertion_result"]
    assert total["actual_value"] != total["expected_value"] and (total["score"], total["threshold"]) == (None, None)
    assert (judged["condition_kind"], judged["actual_value"], judged["expected_value"]) == (
        "llm_judged_as",
        "no",
        "yes",
    )
    assert (
        judged["score"] is not None and judged["threshold"] == 0.5 and judged["failure"]["code"] == "assertion_failed"
    )
    assert similar["score"] >= similar["threshold"] and similar["metric_kind"] == "levenshtein"


async def test_the_drifted_eval_is_stale_and_blocked_in_runs_of_the_new_version(
    http: httpx2.AsyncClient, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    drifted = await get(http, f"/v1/workflows/evals/{sim.eval_ids['currency']}")
    steady = await get(http, f"/v1/workflows/evals/{sim.eval_ids['total']}")
    assert (drifted["schema_drift"], drifted["assertion_drift_status"], drifted["drift"]["status"]) == ("drifted",) * 3
    assert drifted["freshness"]["status"] == "stale" and drifted["freshness"]["reasons"] == ["validity_changed"]
    assert steady["freshness"]["status"] == "fresh" and steady["schema_drift"] == "none"
    clock.advance(60)
    assert (await verdicts(http, sim.eval_run_ids["running"]))[sim.eval_ids["currency"]] == "blocked"
    assert (await get(http, f"/v1/workflows/evals/{sim.eval_ids['currency']}"))["freshness"]["status"] == "fresh"


async def test_an_eval_s_summaries_name_its_latest_passing_and_failing_results(
    http: httpx2.AsyncClient, sim: SimulatedRetab
) -> None:
    total = await get(http, f"/v1/workflows/evals/{sim.eval_ids['total']}")
    latest = await get(http, f"{RESULTS}/{total['latest_run_summary']['run_record_id']}")
    passing = await get(http, f"{RESULTS}/{total['latest_passing_run_summary']['run_record_id']}")
    assert latest["workflow_eval_run_id"] == sim.eval_run_ids["candidate"] and latest["verdict"] == "failed"
    assert total["latest_failing_run_summary"] == total["latest_run_summary"]
    # The latest run where it passed: one cancelled after its first three evals, still their verdicts.
    assert passing["workflow_eval_run_id"] == sim.eval_run_ids["cancelled"] and passing["verdict"] == "passed"


@pytest.mark.parametrize("advance_s", [0.0, 1.5, 20.0, 60.0])
async def test_an_eval_run_s_counts_are_its_results_counted(
    http: httpx2.AsyncClient, sim: SimulatedRetab, clock: VirtualClock, advance_s: float
) -> None:
    clock.advance(advance_s)
    for run_id in sim.eval_run_ids.values():
        run = await get(http, f"{EVAL_RUNS}/{run_id}")
        rows = (await get(http, RESULTS, run_id=run_id, limit="100"))["data"]
        lifecycles = Counter(r["lifecycle"]["status"] for r in rows)
        outcomes = Counter(r["verdict"] for r in rows if r["verdict"])
        assert run["total_evals"] == len(rows) == sum(run["counts"]["lifecycle_counts"].values())
        assert run["counts"]["lifecycle_counts"] == {k: lifecycles[k] for k in run["counts"]["lifecycle_counts"]}
        assert run["counts"]["outcome"] == {k: outcomes[k] for k in run["counts"]["outcome"]}
        assert sum(outcomes.values()) == lifecycles["completed"]


async def test_eval_runs_of_one_configuration_differ_only_by_judges_that_flip(
    http: httpx2.AsyncClient, sim: SimulatedRetab
) -> None:
    base_id, candidate_id = sim.eval_run_ids["noisy_base"], sim.eval_run_ids["noisy_candidate"]
    base, candidate = await verdicts(http, base_id), await verdicts(http, candidate_id)
    runs = [await get(http, f"{EVAL_RUNS}/{run_id}") for run_id in (base_id, candidate_id)]
    regressions = sum(1 for e in base if (base[e], candidate[e]) == ("passed", "failed"))
    fixes = sum(1 for e in base if (base[e], candidate[e]) == ("failed", "passed"))
    assert runs[0]["workflow_version_id"] == runs[1]["workflow_version_id"]
    assert regressions >= 1 and fixes >= 1  # noise in both directions
    assert binomtest(regressions, regressions + fixes).pvalue > 0.05  # and nothing McNemar's test would call real


async def test_added_eval_runs_flip_at_the_rate_asked_and_not_at_all_without_one(
    http: httpx2.AsyncClient, sim: SimulatedRetab
) -> None:
    support = sim.workflow_ids["support"]
    steady = [await verdicts(http, sim.add_eval_run(support, flip_rate=0.0)) for _ in range(2)]
    noisy = [await verdicts(http, sim.add_eval_run(support, flip_rate=0.3)) for _ in range(2)]
    assert steady[0] == steady[1] and noisy[0] != noisy[1]


async def test_a_block_edit_regresses_and_fixes_the_evals_chosen_in_later_runs(
    http: httpx2.AsyncClient, sim: SimulatedRetab
) -> None:
    before = await verdicts(http, sim.add_eval_run())
    version = sim.edit_eval_block(regress=[sim.eval_ids["invoice_number"]], fix=[sim.eval_ids["total"]])
    after_id = sim.add_eval_run()
    after = await verdicts(http, after_id)
    changed = {e for e in before if before[e] != after[e]}
    assert changed == {sim.eval_ids["invoice_number"], sim.eval_ids["total"]}
    assert (after[sim.eval_ids["invoice_number"]], after[sim.eval_ids["total"]]) == ("failed", "passed")
    assert (await get(http, f"{EVAL_RUNS}/{after_id}"))["workflow_version_id"] == version


# What every kind shares: created runs, lost answers, organisations, faults


async def test_a_created_eval_run_lasts_as_long_as_created_runs_do(
    http: httpx2.AsyncClient, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    created = await http.post(EVAL_RUNS, json={"workflow_id": sim.workflow_ids["invoices"]})
    run_id = created.json()["id"]
    clock.advance(sim.created_run_s / 2)
    assert (await get(http, f"{EVAL_RUNS}/{run_id}"))["lifecycle"]["status"] == "running"
    clock.advance(sim.created_run_s)
    run = await get(http, f"{EVAL_RUNS}/{run_id}")
    assert run["lifecycle"]["status"] == "completed" and run["counts"]["lifecycle_counts"]["completed"] == 12


async def test_a_created_workflow_run_completes_within_created_run_s(
    http: httpx2.AsyncClient, sim: SimulatedRetab, clock: VirtualClock
) -> None:
    block = sim.workflow_world.workflows[0].blocks[0].id
    document = {block: {"filename": "scan.pdf", "url": "data:application/pdf;base64,JVBERi0xLjQK"}}
    created = await http.post(RUNS, json={"workflow_id": sim.workflow_ids["invoices"], "documents": document})
    clock.advance(sim.created_run_s + 2)
    run = await get(http, f"{RUNS}/{created.json()['id']}")
    assert run["lifecycle"]["status"] == "completed" and run["inputs"]["documents"][block]["filename"] == "scan.pdf"


@pytest.mark.parametrize(("how", "made"), [("502", 1), ("502-unsent", 0)])
async def test_a_lost_answer_to_an_eval_run_post_made_the_run_unless_the_proxy_failed_first(
    http: httpx2.AsyncClient, sim: SimulatedRetab, how: Literal["502", "502-unsent"], made: int
) -> None:
    before = len((await get(http, EVAL_RUNS, limit="100"))["data"])
    sim.drop_answer("POST", "/evals/runs", how)
    lost = await http.post(EVAL_RUNS, json={"workflow_id": sim.workflow_ids["invoices"]})
    assert lost.status_code == 502
    assert len((await get(http, EVAL_RUNS, limit="100"))["data"]) == before + made


async def test_another_organisation_s_runs_and_all_they_hold_are_not_found(
    http: httpx2.AsyncClient, sim: SimulatedRetab
) -> None:
    workflow_run, eval_run = sim.workflow_run_ids["awaiting_review"], sim.eval_run_ids["candidate"]
    rows = (await get(http, RESULTS, run_id=eval_run, limit="1"))["data"]
    sim.owners[workflow_run] = sim.owners[eval_run] = OTHER_KEY
    assert (await http.get(f"{RUNS}/{workflow_run}")).json() == {"detail": "Workflow run not found"}
    assert (await http.get(f"{EVAL_RUNS}/{eval_run}")).json() == {"detail": f"Workflow eval run not found: {eval_run}"}
    for path in (
        f"{REVIEWS}/{sim.review_ids['pending']}",
        f"{RESULTS}/{rows[0]['id']}",
        f"{STEPS}?run_id={workflow_run}",
    ):
        assert (await http.get(path)).status_code == 404
    assert workflow_run not in {r["id"] for r in (await get(http, RUNS, limit="100"))["data"]}
    assert eval_run not in {r["id"] for r in (await get(http, EVAL_RUNS, limit="100"))["data"]}
    theirs = await http.get(f"{EVAL_RUNS}/{eval_run}", headers={"Authorization": f"Bearer {OTHER_KEY}"})
    assert theirs.status_code == 200


async def test_injected_faults_apply_to_the_new_paths(http: httpx2.AsyncClient, sim: SimulatedRetab) -> None:
    sim.inject(status=503, path_contains="/v1/workflows/evals/runs")
    sim.inject(status=429, retry_after="2", path_contains="/v1/workflows/steps")
    unavailable = await http.get(f"{EVAL_RUNS}/{sim.eval_run_ids['base']}")
    limited = await http.get(STEPS)
    assert unavailable.status_code == 503 and unavailable.json()["detail"]["code"] == "HTTP_EXCEPTION"
    assert limited.status_code == 429 and limited.headers["retry-after"] == "2"
    assert (await http.get(f"{EVAL_RUNS}/{sim.eval_run_ids['base']}")).status_code == 200


def test_the_demo_world_has_every_role_and_a_short_running_run() -> None:
    demo = SimulatedRetab(clock=VirtualClock(start=1_000.0), demo=True)
    runs = {r.id: r for r in demo.workflow_world.runs}
    eval_runs = {r.id: r for r in demo.eval_world.runs}
    assert set(demo.workflow_run_ids.values()) <= runs.keys()
    assert set(demo.eval_run_ids.values()) <= eval_runs.keys()
    assert sum(s.duration_s for s in runs[demo.workflow_run_ids["running"]].plan) == pytest.approx(12)
    assert eval_runs[demo.eval_run_ids["running"]].duration_s == 12

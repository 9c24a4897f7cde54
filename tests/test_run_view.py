"""The run view (`ui://retab/run`) in a real host: headless Chromium renders it in a sandboxed iframe, the
official AppBridge talks to it, and the TypeScript MCP client carries its calls to a `retab-mcp` process
over streamable HTTP (interop/apps/host.mjs). The harness records what a person would see; these tests
judge it, for every kind of run.

The finished, failed, compared and torn-down views are of `retab-mcp --demo`. Runs that must still be
going when the browser opens them (an experiment run, an eval run, a workflow run that stops at its review
gate until the test approves it through the simulator's `decide_review`), and text written to attack the
page, come from the simulated API held by the test (on a loopback port), served by a `retab-mcp` process
pointed at it.

Screenshots go to RETAB_MCP_SCREENSHOTS when set (the README's images), else to a temporary directory.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.streams.buffered import BufferedByteReceiveStream

from retab_mcp.base.clock import RealClock
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.eval_world import eval_run_id
from retab_mcp.simulator.scenario import opaque_id
from retab_mcp.simulator.workflow_world import workflow_run_id

from .helpers import TEST_KEY, LoopbackAPI
from .processes import serve

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
HOST = ROOT / "interop" / "apps" / "host.mjs"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
HOST_BOUND_S = 120  # the whole harness run, all scenarios included
LINE_MAX = 1 << 26  # the observations, one JSON line
SCRIPT = "<script>window.__pwned=1</script>"
IMAGE = '<img src=x onerror="window.__pwned=1">'
MINUS, TIMES = "\u2212", "\u00d7"  # as the view writes a negative delta and a count
IN = "\u203a"  # as the view writes where in Retab a person acts: Retab > Workflows > ...
REVIEW_ID = re.compile(r"\brev_[\w-]+")


def missing_parts() -> str | None:
    if shutil.which("node") is None:
        return "Node.js is not installed"
    if not (HOST.parent / "node_modules").is_dir():
        return "the test host's packages are not installed: run `npm ci` in interop/apps"
    if not Path(CHROMIUM).exists():
        return f"no Chromium at {CHROMIUM}: `apt-get install chromium` (or set CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    chosen = os.environ.get("RETAB_MCP_SCREENSHOTS")
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module", autouse=True)
def the_parts_are_here() -> None:
    missing = missing_parts()
    if missing and os.environ.get("CI"):
        pytest.fail(f"{missing}; .ci/run installs it")
    if missing:
        pytest.skip(missing)


async def observe(
    port: int,
    plan: list[dict[str, Any]],
    out: Path,
    work: Path,
    at_gate: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """The harness's observations of `plan`. A scenario that stops at a review gate says so on a line of its
    own; `at_gate` acts on it (decides the review) before the harness is told to go on."""
    plan_file = work / f"plan-{port}-{plan[0]['name']}.json"
    plan_file.write_text(json.dumps(plan))
    command = ["node", str(HOST), "--mcp", f"http://127.0.0.1:{port}/mcp", "--plan", str(plan_file)]
    command += ["--out", str(out), "--chromium", CHROMIUM]
    with (work / f"{plan_file.stem}.stderr").open("wb") as stderr, anyio.fail_after(HOST_BOUND_S):
        async with await anyio.open_process(command, stderr=stderr) as host:
            assert host.stdout is not None and host.stdin is not None
            lines = BufferedByteReceiveStream(host.stdout)
            while (said := json.loads(await lines.receive_until(b"\n", LINE_MAX))).get("event") == "gate":
                assert at_gate is not None, said
                at_gate(said)
                await host.stdin.send(b"go\n")
            returncode = await host.wait()
    assert returncode == 0, (work / f"{plan_file.stem}.stderr").read_text()[-3000:]
    return said


DEMO_PLAN = [
    {
        "name": "completed",
        "tool": "triage_experiment_run",
        "args": {"run_id": opaque_id("exprun", "latest")},
        "screenshots": {"final": "run-view-completed.png"},
    },
    {
        "name": "dark",
        "tool": "get_experiment_run",
        "args": {"run_id": opaque_id("exprun", "latest")},
        "theme": "dark",
        "width": 360,
        "screenshots": {"final": "run-view-dark.png"},
    },
    {"name": "failed", "tool": "triage_experiment_run", "args": {"run_id": opaque_id("exprun", "failed")}},
    {
        "name": "compared",
        "tool": "compare_experiment_runs",
        "args": {"base_run_id": opaque_id("exprun", "older"), "candidate_run_id": opaque_id("exprun", "latest")},
    },
    {
        "name": "compared-itself",
        "tool": "compare_experiment_runs",
        "args": {"base_run_id": opaque_id("exprun", "latest"), "candidate_run_id": opaque_id("exprun", "latest")},
    },
    {
        "name": "teardown",
        "kind": "teardown",
        "tool": "wait_for_run",
        "args": {"run_id": opaque_id("exprun", "long"), "timeout_s": 1},
    },
    {"name": "workflow-failed", "tool": "triage_run", "args": {"run_id": workflow_run_id("failed")}},
    {
        "name": "eval",
        "tool": "get_run",
        "args": {"run_id": eval_run_id("candidate")},
        "screenshots": {"final": "run-view-eval.png"},
    },
    {"name": "eval-drifted", "tool": "get_run", "args": {"run_id": eval_run_id("running")}},
    {
        "name": "eval-compared",
        "tool": "compare_eval_runs",
        "args": {"candidate_run_id": eval_run_id("candidate")},
        "screenshots": {"final": "run-view-eval-compare.png"},
    },
]


@pytest.fixture(scope="module")
def demo(screenshots: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("demo-host")

    async def main() -> dict[str, Any]:
        async with serve("--transport", "http") as served:
            return await observe(served.port, DEMO_PLAN, screenshots, work)

    return anyio.run(main)


@pytest.fixture(scope="module")
def held(screenshots: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Views of runs the test makes: ones that are going when the view opens (an experiment run, an eval
    run, a workflow run that stops at its review gate until the test approves it), and one whose text
    attacks the page."""
    work = tmp_path_factory.mktemp("held-host")

    async def main() -> dict[str, Any]:
        sim = SimulatedRetab(clock=RealClock())
        hostile = sim.add_run(documents=6, duration_s=30, document_errors={1: (SCRIPT, "E<b>1</b>"), 4: (IMAGE, None)})
        run = sim.world.run(hostile)
        assert run is not None
        run.created_t -= 60  # finished a while ago
        run.experiment.documents[0] = (run.experiment.documents[0][0], f"{IMAGE}.pdf")
        run.experiment.documents[2] = (run.experiment.documents[2][0], f"{SCRIPT}.pdf")
        seen: dict[str, Any] = {}
        decided: list[str] = []

        def approve(event: dict[str, Any]) -> None:
            (review_id,) = {m for line in event["reviews"] for m in REVIEW_ID.findall(line)}
            sim.decide_review(review_id, "approved")  # KeyError if the view named a review that is not pending
            decided.append(review_id)

        async with anyio.create_task_group() as group:
            api = LoopbackAPI(sim, group)
            api.start()
            env = {"RETAB_API_BASE_URL": api.url, "RETAB_API_KEY": TEST_KEY}
            async with serve("--transport", "http", env=env, demo=False) as served:
                going = sim.add_run(documents=10, duration_s=20, queue_s=1)
                plan = [
                    {
                        "name": "running",
                        "kind": "follow",
                        "tool": "get_experiment_run",
                        "args": {"run_id": going},
                        "timeout_s": 40,
                        "screenshots": {"running": "run-view-running.png"},
                    },
                    {"name": "hostile", "tool": "triage_experiment_run", "args": {"run_id": hostile}},
                ]
                seen = await observe(served.port, plan, screenshots, work)
                # Each run made just before its view opens, so that the view sees it going: long enough
                # for node and Chromium to start on a loaded machine before its gate or its end.
                gated = sim.add_workflow_run(duration_s=20, queue_s=1, review_gate=True)
                plan = [
                    {
                        "name": "review-gate",
                        "kind": "gate",
                        "tool": "get_run",
                        "args": {"run_id": gated},
                        "width": 360,
                        "timeout_s": 40,
                        "screenshots": {"gate": "run-view-review-gate.png"},
                    }
                ]
                seen |= await observe(served.port, plan, screenshots, work, at_gate=approve)
                seen["review-gate"]["decided"] = decided
                evals = sim.add_eval_run(finished=False, duration_s=24)
                plan = [
                    {
                        "name": "eval-running",
                        "kind": "follow",
                        "tool": "compare_eval_runs",
                        "args": {"candidate_run_id": evals},
                        "timeout_s": 40,
                    }
                ]
                seen |= await observe(served.port, plan, screenshots, work)
            await api.stop()
            group.cancel_scope.cancel()
        return seen

    return anyio.run(main)


def views(demo: dict[str, Any], held: dict[str, Any]) -> dict[str, Any]:
    return {**demo, **held}


TITLE = re.compile(r"(Experiment run exprun|Workflow run run|Eval run wfevalrun)_[\w-]+$")


def test_every_view_initializes_with_no_console_error_and_no_request_leaving_the_frame(
    demo: dict[str, Any], held: dict[str, Any]
) -> None:
    for name, seen in views(demo, held).items():
        assert seen["opened"]["uri"] == "ui://retab/run", name
        assert seen["consoleErrors"] == [], name
        assert seen["viewRequests"] == [], name
        assert seen["offsiteRequests"] == [], name
        assert TITLE.match(seen["final"]["title"]), (name, seen["final"]["title"])
        assert not seen["final"]["overflowX"], name  # nothing runs off the side, at 560 or 360 px


def test_a_running_run_advances_to_completion_without_a_reload(held: dict[str, Any]) -> None:
    seen = held["running"]
    done = [d for d, _, _ in seen["progress"]]
    assert done == sorted(done), done
    assert any(0 < d < 10 for d in done), done  # the bar moved while the run went on
    assert seen["final"]["done"] == seen["final"]["total"] == 10
    assert seen["final"]["headline"].startswith("Completed")
    assert seen["final"]["chartShown"]
    waits = [c for c in seen["calls"] if c["name"] == "wait_for_run"]
    assert len(waits) >= 2
    assert all(2 <= c["arguments"]["timeout_s"] <= 10 for c in waits)
    assert [c["name"] for c in seen["calls"][-2:]] == ["triage_experiment_run", "get_run_document_scores"]


def test_a_completed_run_shows_its_score_against_the_prior_run_and_every_document_worst_first(
    demo: dict[str, Any],
) -> None:
    final = demo["completed"]["final"]
    assert f"0.873 against 0.910 ({MINUS}0.037)" in final["verdict"]
    assert "No detectable change (n = 9)" in final["verdict"]
    assert f"the sign-flip test's 95% interval [{MINUS}0.137, +0.002], p = 0.0547" in final["verdict"]
    rows = final["chartRows"]
    assert len(rows) == 9  # every scored document, not only the few the model reads
    scores = [float(row.split(": ")[1].split(",")[0]) for row in rows]
    assert scores == sorted(scores)
    assert all(", prior " in row for row in rows)
    assert final["failures"][0].startswith(f"2{TIMES} invoice.total: expected number")
    assert final["fields"][0].startswith("vendor.vat_id")


def test_a_failed_run_shows_its_failed_documents_grouped_by_error(demo: dict[str, Any]) -> None:
    final = demo["failed"]["final"]
    assert final["headline"].startswith("Error · 18 of 40 documents")
    assert "Block 'Extract invoice' failed on 1 document" in final["note"]
    assert len(final["failures"]) == 3
    assert any("vendor.vat_id: 'FR 12 345' does not match" in group for group in final["failures"])
    assert not final["chartShown"]


def test_a_comparison_shows_the_test_s_own_interval_at_its_level_and_the_reading(demo: dict[str, Any]) -> None:
    final = demo["compared"]["final"]
    assert final["verdict"].startswith(f"Against {opaque_id('exprun', 'older')}")
    assert "No detectable change: too few documents to tell (n = " in final["verdict"]
    assert "the sign-flip test's 95% interval [" in final["verdict"]
    for seen in views(demo, {}).values():
        assert "CI" not in (seen["final"]["verdict"] or "")


def test_a_comparison_without_a_verdict_says_why(demo: dict[str, Any]) -> None:
    verdict = demo["compared-itself"]["final"]["verdict"]
    assert "No verdict: the base and the candidate are the same run" in verdict
    assert "interval" not in verdict


def test_text_from_the_api_is_shown_as_text_never_run(held: dict[str, Any]) -> None:
    final = held["hostile"]["final"]
    shown = " ".join(final["failures"] + final["chartRows"])
    assert SCRIPT in shown
    assert IMAGE in shown
    assert final["scripts"] == 1  # the view's own
    assert final["images"] == 0
    assert not final["pwned"]


def test_the_dark_theme_and_a_narrow_host_are_followed(demo: dict[str, Any]) -> None:
    final = demo["dark"]["final"]
    assert final["background"] == "rgb(24, 24, 27)"  # the host's --color-background-primary
    assert not final["overflowX"]  # readable at 360 px: nothing runs off the side
    assert demo["completed"]["final"]["background"] == "rgb(255, 255, 255)"


def test_screen_readers_get_a_progress_bar_headings_and_the_charts_as_text(
    demo: dict[str, Any], held: dict[str, Any]
) -> None:
    aria = demo["completed"]["aria"]
    assert 'heading "Agreement by document, worst first" [level=2]' in aria
    assert "progressbar" in aria
    assert "inv_0003.pdf: 0.780, prior 0.931" in aria
    assert "status: Completed" in aria
    assert "8 passed, 3 failed, 1 blocked of 12 evals" in demo["eval"]["aria"]
    gate = held["review-gate"]["ariaAtGate"]
    assert 'heading "A person must act in Retab" [level=2]' in gate
    assert 'button "Decided? Wait for the run again"' in gate
    assert "status: Awaiting review" in gate


def test_a_torn_down_view_stops_waiting(demo: dict[str, Any]) -> None:
    seen = demo["teardown"]
    assert seen["callsAtTeardown"] >= 1
    assert len(seen["calls"]) == seen["callsAtTeardown"]
    assert {c["name"] for c in seen["calls"]} == {"wait_for_run"}


def test_a_workflow_run_is_followed_to_its_review_gate_where_the_view_stops_and_says_who_must_act(
    held: dict[str, Any],
) -> None:
    seen = held["review-gate"]
    at = seen["atGate"]
    assert any(headline.startswith("Running") and not gated for headline, gated in seen["progress"])  # seen going
    assert at["headline"].startswith("Awaiting review · 3 steps done")
    assert at["busy"] == "false"
    run_id = at["title"].removeprefix("Workflow run ")
    (review,) = at["reviews"]
    assert review.startswith(f"Review {seen['decided'][0]}")  # the review the test then decided
    assert "block block_" in review and "step step_" in review and "triggered by confidence_lt" in review
    assert "nothing moves until someone approves or rejects the review in Retab" in at["gate"]
    assert f"Where: Retab {IN} Workflows {IN} workflow_" in at["gate"]
    assert f"{IN} Runs {IN} {run_id} {IN} Reviews" in at["gate"]
    waits = seen["calls"][: seen["callsAtGate"]]
    assert waits and all(c["name"] == "wait_for_run" and c["arguments"]["kind"] == "workflow" for c in waits)


def test_the_gate_s_button_waits_again_and_says_so_while_nobody_has_decided(held: dict[str, Any]) -> None:
    seen = held["review-gate"]
    undecided = seen["undecided"]
    assert undecided["againNote"].startswith("Still waiting on a person")
    assert undecided["gate"] is not None
    assert undecided["headline"].startswith("Awaiting review")
    assert seen["calls"][seen["callsAtGate"]]["name"] == "wait_for_run"  # the button's call, one per click


def test_once_the_review_is_decided_the_view_follows_the_run_to_its_end(held: dict[str, Any]) -> None:
    final = held["review-gate"]["final"]
    assert final["gate"] is None
    assert final["headline"].startswith("Completed · 9 steps done")
    assert final["verdict"].startswith("Why it ended so") and "Completed: 9 steps" in final["verdict"]
    assert final["facts"]["Steps failed"] == "0"
    run_id = final["title"].removeprefix("Workflow run ")
    assert held["review-gate"]["calls"][-1] == {
        "name": "triage_run",
        "arguments": {"run_id": run_id, "kind": "workflow"},
    }


def test_a_failed_workflow_run_names_its_failing_step_and_error(demo: dict[str, Any]) -> None:
    final = demo["workflow-failed"]["final"]
    assert final["headline"].startswith("Error · 9 steps done, 1 failed")
    assert not final["barShown"]  # a workflow run does not say how many steps it will take
    step = final["facts"]["Failing step"]
    assert step.startswith("step_")
    assert final["note"].startswith(f"At step {step}, in Check totals: Block 'Check totals' failed: ValueError")
    (group,) = final["failures"]
    assert group.startswith(f"1{TIMES} ValueError: line items add up to 632.50 EUR")
    assert "FUNCTION_ERROR" in group and f"in Check totals ({step})" in group
    assert demo["workflow-failed"]["calls"] == []  # triage_run gave it all


def test_an_eval_run_shows_passed_failed_and_blocked_and_each_failure_actual_against_expected(
    demo: dict[str, Any],
) -> None:
    seen = demo["eval"]
    final = seen["final"]
    assert final["tally"] == "8 passed, 3 failed, 1 blocked of 12 evals"
    assert final["headline"].startswith("Completed · 12 of 12 evals")
    assert [c["name"] for c in seen["calls"]] == ["triage_run", "list_eval_results"]
    assert final["headings"]["failures"] == "Failed evals: actual against expected"
    total = next(row for row in final["failures"] if row.startswith("Total "))
    assert "actual\n1411.88\nexpected\n1694.25" in total
    assert "number_compare" in total
    assert len(final["failures"]) == 3
    (blocked,) = final["blocked"]
    assert blocked.startswith("Purchase order ") and "did not resolve" in blocked
    assert final["facts"]["Stale"] == "validity_changed"


def test_an_eval_that_drifted_from_its_block_is_shown_apart_and_not_as_a_failure(demo: dict[str, Any]) -> None:
    final = demo["eval-drifted"]["final"]
    assert final["tally"] == "7 passed, 3 failed, 2 blocked of 12 evals"  # Retab's counts
    assert final["headings"]["drifted"] == "Drifted from their block: not counted as failures"
    (drifted,) = final["drifted"]
    assert drifted.startswith("Currency ") and "blocked · schema drifted" in drifted
    assert not any(row.startswith("Currency ") for row in final["failures"] + final["blocked"])
    assert len(final["blocked"]) == 1


def test_an_eval_comparison_shows_the_gate_the_verdict_the_regressions_and_the_fixes(demo: dict[str, Any]) -> None:
    final = demo["eval-compared"]["final"]
    verdict = final["verdict"]
    assert verdict.startswith(f"Against {eval_run_id('base')}")
    assert "Gate failed · 2 regressed, 1 fixed, 1 still failing" in verdict
    assert (
        "No detectable change (McNemar's exact test: 1 fixed against 2 regressed of 10 paired evals, p = 1)" in verdict
    )
    assert final["headings"]["failures"] == "Regressions: passed, now failed"
    assert [row.split(" ")[0] for row in final["failures"]] == ["Line", "Total"]
    assert all("actual\n" in row and "\nexpected\n" in row for row in final["failures"])
    (fixed,) = final["fixes"]
    assert fixed.startswith("wfnodeeval_")
    assert final["headings"]["drifted"] == "Left out: drifted from their block"
    assert final["tally"] == "8 passed, 3 failed, 1 blocked of 12 evals"


def test_a_running_eval_run_is_followed_and_compared_again_once_it_has_ended(held: dict[str, Any]) -> None:
    seen = held["eval-running"]
    done = [d for d, _, _ in seen["progress"]]
    assert done == sorted(done) and any(0 < d < 12 for d in done), done
    names = [c["name"] for c in seen["calls"]]
    assert names[0] == "get_run" and names[-1] == "compare_eval_runs"
    assert set(names[1:-1]) == {"wait_for_run"}
    final = seen["final"]
    assert final["done"] == final["total"] == 12
    assert final["verdict"].startswith("Against ") and "Gate " in final["verdict"]
    assert "No verdict" not in final["verdict"]

"""Retab's own Python SDK (retab 0.0.160) parses every answer the simulated API gives for workflow runs,
steps, reviews, artifacts, evals, eval runs and eval results, over a real loopback port: what the SDK's
models accept, the simulator sends, and the other way round.

The SDK's async client is used, in the event loop that serves the simulator (its sync client would block
that loop); both share the same models and request code. Its constructor patches the process's `ssl`
module (truststore), so each test undoes that when it has made its client.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import cast

import anyio
import pytest
import truststore
from retab import AsyncRetab
from retab.exceptions import ValidationError as RetabValidationError
from retab.types.classifications import WorkflowRunsStatus, WorkflowRunsTriggerType
from retab.types.mime import MIMEData
from retab.types.workflows.evals.runs import WorkflowEvalRunSingleScope
from retab.types.workflows.runs import AwaitingReviewRun, ErrorTerminal
from retab.types.workflows.steps import ErrorStepLifecycle

from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock

from .helpers import TEST_KEY, LoopbackAPI

pytestmark = [pytest.mark.anyio, pytest.mark.slow]  # a real socket


@asynccontextmanager
async def sdk_over(sim: SimulatedRetab) -> AsyncIterator[AsyncRetab]:
    """The SDK's client, pointed at the simulated API on a loopback port the way users configure it: a
    base URL ending in /v1, which the SDK strips (with a warning) since it keeps /v1 in its paths."""
    async with anyio.create_task_group() as group:
        api = LoopbackAPI(sim, group)
        api.start()
        with pytest.warns(UserWarning, match="version segment"):
            client = AsyncRetab(api_key=TEST_KEY, base_url=f"{api.url}/v1", max_retries=0)
        truststore.extract_from_ssl()
        assert client.base_url == api.url
        try:
            with anyio.fail_after(30):
                yield client
        finally:
            await client.close()
            await api.stop()


async def test_the_sdk_parses_every_workflow_run_with_its_steps_and_their_artifacts(
    sim: SimulatedRetab, clock: VirtualClock
) -> None:
    clock.advance(5)  # the running run has started
    statuses: dict[str, str] = {}
    artifacts: set[str] = set()
    async with sdk_over(sim) as retab:
        for role, run_id in sim.workflow_run_ids.items():
            run = await retab.workflows.runs.get(run_id)
            statuses[role] = run.lifecycle.status
            steps = await retab.workflows.steps.list(run_id=run_id, limit=1000)
            assert len(steps) and not steps.has_more
            for step in steps.data:
                assert await retab.workflows.steps.get(step.step_id, run_id=run_id) == step
                if step.artifact is not None:
                    artifact = await retab.workflows.artifacts.get(step.artifact.id)
                    assert artifact.id == step.artifact.id
                    artifacts.add(type(artifact).__name__)
            if role == "failed":
                failing = steps.data[-1].lifecycle
                assert isinstance(failing, ErrorStepLifecycle) and failing.details is not None
                assert isinstance(run.lifecycle, ErrorTerminal) and run.lifecycle.details is not None
                assert run.lifecycle.failing_step_id == steps.data[-1].step_id
                assert failing.details.block_name == run.lifecycle.details.block_name == "Check totals"
    assert statuses == {
        "completed": "completed",
        "rejected": "completed",
        "failed": "error",
        "cancelled": "cancelled",
        "awaiting_review": "awaiting_review",
        "running": "running",
    }
    assert artifacts == {
        "ParseWorkflowArtifact",
        "ClassificationWorkflowArtifact",
        "ExtractionWorkflowArtifact",
        "FunctionInvocation",
    }


async def test_the_sdk_pages_through_workflow_runs_and_filters_them(sim: SimulatedRetab) -> None:
    async with sdk_over(sim) as retab:
        first = await retab.workflows.runs.list(limit=2)
        every = [run.id async for run in first]  # the SDK follows list_metadata.after
        # Plain strings: the SDK's own enums would be sent by their Python names (the next test).
        waiting = await retab.workflows.runs.list(status=cast(WorkflowRunsStatus, "awaiting_review"))
        webhook = cast(WorkflowRunsTriggerType, "webhook")
        tenant = await retab.workflows.runs.list(metadata='{"tenant": "acme"}', trigger_type=webhook)
    assert len(first) == 2 and first.has_more and sorted(every) == sorted(sim.workflow_run_ids.values())
    assert [run.id for run in waiting.data] == [sim.workflow_run_ids["awaiting_review"]]
    assert [run.id for run in tenant.data] == [sim.workflow_run_ids["failed"]]


async def test_the_sdk_sends_its_own_filter_enums_by_their_python_names_which_the_spec_refuses(
    sim: SimulatedRetab,
) -> None:
    """retab 0.0.160 types `status` as a `str, Enum` class and hands it to httpx, which writes str(member):
    "WorkflowRunsStatus.AWAITING_REVIEW". The spec's enum refuses it (422), as the simulator does: the SDK
    is the side that is wrong. Callers must pass the plain strings."""
    async with sdk_over(sim) as retab:
        with pytest.raises(RetabValidationError):
            await retab.workflows.runs.list(status=WorkflowRunsStatus.AWAITING_REVIEW)
    assert sim.requests[-1].query["status"] == "WorkflowRunsStatus.AWAITING_REVIEW"


async def test_the_sdk_reads_the_review_gate_and_the_run_it_resumes(sim: SimulatedRetab, clock: VirtualClock) -> None:
    run_id = sim.workflow_run_ids["awaiting_review"]
    async with sdk_over(sim) as retab:
        run = await retab.workflows.runs.get(run_id)
        pending = await retab.workflows.reviews.list(run_id=run_id)  # the SDK asks for pending ones by default
        decided = await retab.workflows.reviews.list(decision_status="decided")
        sim.decide_review(pending.data[0].id, "approved")
        clock.advance(60)
        review = await retab.workflows.reviews.get(pending.data[0].id)
        resumed = await retab.workflows.runs.get(run_id)
    assert isinstance(run.lifecycle, AwaitingReviewRun)
    assert run.lifecycle.waiting_for_block_ids == [pending.data[0].block_id]
    assert pending.data[0].decision is None and pending.data[0].triggered_by.kind == "confidence_lt"
    assert sorted(r.decision.verdict for r in decided.data if r.decision) == ["approved", "rejected"]
    assert review.decision is not None and review.decision.verdict == "approved"
    assert resumed.lifecycle.status == "completed" and resumed.timing.completed_at is not None


async def test_the_sdk_creates_and_cancels_a_workflow_run(sim: SimulatedRetab) -> None:
    start = sim.workflow_world.workflows[0].blocks[0].id
    document = MIMEData(filename="scan.pdf", url="data:application/pdf;base64,JVBERi0xLjQK")
    async with sdk_over(sim) as retab:
        created = await retab.workflows.runs.create(
            sim.workflow_ids["invoices"],
            documents={start: document},
            metadata={"tenant": "acme"},
        )
        cancelled = await retab.workflows.runs.cancel(created.id)
    assert created.lifecycle.status == "pending" and created.inputs is not None
    assert created.inputs.documents is not None and created.inputs.documents[start].filename == "scan.pdf"
    assert cancelled.run.lifecycle.status == "cancelled" and cancelled.run.id == created.id


async def test_the_sdk_parses_evals_eval_runs_and_results_with_their_verdicts(sim: SimulatedRetab) -> None:
    invoices = sim.workflow_ids["invoices"]
    async with sdk_over(sim) as retab:
        evals = [e async for e in await retab.workflows.evals.list(invoices, limit=5)]
        one = {e.id: await retab.workflows.evals.get(e.id) for e in evals}
        since = datetime(2026, 11, 26, tzinfo=UTC)  # the SDK sends it as str(datetime), with a space
        runs = [r async for r in await retab.workflows.evals.runs.list(limit=3, from_date=since)]
        base = await retab.workflows.evals.runs.get(sim.eval_run_ids["base"])
        results = [r async for r in await retab.workflows.evals.results.list(sim.eval_run_ids["candidate"], limit=5)]
        again = [await retab.workflows.evals.results.get(r.id) for r in results]
        noisy = await retab.workflows.evals.runs.list(workflow_id=sim.workflow_ids["support"], trigger_type="schedule")
    assert len(evals) == 12 and all(one[e.id] == e for e in evals)
    drifted = one[sim.eval_ids["currency"]]
    assert drifted.schema_drift == "drifted" and drifted.freshness and drifted.freshness.status == "stale"
    assert {r.id for r in runs} >= set(sim.eval_run_ids.values())
    assert base.counts is not None and base.counts.outcome is not None
    assert base.counts.outcome.model_dump() == {"passed": 9, "failed": 2, "blocked": 1}
    assert again == results and len(results) == 12
    verdicts = {r.eval_id: r.verdict for r in results}
    assert verdicts[sim.eval_ids["total"]] == "failed" and verdicts[sim.eval_ids["purchase_order"]] == "blocked"
    judged = next(r for r in results if r.eval_id == sim.eval_ids["line_amounts"]).assertion_result
    assert judged is not None and (judged.condition_kind, judged.score is not None) == ("llm_judged_as", True)
    assert [r.total_evals for r in noisy.data] == [30, 30]


async def test_the_sdk_creates_and_cancels_an_eval_run(sim: SimulatedRetab) -> None:
    total = sim.eval_ids["total"]
    scope = WorkflowEvalRunSingleScope(type="single", eval_id=total)
    async with sdk_over(sim) as retab:
        created = await retab.workflows.evals.runs.create(sim.workflow_ids["invoices"], scope=scope)
        cancelled = await retab.workflows.evals.runs.cancel(created.id)
    assert created.lifecycle.status == "pending" and (created.eval_id, created.total_evals) == (total, 1)
    assert cancelled.lifecycle.status == "cancelled" and cancelled.counts and cancelled.counts.lifecycle_counts
    assert cancelled.counts.lifecycle_counts.cancelled == 1

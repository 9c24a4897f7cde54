"""Evals and eval runs as the API has them.

An eval freezes one block's inputs and checks one assertion on its output; an eval run replays the evals of
a workflow, of a block, or one eval. Its lifecycle says whether it ran (pending, queued, running, completed,
error, cancelled); whether the evals passed is in `counts.outcome` and in each result's `verdict`: passed,
failed, or blocked (the assertion could not be evaluated: its target did not resolve, an input is
missing), which is neither a pass nor a fail. Read tolerantly, as models.py reads experiments.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from .models import APIModel, Drift, Freshness, Id, Lifecycle, Progress, Word

PASSED, FAILED, BLOCKED = "passed", "failed", "blocked"
DRIFTED_ASSERTIONS = frozenset({"drifted", "broken", "stale", "invalid"})  # of assertion_drift_status


class EvalTiming(APIModel):
    created_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: int | None = None


class LifecycleCounts(APIModel):
    pending: int = 0
    queued: int = 0
    running: int = 0
    completed: int = 0
    error: int = 0
    cancelled: int = 0

    @property
    def finished(self) -> int:
        return self.completed + self.error + self.cancelled


class OutcomeCounts(APIModel):
    passed: int = 0
    failed: int = 0
    blocked: int = 0


class EvalCounts(APIModel):
    lifecycle_counts: LifecycleCounts = Field(default_factory=LifecycleCounts)
    outcome: OutcomeCounts = Field(default_factory=OutcomeCounts)


class EvalRunTarget(APIModel):
    type: Word | None = None
    block_id: Id | None = None


class EvalRun(APIModel):
    id: Id
    workflow_id: Id | None = None
    workflow_version_id: Id | None = None
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    timing: EvalTiming = Field(default_factory=EvalTiming)
    target: EvalRunTarget | None = None
    eval_id: Id | None = None
    total_evals: int = 0
    counts: EvalCounts = Field(default_factory=EvalCounts)
    freshness: Freshness | None = None

    @property
    def status(self) -> str:
        return self.lifecycle.status

    # What the wait engine reads of a run of any kind (kinds/base.py's Snapshot)

    @property
    def finished(self) -> bool:
        return self.lifecycle.is_terminal

    @property
    def stops_wait(self) -> bool:
        return self.lifecycle.is_terminal

    @property
    def progress(self) -> Progress:
        return Progress(self.counts.lifecycle_counts.finished, self.total_evals or None, "evals")

    @property
    def created_at(self) -> datetime | None:
        return self.timing.created_at

    @property
    def started_at(self) -> datetime | None:
        return self.timing.started_at


class AssertionFailure(APIModel):
    code: str | None = None
    message: str | None = None


class AssertionResult(APIModel):
    assertion_id: Id | None = None
    condition_kind: Word | None = None
    outcome: Word | None = None
    actual_value: Any = None
    expected_value: Any = None
    score: float | None = None
    threshold: float | None = None
    metric_kind: Word | None = None
    assertion_label: str | None = None
    failure: AssertionFailure | None = None


class EvalResult(APIModel):
    """One eval's result within an eval run."""

    id: Id
    workflow_eval_run_id: Id | None = None
    eval_id: Id
    lifecycle: Lifecycle | None = None
    timing: EvalTiming | None = None
    verdict: Word | None = None
    workflow_id: Id | None = None
    block_id: Id | None = None
    block_type: Word | None = None
    block_execution_fingerprint: str | None = None
    assertion_result: AssertionResult | None = None
    warnings: list[str] = Field(default_factory=list[str])

    @property
    def outcome(self) -> str | None:
        """passed, failed or blocked: the verdict, else the assertion's own outcome; None while it runs."""
        return self.verdict or (self.assertion_result.outcome if self.assertion_result else None)


class Eval(APIModel):
    """A saved eval: a block's frozen inputs and one assertion on its output."""

    id: Id
    workflow_id: Id | None = None
    name: str | None = None
    target: EvalRunTarget | None = None
    assertion: dict[str, Any] | None = None
    assertion_drift_status: Word | None = None
    schema_drift: Word | None = None  # none, partial, drifted, unknown
    schema_drift_detail: str | None = None
    freshness: Freshness | None = None
    drift: Drift | None = None
    validation_status: Word | None = None

    @property
    def drifted(self) -> bool:
        """Whether the eval no longer fits its block (its schema or assertion drifted, or it is stale):
        a failure of it says more about the eval than about the block."""
        return (
            self.schema_drift in ("partial", "drifted")
            or (self.drift is not None and self.drift.status in ("drifted", "broken"))
            or self.assertion_drift_status in DRIFTED_ASSERTIONS
            or (self.freshness is not None and self.freshness.status == "stale")
        )

"""How one poll reads a run of each kind.

Experiment and eval runs carry their progress (documents, evals finished): one request a poll. A workflow
run does not: its progress is its steps, listed with the run at most every `STEPS_EVERY_S` (and whenever
its status changes, and at its end), so a workflow wait costs at most one request more per ten seconds
than a poller of the run alone; and when it stops at a review gate, its pending reviews are listed with it,
since that is what the waiting agent must be told.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..api.errors import RetabError
from ..api.evals import EvalRun
from ..api.models import APIModel, Progress, Run
from ..api.workflows import AWAITING_REVIEW, Review, Step, WorkflowRun
from .base import EVAL, EXPERIMENT, WORKFLOW, RunKind

if TYPE_CHECKING:
    from ..api.client import RetabClient

STEPS_EVERY_S = 10.0
STEPS_READ = 100  # the latest steps of a run listed for its progress; beyond, progress says "at least"
DONE_STEP_STATUSES = frozenset({"completed", "error", "skipped", "cancelled"})


class StepTally(APIModel):
    """A workflow run's steps, counted: those that ended, failed, and all listed so far."""

    done: int = 0
    failed: int = 0
    listed: int = 0
    more: bool = False  # more steps than were listed
    read_at: datetime | None = None

    @classmethod
    def of(cls, steps: list[Step], more: bool, read_at: datetime) -> StepTally:
        return cls(
            done=sum(1 for step in steps if step.status in DONE_STEP_STATUSES),
            failed=sum(1 for step in steps if step.status == "error"),
            listed=len(steps),
            more=more,
            read_at=read_at,
        )


class WorkflowSnapshot(APIModel):
    """A workflow run with what the wait engine needs beside it: its steps counted, and the pending reviews
    of a run stopped at a review gate."""

    id: str
    run: WorkflowRun
    steps: StepTally | None = None
    reviews: list[Review] | None = Field(default=None)  # pending, while awaiting_review

    @property
    def status(self) -> str:
        return self.run.status

    @property
    def finished(self) -> bool:
        return self.run.lifecycle.is_terminal

    @property
    def stops_wait(self) -> bool:
        return self.finished or self.status == AWAITING_REVIEW

    @property
    def progress(self) -> Progress:
        tally = self.steps or StepTally()
        return Progress(tally.done, tally.listed if self.finished and not tally.more else None, "steps")

    @property
    def created_at(self) -> datetime | None:
        return self.run.timing.created_at

    @property
    def started_at(self) -> datetime | None:
        return self.run.timing.started_at


async def read_experiment_run(client: RetabClient, run_id: str, previous: Any, now: datetime, retry: bool) -> Run:
    del previous, now
    return await client.get_run(run_id, retry=retry)


async def read_eval_run(client: RetabClient, run_id: str, previous: Any, now: datetime, retry: bool) -> EvalRun:
    del previous, now
    return await client.get_eval_run(run_id, retry=retry)


async def read_workflow_run(
    client: RetabClient, run_id: str, previous: Any, now: datetime, retry: bool
) -> WorkflowSnapshot:
    """The run; its steps when due; its pending reviews at a review gate. A failure to list steps or
    reviews keeps what was known: the run's own state is what a poll must not miss."""
    run = await client.get_workflow_run(run_id, retry=retry)
    before = previous if isinstance(previous, WorkflowSnapshot) else None
    steps = before.steps if before is not None else None
    due = (
        steps is None
        or steps.read_at is None
        or before is None
        or before.status != run.status
        or run.lifecycle.is_terminal
        or (now - steps.read_at).total_seconds() >= STEPS_EVERY_S
    )
    if due:
        try:
            page = await client.list_steps(run_id, limit=STEPS_READ)
            steps = StepTally.of(page.data, bool(page.next_cursor), now)
        except RetabError:
            pass
    reviews = None
    if run.status == AWAITING_REVIEW:
        try:
            reviews = (await client.list_reviews(run_id, decision_status="pending", limit=20)).data
        except RetabError:
            reviews = before.reviews if before is not None else None
    return WorkflowSnapshot(id=run.id, run=run, steps=steps, reviews=reviews)


EXPERIMENT_KIND = RunKind(EXPERIMENT, "experiment run", "exprun_", read_experiment_run, Run.model_validate)
WORKFLOW_KIND = RunKind(WORKFLOW, "workflow run", "run_", read_workflow_run, WorkflowSnapshot.model_validate)
EVAL_KIND = RunKind(EVAL, "eval run", "wfevalrun_", read_eval_run, EvalRun.model_validate)
KINDS_BY_NAME: dict[str, RunKind] = {kind.name: kind for kind in (EXPERIMENT_KIND, WORKFLOW_KIND, EVAL_KIND)}


def kind_named(name: str) -> RunKind:
    return KINDS_BY_NAME[name]


def kind_of_id(run_id: str, named: str | None = None) -> RunKind:
    """The kind the caller named; else the one the id's prefix says, as Retab issues ids (`exprun_`, `run_`,
    `wfevalrun_`); else experiment, the kind this server served first. If the guess is wrong the answer is one
    404 that says to pass the kind: nothing is guessed silently, and every result names the kind it read."""
    if named is not None:
        return KINDS_BY_NAME[named]
    for kind in sorted(KINDS_BY_NAME.values(), key=lambda k: -len(k.prefix)):  # "wfevalrun_" before "run_"
        if run_id.startswith(kind.prefix):
            return kind
    return EXPERIMENT_KIND

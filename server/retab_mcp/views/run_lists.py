"""Pages of workflow runs and eval runs: one compact row each (what a row of experiment runs is, views/lists.py,
for these kinds), and the cursor for the next page."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from ..api.workflows import AWAITING_REVIEW
from ..tools import names
from .text import duration_text, iso_seconds

if TYPE_CHECKING:
    from ..api.evals import EvalRun
    from ..api.models import Page
    from ..api.workflows import WorkflowRun


class KindRunRow(BaseModel):
    run_id: str
    status: str
    created_at: str | None = None
    duration_s: float | None = None
    trigger: str | None = Field(default=None, description="Workflow runs: manual, api, schedule, webhook, email, …")
    needs_person: bool | None = Field(default=None, description="Workflow runs: held at a review gate.")
    passed: int | None = Field(default=None, description="Eval runs: evals passed.")
    failed: int | None = Field(default=None, description="Eval runs: evals failed.")
    blocked: int | None = Field(default=None, description="Eval runs: evals that could not be evaluated.")
    total: int | None = Field(default=None, description="Eval runs: evals in the run.")


class KindRunList(BaseModel):
    """A page of workflow runs or eval runs, newest first."""

    kind: str
    runs: list[KindRunRow]
    next_cursor: str | None = Field(default=None, description="Pass as cursor for the next page; null on the last.")
    hint: str


def _duration(started: datetime | None, ended: datetime | None) -> float | None:
    return round((ended - started).total_seconds(), 1) if started and ended else None


def workflow_run_list(page: Page[WorkflowRun]) -> KindRunList:
    rows = [
        KindRunRow(
            run_id=run.id,
            status=run.status,
            created_at=iso_seconds(run.timing.created_at),
            duration_s=_duration(run.timing.started_at, run.timing.completed_at),
            trigger=run.trigger.type,
            needs_person=True if run.status == AWAITING_REVIEW else None,
        )
        for run in page.data
    ]
    return KindRunList(kind="workflow", runs=rows, next_cursor=page.next_cursor, hint=_hint(rows, page.next_cursor))


def eval_run_list(page: Page[EvalRun]) -> KindRunList:
    rows = [
        KindRunRow(
            run_id=run.id,
            status=run.status,
            created_at=iso_seconds(run.timing.created_at),
            duration_s=_duration(run.timing.started_at, run.timing.completed_at),
            passed=run.counts.outcome.passed,
            failed=run.counts.outcome.failed,
            blocked=run.counts.outcome.blocked,
            total=run.total_evals,
        )
        for run in page.data
    ]
    return KindRunList(kind="eval", runs=rows, next_cursor=page.next_cursor, hint=_hint(rows, page.next_cursor))


def _hint(rows: list[KindRunRow], cursor: str | None) -> str:
    if not rows:
        return "No runs match. Loosen the filters (status, workflow_id)."
    more = "More runs: call again with cursor. " if cursor else ""
    return f"{more}Details of one: {names.GET_RUN_ANY}; why it ended so: {names.TRIAGE_RUN}."


def render_kind_run_list(listing: KindRunList) -> str:
    noun = "workflow run" if listing.kind == "workflow" else "eval run"
    lines = [f"{len(listing.runs)} {noun}{'' if len(listing.runs) == 1 else 's'}, newest first:"]
    for row in listing.runs:
        bits = [row.run_id, row.status]
        if row.needs_person:
            bits.append("NEEDS A PERSON (review)")
        if row.total is not None:
            bits.append(f"{row.passed} passed, {row.failed} failed, {row.blocked} blocked of {row.total}")
        if row.duration_s is not None:
            bits.append(duration_text(row.duration_s))
        if row.trigger:
            bits.append(row.trigger)
        if row.created_at:
            bits.append(row.created_at.replace("T", " ").removesuffix("Z"))
        lines.append("- " + " · ".join(bits))
    if listing.next_cursor:
        lines.append(f"More: cursor={listing.next_cursor}")
    lines.append(f"Next: {listing.hint}")
    return "\n".join(lines)

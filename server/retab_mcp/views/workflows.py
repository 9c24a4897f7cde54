"""What a model reads about a workflow run: its state, its steps, and above all whether a person must act.

A workflow run at a review gate (`awaiting_review`) will not move until someone approves or rejects the
pending review in Retab; the view says so in its first lines, with each pending review (id, block, step,
what triggered it) and where in Retab to act. A failed run names its failing step and block.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ..api.workflows import AWAITING_REVIEW
from ..tools import names
from .run import MESSAGE_MAX, NAME_MAX, RunError, RunState, Timed
from .text import clip, duration_text, iso_seconds

if TYPE_CHECKING:
    from ..kinds.readers import WorkflowSnapshot

REVIEWS_SHOWN = 5
METADATA_MAX = 300


class PendingReview(BaseModel):
    review_id: str
    block_id: str | None = None
    step_id: str | None = None
    trigger: str | None = Field(default=None, description="What sent the step to review, e.g. confidence_lt.")
    created_at: str | None = None


class WorkflowView(RunState, Timed):
    """A workflow run's keys (null for the other kinds of runs)."""

    workflow_id: str | None = None
    trigger: str | None = Field(default=None, description="How the run started: manual, api, schedule, …")
    steps_done: int | None = Field(default=None, description="Workflow run: steps ended so far.")
    steps_failed: int | None = Field(default=None, description="Workflow run: steps that failed.")
    failing_step_id: str | None = Field(default=None, description="Workflow run: the step it failed at.")
    needs_person: bool | None = Field(
        default=None,
        description="Workflow run: true at a review gate (awaiting_review): it will not move until a person acts.",
    )
    pending_reviews: list[PendingReview] | None = Field(default=None, description="Workflow run: reviews to decide.")
    waiting_for_block_ids: list[str] | None = None
    metadata: str | None = Field(default=None, description="Workflow run: its metadata, as JSON, cut short.")


def workflow_values(snapshot: WorkflowSnapshot) -> dict[str, Any]:
    """The values of a WorkflowView's own keys, and the run keys a workflow run gives."""
    run = snapshot.run
    lifecycle = run.lifecycle
    reviews = None
    if snapshot.reviews is not None:
        reviews = [
            PendingReview(
                review_id=review.id,
                block_id=review.block_id,
                step_id=review.step_id,
                trigger=review.trigger_kind,
                created_at=iso_seconds(review.created_at),
            )
            for review in snapshot.reviews
            if review.pending
        ][:REVIEWS_SHOWN]
    steps = snapshot.steps
    metadata = (
        clip(json.dumps(run.metadata, separators=(",", ":"), default=str), METADATA_MAX) if run.metadata else None
    )
    return {
        "workflow_id": run.workflow_id,
        "trigger": run.trigger.type,
        "steps_done": steps.done if steps else None,
        "steps_failed": steps.failed if steps else None,
        "failing_step_id": lifecycle.failing_step_id,
        "needs_person": run.status == AWAITING_REVIEW,
        "pending_reviews": reviews,
        "waiting_for_block_ids": list(lifecycle.waiting_for_block_ids) or None,
        "metadata": metadata,
        # The run keys: a workflow run has no agreement score and no count of documents done.
        "score": None,
        "completed_documents": None,
        "total_documents": run.document_count or None,
        "error_count": steps.failed if steps else None,
        "error": _error(snapshot),
    }


def _error(snapshot: WorkflowSnapshot) -> RunError | None:
    lifecycle = snapshot.run.lifecycle
    if snapshot.status != "error":
        return None
    details = lifecycle.details
    return RunError(
        message=clip(lifecycle.error_message or "(no message)", MESSAGE_MAX),
        code=clip(details.error_code, NAME_MAX) if details and details.error_code else None,
        block_id=details.block_id if details else None,
        block_name=clip(details.block_name, NAME_MAX) if details and details.block_name else None,
    )


def workflow_headline(view: WorkflowView) -> str:
    parts = [view.run_id, f"workflow run {view.status}"]
    if view.steps_done is not None:
        failed = f", {view.steps_failed} failed" if view.steps_failed else ""
        parts.append(f"{view.steps_done} steps done{failed}")
    if view.total_documents:
        parts.append(f"{view.total_documents} document{'' if view.total_documents == 1 else 's'}")
    if view.duration_s is not None:
        parts.append(duration_text(view.duration_s))
    elif view.elapsed_s is not None:
        parts.append(f"{duration_text(view.elapsed_s)} so far")
    return " · ".join(parts)


def workflow_lines(view: WorkflowView) -> list[str]:
    """The lines after the headline: who must act, or why it failed."""
    lines: list[str] = []
    if view.needs_person:
        lines.append(
            "NEEDS A PERSON: a review gate holds it; nothing moves until someone approves or rejects it in Retab "
            f"(run {view.run_id} > Reviews)."
        )
        for review in view.pending_reviews or []:
            on = f" on block {review.block_id}" if review.block_id else ""
            why = f" ({review.trigger})" if review.trigger else ""
            lines.append(f"- review {review.review_id}{on}{why}")
        if not view.pending_reviews and view.waiting_for_block_ids:
            lines.append(f"- waiting on block(s) {', '.join(view.waiting_for_block_ids)}")
    if view.error is not None:
        at = f" at step {view.failing_step_id}" if view.failing_step_id else ""
        block = f" in block {view.error.block_name!r}" if view.error.block_name else ""
        code = f" [{view.error.code}]" if view.error.code else ""
        lines.append(f"Error{code}{at}{block}, as reported by Retab: {view.error.message}")
    if view.cancel_reason:
        lines.append(f"Cancel reason, as reported by Retab: {view.cancel_reason}")
    return lines


def workflow_next_step(view: WorkflowView) -> str:
    match view.status:
        case "completed":
            return f"Final; {names.TRIAGE_RUN}(run_id='{view.run_id}') shows the slowest steps and where outputs are."
        case "error":
            return (
                f"Failed; waiting won't change it. {names.TRIAGE_RUN}(run_id='{view.run_id}') groups the failed "
                "steps by error."
            )
        case "cancelled":
            return "Cancelled; it will not finish."
        case "awaiting_review":
            return (
                f"Tell the user a review waits for them in Retab; {names.WAIT_RUN} again once they say it was decided."
            )
        case "pending" | "queued" | "running":
            return f"Not finished: call {names.WAIT_RUN} to wait (up to ~45 s a call)."
        case _:
            return f"Unknown status: call {names.GET_RUN_ANY} again later."

"""Why a workflow run ended as it did (or where it is stuck), in one answer under 4 KB: failed steps grouped
by error, review gates waiting on a person, the slowest steps, and where its outputs are."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import BaseModel, Field

from ..api.workflows import Step
from ..kinds.readers import WORKFLOW_KIND, StepTally, WorkflowSnapshot
from ..tools import names
from .runs import RunView, view_of
from .text import clip, duration_text
from .workflows import PendingReview

GROUPS_SHOWN = 3
EXAMPLES = 2
SLOWEST = 3
OUTPUTS_SHOWN = 4
MESSAGE_MAX = 160
LABEL_MAX = 40
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class WorkflowEvidence:
    """What a workflow triage is made from: the run with its pending reviews, and its steps."""

    snapshot: WorkflowSnapshot
    steps: list[Step]
    more_steps: bool = False  # more steps than were read
    warnings: list[str] = field(default_factory=list[str])


class StepFailures(BaseModel):
    message: str = Field(description="The error shared by these steps, cut short.")
    code: str | None = None
    count: int
    blocks: list[str] = Field(description="The blocks that failed so, by label.")
    steps: list[str] = Field(description="Up to 2 of the step ids.")


class SlowStep(BaseModel):
    block: str
    step_id: str
    seconds: float


class Output(BaseModel):
    block: str
    step_id: str
    artifact_id: str
    operation: str | None = None


class WorkflowTriage(BaseModel):
    verdict: str = Field(description="The answer in one or two sentences.")
    run: RunView
    steps_read: int
    failed_steps: int
    failures: list[StepFailures]
    pending_reviews: list[PendingReview]
    slowest_steps: list[SlowStep]
    outputs: list[Output] = Field(description="The last steps that produced an artifact (an output), newest first.")
    warnings: list[str]
    next_calls: list[str]


def workflow_triage(evidence: WorkflowEvidence, now: datetime) -> WorkflowTriage:
    steps = evidence.steps
    snapshot = evidence.snapshot
    tally = StepTally.of(steps, evidence.more_steps, now) if steps else snapshot.steps
    snapshot = snapshot.model_copy(update={"steps": tally})
    view = view_of(snapshot, WORKFLOW_KIND, now)
    failed = [step for step in steps if step.status == "error"]
    report = WorkflowTriage(
        verdict="",
        run=view,
        steps_read=len(steps),
        failed_steps=len(failed),
        failures=_groups(failed),
        pending_reviews=view.pending_reviews or [],
        slowest_steps=_slowest(steps),
        outputs=_outputs(steps),
        warnings=evidence.warnings,
        next_calls=[],
    )
    return report.model_copy(update={"verdict": _verdict(report), "next_calls": _next_calls(report)})


def _label(step: Step) -> str:
    return clip(step.block_label or step.block_id or step.step_id, LABEL_MAX)


def _groups(failed: list[Step]) -> list[StepFailures]:
    by_error: dict[tuple[str, str | None], list[Step]] = defaultdict(list)
    for step in failed:
        lifecycle = step.lifecycle
        code = lifecycle.details.error_code if lifecycle.details else None
        by_error[(clip(lifecycle.error_message or "(no message)", MESSAGE_MAX), code)].append(step)
    ordered = sorted(by_error.items(), key=lambda item: -len(item[1]))
    return [
        StepFailures(
            message=message,
            code=code,
            count=len(group),
            blocks=list(dict.fromkeys(_label(step) for step in group))[:EXAMPLES],
            steps=[step.step_id for step in group[:EXAMPLES]],
        )
        for (message, code), group in ordered[:GROUPS_SHOWN]
    ]


def _slowest(steps: list[Step]) -> list[SlowStep]:
    timed = [(step.duration_s, step) for step in steps if step.duration_s is not None]
    timed.sort(key=lambda item: -(item[0] or 0.0))
    return [
        SlowStep(block=_label(step), step_id=step.step_id, seconds=round(seconds or 0.0, 1))
        for seconds, step in timed[:SLOWEST]
    ]


def _outputs(steps: list[Step]) -> list[Output]:
    made = [step for step in steps if step.artifact and step.status == "completed"]
    made.sort(key=lambda step: step.completed_at or step.created_at or EPOCH, reverse=True)
    outputs: list[Output] = []
    for step in made[:OUTPUTS_SHOWN]:
        artifact = step.artifact or {}
        artifact_id, operation = artifact.get("id"), artifact.get("operation")
        if isinstance(artifact_id, str):
            outputs.append(
                Output(
                    block=_label(step),
                    step_id=step.step_id,
                    artifact_id=clip(artifact_id, 128),
                    operation=operation if isinstance(operation, str) else None,
                )
            )
    return outputs


def _verdict(report: WorkflowTriage) -> str:
    run = report.run
    if run.needs_person:
        reviews = len(report.pending_reviews) or "a"
        return (
            f"Held at a review gate: {reviews} review(s) wait for a person in Retab; nothing moves until someone "
            "approves or rejects."
        )
    if run.status == "error":
        top = report.failures[0] if report.failures else None
        block = f" in block '{top.blocks[0]}'" if top and top.blocks else ""
        where = f" at step {run.failing_step_id}" if run.failing_step_id else ""
        cause = f": {top.message}" if top else "."
        more = f" ({report.failed_steps} steps failed in all)" if top and report.failed_steps > 1 else ""
        return f"Failed{block}{where}{cause}{more}"
    if run.status == "completed":
        failed = f"; {report.failed_steps} step(s) failed on the way" if report.failed_steps else ""
        slowest = report.slowest_steps[0] if report.slowest_steps else None
        slow = f"; slowest step: {slowest.block} ({duration_text(slowest.seconds)})" if slowest else ""
        return f"Completed: {report.steps_read} steps{failed}{slow}."
    if run.status == "cancelled":
        return "Cancelled" + (f": {run.cancel_reason}" if run.cancel_reason else ".")
    return f"Still {run.status}: {run.steps_done or 0} steps done so far."


def _next_calls(report: WorkflowTriage) -> list[str]:
    run = report.run
    calls: list[str] = []
    if run.needs_person:
        calls.append(f"{names.WAIT_RUN}(run_id='{run.run_id}') once the user says the review was decided")
    elif not run.finished:
        calls.append(f"{names.WAIT_RUN}(run_id='{run.run_id}')")
    return calls


def render_workflow_triage(report: WorkflowTriage) -> str:
    run = report.run
    lines = [f"Verdict: {report.verdict}", run.render(trace=False).split("\nNext:")[0]]
    if report.failures:
        lines.append(f"Failed steps ({report.failed_steps}), by error:")
        for group in report.failures:
            code = f"[{group.code}] " if group.code else ""
            lines.append(
                f"- {group.count}x {code}{group.message} — in {', '.join(group.blocks)} (e.g. {', '.join(group.steps)})"
            )
    if report.slowest_steps:
        lines.append(
            "Slowest steps: "
            + "; ".join(f"{s.block} {duration_text(s.seconds)} ({s.step_id})" for s in report.slowest_steps)
        )
    if report.outputs:
        shown = [f"{o.block}: {o.artifact_id}" + (f" ({o.operation})" if o.operation else "") for o in report.outputs]
        lines.append("Outputs (artifacts, newest first): " + "; ".join(shown))
    for warning in report.warnings:
        lines.append(f"Warning: {warning}")
    if report.next_calls:
        lines.append("Next calls:")
        lines.extend(f"- {call}" for call in report.next_calls)
    elif run.status == "error":  # the run's own hint says to triage: this is the triage
        fix = f"block '{report.failures[0].blocks[0]}'" if report.failures and report.failures[0].blocks else "the step"
        lines.append(f"Next: Fix {fix} for the error above, then run the workflow again; waiting won't change it.")
    elif run.hint:
        lines.append(f"Next: {run.hint}")
    return "\n".join(lines)

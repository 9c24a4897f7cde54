"""What a model reads about a run: a typed summary and a compact text rendering of it.

Pure functions of a `Run` and the current time. The text is written for a model: a one-line headline,
the error and the end of the stack trace for a failed run, and the next step. The structured summary
carries the same facts as fields; the long stack trace goes only into the text, cut to its end, where
the cause is, so the two channels do not repeat it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Self, TypeVar

from pydantic import BaseModel, Field, PrivateAttr

from ..api import statuses
from ..api.statuses import CANCELLED, COMPLETED, ERROR, KNOWN_STATUSES, PENDING, QUEUED, RUNNING
from ..tools import names
from .text import clip, duration_text, iso_seconds

if TYPE_CHECKING:
    from ..api.models import Run, Timing

TRACE_MAX_LINES = 15
TRACE_MAX_BYTES = 1_400
TRACE_LINE_MAX = 200
MESSAGE_MAX = 300
NAME_MAX = 80  # an error code or a block name


class RunError(BaseModel):
    message: str = Field(description="The error message Retab reported for the run.")
    code: str | None = Field(default=None, description="Retab's error code, when known.")
    block_id: str | None = Field(default=None, description="The block that failed, when known.")
    block_name: str | None = Field(default=None, description="The failing block's name, when known.")


class RunState(BaseModel):
    """The published keys of a run (../shared/contract/interface.json's run_keys), plus its ETA.

    Every tool that shows a run carries these, each present even when null. Counts are null only in a
    batch wait row for a run that could not be read.
    """

    run_id: str
    status: str = Field(description="pending, queued, running, completed, error, cancelled (or a newer status).")
    finished: bool = Field(description="True when the run is completed, error or cancelled: it will not change.")
    score: float | None = Field(
        description="Agreement between the block's consensus passes, 0 to 1, of a completed run; null otherwise."
    )
    completed_documents: int | None = Field(description="Documents processed so far.")
    total_documents: int | None = Field(description="Documents in the run.")
    error_count: int | None = Field(description="Documents that failed.")
    error: RunError | None = Field(description="Why the run failed; null unless status is error.")
    cancel_reason: str | None = Field(description="Why the run was cancelled, when known; null otherwise.")
    eta_s: int | None = Field(default=None, description="Estimated seconds left, from throughput so far.")


class Timed(BaseModel):
    """When a run ran: the time fields every kind of run shows."""

    started_at: str | None = Field(default=None, description="ISO 8601 time the run started executing.")
    duration_s: float | None = Field(default=None, description="Run time of a finished run.")
    elapsed_s: float | None = Field(default=None, description="Time since an unfinished run was created.")


Summary = TypeVar("Summary", bound="RunSummary")


class RunSummary(RunState):
    """The state of one Retab experiment run. Times are in seconds; ids are Retab's own."""

    experiment_id: str | None = None
    workflow_id: str | None = None
    block_id: str | None = None
    block_type: str | None = None
    n_consensus: int | None = None
    parent_run_id: str | None = Field(default=None, description="The run this one was compared against.")
    started_at: str | None = Field(default=None, description="ISO 8601 time the run started executing.")
    duration_s: float | None = Field(default=None, description="Run time of a finished run.")
    elapsed_s: float | None = Field(default=None, description="Time since an unfinished run was created.")
    hint: str = Field(description="What to do next.")
    # The failed run's stack trace, for the text only: a model reads its end there; the structured
    # content does not repeat it.
    _stack_trace: str | None = PrivateAttr(default=None)

    @property
    def stack_trace(self) -> str | None:
        return self._stack_trace

    def structured(self) -> dict[str, Any]:
        """The structured content: the published keys always, other keys when they say something."""
        return compact(self)

    def with_stack_trace(self, trace: str | None) -> Self:
        self._stack_trace = trace
        return self

    def into(self, cls: type[Summary], *, exclude: frozenset[str] = frozenset(), **fields: Any) -> Summary:
        """This summary as a `cls` (a result that adds keys to a run's), the stack trace with it."""
        values = self.model_dump(exclude=set(exclude)) | fields
        return cls(**values).with_stack_trace(self._stack_trace)

    def render(self, *, trace: bool = True) -> str:
        """Compact text for a model: headline, context, the error and the end of its trace, the next step."""
        lines = [headline(self)]
        context = context_line(self)
        if context:
            lines.append(context)
        if self.status not in KNOWN_STATUSES:
            lines[0] += " (status unknown to this server)"
        if self.error is not None:
            where = f" in block {self.error.block_name!r}" if self.error.block_name else ""
            code = f" [{self.error.code}]" if self.error.code else ""
            lines.append(f"Error{code}{where}, as reported by Retab: {self.error.message}")
            if trace and self._stack_trace:
                lines.extend(trace_tail(self._stack_trace))
        if self.cancel_reason:
            lines.append(f"Cancel reason, as reported by Retab: {self.cancel_reason}")
        lines.extend(self._more_lines())
        if self.hint:
            lines.append(f"Next: {self.hint}")
        return "\n".join(lines)

    def _more_lines(self) -> list[str]:
        return []


RUN_KEYS = frozenset(RunState.model_fields) - {"eta_s"}
WAIT_KEYS = frozenset({"timed_out", "waited_s"})
# Keys present in every result, null or not (the contract's and the hint); other null keys are left out
# to save tokens.
ALWAYS_PRESENT = RUN_KEYS | WAIT_KEYS | {"hint"}
# What a first read of the run already gave and a wait does not repeat: the ids of experiment, workflow and
# block, the start time. An agent waiting out a long run reads a wait result a dozen times.
ID_KEYS = frozenset({"experiment_id", "workflow_id", "block_id", "started_at"})
STATIC_KEYS = ID_KEYS | {"block_type", "n_consensus"}
# An unfinished wait result's structured content also leaves out what its text and the first call gave.
INTERIM_DROPPED = frozenset({"parent_run_id", "elapsed_s"})


def compact(model: BaseModel) -> dict[str, Any]:
    """`model` as structured content: null keys left out to save tokens, except the published ones."""
    data = model.model_dump(mode="json")
    return {k: v for k, v in data.items() if v is not None or k in ALWAYS_PRESENT}


def estimate_remaining_s(run: Run, now: datetime, read_at: datetime | None = None) -> float | None:
    """Seconds left at the throughput seen so far, or None before any document completed.

    `read_at` is when `run` was read, if earlier than `now`: the estimate is made for then, less the
    time that has passed since.
    """
    read_at = read_at or now
    started = run.timing.started_at
    done, total = run.completed_document_count, run.total_document_count
    if run.status != RUNNING or started is None or done <= 0 or total <= done:
        return None
    running_s = (read_at - started).total_seconds()
    if running_s <= 0:
        return None
    return max(0.0, (total - done) * running_s / done - max(0.0, (now - read_at).total_seconds()))


def run_state(run: Run, now: datetime, read_at: datetime | None = None) -> RunState:
    """The published keys of `run` at wall time `now`; `read_at` is when it was read, if earlier.

    The one projection of a run's outcome: every tool that shows a run builds on it.
    """
    lifecycle = run.lifecycle
    error = None
    if run.status == ERROR:
        details = lifecycle.details
        message = lifecycle.error_message or "(no message)"
        error = RunError(
            message=clip(message, MESSAGE_MAX),
            code=clip(details.error_code, NAME_MAX) if details and details.error_code else None,
            block_id=details.block_id if details else None,
            block_name=clip(details.block_name, NAME_MAX) if details and details.block_name else None,
        )
    eta = estimate_remaining_s(run, now, read_at)
    return RunState(
        run_id=run.id,
        status=run.status,
        finished=lifecycle.is_terminal,
        score=run.score if run.status == COMPLETED else None,
        completed_documents=run.completed_document_count,
        total_documents=run.total_document_count,
        error_count=run.error_count,
        error=error,
        cancel_reason=clip(lifecycle.reason, MESSAGE_MAX) if run.status == CANCELLED and lifecycle.reason else None,
        eta_s=round(eta) if eta is not None else None,  # whole seconds: an estimate, not a measurement
    )


def duration_s(timing: Timing) -> float | None:
    """Run time of a finished run or result, from Retab's duration or else its start and end."""
    if timing.duration_ms is not None:
        return round(timing.duration_ms / 1000, 1)
    if timing.started_at and timing.completed_at:
        return round((timing.completed_at - timing.started_at).total_seconds(), 1)
    return None


def summarize(run: Run, now: datetime, read_at: datetime | None = None) -> RunSummary:
    """The summary of `run` at wall time `now`; `read_at` is when it was read, if earlier."""
    state = run_state(run, now, read_at)
    elapsed_s = None
    if not state.finished and run.timing.created_at:
        elapsed_s = round(max(0.0, (now - run.timing.created_at).total_seconds()), 1)
    summary = RunSummary(
        **state.model_dump(),
        experiment_id=run.experiment_id,
        workflow_id=run.workflow_id,
        block_id=run.block_id,
        block_type=run.block_type,
        n_consensus=run.n_consensus,
        parent_run_id=run.parent_run_id,
        started_at=iso_seconds(run.timing.started_at),
        duration_s=duration_s(run.timing) if state.finished else None,
        elapsed_s=elapsed_s,
        hint="",
    )
    details = run.lifecycle.details
    trace = details.stack_trace if details and state.error is not None else None
    return summary.model_copy(update={"hint": next_step(summary)}).with_stack_trace(trace)


def next_step(summary: RunSummary) -> str:
    match summary.status:
        case statuses.COMPLETED:
            why = f"{names.TRIAGE} explains the score"
            return f"Final; {why} against the parent run." if summary.parent_run_id else f"Final; {why}."
        case statuses.ERROR:
            return "Failed; waiting won't change it. Fix what the last trace line names, then start a new run."
        case statuses.CANCELLED:
            return "Cancelled; it will not finish. Start a new run if results are still needed."
        case s if s in (PENDING, QUEUED, RUNNING):
            return f"Not finished: call {names.WAIT_RUN} to wait (up to ~45 s a call)."
        case _:
            return f"Unknown status: call {names.GET_RUN} again later to see whether it ends."


# Text rendering


def headline(summary: RunSummary) -> str:
    parts = [summary.run_id, summary.status]
    if summary.status == COMPLETED:
        parts.append(f"score {summary.score:.2f}" if summary.score is not None else "no score")
    parts.append(documents_text(summary))
    parts.append(f"{summary.error_count} error{'' if summary.error_count == 1 else 's'}")
    if summary.duration_s is not None:
        parts.append(duration_text(summary.duration_s))
    elif summary.elapsed_s is not None:
        parts.append(f"{duration_text(summary.elapsed_s)} so far")
    if summary.eta_s is not None:
        parts.append(f"~{duration_text(summary.eta_s)} left")
    return " · ".join(parts)


def context_line(summary: RunSummary) -> str | None:
    """The block and the run it is compared with; ids of experiment, workflow and block are structured only."""
    if summary.block_type is None and summary.parent_run_id is None:
        return None
    bits: list[str] = []
    if summary.block_type:
        consensus = f" x{summary.n_consensus} consensus" if summary.n_consensus else ""
        bits.append(f"{summary.block_type} block{consensus}")
    if summary.parent_run_id:
        bits.append(f"parent {summary.parent_run_id}")
    return " · ".join(bits)


def trace_tail(trace: str, *, max_lines: int = TRACE_MAX_LINES, max_bytes: int = TRACE_MAX_BYTES) -> list[str]:
    """The last lines of a stack trace within `max_lines` and `max_bytes`, with a cut marker."""
    all_lines = trace.rstrip().splitlines()
    kept: list[str] = []
    size = 0
    for line in reversed(all_lines):
        line = clip(line, TRACE_LINE_MAX)
        if len(kept) >= max_lines or size + len(line.encode()) + 1 > max_bytes:
            break
        kept.append(line)
        size += len(line.encode()) + 1
    kept.reverse()
    if len(kept) < len(all_lines):
        header = f"Stack trace, last {len(kept)} of {len(all_lines)} lines (earlier lines cut):"
    else:
        header = "Stack trace:"
    return [header, *kept]


def documents_text(state: RunState) -> str:
    return f"{state.completed_documents}/{state.total_documents} docs"

"""What a model reads about a run: a typed summary and a compact text rendering of it.

Pure functions of a `Run` and the current time. The text is written for a model: a one-line headline,
the error and the end of the stack trace for a failed run, and the next step. The structured summary
carries the same facts as fields; the long stack trace goes only into the text, cut to its end, where
the cause is, so the two channels do not repeat it.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ..api.statuses import CANCELLED, COMPLETED, ERROR, KNOWN_STATUSES, PENDING, QUEUED, RUNNING

if TYPE_CHECKING:
    from ..api.models import Run

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
    wait_for_runs row for a run that could not be read.
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


class WaitResult(RunSummary):
    """A run's state after waiting for it to finish: the run's keys and the wait's. A finished run comes
    with its summary, less the ids get_experiment_run gave; an unfinished one with the run keys only."""

    timed_out: bool = Field(description="True if the wait ended before the run finished.")
    waited_s: float = Field(description="How long this call waited.")
    total_waited_s: float | None = Field(
        default=None, description="How long all wait calls on this run from this server have waited."
    )
    warning: str | None = Field(default=None, description="A problem met while waiting, e.g. API errors.")


RUN_KEYS = frozenset(RunState.model_fields) - {"eta_s"}
WAIT_KEYS = frozenset({"timed_out", "waited_s"})
# Keys present in every result, null or not (the contract's and the hint); other null keys are left out
# to save tokens.
ALWAYS_PRESENT = RUN_KEYS | WAIT_KEYS | {"hint"}
# What get_experiment_run already gave and a wait does not repeat: the ids of experiment, workflow and
# block, the start time. An agent waiting out a long run reads a wait result a dozen times.
STATIC_KEYS = frozenset({"experiment_id", "workflow_id", "block_id", "block_type", "n_consensus", "started_at"})
# An unfinished wait result's structured content also leaves out what its text and the first call gave.
INTERIM_DROPPED = frozenset({"parent_run_id", "elapsed_s"})


def compact(summary: BaseModel) -> dict[str, Any]:
    data = summary.model_dump(mode="json")
    if isinstance(summary, WaitResult) and not summary.finished:
        data = {k: v for k, v in data.items() if k not in INTERIM_DROPPED}
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


def duration_s(run: Run) -> float | None:
    """Run time of a finished run, from Retab's duration or else its start and end."""
    if run.timing.duration_ms is not None:
        return round(run.timing.duration_ms / 1000, 1)
    if run.timing.started_at and run.timing.completed_at:
        return round((run.timing.completed_at - run.timing.started_at).total_seconds(), 1)
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
        duration_s=duration_s(run) if state.finished else None,
        elapsed_s=elapsed_s,
        hint="",
    )
    return summary.model_copy(update={"hint": next_step(summary)})


def next_step(summary: RunSummary) -> str:
    match summary.status:
        case "completed":
            why = "triage_experiment_run explains the score"
            return f"Final; {why} against the parent run." if summary.parent_run_id else f"Final; {why}."
        case "error":
            return "Failed; waiting won't change it. Fix what the last trace line names, then start a new run."
        case "cancelled":
            return "Cancelled; it will not finish. Start a new run if results are still needed."
        case s if s in (PENDING, QUEUED, RUNNING):
            return "Not finished: call wait_for_run to wait (up to ~45 s a call)."
        case _:
            return "Unknown status: call get_experiment_run again later to see whether it ends."


def summarize_wait(
    run: Run,
    now: datetime,
    *,
    timed_out: bool,
    waited_s: float,
    warning: str | None = None,
    total_waited_s: float | None = None,
    read_at: datetime | None = None,
) -> WaitResult:
    """The state of `run` after a wait on it, less what get_experiment_run already gave."""
    summary = summarize(run, now, read_at)
    return WaitResult(
        **summary.model_dump(exclude=set(STATIC_KEYS)),
        timed_out=timed_out,
        waited_s=waited_s,
        total_waited_s=total_waited_s if total_waited_s and total_waited_s > waited_s + 0.5 else None,
        warning=warning,
    )


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


def render_interim(result: WaitResult, next_step: str = "Call again.") -> str:
    """One line for a wait that ended before the run: what changed, and that waiting may go on."""
    bits = [result.status, documents_text(result)]
    if result.error_count:
        bits.append(f"{result.error_count} error{'' if result.error_count == 1 else 's'}")
    if result.eta_s is not None:
        bits.append(f"~{duration_text(result.eta_s)} left")
    waited = f"waited {duration_text(result.total_waited_s or result.waited_s)}"
    line = " · ".join(bits) + f" · {waited}. {next_step}"
    return line + (f"\nWarning: {result.warning}" if result.warning else "")


def render(summary: RunSummary, run: Run | None = None) -> str:
    """Compact text for a model. `run` supplies the stack trace of a failed run."""
    if isinstance(summary, WaitResult) and not summary.finished:
        return render_interim(summary)
    lines = [headline(summary)]
    context = context_line(summary)
    if context:
        lines.append(context)
    if summary.status not in KNOWN_STATUSES:
        lines[0] += " (status unknown to this server)"
    if summary.error is not None:
        where = f" in block {summary.error.block_name!r}" if summary.error.block_name else ""
        code = f" [{summary.error.code}]" if summary.error.code else ""
        lines.append(f"Error{code}{where}, as reported by Retab: {summary.error.message}")
        trace = run.lifecycle.details.stack_trace if run and run.lifecycle.details else None
        if trace:
            lines.extend(trace_tail(trace))
    if summary.cancel_reason:
        lines.append(f"Cancel reason, as reported by Retab: {summary.cancel_reason}")
    if isinstance(summary, WaitResult):
        waited = f"Waited {duration_text(summary.waited_s)}"
        if summary.total_waited_s:
            waited += f" ({duration_text(summary.total_waited_s)} over all calls)"
        lines.append(waited + (", not finished." if summary.timed_out else "."))
        if summary.warning:
            lines.append(f"Warning: {summary.warning}")
    if summary.hint:
        lines.append(f"Next: {summary.hint}")
    return "\n".join(lines)


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


def duration_text(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    total = round(seconds)
    if total < 60:
        return f"{total}s"
    minutes, secs = divmod(total, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def iso_seconds(value: datetime | None) -> str | None:
    return value.isoformat(timespec="seconds").replace("+00:00", "Z") if value else None

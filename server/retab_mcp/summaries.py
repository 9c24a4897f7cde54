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

from .statuses import CANCELLED, COMPLETED, ERROR, KNOWN_STATUSES, PENDING, QUEUED, RUNNING

if TYPE_CHECKING:
    from .models import Run

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


class RunSummary(BaseModel):
    """The state of one Retab experiment run. Times are in seconds; ids are Retab's own."""

    run_id: str
    status: str = Field(description="pending, queued, running, completed, error, cancelled (or a newer status).")
    finished: bool = Field(description="True when the run is completed, error or cancelled: it will not change.")
    score: float | None = Field(description="Score from 0 to 1 of a completed run; null otherwise.")
    docs_done: int
    docs_total: int
    errors: int
    error: RunError | None = Field(description="Why the run failed; null unless status is error.")
    cancel_reason: str | None = Field(description="Why the run was cancelled, when known; null otherwise.")
    experiment_id: str | None = None
    workflow_id: str | None = None
    block_id: str | None = None
    block_type: str | None = None
    n_consensus: int | None = None
    parent_run_id: str | None = Field(default=None, description="The run this one was compared against.")
    started_at: str | None = Field(default=None, description="ISO 8601 time the run started executing.")
    duration_s: float | None = Field(default=None, description="Run time of a finished run.")
    elapsed_s: float | None = Field(default=None, description="Time since an unfinished run was created.")
    eta_s: int | None = Field(default=None, description="Estimated seconds left, from throughput so far.")
    hint: str = Field(description="What to do next.")


class WaitResult(RunSummary):
    """A run's state after waiting for it to finish. A finished run comes with its summary (less the ids
    get_experiment_run gave); an unfinished one with only what changes: status, documents, ETA."""

    # Two fields a finished run always has, optional here so that an unfinished result can leave them out.
    run_id: str | None = Field(  # pyright: ignore[reportIncompatibleVariableOverride]
        default=None, description="The run waited on; left out while unfinished."
    )
    score: float | None = Field(default=None, description="Score from 0 to 1 of a completed run.")
    docs_total: int = Field(default=0, description="Left out while unfinished: it does not change.")
    errors: int = 0
    error: RunError | None = Field(default=None, description="Why the run failed, if it did.")
    cancel_reason: str | None = Field(default=None, description="Why the run was cancelled, if it was.")
    hint: str | None = Field(  # pyright: ignore[reportIncompatibleVariableOverride]
        default=None, description="What to do next; left out while unfinished."
    )
    timed_out: bool = Field(description="True if the wait ended before the run finished.")
    waited_s: float = Field(default=0.0, description="How long this call waited (unfinished: in the text).")
    total_waited_s: float | None = Field(
        default=None, description="How long all wait calls on this run from this server have waited."
    )
    warning: str | None = Field(default=None, description="A problem met while waiting, e.g. API errors.")


# Keys the contract promises in every result, null or not; other null keys are left out to save tokens.
ALWAYS_PRESENT = frozenset(
    {
        "run_id",
        "status",
        "finished",
        "score",
        "docs_done",
        "docs_total",
        "errors",
        "error",
        "cancel_reason",
        "hint",
        "timed_out",
        "waited_s",
    }
)


# An unfinished wait result is what an agent reads a dozen times while a long run goes on, so its
# structured content keeps only what changes, and these extras only when they say something (not 0 or
# null). The total and the time waited are in its one line of text.
INTERIM_KEYS = frozenset({"status", "finished", "timed_out", "docs_done"})
INTERIM_EXTRAS = frozenset({"errors", "eta_s", "warning"})


def compact(summary: BaseModel) -> dict[str, Any]:
    data = summary.model_dump(mode="json")
    if isinstance(summary, WaitResult) and not summary.finished:
        return {k: v for k, v in data.items() if k in INTERIM_KEYS or (k in INTERIM_EXTRAS and v)}
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


def summarize(run: Run, now: datetime, read_at: datetime | None = None) -> RunSummary:
    """The summary of `run` at wall time `now`; `read_at` is when it was read, if earlier."""
    lifecycle = run.lifecycle
    finished = lifecycle.is_terminal
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
    duration_s = elapsed_s = None
    if finished:
        if run.timing.duration_ms is not None:
            duration_s = round(run.timing.duration_ms / 1000, 1)
        elif run.timing.started_at and run.timing.completed_at:
            duration_s = round((run.timing.completed_at - run.timing.started_at).total_seconds(), 1)
    elif run.timing.created_at:
        elapsed_s = round(max(0.0, (now - run.timing.created_at).total_seconds()), 1)
    eta = estimate_remaining_s(run, now, read_at)
    summary = RunSummary(
        run_id=run.id,
        status=run.status,
        finished=finished,
        score=run.score if run.status == COMPLETED else None,
        docs_done=run.completed_document_count,
        docs_total=run.total_document_count,
        errors=run.error_count,
        error=error,
        cancel_reason=clip(lifecycle.reason, MESSAGE_MAX) if run.status == CANCELLED and lifecycle.reason else None,
        experiment_id=run.experiment_id,
        workflow_id=run.workflow_id,
        block_id=run.block_id,
        block_type=run.block_type,
        n_consensus=run.n_consensus,
        parent_run_id=run.parent_run_id,
        started_at=iso_seconds(run.timing.started_at),
        duration_s=duration_s,
        elapsed_s=elapsed_s,
        eta_s=round(eta) if eta is not None else None,  # whole seconds: an estimate, not a measurement
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


_STATIC_FIELDS = ("experiment_id", "workflow_id", "block_id", "block_type", "n_consensus", "started_at")


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
    """The summary after a wait, without what get_experiment_run already gave (the ids of experiment,
    workflow and block, the start time): an agent waiting out a long run calls this a dozen times."""
    summary = summarize(run, now, read_at)
    result = WaitResult(
        **summary.model_dump(exclude=set(_STATIC_FIELDS)),
        timed_out=timed_out,
        waited_s=waited_s,
        total_waited_s=total_waited_s if total_waited_s and total_waited_s > waited_s + 0.5 else None,
        warning=warning,
    )
    if summary.finished:
        return result
    return result.model_copy(update={"hint": None})


# Text rendering


def headline(summary: RunSummary) -> str:
    parts = [summary.run_id, summary.status]
    if summary.status == COMPLETED:
        parts.append(f"score {summary.score:.2f}" if summary.score is not None else "no score")
    parts.append(f"{summary.docs_done}/{summary.docs_total} docs")
    parts.append(f"{summary.errors} error{'' if summary.errors == 1 else 's'}")
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
    bits = [result.status, f"{result.docs_done}/{result.docs_total} docs"]
    if result.errors:
        bits.append(f"{result.errors} error{'' if result.errors == 1 else 's'}")
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

"""A run of any kind as a model reads it: `RunView` (the run keys, and each kind's own), and `WaitResult`
(the same after a wait).

One model for every kind, since one tool (`get_run`, `wait_for_run`) answers for any: the keys a kind does
not have are null and left out of the structured content. Each kind's values and words are its own module's
(run.py for experiment runs, workflows.py, evals.py); this module picks by `kind` and adds what every kind
shares: the kind itself, timing, the ETA and the next step.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from pydantic import Field

from ..api.evals import EvalRun
from ..api.models import Run
from ..api.statuses import CANCELLED, KNOWN_STATUSES, RUNNING
from ..kinds import EVAL, EXPERIMENT, WORKFLOW
from ..kinds.readers import WorkflowSnapshot
from .evals import EvalView, eval_headline, eval_lines, eval_next_step, eval_values
from .run import ALWAYS_PRESENT, INTERIM_DROPPED, STATIC_KEYS, RunSummary, documents_text, summarize, trace_tail
from .text import clip, duration_text, iso_seconds
from .workflows import WorkflowView, workflow_headline, workflow_lines, workflow_next_step, workflow_values

if TYPE_CHECKING:
    from ..kinds import RunKind, Snapshot
    from ..watch.watcher import WaitOutcome

CANCEL_REASON_MAX = 300


class RunView(RunSummary, WorkflowView, EvalView):
    """A Retab run of any kind: experiment, workflow or eval. Keys another kind has are null."""

    kind: str | None = Field(default=None, description="experiment, workflow or eval: the kind of run read.")

    def structured(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        return {k: v for k, v in data.items() if v is not None or k in ALWAYS_PRESENT}

    def render(self, *, trace: bool = True) -> str:
        if self.kind == WORKFLOW:
            lines = [workflow_headline(self), *workflow_lines(self)]
        elif self.kind == EVAL:
            lines = [eval_headline(self), *eval_lines(self)]
        else:
            return super().render(trace=trace)
        if self.status not in KNOWN_STATUSES and self.status != "awaiting_review":
            lines[0] += " (status unknown to this server)"
        if trace and self.stack_trace and self.error is not None:
            lines.extend(trace_tail(self.stack_trace))
        lines.extend(self._more_lines())
        if self.hint:
            lines.append(f"Next: {self.hint}")
        return "\n".join(lines)


def view_of(run: Snapshot, kind: RunKind, now: datetime, read_at: datetime | None = None) -> RunView:
    """What a model reads of `run`, a snapshot of `kind` read at `read_at` (or now)."""
    if isinstance(run, Run):
        summary = summarize(run, now, read_at)
        return summary.into(RunView, kind=EXPERIMENT)
    values: dict[str, Any]
    trace = None
    if isinstance(run, WorkflowSnapshot):
        values = workflow_values(run)
        details = run.run.lifecycle.details
        trace = details.stack_trace if details and run.status == "error" else None
        reason = run.run.lifecycle.reason
    elif isinstance(run, EvalRun):
        values = eval_values(run)
        details = run.lifecycle.details
        trace = details.stack_trace if details and run.status == "error" else None
        reason = run.lifecycle.reason
    else:  # pragma: no cover - every kind's snapshot is one of the above
        raise TypeError(f"no view for a {type(run).__name__}")
    finished = run.finished
    ended = _ended_at(run)
    view = RunView(
        run_id=run.id,
        kind=kind.name,
        status=run.status,
        finished=finished,
        cancel_reason=clip(reason, CANCEL_REASON_MAX) if run.status == CANCELLED and reason else None,
        eta_s=_eta(run, now, read_at),
        started_at=iso_seconds(run.started_at),
        duration_s=round((ended - run.started_at).total_seconds(), 1)
        if finished and ended and run.started_at
        else None,
        elapsed_s=round(max(0.0, (now - run.created_at).total_seconds()), 1)
        if not finished and run.created_at
        else None,
        hint="",
        **values,
    )
    hint = workflow_next_step(view) if kind.name == WORKFLOW else eval_next_step(view)
    return view.model_copy(update={"hint": hint}).with_stack_trace(trace)


def _ended_at(run: Snapshot) -> datetime | None:
    if isinstance(run, WorkflowSnapshot):
        return run.run.timing.completed_at
    if isinstance(run, EvalRun):
        return run.timing.completed_at
    return None


def _eta(run: Snapshot, now: datetime, read_at: datetime | None) -> int | None:
    """Seconds left at the pace so far, when the run says how much there is in all; else None."""
    read_at = read_at or now
    progress, started = run.progress, run.started_at
    if run.status != RUNNING or started is None or progress.total is None:
        return None
    if progress.done <= 0 or progress.total <= progress.done:
        return None
    running_s = (read_at - started).total_seconds()
    if running_s <= 0:
        return None
    left = (progress.total - progress.done) * running_s / progress.done - max(0.0, (now - read_at).total_seconds())
    return round(max(0.0, left))


class WaitResult(RunView):
    """A run's state after waiting for it to end (or to need a person): the run's keys and the wait's. An
    ended run comes with its summary, less the ids a first read gave; an unfinished one with the run keys."""

    timed_out: bool = Field(description="True if the wait ended before the run finished.")
    waited_s: float = Field(description="How long this call waited.")
    total_waited_s: float | None = Field(
        default=None, description="How long all wait calls on this run from this server have waited."
    )
    warning: str | None = Field(default=None, description="A problem met while waiting, e.g. API errors.")

    def structured(self) -> dict[str, Any]:
        data = super().structured()
        if not self.finished and not self.needs_person:  # what its text and the first call gave
            data = {k: v for k, v in data.items() if k not in INTERIM_DROPPED}
        return data

    def render(self, *, trace: bool = True, next_step: str = "Call again.") -> str:
        """A wait that ended before the run is one line: what changed, and that waiting may go on."""
        if self.finished or self.needs_person:
            return super().render(trace=trace)
        bits = [self.status, _progress_text(self)]
        if self.error_count:
            bits.append(f"{self.error_count} error{'' if self.error_count == 1 else 's'}")
        if self.eta_s is not None:
            bits.append(f"~{duration_text(self.eta_s)} left")
        waited = f"waited {duration_text(self.total_waited_s or self.waited_s)}"
        line = " · ".join(bits) + f" · {waited}. {next_step}"
        return line + (f"\nWarning: {self.warning}" if self.warning else "")

    def _more_lines(self) -> list[str]:
        waited = f"Waited {duration_text(self.waited_s)}"
        if self.total_waited_s:
            waited += f" ({duration_text(self.total_waited_s)} over all calls)"
        lines = [waited + (", not finished." if self.timed_out else ".")]
        if self.warning:
            lines.append(f"Warning: {self.warning}")
        return lines


def _progress_text(view: RunView) -> str:
    if view.kind == WORKFLOW:
        return f"{view.steps_done or 0} steps done"
    if view.kind == EVAL:
        return f"{view.evals_finished or 0}/{view.evals_total or 0} evals"
    return documents_text(view)


def wait_view(outcome: WaitOutcome, kind: RunKind, now: datetime) -> WaitResult:
    """The state of the run a wait ended on, less what a first read of the run already gave."""
    view = view_of(outcome.run, kind, now, outcome.read_at)
    total = outcome.total_waited_s
    # An agent waiting out a long run reads a wait result a dozen times: what a first read gave is not repeated
    # (but a workflow run keeps its workflow id: it says where in Retab a person acts).
    return view.into(
        WaitResult,
        exclude=STATIC_KEYS if kind.name == EXPERIMENT else frozenset({"started_at"}),
        timed_out=outcome.timed_out,
        waited_s=outcome.waited_s,
        total_waited_s=total if total > outcome.waited_s + 0.5 else None,
        warning=outcome.warning,
    )

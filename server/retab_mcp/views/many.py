"""What a model reads after waiting on several runs: a row per run, and one line of what to do next.

A row carries the run's published keys, or, for a run that could not be read, why (`read_error`) and a
status that says whether waiting again could help (`not_found`, `invalid_id`, `refused`: no; `unreadable`:
maybe).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from ..api.errors import Disposition, RetabError, disposition
from ..tools import names
from ..watch.many import ManyOutcome, WaitMode
from .messages import explain
from .run import RUN_KEYS, RunState, documents_text
from .runs import view_of
from .text import clip, duration_text

if TYPE_CHECKING:
    from datetime import datetime

    from ..kinds import RunKind, Snapshot

ROW_ERROR_MAX = 160
NOT_FOUND, INVALID_ID, REFUSED, UNREADABLE = "not_found", "invalid_id", "refused", "unreadable"
# Rows that waiting again will not change: the id names no run, or the API refuses to show it.
REJECTED = frozenset({NOT_FOUND, INVALID_ID, REFUSED})


class WaitRow(RunState):
    """One run after the wait: its published keys, or why it could not be read."""

    kind: str | None = Field(default=None, description="experiment, workflow or eval.")
    needs_person: bool | None = Field(
        default=None, description="A workflow run held at a review gate: it will not move until a person acts."
    )

    status: str = Field(
        description="The last status read; 'not_found' or 'invalid_id' when the id names no run, 'refused' "
        "when the API refused to show it (HTTP 400, 409, 422), 'unreadable' when the API did not answer in time."
    )
    read_error: str | None = Field(default=None, description="Why the run could not be read, or the last poll failed.")


class RunsWaitResult(BaseModel):
    """The state of each run after waiting on several."""

    mode: WaitMode
    done: bool = Field(description="True when the mode's condition was met: all finished, or any one.")
    finished_runs: int
    total_runs: int
    timed_out: bool
    waited_s: float
    runs: list[WaitRow]
    hint: str


def runs_wait_result(outcome: ManyOutcome) -> RunsWaitResult:
    rows = [_row(run.run_id, run.kind, run.run, run.failure, outcome.now, run.read_at) for run in outcome.runs]
    finished = sum(1 for row in rows if row.finished or row.needs_person)
    waiting_on = [row for row in rows if not row.finished and not row.needs_person and row.status not in REJECTED]
    done = (finished > 0 or not waiting_on) if outcome.mode == "any" else not waiting_on
    return RunsWaitResult(
        mode=outcome.mode,
        done=done,
        finished_runs=finished,
        total_runs=len(rows),
        timed_out=not done,
        waited_s=outcome.waited_s,
        runs=rows,
        hint=_hint(done, outcome.mode, rows, waiting_on),
    )


def _row(
    run_id: str,
    kind: RunKind,
    run: Snapshot | None,
    failure: RetabError | None,
    now: datetime,
    read_at: datetime | None,
) -> WaitRow:
    reason = clip(explain(failure, run_id), ROW_ERROR_MAX) if failure else None
    if run is None or (failure is not None and disposition(failure) is not Disposition.TRANSIENT):
        if failure is None:
            status, reason = UNREADABLE, "Not read before the deadline."
        elif disposition(failure) is Disposition.NOT_FOUND:
            status = NOT_FOUND
        elif isinstance(failure, ValueError):  # an id that may not be sent
            status = INVALID_ID
        elif disposition(failure) is Disposition.FATAL:
            status = REFUSED
        else:
            status = UNREADABLE
        return WaitRow(
            run_id=run_id,
            kind=kind.name,
            status=status,
            finished=False,
            score=None,
            completed_documents=None,
            total_documents=None,
            error_count=None,
            error=None,
            cancel_reason=None,
            read_error=reason,
        )
    view = view_of(run, kind, now, read_at)
    state = view.model_dump(include=set(RunState.model_fields))
    if view.error is not None:
        state["error"] = view.error.model_copy(update={"message": clip(view.error.message, ROW_ERROR_MAX)})
    return WaitRow(
        **state,
        kind=kind.name,
        needs_person=view.needs_person or None,
        read_error=f"Last poll failed: {reason}" if reason else None,
    )


def _hint(done: bool, mode: WaitMode, rows: list[WaitRow], waiting_on: list[WaitRow]) -> str:
    rejected = [row.run_id for row in rows if row.status in REJECTED]
    drop = f" Not worth waiting on (drop them): {', '.join(rejected)}." if rejected else ""
    if done:
        if not any(row.finished for row in rows):
            return "None of these ids names a run that can be read: check them." + drop
        return f"Why a run scored as it did: {names.TRIAGE}(run_id)." + drop
    # The exact call, naming the ids only when it is not the same call again: 20 ids cost 700 bytes a time.
    same = not rejected and not any(row.finished for row in rows)
    ids = "the same run_ids" if same else "run_ids=[" + ", ".join(f"'{row.run_id}'" for row in waiting_on) + "]"
    return (
        f"Not done: call {names.WAIT_RUNS} again with {ids} and mode='{mode}' to keep waiting; stop after ~15 min "
        "without progress." + drop
    )


def row_data(row: WaitRow) -> dict[str, Any]:
    """A row as structured content: the run keys always, other keys when they say something."""
    data = row.model_dump(mode="json")
    return {k: v for k, v in data.items() if v is not None or k in RUN_KEYS}


def structured(result: RunsWaitResult) -> dict[str, Any]:
    data = result.model_dump(mode="json", exclude={"runs"})
    return data | {"runs": [row_data(row) for row in result.runs]}


def render_runs_wait(result: RunsWaitResult) -> str:
    state = "done" if result.done else "not done"
    lines = [
        f"{result.finished_runs}/{result.total_runs} runs finished (mode {result.mode}, {state}) · "
        f"waited {duration_text(result.waited_s)}"
    ]
    for row in result.runs:
        bits = [row.run_id, row.status]
        if row.score is not None:
            bits.append(f"score {row.score:.2f}")
        if row.total_documents is not None:
            bits.append(documents_text(row))
        if row.error_count:
            bits.append(f"{row.error_count} err")
        if row.eta_s is not None:
            bits.append(f"~{duration_text(row.eta_s)} left")
        line = "- " + " · ".join(bits)
        if row.error is not None:
            line += f": {row.error.message}"
        if row.read_error:
            line += f" ({row.read_error})" if row.error is not None else f": {row.read_error}"
        lines.append(line)
    lines.append(f"Next: {result.hint}")
    return "\n".join(lines)

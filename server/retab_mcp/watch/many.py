"""Waiting on several runs at once: one `RunWatcher.wait` per run under one deadline.

The policy is `wait_for_run`'s, run by run, as `errors.disposition` classifies errors: transient ones are
retried until the deadline; a run that does not exist (three 404s) or an id that is not one ends its own
wait and is reported in its row, while the others are still waited on; an error about the key (rejected
or missing) ends the whole call, since it would fail every run alike. Progress is the sum of documents
completed over the runs. In mode "any" the first run to finish ends the wait for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import anyio
import anyio.abc
from pydantic import BaseModel, Field

from ..api.client import check_id
from ..api.errors import Disposition, RetabError, disposition, fails_every_run
from ..tools.errors import explain
from ..views.run import RUN_KEYS, RunState, clip, documents_text, duration_text, run_state
from .watcher import ProgressCallback, RunWatcher

if TYPE_CHECKING:
    from ..api.models import Run

WaitMode = Literal["all", "any"]
MAX_RUNS = 20
ROW_ERROR_MAX = 160
NOT_FOUND, INVALID_ID, REFUSED, UNREADABLE = "not_found", "invalid_id", "refused", "unreadable"
# Rows that waiting again will not change: the id names no run, or the API refuses to show it.
REJECTED = frozenset({NOT_FOUND, INVALID_ID, REFUSED})


class WaitRow(RunState):
    """One run after the wait: its published keys, or why it could not be read."""

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


@dataclass
class _Batch:
    """What the per-run waits found, filled in as they go."""

    failures: dict[str, RetabError] = field(default_factory=dict[str, RetabError])
    fatal: list[RetabError] = field(default_factory=list[RetabError])
    progress: dict[str, tuple[int, int]] = field(default_factory=dict[str, tuple[int, int]])
    progress_sent: int = -1


async def wait_for_runs(
    watcher: RunWatcher,
    run_ids: list[str],
    *,
    mode: WaitMode,
    timeout_s: float,
    on_progress: ProgressCallback | None = None,
) -> RunsWaitResult:
    """Wait on every run of `run_ids` (de-duplicated) until `mode` is met or time is up."""
    batch = _Batch()
    clock = watcher.clock
    start = clock.now()

    async def report(run_id: str, done: float, total: float | None) -> None:
        batch.progress[run_id] = (int(done), int(total or 0))
        summed = sum(d for d, _ in batch.progress.values())
        if on_progress is not None and summed > batch.progress_sent:
            batch.progress_sent = summed
            finished = sum(1 for run_id in run_ids if (run := watcher.last_state(run_id)) and run.lifecycle.is_terminal)
            await on_progress(
                float(summed),
                float(sum(t for _, t in batch.progress.values())) or None,
                f"{finished}/{len(run_ids)} runs finished · {summed} docs",
            )

    async def wait_one(run_id: str, group: anyio.abc.TaskGroup) -> None:
        async def progress(done: float, total: float | None, _message: str) -> None:
            await report(run_id, done, total)

        try:
            outcome = await watcher.wait(run_id, timeout_s=timeout_s, on_progress=progress)
        except RetabError as error:
            if fails_every_run(error):
                batch.fatal.append(error)
                group.cancel_scope.cancel()
            else:
                batch.failures[run_id] = error
                if mode == "any" and not any(_waitable(batch, other) for other in run_ids):
                    group.cancel_scope.cancel()
            return
        if mode == "any" and outcome.run.lifecycle.is_terminal:
            group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        for run_id in run_ids:
            try:
                check_id(run_id)
            except RetabError as error:
                batch.failures[run_id] = error
                continue
            group.start_soon(wait_one, run_id, group)
    if batch.fatal:
        raise batch.fatal[0]
    now = clock.wall_at(clock.now())
    rows = [
        _row(run_id, watcher.last_state(run_id), batch.failures.get(run_id), now, watcher.read_at(run_id))
        for run_id in run_ids
    ]
    finished = sum(1 for row in rows if row.finished)
    waiting_on = [row for row in rows if not row.finished and row.status not in REJECTED]
    done = (finished > 0 or not waiting_on) if mode == "any" else not waiting_on
    return RunsWaitResult(
        mode=mode,
        done=done,
        finished_runs=finished,
        total_runs=len(rows),
        timed_out=not done,
        waited_s=round(clock.now() - start, 1),
        runs=rows,
        hint=_hint(done, mode, rows, waiting_on),
    )


def _waitable(batch: _Batch, run_id: str) -> bool:
    failure = batch.failures.get(run_id)
    return failure is None or disposition(failure) is Disposition.TRANSIENT


def _row(run_id: str, run: Run | None, failure: RetabError | None, now: datetime, read_at: datetime | None) -> WaitRow:
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
    state = run_state(run, now, read_at)
    if state.error is not None:
        state.error = state.error.model_copy(update={"message": clip(state.error.message, ROW_ERROR_MAX)})
    return WaitRow(**state.model_dump(), read_error=f"Last poll failed: {reason}" if reason else None)


def _hint(done: bool, mode: WaitMode, rows: list[WaitRow], waiting_on: list[WaitRow]) -> str:
    rejected = [row.run_id for row in rows if row.status in REJECTED]
    drop = f" Not worth waiting on (drop them): {', '.join(rejected)}." if rejected else ""
    if done:
        if not any(row.finished for row in rows):
            return "None of these ids names a run that can be read: check them." + drop
        return "Why a run scored as it did: triage_experiment_run(run_id)." + drop
    # The exact call, naming the ids only when it is not the same call again: 20 ids cost 700 bytes a time.
    same = not rejected and not any(row.finished for row in rows)
    ids = "the same run_ids" if same else "run_ids=[" + ", ".join(f"'{row.run_id}'" for row in waiting_on) + "]"
    return (
        f"Not done: call wait_for_runs again with {ids} and mode='{mode}' to keep waiting; stop after ~15 min "
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

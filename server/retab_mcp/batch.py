"""Waiting on several runs at once: one `RunWatcher.wait` per run under one deadline.

The policy is `wait_for_run`'s, run by run: transient errors are retried until the deadline, an unknown
run ends its own wait (three 404s) and is reported in its row, while a rejected or missing key ends the
whole call, since it would fail every run alike. Progress is the sum of documents completed over the
runs. In mode "any" the first run to finish ends the wait for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import anyio
import anyio.abc
from pydantic import BaseModel, Field

from .errors import AuthenticationError, MissingAPIKeyError, PermissionDeniedError, RetabError
from .summaries import clip, duration_text, estimate_remaining_s
from .tool_errors import explain
from .waiting import ProgressCallback, RunWatcher

if TYPE_CHECKING:
    from .models import Run

WaitMode = Literal["all", "any"]
MAX_RUNS = 20
ROW_ERROR_MAX = 160
FATAL_ERRORS = (AuthenticationError, PermissionDeniedError, MissingAPIKeyError)


class RunState(BaseModel):
    run_id: str
    status: str = Field(description="The last status read, or 'unreadable' if the run could not be read.")
    finished: bool
    score: float | None = None
    docs_done: int | None = None
    docs_total: int | None = None
    errors: int | None = None
    eta_s: int | None = None
    error: str | None = Field(default=None, description="Why the run failed, or why it could not be read.")


class RunsWaitResult(BaseModel):
    """The state of each run after waiting on several."""

    mode: WaitMode
    done: bool = Field(description="True when the mode's condition was met: all finished, or any one.")
    finished_runs: int
    total_runs: int
    timed_out: bool
    waited_s: float
    runs: list[RunState]
    hint: str


@dataclass
class _Batch:
    """What the per-run waits found, filled in as they go."""

    states: dict[str, Run] = field(default_factory=dict[str, "Run"])
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
    """Wait on every run of `run_ids` (already checked and de-duplicated) until `mode` is met or time is up."""
    batch = _Batch()
    clock = watcher.clock
    start = clock.now()

    async def report(run_id: str, done: float, total: float | None) -> None:
        batch.progress[run_id] = (int(done), int(total or 0))
        summed = sum(d for d, _ in batch.progress.values())
        if on_progress is not None and summed > batch.progress_sent:
            batch.progress_sent = summed
            finished = sum(1 for run in batch.states.values() if run.lifecycle.is_terminal)
            await on_progress(
                float(summed),
                float(sum(t for _, t in batch.progress.values())) or None,
                f"{finished}/{len(run_ids)} runs finished · {summed} docs",
            )

    async def wait_one(run_id: str, group: anyio.abc.TaskGroup) -> None:
        async def progress(done: float, total: float | None, _message: str) -> None:
            await report(run_id, done, total)

        try:
            outcome = await watcher.wait(
                run_id,
                timeout_s=timeout_s,
                on_progress=progress,
                on_state=lambda run: batch.states.__setitem__(run_id, run),
            )
        except FATAL_ERRORS as error:
            batch.fatal.append(error)
            group.cancel_scope.cancel()
            return
        except RetabError as error:
            batch.failures[run_id] = error
            return
        if mode == "any" and outcome.run.lifecycle.is_terminal:
            group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        for run_id in run_ids:
            group.start_soon(wait_one, run_id, group)
    if batch.fatal:
        raise batch.fatal[0]
    now = clock.wall_at(clock.now())
    rows = [_row(run_id, batch, now, watcher.read_at(run_id)) for run_id in run_ids]
    finished = sum(1 for row in rows if row.finished)
    ended = sum(1 for row in rows if row.finished or row.status == "unreadable")
    done = finished > 0 if mode == "any" else ended == len(rows)
    return RunsWaitResult(
        mode=mode,
        done=done,
        finished_runs=finished,
        total_runs=len(rows),
        timed_out=not done,
        waited_s=round(clock.now() - start, 1),
        runs=rows,
        hint=_hint(done, rows),
    )


def _row(run_id: str, batch: _Batch, now: datetime, read_at: datetime | None) -> RunState:
    run = batch.states.get(run_id)
    failure = batch.failures.get(run_id)
    if run is None:
        message = explain(failure, run_id) if failure else "Not read before the deadline."
        return RunState(run_id=run_id, status="unreadable", finished=False, error=clip(message, ROW_ERROR_MAX))
    lifecycle = run.lifecycle
    error = None
    if run.status == "error":
        error = lifecycle.error_message or "(no message)"
    elif failure is not None:
        error = "Last poll failed: " + explain(failure, run_id)
    eta = estimate_remaining_s(run, now, read_at)
    return RunState(
        run_id=run_id,
        status=run.status,
        finished=lifecycle.is_terminal,
        score=run.score if run.status == "completed" else None,
        docs_done=run.completed_document_count,
        docs_total=run.total_document_count,
        errors=run.error_count,
        eta_s=round(eta) if eta is not None else None,
        error=clip(error, ROW_ERROR_MAX) if error else None,
    )


def _hint(done: bool, rows: list[RunState]) -> str:
    if done:
        return "Why a run scored as it did: triage_experiment_run(run_id)."
    return "Call wait_for_runs again with the unfinished ids to keep waiting; stop after ~15 min without progress."


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
        if row.docs_total is not None:
            bits.append(f"{row.docs_done}/{row.docs_total} docs")
        if row.errors:
            bits.append(f"{row.errors} err")
        if row.eta_s is not None:
            bits.append(f"~{duration_text(row.eta_s)} left")
        line = "- " + " · ".join(bits)
        if row.error:
            line += f": {row.error}"
        lines.append(line)
    lines.append(f"Next: {result.hint}")
    return "\n".join(lines)

"""Waiting on several runs at once: one `RunWatcher.wait` per run under one deadline.

What each run came to is returned as it is (its last state read, or the error that ended its wait);
views/many.py makes the rows and words of it.

The policy is that of a single wait, run by run, as `errors.disposition` classifies errors: transient ones are
retried until the deadline; a run that does not exist (three 404s) or an id that is not one ends its own
wait and is reported in its row, while the others are still waited on; an error about the key (rejected
or missing) ends the whole call, since it would fail every run alike. Progress is the sum of what each
run counts (documents, steps, evals) over the runs. In mode "any" the first run to finish ends the wait for all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import anyio
import anyio.abc

from ..api.client import check_id
from ..api.errors import Disposition, RetabError, disposition, fails_every_run
from .watcher import ProgressCallback, RunWatcher

if TYPE_CHECKING:
    from ..kinds import RunKind, Snapshot

WaitMode = Literal["all", "any"]
MAX_RUNS = 20


@dataclass(frozen=True)
class RunOutcome:
    """One run after the wait: its last state read, or what ended its wait (or both: a poll failed)."""

    run_id: str
    kind: RunKind
    run: Snapshot | None
    failure: RetabError | None
    read_at: datetime | None  # wall time `run` was read


@dataclass(frozen=True)
class ManyOutcome:
    mode: WaitMode
    runs: list[RunOutcome]
    waited_s: float
    now: datetime  # wall time the wait ended


@dataclass
class _Batch:
    """What the per-run waits found, filled in as they go."""

    failures: dict[str, RetabError] = field(default_factory=dict[str, RetabError])
    fatal: list[RetabError] = field(default_factory=list[RetabError])
    progress: dict[str, tuple[int, int]] = field(default_factory=dict[str, tuple[int, int]])
    progress_sent: int = -1


async def wait_many(
    watcher: RunWatcher,
    runs: list[tuple[str, RunKind]],
    *,
    mode: WaitMode,
    timeout_s: float,
    on_progress: ProgressCallback | None = None,
) -> ManyOutcome:
    """Wait on every run of `runs` (id and kind, de-duplicated by the caller) until `mode` is met or time is
    up. A run "finishes" here when a wait on it would end: it ended, or it waits for a person."""
    batch = _Batch()
    clock = watcher.clock
    start = clock.now()
    run_ids = [run_id for run_id, _ in runs]

    def stopped(run_id: str, kind: RunKind) -> bool:
        run = watcher.last_state(run_id, kind)
        return run is not None and run.stops_wait

    async def report(run_id: str, done: float, total: float | None) -> None:
        batch.progress[run_id] = (int(done), int(total or 0))
        summed = sum(d for d, _ in batch.progress.values())
        if on_progress is not None and summed > batch.progress_sent:
            batch.progress_sent = summed
            finished = sum(1 for run_id, kind in runs if stopped(run_id, kind))
            await on_progress(
                float(summed),
                float(sum(t for _, t in batch.progress.values())) or None,
                f"{finished}/{len(runs)} runs finished · {summed} done",
            )

    async def wait_one(run_id: str, kind: RunKind, group: anyio.abc.TaskGroup) -> None:
        async def progress(done: float, total: float | None, _message: str) -> None:
            await report(run_id, done, total)

        try:
            outcome = await watcher.wait(run_id, kind=kind, timeout_s=timeout_s, on_progress=progress)
        except RetabError as error:
            if fails_every_run(error):
                batch.fatal.append(error)
                group.cancel_scope.cancel()
            else:
                batch.failures[run_id] = error
                if mode == "any" and not any(_waitable(batch, other) for other in run_ids):
                    group.cancel_scope.cancel()
            return
        if mode == "any" and outcome.run.stops_wait:
            group.cancel_scope.cancel()

    async with anyio.create_task_group() as group:
        for run_id, kind in runs:
            try:
                check_id(run_id)
            except RetabError as error:
                batch.failures[run_id] = error
                continue
            group.start_soon(wait_one, run_id, kind, group)
    if batch.fatal:
        raise batch.fatal[0]
    outcomes = [
        RunOutcome(
            run_id, kind, watcher.last_state(run_id, kind), batch.failures.get(run_id), watcher.read_at(run_id, kind)
        )
        for run_id, kind in runs
    ]
    return ManyOutcome(mode, outcomes, waited_s=round(clock.now() - start, 1), now=clock.wall_at(clock.now()))


def _waitable(batch: _Batch, run_id: str) -> bool:
    failure = batch.failures.get(run_id)
    return failure is None or disposition(failure) is Disposition.TRANSIENT

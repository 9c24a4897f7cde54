"""Waiting for runs to finish: one poll loop per run, shared by every caller waiting on it.

Runs of every kind (kinds/): a run is known by its kind and id, read by its kind's reader, and seen as a
`Snapshot`; a wait ends when the run ends or stops for a person (a workflow run's review gate).

`RunWatcher` keeps, for each run being waited on, a `Watch`: the last state read, the run's `Pace`,
when to poll next, and a loop that polls on `PollSchedule`'s timing while anybody waits. Callers do not
poll; they wait on the watch until the run finishes, their deadline passes, or the watch fails. So twenty
sessions waiting on one run cost the requests of one, and a caller that comes back for another
45 seconds resumes the schedule (and the pace) where the last call left it, instead of starting over.

Errors follow Retab's CLI, as `errors.disposition` classifies them: transient ones (408, 429, 5xx,
network) are retried until the deadline (a caller then gets the last good state with a warning); a 404
ends every wait on the run after three in a row (a run just created may not be readable yet); any other
(401, 403, 400, 422) ends them at once.
"""

from __future__ import annotations

import json
import logging
import math
from collections import OrderedDict
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, cast

import anyio
import anyio.abc

from ..api.client import RetabClient, call_deadline
from ..api.errors import (
    APIStatusError,
    APITimeoutError,
    Disposition,
    RateLimitError,
    RetabError,
    ServerStoppingError,
    disposition,
    status_error,
)
from ..base import telemetry
from ..base.clock import Clock
from ..kinds import RunKind, Snapshot
from ..kinds.readers import EXPERIMENT_KIND
from .schedule import Pace, PollSchedule, Schedule
from .sharing import FUTURE_SKEW_S, LEASE_MARGIN_S, PollSharing

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[float, float | None, str], Awaitable[None]]

NOT_FOUND_LIMIT = 3
SHUTDOWN_MESSAGE = "the server is shutting down; call again once it is back"
SILENT_WARNING_S = 1.0  # a request in flight this long at a deadline is worth a warning
WATCHES_KEPT = 1_000  # idle watches remembered (state, pace, next poll), most recent first
SHARED_ERROR_FRESH_S = 30.0  # an error another replica read longer ago than this ended an earlier wait, not this one


@dataclass(frozen=True)
class WaitOutcome:
    """All a wait came to: the run's last state read and the wait's own facts."""

    run: Snapshot  # the last state read
    timed_out: bool
    waited_s: float
    warning: str | None
    read_at: datetime | None = None  # wall time the state was read
    total_waited_s: float = 0.0  # over every wait on this run from this watcher, this one included


class WaitLedger:
    """How long this watcher has waited on each run, over all calls (the last 1,000 runs)."""

    def __init__(self, capacity: int = 1_000) -> None:
        self._seconds: OrderedDict[str, float] = OrderedDict()
        self._capacity = capacity

    def add(self, run_id: str, seconds: float) -> float:
        total = self._seconds.pop(run_id, 0.0) + seconds
        self._seconds[run_id] = total
        while len(self._seconds) > self._capacity:
            self._seconds.popitem(last=False)
        return total


@dataclass
class Watch:
    """One run as the watcher knows it."""

    run_id: str
    kind: RunKind
    run: Snapshot | None = None
    pace: Pace = field(default_factory=Pace)
    next_poll_t: float = float("-inf")  # clock time of the next poll; the first one is at once
    last_error: RetabError | None = None
    fatal: RetabError | None = None  # ends every wait on this run
    not_found_streak: int = 0
    waiters: int = 0
    poll_started_t: float | None = None  # clock time the request in flight was sent
    read_t: float | None = None  # clock time `run` was read
    reads: int = 0  # states read (or taken from another replica) so far
    changed: anyio.Event = field(default_factory=anyio.Event)
    loop: anyio.CancelScope | None = None

    def notify(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()

    @property
    def key(self) -> str:
        return watch_key(self.kind, self.run_id)

    @property
    def finished(self) -> bool:
        """Nothing more to poll for: the run ended."""
        return self.run is not None and self.run.finished


class RunWatcher:
    """The poll loops of one server. `running_watcher()` makes one whose loops live in a task group of its own."""

    def __init__(
        self,
        client: RetabClient,
        clock: Clock,
        group: anyio.abc.TaskGroup,
        *,
        schedule: Schedule | None = None,
        stop: anyio.Event | None = None,
        sharing: PollSharing | None = None,
    ) -> None:
        self.client = client
        self.clock = clock
        self.schedule: Schedule = schedule or PollSchedule()
        self.stop = stop
        self.sharing = sharing  # with replicas: which of them polls each run, and what it read (sharing.py)
        self._group = group
        self._watches: OrderedDict[str, Watch] = OrderedDict()
        self._waited = WaitLedger()
        self._api_failing = False  # for the operator's log: one line when the API starts failing, one when back

    @property
    def waiting(self) -> int:
        """Callers waiting on some run right now."""
        return sum(watch.waiters for watch in self._watches.values())

    async def get(self, run_id: str, kind: RunKind = EXPERIMENT_KIND) -> Any:
        """Read the run now (with the client's retries); later waits start from this state."""
        watch = self._watch(kind, run_id)
        wall = self.clock.wall_at(self.clock.now())
        return self.remember(await kind.read(self.client, run_id, watch.run, wall, True), kind)

    def remember(self, run: Any, kind: RunKind = EXPERIMENT_KIND) -> Any:
        """A state of the run read just now (by `get`, or as the answer that created it)."""
        watch = self._watch(kind, run.id)
        watch.run, watch.read_t = run, self.clock.now()
        watch.reads += 1
        self._schedule_next(watch, run)
        return run

    async def wait(
        self,
        run_id: str,
        *,
        kind: RunKind = EXPERIMENT_KIND,
        timeout_s: float,
        on_progress: ProgressCallback | None = None,
    ) -> WaitOutcome:
        """Wait until the run finishes or `timeout_s` passes; return the last state read.

        Raises the error that ended the run's watch (auth, bad request, unknown run), the last poll's
        error if no poll ever succeeded, and ServerStoppingError if the server stops before any did.
        """
        outcome = await self._wait(run_id, kind, timeout_s=timeout_s, on_progress=on_progress)
        return replace(outcome, total_waited_s=self._waited.add(watch_key(kind, run_id), outcome.waited_s))

    async def _wait(
        self, run_id: str, kind: RunKind, *, timeout_s: float, on_progress: ProgressCallback | None
    ) -> WaitOutcome:
        start = self.clock.now()
        deadline = start + timeout_s
        watch = self._watch(kind, run_id)
        reads_before = watch.reads
        if watch.run is not None and watch.run.stops_wait and not watch.run.finished:
            watch.next_poll_t = start  # it waited for a person, who may have acted since: look at once
        if watch.loop is None and (watch.fatal is not None or watch.last_error is not None):
            # What ended an earlier wait is not this one's answer: read the run afresh.
            watch.fatal, watch.last_error, watch.not_found_streak = None, None, 0
            watch.next_poll_t = float("-inf")
        watch.waiters += 1
        telemetry.ACTIVE_WAITS.inc()
        progress_sent = -1.0
        done = False
        try:
            if not watch.finished and watch.loop is None:
                watch.loop = anyio.CancelScope()  # set now, so that concurrent callers share this loop
                self._group.start_soon(self._poll_loop, watch, watch.loop)
            while True:
                run = watch.run
                if run is not None and on_progress is not None and run.progress.done > progress_sent:
                    progress_sent = float(run.progress.done)
                    total = float(run.progress.total) if run.progress.total else None
                    await on_progress(progress_sent, total, _progress_message(run))
                if watch.fatal is not None:
                    raise watch.fatal
                waited = round(self.clock.now() - start, 1)
                # A run that ended is final; one that waits for a person ends a wait once read during this wait
                # (a person may have acted since the last read).
                if run is not None and (run.finished or (run.stops_wait and watch.reads > reads_before)):
                    return WaitOutcome(run, False, waited, None, self.read_at(run_id, kind))
                if self.stop is not None and self.stop.is_set():
                    if run is None:
                        raise ServerStoppingError(SHUTDOWN_MESSAGE)
                    return WaitOutcome(run, True, waited, SHUTDOWN_MESSAGE, self.read_at(run_id, kind))
                remaining = deadline - self.clock.now()
                if remaining <= 0:
                    done = True
                    return self._timed_out(watch, waited)
                await self._until_changed(watch, remaining)
        finally:
            watch.waiters -= 1
            telemetry.ACTIVE_WAITS.dec()
            # Nobody waits any more. A caller that gave up (a cancel) stops the loop and any request in
            # flight at once; after a timeout, a request in flight may finish, so the next call starts
            # from its answer, and the loop then ends by itself.
            if watch.waiters == 0 and watch.loop is not None and (not done or watch.poll_started_t is None):
                watch.loop.cancel()
                watch.loop = None  # a caller coming right after starts a loop of its own

    def _timed_out(self, watch: Watch, waited: float) -> WaitOutcome:
        error = watch.last_error
        silent_s = self.clock.now() - watch.poll_started_t if watch.poll_started_t is not None else 0.0
        if watch.run is None:
            raise error or APITimeoutError(
                f"The Retab API at {self.client.settings.base_url} did not answer before the wait's deadline.",
                url=self.client.settings.base_url,
            )
        warning = None
        if error is not None:
            warning = f"the last poll failed ({str(error).rstrip('.')}); the state shown is the last one read"
        elif silent_s >= SILENT_WARNING_S:
            warning = f"the API did not answer for {silent_s:.0f} s; state shown is the last one read"
        return WaitOutcome(watch.run, True, waited, warning, self.read_at(watch.run_id, watch.kind))

    async def _until_changed(self, watch: Watch, remaining: float) -> None:
        """Return when the watch has news, the deadline comes, or the server stops."""
        changed, stop = watch.changed, self.stop
        async with anyio.create_task_group() as race:

            async def first_wins(wait_for: Callable[[], Awaitable[object]]) -> None:
                await wait_for()
                race.cancel_scope.cancel()

            race.start_soon(first_wins, changed.wait)
            race.start_soon(first_wins, lambda: self.clock.sleep(remaining))
            if stop is not None:
                race.start_soon(first_wins, stop.wait)

    async def _poll_loop(self, watch: Watch, scope: anyio.CancelScope) -> None:
        # The loop outlives the call that started it, so that call's deadline is not its own: each poll
        # is one attempt bounded by the client's timeouts, and every waiter by its own deadline.
        with scope, call_deadline(None):
            try:
                while watch.waiters > 0 and not watch.finished and watch.fatal is None:
                    delay = watch.next_poll_t - self.clock.now()
                    if delay > 0 and await self._rest(watch, delay):
                        watch.notify()  # another replica's poll brought news
                        continue
                    if self.sharing is not None and await self._polled_elsewhere(watch, self.sharing):
                        watch.notify()
                        continue
                    await self._poll(watch)
                    if self.sharing is not None:
                        await self._share(watch, self.sharing)
                    watch.notify()
            finally:
                if watch.loop is scope:  # not yet replaced by a newer loop
                    watch.loop = None

    async def _rest(self, watch: Watch, delay: float) -> bool:
        """Sleep until the next poll is due; with sharing, wake early for a state another replica read.
        True if one was adopted."""
        if self.sharing is None:
            await self.clock.sleep(delay)
            return False
        due = self.clock.now() + delay
        while (remaining := due - self.clock.now()) > 0:
            published = self.sharing.published(watch.key)
            with anyio.move_on_after(remaining):
                await published.wait()
            if published.is_set() and await self._adopt(watch, self.sharing):
                return True
        return False

    async def _polled_elsewhere(self, watch: Watch, sharing: PollSharing) -> bool:
        """Whether another replica holds the run's poll: then its last state is adopted (if newer), and
        this loop tries to take the poll over when that replica's lease ends."""
        interval = self.schedule.error_delay_s
        if watch.run is not None:
            interval = self.schedule.delay_after(watch.run, self.clock.wall_at(self.clock.now()), watch.pace)
        lease_left = await sharing.claim(watch.key, interval + LEASE_MARGIN_S)
        if lease_left is None:
            return False
        await self._adopt(watch, sharing)
        watch.next_poll_t = self.clock.now() + lease_left + 0.05
        return True

    async def _adopt(self, watch: Watch, sharing: PollSharing) -> bool:
        """Take what another replica last read of the run, if it is newer than what this one holds: a state,
        or the error that ended its watch. True if something was taken."""
        shared = await sharing.latest(watch.key)
        if shared is None:
            return False
        now = self.clock.now()
        now_wall = self.clock.wall_at(now).timestamp()
        try:
            read_wall = float(shared["read_wall_t"])
            run = watch.kind.parse(shared["run"]) if "run" in shared else None
            error = None if run is not None else shared_error(shared["error"])
        except (KeyError, TypeError, ValueError):
            return False
        if read_wall > now_wall + FUTURE_SKEW_S:
            return False  # read at a time still to come: not a replica's reading
        read_t = now - max(0.0, now_wall - read_wall)  # as this replica's clock has it
        if watch.read_t is not None and read_t <= watch.read_t:
            return False
        if error is not None:
            if now_wall - read_wall > SHARED_ERROR_FRESH_S:
                return False  # what ended an earlier wait is not this one's answer
            watch.fatal = error
            return True
        if run is None:
            return False
        if watch.waiters:
            telemetry.POLLS_SAVED.inc(watch.waiters)  # every waiter here has an answer no poll of ours made
        watch.run, watch.read_t, watch.last_error, watch.not_found_streak = run, read_t, None, 0
        watch.reads += 1
        lease_ends_t = watch.next_poll_t
        self._schedule_next(watch, run, read_t=read_t)
        watch.next_poll_t = max(watch.next_poll_t, lease_ends_t)  # no claim before the holder's lease can end
        return True

    async def _share(self, watch: Watch, sharing: PollSharing) -> None:
        """Publish what this poll read: a state, or the error that ends every wait on the run."""
        now_wall = self.clock.wall_at(self.clock.now()).timestamp()
        if watch.fatal is not None:
            message: dict[str, object] = {"error": error_to_share(watch.fatal), "read_wall_t": now_wall}
        elif watch.run is not None and watch.last_error is None and watch.read_t is not None:
            run = watch.run.model_dump(mode="json", by_alias=True)
            message = {"run": run, "read_wall_t": self.clock.wall_at(watch.read_t).timestamp()}
        else:
            return  # a passing failure: the others keep waiting, and take the poll over if it lasts
        await sharing.publish(watch.key, message)

    async def _poll(self, watch: Watch) -> None:
        now = self.clock.now()
        watch.poll_started_t = now
        try:
            run = await watch.kind.read(self.client, watch.run_id, watch.run, self.clock.wall_at(now), False)
        except RetabError as error:
            if disposition(error) is Disposition.TRANSIENT:
                self._api_failed(error)
            match disposition(error):
                case Disposition.NOT_FOUND:
                    watch.not_found_streak += 1
                    if watch.not_found_streak >= NOT_FOUND_LIMIT:
                        watch.fatal = error
                    watch.last_error, watch.next_poll_t = error, now + self.schedule.error_delay_s / 2
                case Disposition.TRANSIENT:
                    delay = self.schedule.error_delay_s
                    if isinstance(error, RateLimitError) and error.retry_after_s:
                        delay = max(delay, error.retry_after_s)
                    watch.last_error, watch.next_poll_t = error, now + delay
                case Disposition.FATAL:
                    watch.fatal = error
        else:
            self._api_answered()
            if watch.waiters > 1:
                telemetry.POLLS_SAVED.inc(watch.waiters - 1)  # one poll, and every waiter has its answer
            watch.run, watch.read_t, watch.last_error, watch.not_found_streak = run, now, None, 0
            watch.reads += 1
            self._schedule_next(watch, run, read_t=now)
        finally:
            watch.poll_started_t = None

    def _api_failed(self, error: RetabError) -> None:
        """Agents get a warning in their results; the operator gets one line when the API starts failing."""
        if not self._api_failing:
            self._api_failing = True
            request = getattr(error, "request_id", None)
            logger.warning(
                "The Retab API is failing (%s%s): %s Waits go on, with the last state read.",
                type(error).__name__,
                f", request id {request}" if request else "",
                str(error)[:300],
            )

    def _api_answered(self) -> None:
        if self._api_failing:
            self._api_failing = False
            logger.info("The Retab API answers again.")

    def _schedule_next(self, watch: Watch, run: Snapshot, *, read_t: float | None = None) -> None:
        """Set the next poll from when `run` was read: the delay counts from the request, not its answer,
        so a slow answer does not push the next look at the run later."""
        read_t = self.clock.now() if read_t is None else read_t
        try:
            delay = self.schedule.delay_after(run, self.clock.wall_at(read_t), watch.pace)
        except Exception as error:  # numbers the schedule cannot use (an absurd answer): never lose the wait
            logger.warning("No poll schedule for run %s (%s): polling as after an error.", watch.run_id, error)
            delay = self.schedule.error_delay_s
        if not math.isfinite(delay) or delay <= 0:
            delay = self.schedule.error_delay_s
        watch.next_poll_t = read_t + delay

    def _watch(self, kind: RunKind, run_id: str) -> Watch:
        key = watch_key(kind, run_id)
        watch = self._watches.pop(key, None) or Watch(run_id, kind)
        self._watches[key] = watch
        idle = [k for k, w in self._watches.items() if w.waiters == 0 and w.loop is None]
        for k in idle[: max(0, len(self._watches) - WATCHES_KEPT)]:
            del self._watches[k]
        return watch

    def last_state(self, run_id: str, kind: RunKind = EXPERIMENT_KIND) -> Any:
        """The run's last state read (a Snapshot of its kind), if any."""
        watch = self._watches.get(watch_key(kind, run_id))
        return watch.run if watch else None

    def read_at(self, run_id: str, kind: RunKind = EXPERIMENT_KIND) -> datetime | None:
        """The wall time the run's last known state was read."""
        watch = self._watches.get(watch_key(kind, run_id))
        return self.clock.wall_at(watch.read_t) if watch and watch.read_t is not None else None


@asynccontextmanager
async def running_watcher(
    client: RetabClient,
    clock: Clock,
    *,
    schedule: Schedule | None = None,
    stop: anyio.Event | None = None,
    sharing: PollSharing | None = None,
) -> AsyncGenerator[RunWatcher]:
    """A watcher whose poll loops live as long as the `async with` block."""
    failure: Exception | None = None
    async with anyio.create_task_group() as group:
        try:
            yield RunWatcher(client, clock, group, schedule=schedule, stop=stop, sharing=sharing)
        except Exception as error:  # raised again below, outside the group, so not in an ExceptionGroup
            failure = error
        group.cancel_scope.cancel()
    if failure is not None:
        raise failure


async def wait_for_finish(
    client: RetabClient,
    run_id: str,
    *,
    kind: RunKind = EXPERIMENT_KIND,
    timeout_s: float,
    clock: Clock,
    on_progress: ProgressCallback | None = None,
    schedule: Schedule | None = None,
) -> WaitOutcome:
    """One wait with a watcher of its own (the command line's `wait`)."""
    async with running_watcher(client, clock, schedule=schedule) as watcher:
        return await watcher.wait(run_id, kind=kind, timeout_s=timeout_s, on_progress=on_progress)


def error_to_share(error: RetabError) -> dict[str, object]:
    """An error that ends every wait on a run, as replicas pass it on: what the API answered."""
    if isinstance(error, APIStatusError):
        return {"status": error.status_code, "message": error.message, "request_id": error.request_id}
    return {"status": None, "message": str(error), "request_id": None}


def shared_error(data: object) -> APIStatusError | None:
    """The error another replica passed on, as if this one had read it; None if it is not one."""
    if not isinstance(data, dict):
        return None
    fields = cast(dict[str, object], data)
    status, message, request_id = fields.get("status"), fields.get("message"), fields.get("request_id")
    if not isinstance(status, int) or not 400 <= status < 600 or not isinstance(message, str):
        return None
    body = json.dumps({"detail": message[:300]}).encode()
    return status_error(status, body, request_id=request_id if isinstance(request_id, str) else None)


def watch_key(kind: RunKind, run_id: str) -> str:
    """How a run is known to the watcher and to the replicas: its kind and its id."""
    return f"{kind.name}:{run_id}"


def _progress_message(run: Snapshot) -> str:
    progress = run.progress
    of = f"/{progress.total}" if progress.total is not None else ""
    unit = "docs" if progress.unit == "documents" else progress.unit
    return f"{run.status} · {progress.done}{of} {unit}"

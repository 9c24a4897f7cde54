"""The tasks one server holds: bounded, dropped after their TTL, each seen only by its owner.

`TaskRegistry` keeps, for each task this process created or took over, its record, an event set at each
change (what `tasks/result` blocks on) and, while its wait runs here, the scope that cancels it. With
replicas (shared.py) every change is also stored in Redis, sealed, so that any replica can answer for a
task another one holds; a task this process does not hold is read from there.

Bounds, so that no caller can grow the server without limit: at most `max_tasks_per_caller` working tasks
per owner, and `max_tasks` tasks kept in all (a finished task's result is given up first, oldest first).
A task and its result are dropped once its TTL has passed, whatever its status: at the next start, look-up
or listing (no sweeper runs in the background, so the registry costs nothing while nobody uses tasks).
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Generator
from contextlib import contextmanager
from dataclasses import dataclass, field

import anyio

from ..base.clock import Clock
from ..base.config import Settings
from .records import Era, TaskRecord
from .shared import SharedTasks

Notify = Callable[[TaskRecord], Awaitable[None]]


@dataclass
class LiveTask:
    record: TaskRecord
    changed: anyio.Event = field(default_factory=anyio.Event)
    scope: anyio.CancelScope | None = None  # set while the task's wait runs in this process
    notify: Notify | None = None  # the creator's channel for status notifications (2025), if it has one

    def touch(self) -> None:
        self.changed.set()
        self.changed = anyio.Event()


class TooManyTasksError(Exception):
    """A new task would pass a bound; the message says which, to the caller."""


class TaskRegistry:
    def __init__(self, settings: Settings, clock: Clock, shared: SharedTasks | None = None) -> None:
        self.settings = settings
        self.clock = clock
        self.shared = shared
        self._tasks: OrderedDict[str, LiveTask] = OrderedDict()
        self._starting: Counter[str] = Counter()  # tasks admitted, not yet added, by owner

    def now(self) -> float:
        """Wall time by the server's clock (virtual in tests), in epoch seconds."""
        return self.clock.wall_at(self.clock.now()).timestamp()

    def __len__(self) -> int:
        return len(self._tasks)

    @property
    def working(self) -> int:
        return sum(1 for live in self._tasks.values() if not live.record.terminal)

    @contextmanager
    def admitted(self, owner: str) -> Generator[None]:
        """Hold a place for one more of `owner`'s tasks while it is being created (and stored, with replicas),
        so that calls arriving at once are counted against the bounds before any of them is added; raise
        TooManyTasksError if there is none."""
        self._admit(owner)
        self._starting[owner] += 1
        try:
            yield
        finally:
            self._starting[owner] -= 1
            if not self._starting[owner]:
                del self._starting[owner]

    def _admit(self, owner: str) -> None:
        self.drop_expired()
        working = (live.record for live in self._tasks.values() if not live.record.terminal)
        mine = sum(1 for record in working if record.owner == owner) + self._starting[owner]
        if mine >= self.settings.max_tasks_per_caller:
            raise TooManyTasksError(
                f"{mine} tasks are already waiting for this caller (RETAB_MCP_MAX_TASKS_PER_CALLER): "
                "wait for one of them to end, or cancel one, before starting another."
            )
        starting = sum(self._starting.values())
        finished = [task_id for task_id, live in self._tasks.items() if live.record.terminal]
        for task_id in finished[: max(0, len(self._tasks) + starting - self.settings.max_tasks + 1)]:
            del self._tasks[task_id]
        if len(self._tasks) + starting >= self.settings.max_tasks:
            raise TooManyTasksError(
                f"this server already holds {len(self._tasks) + starting} waiting tasks (RETAB_MCP_MAX_TASKS): "
                "call again in a few minutes, or wait with a bounded call."
            )

    async def add(self, record: TaskRecord, notify: Notify | None = None) -> LiveTask:
        """Hold `record` here; with replicas, store it first, so that any replica finds it at once."""
        if self.shared is not None:
            await self.shared.store(record, self.now())
        live = self._tasks[record.task_id] = LiveTask(record, notify=notify)
        return live

    def records(self) -> list[TaskRecord]:
        """Every task held here, working or ended (not yet dropped)."""
        return [live.record for live in self._tasks.values()]

    def live(self, task_id: str) -> LiveTask | None:
        return self._tasks.get(task_id)

    async def find(self, task_id: str, owner: str, era: Era) -> TaskRecord | None:
        """The owner's task of this era, from here or another replica; None for any other (not found)."""
        self.drop_expired()
        live = self._tasks.get(task_id)
        record = live.record if live is not None else None
        if record is None and self.shared is not None:
            record = await self.shared.load(task_id)
        if record is None or record.owner != owner or record.era != era or record.expires_wall <= self.now():
            return None
        return record

    async def changed(self, live: LiveTask) -> None:
        """After a change to a task held here: wake who waits on it, store it for the other replicas, and tell
        its creator (a 2025 host may take the status notification)."""
        live.record.updated_wall = self.now()
        live.touch()
        if self.shared is not None:
            await self.shared.store(live.record, self.now())
        if live.notify is not None:
            await live.notify(live.record)

    def owned(self, owner: str, era: Era) -> list[TaskRecord]:
        self.drop_expired()
        return [live.record for live in self._tasks.values() if live.record.owner == owner and live.record.era == era]

    def drop_expired(self) -> None:
        now = self.now()
        for task_id in [task_id for task_id, live in self._tasks.items() if live.record.expires_wall <= now]:
            live = self._tasks.pop(task_id)
            if live.scope is not None:
                live.scope.cancel()

"""A virtual clock for tests and benchmarks, shared between the waiter and the
simulated API: sleeping advances it instantly, so a 40 s run is waited on in milliseconds, and reaction
times and request counts come out exact.

Concurrent sleepers share the virtual time line. Time jumps only when nothing else can run: the sleeper
due first waits until the event loop has no other task ready (every other task sleeps or waits on
something), then moves the clock to its wake-up time and returns; the next one due takes over. So a task
busy with in-process work (a request to the simulated API) always finishes it before time moves. This
holds with in-process transports only: a task waiting on a real socket or thread is not "ready", and time
would not wait for it. It needs the asyncio backend, whose ready queue it reads.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import anyio
import anyio.lowlevel


@dataclass(eq=False)
class _Sleeper:
    wake: float
    order: int
    turn: anyio.Event = field(default_factory=anyio.Event)  # set when it may be the next to wake

    def __lt__(self, other: _Sleeper) -> bool:
        return (self.wake, self.order) < (other.wake, other.order)


class VirtualClock:
    def __init__(self, start: float = 0.0, *, epoch: datetime | None = None) -> None:
        self._now = start
        self._epoch = epoch or datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
        self._sleepers: list[_Sleeper] = []  # a heap: the first is the next to wake
        self._arrivals = itertools.count()

    def now(self) -> float:
        return self._now

    def wall_at(self, t: float) -> datetime:
        return self._epoch + timedelta(seconds=t)

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        me = _Sleeper(self._now + max(0.0, seconds), next(self._arrivals))
        heapq.heappush(self._sleepers, me)
        try:
            while True:
                if self._sleepers[0] is not me:
                    await me.turn.wait()  # someone is due earlier; it hands over when it wakes
                    me.turn = anyio.Event()
                    continue
                await anyio.lowlevel.checkpoint()
                if self._sleepers[0] is me and not _other_tasks_ready():
                    heapq.heappop(self._sleepers)
                    self._now = max(self._now, me.wake)
                    return
        finally:
            if me in self._sleepers:  # cancelled while asleep
                self._sleepers.remove(me)
                heapq.heapify(self._sleepers)
            if self._sleepers:
                self._sleepers[0].turn.set()  # the next one due now watches for idleness


def _other_tasks_ready() -> bool:
    """Whether the event loop has another task ready to run (this one has just been resumed)."""
    return len(getattr(asyncio.get_running_loop(), "_ready", ())) > 0

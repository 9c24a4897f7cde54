"""Time as the waiting code and the simulated API see it.

Production uses `RealClock`. Tests and benchmarks share one `VirtualClock` between the waiter and the
simulated API: sleeping advances it instantly, so a 40 s run is waited on in milliseconds, and reaction
times and request counts come out exact.

Concurrent sleepers share the virtual time line: a sleeper wakes only when no other sleeper is due
earlier, and time jumps to its wake-up time. Before jumping, it yields to the event loop a number of
times so that tasks busy with in-process work (a request to the simulated API) can finish it and go to
sleep themselves; with an in-process transport everything is deterministic, so the order is too.
"""

from __future__ import annotations

import heapq
import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio
import anyio.lowlevel


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale; only differences mean anything."""
        ...

    def wall_at(self, t: float) -> datetime:
        """The wall-clock time that clock time `t` stands for."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class RealClock:
    def now(self) -> float:
        return time.monotonic()

    def wall_at(self, t: float) -> datetime:
        return datetime.now(UTC) - timedelta(seconds=time.monotonic() - t)

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class VirtualClock:
    SETTLE_CHECKPOINTS = 50  # yields before time may jump: ample for an in-process request to finish

    def __init__(self, start: float = 0.0, *, epoch: datetime | None = None) -> None:
        self._now = start
        self._epoch = epoch or datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
        self._sleepers: list[tuple[float, int]] = []  # a heap of (wake-up time, arrival order)
        self._arrivals = itertools.count()

    def now(self) -> float:
        return self._now

    def wall_at(self, t: float) -> datetime:
        return self._epoch + timedelta(seconds=t)

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        entry = (self._now + max(0.0, seconds), next(self._arrivals))
        heapq.heappush(self._sleepers, entry)
        try:
            while True:
                for _ in range(self.SETTLE_CHECKPOINTS):
                    await anyio.lowlevel.checkpoint()
                if self._sleepers[0] == entry:
                    heapq.heappop(self._sleepers)
                    self._now = max(self._now, entry[0])
                    return
        finally:
            if entry in self._sleepers:  # cancelled while asleep
                self._sleepers.remove(entry)
                heapq.heapify(self._sleepers)

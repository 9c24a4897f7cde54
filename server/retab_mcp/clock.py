"""Time as the waiting code and the simulated API see it.

Production uses `RealClock`. Tests and benchmarks share one `VirtualClock` between the waiter and the
simulated API: sleeping advances it instantly, so a 40 s run is waited on in milliseconds, and reaction
times and request counts come out exact.
"""

from __future__ import annotations

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
    def __init__(self, start: float = 0.0, *, epoch: datetime | None = None) -> None:
        self._now = start
        self._epoch = epoch or datetime(2026, 11, 28, 9, 0, tzinfo=UTC)

    def now(self) -> float:
        return self._now

    def wall_at(self, t: float) -> datetime:
        return self._epoch + timedelta(seconds=t)

    def advance(self, seconds: float) -> None:
        self._now += max(0.0, seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(seconds)
        await anyio.lowlevel.checkpoint()

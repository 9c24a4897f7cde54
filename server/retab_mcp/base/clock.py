"""Time as the waiting code sees it: `Clock`, and `RealClock`, the one production uses.

Tests, benchmarks and the simulated API put a `VirtualClock` (simulator/clock.py) in its place, so that a
40 s run is waited on in milliseconds.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Protocol

import anyio


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

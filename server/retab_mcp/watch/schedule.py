"""When to poll a run next: never later than its promise allows, and the polls it can spare where it is
likely to end.

A run tells how far it is (documents completed, evals finished: its kind's progress, of a known total) and
for how long it has run. `Pace` keeps what the polls of a run have read, across polls and calls: when each
of its latest units finished (within the two polls around it, forecast.py), how many times it was read, and
since when. From it, forecast.py gives a window in which the run's last unit is likely to finish.

`PollSchedule` then waits, for a run younger than a minute:
- never longer than `end_step_s` (1.9 s) after the last read, whatever the forecast says: a young run can
  fail, be cancelled or jump from pending to completed at any moment, and must be seen as soon as a 2 s
  poller would see it;
- near the forecast window, less: the polls the budget allows are spread evenly over the window, the last
  one at its latest end, never closer than `near_step_s`;
- never so soon that the run has been read more than `budget` (1.18) times as often as a 2 s poller started
  at the first read would have read it: the k-th read (the first is the 0-th) comes no earlier than
  2 s x (k + 1) / 1.18 - 2 s after the first, counted over every call;
- once every unit is in (only scoring is left, and the end can come at any moment), as soon as that
  budget allows.
The worst case, by induction on the reads: if the k-th read came within budget (k + 1 <= 1.18 x (1 + e / 2)
at its time e), the budget lets the next one go 2 s / 1.18 = 1.69 s after it at the latest, before the
1.9 s a young run may wait; so the budget never holds a poll past 1.9 s, every gap of a young run is at
most 1.9 s (any end is seen within 1.9 s of it), and its reads stay within 1.18 x (1 + e / 2) after e
seconds. The forecast only moves polls between these two bounds: a wrong one (a stall, a burst, a long
tail) costs reaction time down to what the 1.9 s grid gives, and never a request over the budget. (Reads
the schedule did not ask for, a `get` or another replica's, count too; if they exceed the budget, the
1.9 s promise still wins.) tests/test_schedule.py holds all of this for any run, by property tests.

Beyond a minute (a run of minutes), requests matter more than seconds: it waits until the
forecast's earliest end, but never longer than a fraction of its age (`ageing`; a run can fail at any time,
and its pace can change), then polls the window in steps of at least `min_delay_s`, at most four of them;
past the window (the pace changed, or scoring takes a while), in steps of 1.9 s growing with the delay, up
to 9 % of its age. So a run of minutes that ends as forecast is seen within a second or so, at a fraction
of a 2 s poller's requests; the price is a later notice of a failure in its middle (BENCHMARKS.md has both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from ..api.statuses import RUNNING
from .forecast import UnitTimes, end_window

if TYPE_CHECKING:
    from ..kinds import Snapshot

BUDGET_BASE_S = 2.0  # the poller the budget is counted against: Retab's CLI, every 2 s


@dataclass
class Pace:
    """What the polls of one run have read, across polls and calls: its units' times, and the reads."""

    units: UnitTimes = field(default_factory=UnitTimes)
    reads: int = 0
    first_read: datetime | None = None
    _last_run: object = None  # the state read last, to tell a new read from a second look at the same

    def record(self, run: Snapshot, now: datetime) -> None:
        """One read of `run` at wall time `now`; asking again about the same state adds nothing."""
        if run is self._last_run:
            return
        self._last_run = run
        self.reads += 1
        if self.first_read is None:
            self.first_read = now
        total = run.progress.total or 0
        if run.status == RUNNING and run.started_at is not None and total > 0:
            self.units.add(_seconds_since(run.started_at, now), run.progress.done)


class Schedule(Protocol):
    @property
    def error_delay_s(self) -> float:
        """Seconds to wait after a failed poll."""
        ...

    def delay_after(self, run: Snapshot, now: datetime, pace: Pace) -> float:
        """Seconds until the next poll of `run`, read unfinished at wall time `now`."""
        ...


@dataclass(frozen=True)
class PollSchedule:
    end_step_s: float = 1.9  # a run younger than short_run_s is never left longer than this
    short_run_s: float = 60.0
    budget: float = 1.18  # reads of a young run at most this many times a 2 s poller's
    near_step_s: float = 0.5  # the closest two polls of a young run come
    ageing: float = 0.35  # a run of minutes, far from its end: at most this fraction of its age...
    max_delay_s: float = 30.0  # ...and never longer than this
    end_ageing: float = 0.09  # past its forecast end, steps up to this fraction of its age
    min_delay_s: float = 1.0  # the closest two polls of a run of minutes come
    window_polls: int = 4  # the most polls a run of minutes gets inside one forecast window
    error_delay_s: float = 2.0

    def delay_after(self, run: Snapshot, now: datetime, pace: Pace) -> float:
        pace.record(run, now)
        age = _seconds_since(run.created_at, now)
        total = run.progress.total or 0
        window: tuple[float, float] | None = None
        running_s = 0.0
        running = run.status == RUNNING and run.started_at is not None and total > 0
        if running:
            running_s = _seconds_since(run.started_at, now)
            window = _usable(pace, total)
        if age < self.short_run_s:
            return self._young(window, running_s, running and run.progress.done >= total, now, pace)
        return self._older(run, window, running_s, age)

    def _young(
        self, window: tuple[float, float] | None, running_s: float, all_in: bool, now: datetime, pace: Pace
    ) -> float:
        ceiling = self.end_step_s
        elapsed = _seconds_since(pace.first_read, now)
        soonest = max(self._budget_allows(pace, elapsed), self.near_step_s)
        if all_in:  # only scoring is left, and it can end at any moment: poll as soon as the budget allows
            return min(ceiling, soonest)
        if window is None:
            return ceiling
        earliest, latest = window
        start = max(earliest, running_s)
        if latest <= running_s or start - running_s >= ceiling:
            return ceiling  # the forecast end has passed, or is not near yet
        # The reads the budget allows until the window's latest end, spread evenly over the window.
        allowed = self.budget * (1 + (elapsed + latest - running_s) / BUDGET_BASE_S) - pace.reads
        polls = max(1, min(math.floor(allowed), math.floor((latest - start) / self.near_step_s) + 1))
        return min(ceiling, max(start - running_s + (latest - start) / polls, soonest))

    def _budget_allows(self, pace: Pace, elapsed: float) -> float:
        """The soonest the next read keeps the reads within budget x those of a 2 s poller."""
        return BUDGET_BASE_S * ((pace.reads + 1) / self.budget - 1) - elapsed + 1e-6  # not early by a rounding

    def _older(self, run: Snapshot, window: tuple[float, float] | None, running_s: float, age: float) -> float:
        ceiling = min(self.ageing * age, self.max_delay_s)
        end_step = min(self.end_ageing * age, self.max_delay_s)
        total, done = run.progress.total or 0, run.progress.done
        if run.status != RUNNING or run.started_at is None or total <= 0:
            return ceiling
        if done >= total:  # every unit is in: only scoring is left
            return max(self.min_delay_s, min(self.end_step_s, end_step))
        if window is None:
            return ceiling
        earliest, latest = window
        if earliest > running_s:
            return max(self.min_delay_s, min(earliest - running_s, ceiling))
        if latest > running_s:
            polls = max(1, min(self.window_polls, math.ceil((latest - running_s) / self.min_delay_s)))
            return max(self.min_delay_s, min((latest - running_s) / polls, end_step, ceiling))
        overdue = running_s - latest  # its pace changed, or scoring takes a while: back off gently
        return max(self.min_delay_s, min(end_step, max(self.end_step_s, overdue / 2), ceiling))


@dataclass(frozen=True)
class FixedSchedule:
    """Poll every `every_s` seconds, whatever the run says: how Retab's CLI waits (the baseline)."""

    every_s: float = 2.0
    error_delay_s: float = 2.0

    def delay_after(self, run: Snapshot, now: datetime, pace: Pace) -> float:
        del run, now, pace
        return self.every_s


def _seconds_since(then: datetime | None, now: datetime) -> float:
    return max(0.0, (now - then).total_seconds()) if then else 0.0


def _usable(pace: Pace, total: int) -> tuple[float, float] | None:
    """The forecast end window, if it is one to act on: counts too large for a float (a broken answer) or a
    fit that found no finite end give none, and the run is polled as if it had no forecast."""
    try:
        window = end_window(pace.units, total)
    except (ArithmeticError, ValueError):
        return None
    return window if window is not None and all(map(math.isfinite, window)) else None

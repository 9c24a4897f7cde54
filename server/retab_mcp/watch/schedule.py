"""When to poll a run next: as rarely as possible, but at the moment it can end.

A run tells how far it is (documents completed, evals finished, steps done: its kind's progress) and for
how long it has run. From each reading,
the time one document takes is bounded: `k` documents done after `e` seconds means it takes between
`e / (k + 1)` and `e / k`. `Pace` keeps the readings of a run across polls and calls and intersects
these bounds, so after a few polls the run's end is known to within a few seconds: it cannot end before
`n * lo` and, if its pace holds, ends by `n * hi`.

`PollSchedule` then waits:
- while the run is younger than a minute, never longer than `end_step_s` (1.9 s), whatever its pace: a
  run can fail, be cancelled or jump from pending to completed at any moment, and a young run must be
  seen as soon as a 2 s poller would see it;
- beyond that, until the earliest possible end, but never longer than a fraction of the run's age (a run
  can also fail or be cancelled at any time, and a run's pace can change);
- from the earliest possible end on, in short steps (under 2 s for a run younger than a minute, 9 % of
  its age beyond), or straight to the latest end when that comes sooner;
- past the latest end (the pace changed, or scoring takes a while), in steps of 2 s growing with the
  delay, up to the same 9 % of its age.
So a run younger than a minute is seen within 2 s of any end, and an older run that ends when its pace
predicts within 10 % of its age, with far fewer requests than fixed-interval polling on runs that last
minutes; the price is a later notice of a failure in the middle of an older run (BENCHMARKS.md has both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from ..api.statuses import RUNNING

if TYPE_CHECKING:
    from ..kinds import Snapshot

PACE_READINGS_KEPT = 50


@dataclass
class Pace:
    """A run's readings (seconds running, documents completed) and the per-document time they imply."""

    readings: list[tuple[float, int]] = field(default_factory=list[tuple[float, int]])

    def add(self, running_s: float, completed: int) -> None:
        if running_s > 0:
            self.readings.append((running_s, completed))
            del self.readings[:-PACE_READINGS_KEPT]

    def per_document_s(self) -> tuple[float, float]:
        """(lo, hi): one document takes more than lo and at most hi seconds (hi may be infinite).

        If the readings disagree (the run sped up or slowed down), only the latest is trusted.
        """
        lo, hi = 0.0, math.inf
        for running_s, done in self.readings:
            lo = max(lo, running_s / (done + 1))
            if done > 0:
                hi = min(hi, running_s / done)
        if lo > hi and self.readings:
            running_s, done = self.readings[-1]
            lo, hi = running_s / (done + 1), (running_s / done if done else math.inf)
        return lo, hi


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
    ageing: float = 0.35  # far from the end, wait at most this fraction of the run's age...
    max_delay_s: float = 30.0  # ...and never longer than this
    end_step_s: float = 1.9  # near the end of a run younger than short_run_s, poll this often
    short_run_s: float = 60.0
    end_ageing: float = 0.09  # near the end of an older run, poll at this fraction of its age
    min_delay_s: float = 1.0
    error_delay_s: float = 2.0

    def delay_after(self, run: Snapshot, now: datetime, pace: Pace) -> float:
        age = _seconds_since(run.created_at, now)
        ceiling = self.end_step_s if age < self.short_run_s else min(self.ageing * age, self.max_delay_s)
        end_step = self.end_step_s if age < self.short_run_s else min(self.end_ageing * age, self.max_delay_s)
        total, done = run.progress.total or 0, run.progress.done
        started = run.started_at
        if run.status != RUNNING or started is None or total <= 0:
            return ceiling
        if done >= total:  # every document is in: only scoring is left
            return max(self.min_delay_s, min(self.end_step_s, end_step))
        running_s = _seconds_since(started, now)
        pace.add(running_s, done)
        lo, hi = pace.per_document_s()
        until_earliest = total * lo - running_s
        if until_earliest > 0:
            return max(self.min_delay_s, min(until_earliest, ceiling))
        until_latest = total * hi - running_s
        if until_latest > 0:
            step = min(end_step, until_latest)
        else:  # overdue: its pace changed, or scoring takes a while; back off gently from short steps
            step = min(end_step, max(self.end_step_s, -until_latest / 2))
        return max(self.min_delay_s, min(step, ceiling))


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

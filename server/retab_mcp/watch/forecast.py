"""When a run is likely to end, from how its progress grew.

A run's progress counts units (documents, evals) of a known total, and each poll reads how many are done
after how long. So the units a poll finds newly done finished between it and the poll before: `UnitTimes`
keeps, for the latest such steps, which units finished and between which two moments (unit 0 "finished"
when the run started).

`end_window` fits a steady pace through the latest steps: a time per unit (`pace`) and the smallest
`slack`, the seconds by which each unit may miss the straight line (units jitter). It tries the last 2 to
6 steps, ending with the latest or with the one before (the latest may hold a stall), and keeps the fit
that is steadiest for the steps it covers. The window runs from the earliest to the latest end that fit
allows from each of its steps. Every fit is exact: two short loops over pairs of steps, no search.

It is a forecast, not a bound: a run can stall, speed up, or score for a while after its last unit. The
schedule never relies on it for the promises it keeps (a young run is polled every 1.9 s whatever the
forecast says), only to place the polls it can spare.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

STEPS_KEPT = 8  # a fit covers at most FIT_STEPS + 1 steps, and one more when it leaves the latest out
FIT_STEPS = 6
STEADINESS_PER_STEP = 0.05  # a fit over one step fewer must be this much steadier (slack per second of pace)
SKIP_LATEST_COST = 0.02  # and one that leaves the latest step out, this much
UNIT_JITTER = 0.1  # the least a unit's time is assumed to vary, as a share of the pace


@dataclass(frozen=True)
class Step:
    """Units `first` to `last` finished after `after` and by `by` (seconds since the run started)."""

    after: float
    by: float
    first: int
    last: int


@dataclass(frozen=True)
class Fit:
    """The steadiest pace through a run's latest steps: the steps it covers (the run's latest step first,
    then the fit's, newest first), the slack it needed, its lowest and highest pace (seconds a unit), and
    the jitter a unit is taken to have."""

    steps: tuple[Step, ...]
    slack: float
    lo: float
    hi: float
    jitter: float


@dataclass
class UnitTimes:
    """The latest steps of a run's progress, oldest first, and its latest reading."""

    steps: list[Step] = field(default_factory=lambda: [Step(0.0, 0.0, 0, 0)])
    last_s: float = 0.0  # the latest reading: seconds running...
    done: int = 0  # ...and units done then
    _fit: tuple[int, Fit | None] | None = None  # (units done, the fit), computed once per unit count

    def add(self, running_s: float, done: int) -> bool:
        """One reading; True if it found units done that were not before."""
        if running_s < self.last_s:
            return False  # read before the latest reading (another replica's, delivered late): nothing new
        new = done > self.done
        if done < self.done:  # the count went back (a retry): start over from here
            self.steps = []
        elif new:
            self.steps.append(Step(self.last_s, running_s, self.done + 1, done))
            del self.steps[:-STEPS_KEPT]
        self.last_s, self.done = running_s, done
        return new

    def fit(self) -> Fit | None:
        """The steadiest fit through the latest steps; readings that find no new unit change no step, so
        it is computed once per unit count."""
        if self._fit is None or self._fit[0] != self.done:
            self._fit = (self.done, _steadiest(self.steps, self.done))
        return self._fit[1]


def end_window(units: UnitTimes, total: int) -> tuple[float, float] | None:
    """(earliest, latest) seconds since the run started at which its last unit is likely to finish, if
    its latest steps keep their pace; None before a unit is known done, or once all are.

    The unit after the latest has not finished by the latest reading: that bounds the pace from below. A
    run whose next unit is already later than the fit allows (a stall) is forecast as if that unit
    finished at the latest reading: the window moves with each reading that finds nothing new."""
    fit = units.fit()
    if fit is None or units.done >= total:
        return None
    waiting = units.done + 1  # the next unit, not finished at the latest reading
    lo = max(fit.lo, *((units.last_s - s.by - 2 * fit.slack) / (waiting - s.last) for s in fit.steps))
    if lo > fit.hi:
        lo = fit.lo  # later than the pace allows: a pause, handled below
    # Units jitter, and their jitter adds up: a step's forecast widens with the square root of the units
    # between it and the end. Where the run is comes from its latest step; an older step of the fit narrows
    # the window only if it agrees (a run that paused is as far as its latest step says).
    earliest, latest = -math.inf, math.inf
    for step in fit.steps:
        drift = fit.jitter * math.sqrt(total - step.last)
        low = step.after - fit.slack - drift + (total - step.first) * lo
        high = step.by + fit.slack + drift + (total - step.last) * fit.hi
        if max(earliest, low) <= min(latest, high):
            earliest, latest = max(earliest, low), min(latest, high)
    left = total - waiting  # units after the next one
    if units.last_s > latest - left * fit.hi:  # the next unit is late: forecast as if it finished now
        margin = fit.slack + fit.jitter * math.sqrt(left)
        return units.last_s + left * lo - margin, units.last_s + left * fit.hi + margin
    return earliest, latest


def _steadiest(steps: list[Step], done: int) -> Fit | None:
    """The fit with the least slack for its span: over the latest 2 to 6 steps, ending with the latest
    step or one or two before (those may hold a pause; not a speed-up: a step left out must not have gone
    faster than the fit's pace), or over the last two steps alone."""
    if len(steps) < 2 or steps[-1].last != done:
        return None
    top = len(steps) - 1
    spans = [(0, 1)] + [(skip, span) for skip in (0, 1, 2) for span in range(2, min(FIT_STEPS, top - skip) + 1)]
    # A fit's score is at least its penalty (the slack is never negative): trying them by penalty, the
    # search stops once no fit left can beat the best one found, which a steady run finds first.
    spans.sort(key=lambda fit: _penalty(*fit))
    best: tuple[float, int, int, float, float, float] | None = None
    for skip, span in spans:
        if best is not None and _penalty(skip, span) >= best[0]:
            break
        slack, lo, hi = _fit(steps[top - skip - span : top - skip + 1])
        pace = (lo + hi) / 2
        if pace <= 0 or any(_faster(step, slack, lo) for step in steps[top - skip + 1 :]):
            continue
        score = slack / pace + _penalty(skip, span)
        if best is None or score < best[0]:
            best = (score, top - skip - span, top - skip, slack, lo, hi)
    if best is None:
        return None
    _, start, stop, slack, lo, hi = best
    # The jitter per unit the slack implies (a random walk strays by about half its spread's square
    # root), or a tenth of the pace when it implies less: a fit can be steady by chance.
    covered = max(1, steps[stop].last - steps[start].first)
    jitter = max(2 * slack / math.sqrt(covered), UNIT_JITTER * (lo + hi) / 2)
    anchors = (steps[top], *(step for step in reversed(steps[start : stop + 1]) if step is not steps[top]))
    return Fit(anchors, slack, lo, hi, jitter)


def _penalty(skip: int, span: int) -> float:
    return STEADINESS_PER_STEP * (FIT_STEPS - span) + SKIP_LATEST_COST * skip


def _faster(step: Step, slack: float, pace: float) -> bool:
    """Whether the units of `step` came faster than `pace` allows."""
    return step.last > step.first and (step.by - step.after + 2 * slack) / (step.last - step.first) < pace


def _fit(steps: list[Step]) -> tuple[float, float, float]:
    """(slack, lowest pace, highest pace): the smallest slack with which `steps` fit a steady pace.

    For units a < b, the pace is at least (after_b - by_a - 2 slack) / (b - a) and at most
    (by_b - after_a + 2 slack) / (b - a): between steps, the nearest units bound it from below and the
    farthest from above (within one step too, when it holds several). The slack is the smallest that
    leaves every lower bound under every upper one: while the highest lower bound is over the lowest upper
    one, the slack grows to the one that reconciles those two (that much is needed); a few rounds suffice."""
    lows: list[tuple[float, int]] = []  # (after_b - by_a, b - a)
    highs: list[tuple[float, int]] = []  # (by_b - after_a, b - a)
    for x, early in enumerate(steps):
        if early.last > early.first:
            highs.append((early.by - early.after, early.last - early.first))
        for late in steps[x + 1 :]:
            lows.append((late.after - early.by, late.first - early.last))
            highs.append((late.by - early.after, late.last - early.first))
    slack = lo = hi = 0.0
    for _ in range(len(lows) + len(highs)):  # each round reconciles a pair for good; rarely more than three
        lo, a, wa = max(((a - 2 * slack) / w, a, w) for a, w in lows)
        hi, b, wb = min(((b + 2 * slack) / w, b, w) for b, w in highs)
        if lo <= hi + 1e-9:
            break
        slack = (a * wb - b * wa) / (2 * (wa + wb))
    else:  # not reconciled within the rounds (rounding): the last slack, as it is
        lo = max((a - 2 * slack) / w for a, w in lows)
        hi = min((b + 2 * slack) / w for b, w in highs)
    return slack, max(0.0, lo), max(lo, hi)

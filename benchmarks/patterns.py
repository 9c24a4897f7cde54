"""How runs progress: the shapes a run's progress takes between its start and its end, for the polling
benchmark and the schedule's tests.

A pattern gives, for a run of `units` (documents, evals, steps) that runs for `active_s` seconds, the time
each unit finishes and the time the run ends, both in seconds since the run started. Every pattern's unit
times jitter (each unit takes between 0.6 and 1.4 of its share, seeded), so that no schedule can read the
end off an exact rate; three of them are made to mislead a schedule that trusts the rate:
- steady: units at an even pace (with the jitter); the run ends with its last unit;
- slow start, then burst: the first quarter of the units take 60 % of the time, the rest come fast;
- stall: two thirds of the units at an even pace, then nothing for 30 % of the time, then the rest;
- long tail: every unit in within 65 to 85 % of the time, then the run goes on (scoring) until its end.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Pattern:
    name: str
    # (share of the units, share of the active time) at which each segment ends; units spread evenly (with
    # jitter) inside a segment; the last segment ends at (1, end of the units), the run at 1.
    segments: tuple[tuple[float, float], ...]
    tail: tuple[float, float] = (0.0, 0.0)  # the share of the active time after the last unit (drawn in this range)
    jitter: float = 0.4

    def times(self, units: int, active_s: float, seed: str) -> tuple[list[float], float]:
        """(each unit's finish time, the run's end), in seconds since the run started."""
        rng = random.Random(f"{self.name}/{units}/{active_s:g}/{seed}")
        units_end = 1 - rng.uniform(*self.tail)
        finish: list[float] = []
        unit_from, time_from = 0, 0.0
        for unit_share, time_share in self.segments:
            unit_to = round(unit_share * units)
            count = unit_to - unit_from
            span = (time_share * units_end - time_from) * active_s
            if count > 0:
                weights = [1 + self.jitter * (2 * rng.random() - 1) for _ in range(count)]
                scale = span / sum(weights)
                t = time_from * active_s
                for weight in weights:
                    t += weight * scale
                    finish.append(t)
                finish[-1] = time_share * units_end * active_s  # the segment ends where it says
            unit_from, time_from = unit_to, time_share * units_end
        return finish, active_s


STEADY = Pattern("steady", ((1.0, 1.0),))
BURST = Pattern("slow start, then burst", ((0.25, 0.6), (1.0, 1.0)))
STALL = Pattern("stall", ((2 / 3, 0.5), (2 / 3, 0.8), (1.0, 1.0)))
LONG_TAIL = Pattern("long tail", ((1.0, 1.0),), tail=(0.15, 0.35))
PATTERNS = (STEADY, BURST, STALL, LONG_TAIL)

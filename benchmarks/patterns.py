"""How runs progress: the shapes a run's progress takes between its start and its end, for the polling
benchmark and the schedule's tests, and the simulator's runs of each kind shaped by them.

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

import bisect
import dataclasses
import random
from dataclasses import dataclass

from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.eval_world import SimEvalRun
from retab_mcp.simulator.scenario import SimRun, opaque_id

QUEUE_S = 2.0  # pending, then queued, before a run starts
WORKFLOW_FIXED_STEPS = 6  # the simulator's invoice workflow: its steps besides one per line item


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


# The simulator's runs, shaped by a pattern: each kind's own run model, with its units finishing at the
# pattern's times instead of evenly (the simulator itself is left as it is).


@dataclass
class ShapedRun(SimRun):
    """An experiment run whose documents finish at `finish` (seconds after it started) and which ends at
    `end_s`."""

    finish: tuple[float, ...] = ()
    end_s: float = 0.0

    def _end_t(self) -> float:
        return self.created_t + self.queue_s + self.end_s

    def _completed_at(self, t: float) -> int:
        return bisect.bisect_right(self.finish, t - self.created_t - self.queue_s)


@dataclass
class ShapedEvalRun(SimEvalRun):
    """An eval run whose evals finish at `finish` and which ends at `end_s`."""

    finish: tuple[float, ...] = ()
    end_s: float = 0.0

    def _end_t(self) -> float:
        return self.created_t + self.queue_s + self.end_s

    def _done_at(self, t: float) -> int:
        return bisect.bisect_right(self.finish, t - self.created_t - self.queue_s)


def add_shaped(sim: SimulatedRetab, kind: str, pattern: Pattern, units: int, age_s: float, seed: str) -> str:
    """A run of `kind` created now that ends `age_s` from now, after `QUEUE_S` pending and queued, its
    `units` (documents, evals or workflow steps) finishing as `pattern` says. Returns its id."""
    active_s = age_s - QUEUE_S
    finish, end_s = pattern.times(units, active_s, seed)
    if kind == "experiment":
        run_id = sim.add_run(duration_s=active_s, documents=units, queue_s=QUEUE_S)
        runs = sim.world.runs
        index = next(i for i, r in enumerate(runs) if r.id == run_id)
        fields = {f.name: getattr(runs[index], f.name) for f in dataclasses.fields(SimRun)}
        runs[index] = ShapedRun(**fields, finish=tuple(finish), end_s=end_s)
        return run_id
    if kind == "eval":
        suite = max(sim.eval_world.suites, key=lambda s: len(s.evals))
        assert units <= len(suite.evals), f"the simulator's largest suite has {len(suite.evals)} evals"
        run = ShapedEvalRun(
            id=opaque_id("wfevalrun", f"shaped-{len(sim.eval_world.runs)}"),
            suite=suite,
            version=suite.workflow.version,
            evals=suite.evals[:units],
            scope={"type": "workflow"},
            created_t=sim.clock.now(),
            queue_s=QUEUE_S,
            duration_s=active_s,
            finish=tuple(finish),
            end_s=end_s,
        )
        sim.eval_world.runs.append(run)
        return run.id
    # A workflow run's steps: the invoice workflow runs 6 steps and one more per line item; it ends with its
    # last step, which lasts what the pattern leaves after the last unit (a long tail: a slow last step).
    run_id = sim.add_workflow_run(duration_s=active_s, queue_s=QUEUE_S, line_items=units - WORKFLOW_FIXED_STEPS)
    run = next(r for r in sim.workflow_world.runs if r.id == run_id)
    assert len(run.plan) == units
    starts = [0.0, *finish[:-1]]
    durations = [done - start for start, done in zip(starts, finish, strict=True)]
    durations[-1] += end_s - finish[-1]
    run.plan = [dataclasses.replace(step, duration_s=d) for step, d in zip(run.plan, durations, strict=True)]
    return run_id


def ended_at(sim: SimulatedRetab, kind: str, run_id: str, t: float) -> float | None:
    """When the run ended, as seen at clock time `t` (None if it has not)."""
    if kind == "experiment":
        run = sim.world.run(run_id)
        return run.ended_t(t) if run else None
    if kind == "eval":
        eval_run = sim.eval_world.run(run_id)
        return eval_run.ended_t(t) if eval_run else None
    workflow_run = next(r for r in sim.workflow_world.runs if r.id == run_id)
    return workflow_run.status_at(t)[1]

"""How often compare_experiment_runs detects a true change, and how often it cries wolf.

Pairs of runs of the simulated consensus model (per-document agreement = the document's difficulty + the
block configuration's shift + run-to-run noise of sd 0.03, scenario.NOISE_SD), base before and candidate
after an edit that moves every document's agreement by `shift`. The verdict is the tool's own
(views/paired.py). The baseline is the false-alarm rate: the same pairs with no change, where the
verdict should be "no detectable change" about 95 % of the time.
"""

from __future__ import annotations

from benchmarks.support import Section, table
from retab_mcp.simulator import SimulatedRetab
from retab_mcp.simulator.clock import VirtualClock
from retab_mcp.simulator.scenario import NOISE_SD, consensus_score
from retab_mcp.views.paired import paired_test

PAIRS = {12: 400, 50: 100}  # pairs per cell, by documents: the 50-document test costs 7x more a pair
SHIFTS = (0.0, 0.02, 0.05, 0.10)
SIZES = (12, 50)


def detected_share(documents: int, shift: float) -> float:
    sim = SimulatedRetab(clock=VirtualClock(1_000.0))
    experiment = sim.add_experiment(f"power-{documents}-{shift}", documents=documents)
    ids = [d for d, _ in sim.world.experiments[-1].documents]
    detected = 0
    for _ in range(PAIRS[documents]):
        base = sim.world.run(sim.add_consensus_run(experiment))
        sim.edit_block(experiment, everywhere=shift)
        candidate = sim.world.run(sim.add_consensus_run(experiment))
        sim.edit_block(experiment, everywhere=-shift)  # back, so each pair starts from the same block
        assert base is not None and candidate is not None
        verdict = paired_test([consensus_score(candidate, d) - consensus_score(base, d) for d in ids]).verdict
        detected += verdict != "no detectable change" if shift == 0 else verdict == "improved"
    return detected / PAIRS[documents]


async def measure() -> Section:
    section = Section(
        "Is it real? The comparison's power",
        f"{PAIRS[12]} pairs of simulated runs per cell on 12 documents, {PAIRS[50]} on 50; per-document "
        f"run-to-run noise sd {NOISE_SD} (so about "
        f"{NOISE_SD * 2**0.5:.3f} for a delta); a true shift moves every document's agreement by that much. "
        "A cell is the share of pairs whose verdict is 'improved'; the 0.00 row is the share of false alarms "
        "('improved' or 'regressed' when nothing changed). Goal: false alarms at most 7 % (the test is meant "
        "to hold them near 5 %), and a shift of 0.05 detected in at least 80 % of pairs on 12 documents.",
    )
    rows: list[list[str]] = []
    shares: dict[tuple[int, float], float] = {}
    for shift in SHIFTS:
        row = [f"{shift:.2f}"]
        for documents in SIZES:
            shares[documents, shift] = detected_share(documents, shift)
            row.append(f"{shares[documents, shift]:.0%}")
        rows.append(row)
    section.add(*table(["true shift", *(f"{n} documents" for n in SIZES)], rows))
    false_alarms = max(shares[n, 0.0] for n in SIZES)
    section.goal("comparison: false alarms <= 7 %", f"{false_alarms:.0%}", false_alarms <= 0.07)
    power = shares[12, 0.05]
    section.goal(
        "comparison: shift 0.05 on 12 documents detected >= 80 %",
        f"{power:.0%}",
        power >= 0.80,
        baseline_problem=f"false alarms {false_alarms:.0%}: the test is not calibrated"
        if false_alarms > 0.10
        else None,
    )
    return section

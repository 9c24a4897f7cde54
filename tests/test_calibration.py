"""The calibration benchmark's bounds, held on smaller samples by the product's own functions.

Each false-alarm bound is checked on 300 null pairs (or sequences) from fixed seeds, against a bound that a
test holding 5 % passes with near certainty: with a true rate of 5 %, more than ALLOWED of 300 happens
with probability under 1e-6 (SciPy's binomial, computed below), so only a broken test fails here; the
benchmark measures the rates themselves, on 2,000 pairs. The null data are the benchmark's
(benchmarks/calibration.py), and the first test holds them to the simulator's consensus model.
"""

from __future__ import annotations

import statistics
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from benchmarks import calibration
from benchmarks.support import Section
from scipy import stats

from retab_mcp.simulator.scenario import SimRun, consensus_score, make_experiment
from retab_mcp.views import verdicts

SAMPLE = 300
ALLOWED = int(stats.binom.isf(1e-6, SAMPLE, verdicts.ALPHA))  # 36 of 300: P(more | 5 %) < 1e-6


def simulated_deltas(pairs: int, n: int) -> list[float]:
    experiment = make_experiment("calibration", documents=n, epoch=datetime(2026, 1, 1, tzinfo=UTC))
    documents = [d for d, _ in experiment.documents]
    found: list[float] = []
    for i in range(pairs):
        base, candidate = (SimRun(id=f"r{i}-{j}", experiment=experiment, created_t=0, config=0) for j in (0, 1))
        found += [consensus_score(candidate, d) - consensus_score(base, d) for d in documents]
    return found


def test_the_benchmarks_null_data_are_the_simulators_consensus_model() -> None:
    simulated = simulated_deltas(200, 12)
    drawn = calibration.deltas(calibration.draw_runs(np.random.default_rng(1), 200, 12)).ravel().tolist()
    assert statistics.stdev(drawn) == pytest.approx(statistics.stdev(simulated), rel=0.1)
    assert abs(statistics.fmean(drawn)) < 0.005 and abs(statistics.fmean(simulated)) < 0.005
    same: Any = stats.ks_2samp(drawn, simulated)
    assert same.pvalue > 0.001


def alarms(rows: np.ndarray, candidate_index: int = 1) -> int:
    return sum(
        verdicts.sign_flip(row.tolist(), candidate_index=candidate_index).verdict != "no detectable change"
        for row in rows
    )


@pytest.mark.parametrize(
    "n", [6, 9, 12, pytest.param(30, marks=pytest.mark.slow), pytest.param(100, marks=pytest.mark.slow)]
)
@pytest.mark.parametrize("skewed", [False, True])
def test_run_level_false_alarms_stay_under_the_bound(n: int, skewed: bool) -> None:
    rng = np.random.default_rng(1000 + n + skewed)
    values = calibration.deltas(calibration.draw_runs(rng, SAMPLE, n, skewed=skewed))
    assert alarms(values) <= ALLOWED


@pytest.mark.parametrize("n", [9, 12])
def test_field_false_alarms_stay_under_the_bound_family_wise(n: int) -> None:
    values = calibration.field_deltas(np.random.default_rng(2000 + n), SAMPLE, n)
    named = 0
    for pair in values:
        found = verdicts.field_verdicts({f"f{j}": pair[j].tolist() for j in range(len(pair))})
        named += any(v.verdict != "no detectable change" for v in found)
    assert named <= ALLOWED


@pytest.mark.parametrize("flip_rate", calibration.FLIP_RATES)
@pytest.mark.parametrize("evals", calibration.SIZES)
def test_eval_run_false_alarms_stay_under_the_bound(flip_rate: float, evals: int) -> None:
    rng = np.random.default_rng(3000 + evals)
    flaky = rng.random((SAMPLE, evals)) < 2 * flip_rate
    steady = rng.random((SAMPLE, evals)) < 0.85
    base = np.where(flaky, rng.random((SAMPLE, evals)) < 0.5, steady)
    candidate = np.where(flaky, rng.random((SAMPLE, evals)) < 0.5, steady)
    outcomes = [
        verdicts.pass_fail_verdict(int(b), int(c))
        for b, c in zip((base & ~candidate).sum(axis=1), (~base & candidate).sum(axis=1), strict=True)
    ]
    assert sum(o.verdict != "no detectable change" for o in outcomes) <= ALLOWED


def test_ten_null_tries_against_one_base_are_rarely_called_improved() -> None:
    runs = calibration.draw_runs(np.random.default_rng(4000), SAMPLE, 9, runs=calibration.TRIES + 1)
    told = np.zeros(SAMPLE, dtype=bool)
    for k in range(1, calibration.TRIES + 1):
        for i, row in enumerate(calibration.deltas(runs, candidate=k)):
            told[i] |= verdicts.sign_flip(row.tolist(), candidate_index=k).verdict == "improved"
    assert int(told.sum()) <= ALLOWED


def test_the_interval_shown_and_the_verdict_agree_in_300_random_comparisons() -> None:
    rng = np.random.default_rng(5000)
    comparisons = list(calibration.random_comparisons(rng, 300))
    assert all(calibration.shown_agrees(values, k) for values, k in comparisons)


def test_the_vectorised_copy_gives_the_products_verdicts() -> None:
    rng = np.random.default_rng(6000)
    for n in (6, 12, 20):
        values = calibration.deltas(calibration.draw_runs(rng, 40, n, skewed=True), shift=0.02)
        assert calibration.hold_to_product(values, rows=40) == 40


def test_the_benchmark_rewrites_only_its_own_section_and_goal_rows(tmp_path: Path) -> None:
    report = tmp_path / "BENCHMARKS.md"
    report.write_text(
        "# Benchmarks\n\n## Goals\n\n| goal | measured | met |\n|---|---|---:|\n| start-up | 1x | yes |\n"
        "| comparison: old | 5% | yes |\n\n## Start-up\n\nkept\n\n## Is it real? The comparison's power\n\nold\n\n"
        "## Soak\n\nkept too\n"
    )
    section = Section(calibration.TITLE, "how")
    section.goal("calibration: new", "1%", True)
    calibration.write_section(section, report)
    text = report.read_text()
    assert "| start-up | 1x | yes |\n| calibration: new | 1% | yes |\n\n## Start-up\n\nkept\n" in text
    assert "comparison: old" not in text and "old\n" not in text.split("## Soak")[0].split("## Start-up")[1]
    assert text.endswith("\n\n## Soak\n\nkept too\n") and f"## {calibration.TITLE}\n\nhow\n" in text
    calibration.write_section(section, report)  # again: the same file
    assert report.read_text() == text

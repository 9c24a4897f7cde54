"""Calibration: do compare's verdicts hold what they promise? A statistical benchmark, not a timed one.

Null data are pairs of runs of the simulator's consensus model (retab_mcp/simulator/scenario.py): each
document's agreement is its difficulty (N(0.86, 0.05)) plus the run's noise (N(0, 0.03)), clipped to
[0, 1] and rounded to 4 decimals, as `consensus_score` makes it; fields add their own noise (N(0, 0.04)).
They are drawn here with NumPy from the same constants (`draw_runs`; a test checks them against the
simulator's own runs). The skewed variant: an edit that reshapes the candidate's noise without moving
its mean (a pass now and then goes astray, so agreement drops more often than it rises: 0.03 - Exp(0.03)).

The verdicts are views/verdicts.py's. For speed the many thousands of tests go through a vectorised copy
of its sign-flip test (`flip_verdicts`: the same sign patterns, the same counting and the same rule), and
every cell checks the copy against the product itself on its first pairs: they must give the same
verdict and p-value, else the benchmark stops. The consistency check goes through the product only, from
scores to the text an agent reads.

Run alone: `uv run python benchmarks/calibration.py` (some minutes; rewrites only this section and its
goal rows in BENCHMARKS.md), or with the others: `uv run python benchmarks/run.py`.
"""

from __future__ import annotations

import math
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

if __package__ in (None, ""):  # run as a script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scipy import stats

from benchmarks.support import Section, table
from retab_mcp.api.models import Metrics, Run
from retab_mcp.simulator.scenario import DOCUMENT_BASE_MEAN, DOCUMENT_BASE_SD, FIELD_SD, NOISE_SD, TARGETS
from retab_mcp.views import verdicts
from retab_mcp.views.compare import Comparison, build_comparison, render_comparison

Array = NDArray[np.float64]
SIZES = (6, 9, 12, 30, 100)
NULL_PAIRS = 2_000
POWER_PAIRS = 2_000
FLIP_RATES = (0.02, 0.10)
TRIES = 10  # candidates against one base in the loop
LOOP_SIZES = (12, 30)
CONSISTENCY = 10_000
CHECKED = 60  # pairs per cell also run through the product, to hold the vectorised copy to it
SEED = 20_261_203
BOUND = verdicts.ALPHA + 2 * math.sqrt(verdicts.ALPHA * (1 - verdicts.ALPHA) / NULL_PAIRS)  # 5 % + 2 SE
POWER_SLACK = 0.03
TITLE = "Calibration: do the verdicts hold what they promise?"
BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


# The null data: the simulator's consensus model


@dataclass
class Runs:
    """`pairs` experiments of n documents: their difficulty, and each run's noise per document."""

    difficulty: Array  # (pairs, n)
    noise: Array  # (pairs, runs, n): run 0 is the base


def score(x: Array) -> Array:
    return np.round(np.clip(x, 0.0, 1.0), 4)


def draw_runs(rng: np.random.Generator, pairs: int, n: int, *, runs: int = 2, skewed: bool = False) -> Runs:
    difficulty = rng.normal(DOCUMENT_BASE_MEAN, DOCUMENT_BASE_SD, (pairs, n))
    noise = rng.normal(0.0, NOISE_SD, (pairs, runs, n))
    if skewed:  # the candidates' noise: same mean and sd, skewness -2
        noise[:, 1:, :] = NOISE_SD - rng.exponential(NOISE_SD, (pairs, runs - 1, n))
    return Runs(difficulty, noise)


def deltas(runs: Runs, shift: float = 0.0, candidate: int = 1) -> Array:
    """Per-document deltas of candidate run `candidate` against the base, its block shifted by `shift`."""
    before = score(runs.difficulty + runs.noise[:, 0, :])
    return score(runs.difficulty + shift + runs.noise[:, candidate, :]) - before


def field_deltas(rng: np.random.Generator, pairs: int, n: int, fields: int = len(TARGETS)) -> Array:
    """(pairs, fields, n): each field's agreement is its document's plus the field's own noise per run."""
    runs = draw_runs(rng, pairs, n)
    base = runs.difficulty + runs.noise[:, 0, :]
    candidate = runs.difficulty + runs.noise[:, 1, :]
    own = rng.normal(0.0, FIELD_SD, (2, pairs, fields, n))
    return score(candidate[:, None, :] + own[1]) - score(base[:, None, :] + own[0])


# A vectorised copy of verdicts.sign_flip's verdict


@dataclass(frozen=True)
class Patterns:
    masks: Array  # (subsets, n) of 0/1, non-empty subsets only
    sizes: Array
    extra: int  # patterns at or beyond any shift: the observed one, and empty random subsets
    total: int


@cache
def patterns(n: int, factor: float) -> Patterns:
    total = verdicts.pattern_count(n, factor)
    if n <= verdicts.EXACT_MAX_N:
        masks, extra = list(range(1, 2**n)), 1
    else:
        drawn = verdicts.random_masks(n, total - 1)
        masks = [m for m in drawn if m]
        extra = 1 + len(drawn) - len(masks)
    bits = (np.array(masks, dtype=object)[:, None] >> np.arange(n)) & 1
    matrix = bits.astype(np.float64)
    return Patterns(matrix, matrix.sum(axis=1), extra, total)


def flip_counts(values: Array, factor: float) -> tuple[NDArray[np.int64], NDArray[np.int64], Patterns]:
    """Per row: the subsets whose mean is at most 0, and at least 0 (within verdicts.TIE)."""
    pattern = patterns(values.shape[1], factor)
    below = np.empty(len(values), dtype=np.int64)
    above = np.empty(len(values), dtype=np.int64)
    step = max(1, 3_000_000 // len(pattern.sizes))
    for start in range(0, len(values), step):
        means = (values[start : start + step] @ pattern.masks.T) / pattern.sizes
        below[start : start + step] = (means <= verdicts.TIE).sum(axis=1)
        above[start : start + step] = (means >= -verdicts.TIE).sum(axis=1)
    return below, above, pattern


def flip_verdicts(values: Array, factor: float = 1.0) -> tuple[NDArray[np.bool_], NDArray[np.bool_], Array]:
    """(improved, regressed, two-sided p) per row, by verdicts.sign_flip's rule with p multiplied by `factor`."""
    below, above, pattern = flip_counts(values, factor)

    def adjusted(count: NDArray[np.int64]) -> Array:
        return np.minimum(1.0, 2 * (pattern.extra + count) / pattern.total * factor)

    improved = adjusted(below) < verdicts.ALPHA
    regressed = ~improved & (adjusted(above) < verdicts.ALPHA)
    p = np.minimum(1.0, 2 * (pattern.extra + np.minimum(below, above)) / pattern.total)
    return improved, regressed, p


def hold_to_product(values: Array, factor: float = 1.0, rows: int = CHECKED) -> int:
    """Run the first `rows` rows through verdicts.sign_flip too; stop the benchmark on any difference."""
    improved, regressed, p = flip_verdicts(values[:rows], factor)
    for i, row in enumerate(values[:rows]):
        product = verdicts.sign_flip(row.tolist(), factor=factor)
        copy = "improved" if improved[i] else "regressed" if regressed[i] else "no detectable change"
        if product.verdict != copy or abs(product.p_value - p[i]) > 1e-9:
            raise AssertionError(f"copy and product differ on {row.tolist()}: {copy} {p[i]} vs {product}")
    return min(rows, len(values))


# The tests the paired sign-flip test is measured against


def t_test(values: Array) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    with np.errstate(divide="ignore", invalid="ignore"):
        result: Any = stats.ttest_1samp(values, 0.0, axis=1)
    p = np.nan_to_num(np.asarray(result.pvalue), nan=1.0)
    t = np.nan_to_num(np.asarray(result.statistic), nan=0.0)
    return (p < verdicts.ALPHA) & (t > 0), (p < verdicts.ALPHA) & (t < 0)


def wilcoxon(values: Array) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    """The Wilcoxon signed-rank test as the permutation test of the signed ranks (average ranks for ties,
    zeros ranked but signless): exact up to 16 documents, the same random patterns beyond."""
    ranks = stats.rankdata(np.abs(values), axis=1)
    improved, regressed, _ = flip_verdicts(np.sign(values) * ranks)
    return improved, regressed


def ours(values: Array) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    improved, regressed, _ = flip_verdicts(values)
    return improved, regressed


TESTS: dict[str, Callable[[Array], tuple[NDArray[np.bool_], NDArray[np.bool_]]]] = {
    "ours": ours,
    "t-test": t_test,
    "Wilcoxon": wilcoxon,
}


def false_alarms(test: Callable[[Array], tuple[NDArray[np.bool_], NDArray[np.bool_]]], values: Array) -> float:
    improved, regressed = test(values)
    return float(np.mean(improved | regressed))


# Measures


def null_rates(rng: np.random.Generator) -> dict[tuple[str, int], float]:
    """False alarms per (what, n) on NULL_PAIRS null pairs each."""
    rates: dict[tuple[str, int], float] = {}
    for n in SIZES:
        for kind, skewed in (("consensus", False), ("skewed", True)):
            values = deltas(draw_runs(rng, NULL_PAIRS, n, skewed=skewed))
            hold_to_product(values)
            for name, test in TESTS.items():
                rates[f"{name}, {kind}", n] = false_alarms(test, values)
        strong = rng.exponential(NOISE_SD * math.sqrt(2), (NULL_PAIRS, n)) - NOISE_SD * math.sqrt(2)
        for name in ("ours", "t-test"):
            rates[f"{name}, strongly skewed", n] = false_alarms(TESTS[name], strong)
        rates["fields", n] = field_false_alarms(rng, n)
        for rate in FLIP_RATES:
            alarms, gate, discordance = eval_false_alarms(rng, n, rate)
            rates[f"McNemar {rate:.0%}", n] = alarms
            rates[f"gate fails {rate:.0%}", n] = gate
            rates[f"discordance {rate:.0%}", n] = discordance
    return rates


def field_false_alarms(rng: np.random.Generator, n: int) -> float:
    """Family-wise: the share of null pairs in which any field is named, Holm over the fields."""
    values = field_deltas(rng, NULL_PAIRS, n)
    pairs, fields, _ = values.shape
    factor = float(fields)  # field_verdicts tests each field at the family's strictest level
    _, _, p = flip_verdicts(values.reshape(pairs * fields, n), factor)
    p = p.reshape(pairs, fields)
    ordered = np.sort(p, axis=1) * (fields - np.arange(fields))
    holm = np.minimum(1.0, np.maximum.accumulate(ordered, axis=1))
    named: NDArray[np.bool_] = np.asarray((holm < verdicts.ALPHA).any(axis=1))
    for pair in range(min(CHECKED // 4, pairs)):  # the product's own field_verdicts on the first pairs
        product = verdicts.field_verdicts({f"f{j}": values[pair, j].tolist() for j in range(fields)})
        if any(v.verdict != "no detectable change" for v in product) != bool(named[pair]):
            raise AssertionError(f"field verdicts differ from the product's on pair {pair}")
    return float(np.mean(named))


def eval_false_alarms(rng: np.random.Generator, evals: int, flip_rate: float) -> tuple[float, float, float]:
    """Eval runs that changed nothing: each eval passes always (85 %) or fails always, except a share 2 x
    flip_rate that passes or fails by a coin toss in each run (an LLM judge), so about flip_rate of the
    pairs are discordant. (McNemar false alarms, gate failures, observed discordance)."""
    flaky = rng.random((NULL_PAIRS, evals)) < 2 * flip_rate
    steady = rng.random((NULL_PAIRS, evals)) < 0.85
    base = np.where(flaky, rng.random((NULL_PAIRS, evals)) < 0.5, steady)
    candidate = np.where(flaky, rng.random((NULL_PAIRS, evals)) < 0.5, steady)
    regressions = (base & ~candidate).sum(axis=1)
    fixes = (~base & candidate).sum(axis=1)
    outcomes = [verdicts.pass_fail_verdict(int(b), int(c)) for b, c in zip(regressions, fixes, strict=True)]
    alarms = np.mean([o.verdict != "no detectable change" for o in outcomes])
    gate = np.mean([o.gate == "failed" for o in outcomes])
    return float(alarms), float(gate), float(np.mean(base != candidate))


def eval_power(rng: np.random.Generator, evals: int, flip_rate: float, fixed: int) -> tuple[float, float]:
    """Eval runs where the candidate fixed `fixed` evals that failed in the base, the others as in
    eval_false_alarms (flaky ones flip). (McNemar's power to say improved, an unpaired test's: Fisher's exact
    test on the two runs' pass counts, two-sided at 5 % like the verdict: the baseline a pairing should beat.)"""
    base, candidate = _null_evals(rng, evals, flip_rate)
    base[:, :fixed], candidate[:, :fixed] = False, True
    regressions = (base & ~candidate).sum(axis=1)
    fixes = (~base & candidate).sum(axis=1)
    ours = np.mean(
        [
            verdicts.pass_fail_verdict(int(b), int(c)).verdict == "improved"
            for b, c in zip(regressions, fixes, strict=True)
        ]
    )
    passed_base, passed_candidate = base.sum(axis=1), candidate.sum(axis=1)
    unpaired = np.mean(
        [
            _fisher_p([[int(pc), evals - int(pc)], [int(pb), evals - int(pb)]]) < 0.05
            for pb, pc in zip(passed_base, passed_candidate, strict=True)
        ]
    )
    return float(ours), float(unpaired)


def _fisher_p(counts: list[list[int]]) -> float:
    result: Any = stats.fisher_exact(counts, alternative="two-sided")
    return float(result[1])


def _null_evals(rng: np.random.Generator, evals: int, flip_rate: float) -> tuple[NDArray[np.bool_], NDArray[np.bool_]]:
    flaky = rng.random((POWER_PAIRS, evals)) < 2 * flip_rate
    steady = rng.random((POWER_PAIRS, evals)) < 0.85
    base = np.where(flaky, rng.random((POWER_PAIRS, evals)) < 0.5, steady)
    candidate = np.where(flaky, rng.random((POWER_PAIRS, evals)) < 0.5, steady)
    return base, candidate


def eval_power_rows(rng: np.random.Generator) -> list[tuple[int, float, int | None, float, int | None]]:
    """Per n and flip rate: the fewest fixes McNemar calls improved 80 % of the time, and the unpaired test's."""
    rows: list[tuple[int, float, int | None, float, int | None]] = []
    for n in SIZES:
        for rate in FLIP_RATES:
            ours_needed = unpaired_needed = None
            ours_at = 0.0
            for fixed in range(1, n + 1):
                ours, unpaired = eval_power(rng, n, rate, fixed)
                if ours_needed is None and ours >= 0.8:
                    ours_needed, ours_at = fixed, ours
                if unpaired_needed is None and unpaired >= 0.8:
                    unpaired_needed = fixed
                if ours_needed is not None and unpaired_needed is not None:
                    break
                if fixed >= 30:  # beyond, only the larger n; what is needed is known by then
                    break
            rows.append((n, rate, ours_needed, ours_at, unpaired_needed))
    return rows


@dataclass
class PowerRow:
    n: int
    shifts: dict[str, float]  # the smallest shift detected 80 % of the time, per test
    ours_at_best: float  # our power at the better other test's shift
    best_at_best: float
    best: str
    predicted: float  # the median min_detectable_shift the tool reports on null data


def power_row(rng: np.random.Generator, n: int) -> PowerRow:
    runs = draw_runs(rng, POWER_PAIRS, n)
    sd = NOISE_SD * math.sqrt(2)
    guess = 3 * sd / math.sqrt(n)

    def power(name: str, shift: float) -> float:
        return float(np.mean(TESTS[name](deltas(runs, shift))[0]))

    shifts = {name: smallest_shift(lambda s, name=name: power(name, s), guess) for name in TESTS}
    best = min(("t-test", "Wilcoxon"), key=lambda name: shifts[name])
    at = shifts[best]
    null = deltas(runs)[: CHECKED * 2]
    predicted = [verdicts.sign_flip(row.tolist()).min_detectable_shift for row in null]
    return PowerRow(
        n,
        shifts,
        power("ours", at),
        power(best, at),
        best,
        float(np.median([p for p in predicted if p is not None])),
    )


def smallest_shift(power_at: Callable[[float], float], guess: float, steps: int = 9) -> float:
    """The smallest shift with power >= 80 %, by bisection (power grows with the shift on fixed data)."""
    low, high = 0.0, guess
    while power_at(high) < verdicts.POWER:
        low, high = high, high * 2
    for _ in range(steps):
        middle = (low + high) / 2
        low, high = (low, middle) if power_at(middle) >= verdicts.POWER else (middle, high)
    return high


def loop_rates(rng: np.random.Generator, n: int) -> tuple[float, float]:
    """Sequences of TRIES null candidates against one base in which any is called improved:
    (with the k-th candidate's adjustment, without it)."""
    runs = draw_runs(rng, NULL_PAIRS, n, runs=TRIES + 1)
    adjusted = np.zeros(NULL_PAIRS, dtype=bool)
    plain = np.zeros(NULL_PAIRS, dtype=bool)
    for k in range(1, TRIES + 1):
        values = deltas(runs, candidate=k)
        factor = verdicts.sequence_factor(k)
        hold_to_product(values, factor, rows=CHECKED // 4)
        adjusted |= flip_verdicts(values, factor)[0]
        plain |= flip_verdicts(values)[0]
    return float(np.mean(adjusted)), float(np.mean(plain))


def consistency(rng: np.random.Generator, comparisons: int = CONSISTENCY) -> tuple[int, int]:
    """Random comparisons from scores to the text an agent reads (views/compare.py): (disagreements, done).
    A disagreement: the verdict, the interval shown (text and structured) and the adjusted p shown do not
    all say the same."""
    disagreements = 0
    for values, k in random_comparisons(rng, comparisons):
        disagreements += not shown_agrees(values, k)
    return disagreements, comparisons


def random_comparisons(rng: np.random.Generator, count: int) -> Iterator[tuple[list[float], int]]:
    for _ in range(count):
        n = int(rng.integers(verdicts.MIN_PAIRED, 17)) if rng.random() < 0.9 else int(rng.integers(17, 61))
        kind = rng.integers(5)
        shift = float(rng.normal(0, 0.03))
        if kind == 0:
            values = rng.normal(shift, rng.uniform(0.001, 0.1), n)
        elif kind == 1:  # skewed
            values = shift + rng.exponential(0.03, n) * rng.choice([-1, 1])
        elif kind == 2:  # coarse: many ties
            values = np.round(rng.normal(shift, 0.03, n), 2)
        elif kind == 3:  # many documents unchanged
            values = np.where(rng.random(n) < 0.5, 0.0, rng.normal(shift, 0.05, n))
        else:  # one large outlier
            values = rng.normal(shift, 0.01, n)
            values[0] = rng.choice([-0.6, 0.6])
        yield np.clip(values, -0.5, 0.5).tolist(), int(rng.integers(1, 13))


def shown_agrees(values: list[float], k: int) -> bool:
    """Whether the verdict, the interval (structured and in the text) and the adjusted p (structured and in
    the text) all say the same for these deltas and the k-th candidate."""
    report = build_comparison(synthetic_comparison(values, k))
    lines = render_comparison(report).splitlines()
    verdict, adjusted = report.verdict, report.adjusted_p_value
    if adjusted is None or not lines[0].startswith(f"Verdict: {verdict}"):
        return False
    line = next((line for line in lines if line.startswith("Mean per-document delta")), "")
    found = re.search(r"adjusted p=(\S+) \(x", line) if k > 1 else re.search(r"sign-flip p=(\S+?)\.?$", line)
    if found is None:
        return False
    called = verdict != "no detectable change"
    if called != (adjusted < verdicts.ALPHA) or called != (float(found.group(1)) < verdicts.ALPHA):
        return False
    interval = re.search(r"interval \[([^,]+), ([^\]]+)\]", line)
    if report.ci_low is None or report.ci_high is None or interval is None:
        return not called and report.ci_low is None and interval is None
    for low, high in ((report.ci_low, report.ci_high), (float(interval.group(1)), float(interval.group(2)))):
        says = "improved" if low > 0 else "regressed" if high < 0 else "no detectable change"
        if says != verdict:
            return False
    return True


def synthetic_comparison(values: list[float], k: int) -> Comparison:
    """Two completed runs whose paired documents' deltas are `values`, for the k-th candidate."""

    def run(run_id: str) -> Run:
        return Run.model_validate(
            {"id": run_id, "experiment_id": "exp_c", "lifecycle": {"status": "completed"}, "score": 0.5}
        )

    def summary(scores: list[float]) -> Metrics:
        documents = [{"id": f"doc_{i}", "score": s} for i, s in enumerate(scores)]
        return Metrics.model_validate({"kind": "summary", "documents": documents})

    base = [0.5] * len(values)
    return Comparison(
        run("exprun_base"),
        run("exprun_candidate"),
        summary(base),
        summary([0.5 + v for v in values]),
        candidate_index=k,
    )


# The section


async def measure() -> Section:
    started = time.perf_counter()
    rng = np.random.default_rng(SEED)
    section = Section(TITLE, HOW)
    rates = null_rates(rng)
    power = [power_row(rng, n) for n in SIZES]
    loops = {n: loop_rates(rng, n) for n in LOOP_SIZES}
    disagreements, done = consistency(rng)
    fill(section, rates, power, loops, disagreements, done)
    fill_eval_power(section, eval_power_rows(rng))
    section.add(f"Measured in {time.perf_counter() - started:.0f} s.")
    return section


HOW = (
    f"{NULL_PAIRS:,} null pairs per cell: pairs of runs of the simulator's consensus model (difficulty + run noise, "
    f"sd {NOISE_SD} per run, clipped, rounded), and its skewed variant (the candidate's noise 0.03 - Exp(0.03): "
    "same mean, skewness -2). A false alarm is any verdict other than no detectable change. The bound is 5 % plus "
    f"two standard errors of a {NULL_PAIRS:,}-pair share: {BOUND:.2%}. Ours: views/verdicts.py (through a "
    f"vectorised copy held to the product on {CHECKED} pairs of every cell); the paired t-test is SciPy's; the "
    "Wilcoxon signed-rank test is its permutation form (exact up to 16 documents). Fields: the simulator's 6 "
    "fields per document, Holm-corrected; a false alarm is any field named. Eval runs: each eval passes always "
    "(85 %) or fails always, but a share twice the flip rate is a coin toss in each run, so about that share of "
    "pairs is discordant; McNemar's exact test, and the strict gate (any regression fails)."
)


def fill(
    section: Section,
    rates: dict[tuple[str, int], float],
    power: list[PowerRow],
    loops: dict[int, tuple[float, float]],
    disagreements: int,
    done: int,
) -> None:
    columns = [
        ("ours", "ours, consensus"),
        ("ours, skewed", "ours, skewed"),
        ("fields (Holm)", "fields"),
        ("McNemar 2 %", "McNemar 2%"),
        ("McNemar 10 %", "McNemar 10%"),
        ("t-test", "t-test, consensus"),
        ("t-test, skewed", "t-test, skewed"),
        ("Wilcoxon, skewed", "Wilcoxon, skewed"),
    ]
    section.add(
        "### False alarms",
        "",
        *table(
            ["documents (evals)", *(c for c, _ in columns)],
            [[n, *(_pct(rates[key, n]) for _, key in columns)] for n in SIZES],
        ),
        "",
        "Where no test of a mean holds 5 %: deltas from a strongly skewed distribution (Exp minus its mean, "
        "skewness 2): "
        + "; ".join(
            f"n={n}: ours {_pct(rates['ours, strongly skewed', n])}, t-test {_pct(rates['t-test, strongly skewed', n])}"
            for n in SIZES
        )
        + ". The sign-flip test is exact when each delta is symmetric about 0, which holds whenever the two runs "
        "are exchangeable (nothing changed); an edit that reshapes noise without moving the mean breaks that, and "
        "then it is as approximate as the t-test.",
        "",
        "The strict gate fails unchanged eval runs this often (by design: it names every regression): "
        + "; ".join(
            f"n={n}: {_pct(rates['gate fails 2%', n])} at 2 %, {_pct(rates['gate fails 10%', n])} at 10 %"
            for n in SIZES
        )
        + ".",
        "",
    )
    consensus_t = [rates["t-test, consensus", n] for n in SIZES]
    generator = None
    if not all(0.03 <= rate <= 0.07 for rate in consensus_t):
        generator = (
            f"the t-test's false alarms on the consensus null ({', '.join(map(_pct, consensus_t))}) are not near 5 %"
        )
    for label, key in (
        ("run-level, consensus null", "ours, consensus"),
        ("run-level, skewed null", "ours, skewed"),
        ("per field (family-wise, Holm)", "fields"),
    ):
        worst = max(SIZES, key=lambda n, key=key: rates[key, n])
        section.goal(
            f"calibration: {label}: false alarms <= {BOUND:.2%} at every n",
            f"max {_pct(rates[key, worst])} (n={worst})",
            rates[key, worst] <= BOUND,
            baseline_problem=generator,
        )
    for rate in FLIP_RATES:
        key = f"McNemar {rate:.0%}"
        worst = max(SIZES, key=lambda n, key=key: rates[key, n])
        seen = [rates[f"discordance {rate:.0%}", n] for n in SIZES]
        off = None if all(abs(s - rate) <= 0.2 * rate for s in seen) else f"discordance {seen} is not near {rate:.0%}"
        section.goal(
            f"calibration: eval runs, {rate:.0%} flips: McNemar false alarms <= {BOUND:.2%} at every n",
            f"max {_pct(rates[key, worst])} (n={worst})",
            rates[key, worst] <= BOUND,
            baseline_problem=off,
        )
    rows = [
        [
            row.n,
            f"{row.shifts['ours']:.4f}",
            f"{row.predicted:.4f}",
            f"{row.shifts['t-test']:.4f}",
            f"{row.shifts['Wilcoxon']:.4f}",
            f"{row.ours_at_best:.1%} vs {row.best_at_best:.1%} ({row.best})",
        ]
        for row in power
    ]
    section.add(
        "### Power",
        "",
        f"The smallest shift of every document's agreement detected ('improved') in 80 % of {POWER_PAIRS:,} pairs, "
        "by bisection on the same pairs for every test; 'predicted' is the median min_detectable_shift the tool "
        "reports on null pairs of that size. The last column is our power at the better other test's 80 % shift.",
        "",
        *table(["documents", "ours", "predicted", "t-test", "Wilcoxon", "ours at the better one's shift"], rows),
        "",
        "At 6 documents an exact test can reject only when all six deltas share a sign (2/64 = 3.1 %: no sign "
        "pattern is rarer), so it needs a larger shift than the t-test, which leans on normality instead.",
        "",
    )
    behind = [row for row in power if row.ours_at_best < row.best_at_best - POWER_SLACK]
    worst_row = min(power, key=lambda row: row.ours_at_best - row.best_at_best)
    implausible = None
    for row in power:
        expected = _t_test_shift(row.n)
        if not 0.75 <= row.shifts["t-test"] / expected <= 1.33:
            implausible = f"t-test's 80 % shift at n={row.n} is {row.shifts['t-test']:.4f}, theory {expected:.4f}"
    section.goal(
        f"calibration: power within {POWER_SLACK * 100:.0f} points of the better of t-test and Wilcoxon at every n",
        "every n"
        if not behind
        else f"behind at n={', '.join(str(r.n) for r in behind)}; worst n={worst_row.n}: "
        f"{worst_row.ours_at_best:.1%} vs {worst_row.best_at_best:.1%}",
        not behind,
        baseline_problem=implausible,
    )
    section.add(
        "### Interval and verdict",
        "",
        f"{done:,} random comparisons (6 to 60 documents; normal, skewed, tied, half-zero and outlier deltas; "
        "candidates 1 to 12 against their base) built from scores into the report and its text: the interval shown "
        "(text and structured), the adjusted p shown and the verdict disagreed "
        f"{disagreements} times.",
        "",
    )
    section.goal(
        f"calibration: interval shown and verdict agree in {done:,} random comparisons",
        f"{disagreements} disagreements",
        disagreements == 0,
    )
    loop_lines = [
        f"n={n}: told 'improved' in {_pct(adjusted)} of sequences with the adjustment, {_pct(plain)} without"
        for n, (adjusted, plain) in loops.items()
    ]
    section.add(
        "### The loop",
        "",
        f"{NULL_PAIRS:,} sequences of {TRIES} candidates that change nothing, each compared with one shared base run "
        "(the k-th at p x k(k+1)/2): " + "; ".join(loop_lines) + ".",
        "",
    )
    for n, (adjusted, plain) in loops.items():
        single = verdicts.ALPHA / 2
        section.goal(
            f"calibration: {TRIES} null tries against one base, n={n}: told improved in <= {BOUND:.2%} of sequences",
            f"{_pct(adjusted)} (unadjusted {_pct(plain)})",
            adjusted <= BOUND,
            baseline_problem=None
            if single <= plain <= 0.5
            else f"unadjusted {_pct(plain)} is outside {single:.1%}-50 %",
        )


def fill_eval_power(section: Section, rows: list[tuple[int, float, int | None, float, int | None]]) -> None:
    def needed(count: int | None, n: int) -> str:
        return "never" if count is None else f"{count} ({count / n:.0%})"

    section.add(
        "### Power of the eval comparison",
        "",
        f"The fewest evals a candidate must fix (failing in the base, passing in the candidate; the other evals as "
        f"in the null above, flaky ones flipping) for compare_eval_runs to say improved in 80 % of {POWER_PAIRS:,} "
        "pairs, against an unpaired test of the same runs (Fisher's exact test on the pass counts, two-sided at 5 % "
        "like the verdict, which ignores which eval is which). 'never': not even with every eval fixed "
        "(up to 30 tried).",
        "",
        *table(
            ["evals", "flips", "McNemar: fixes needed", "its power there", "unpaired: fixes needed"],
            [
                [n, f"{rate:.0%}", needed(ours, n), f"{at:.1%}", needed(unpaired, n)]
                for n, rate, ours, at, unpaired in rows
            ],
        ),
        "",
        "McNemar's exact test reads only the evals that changed: with no regressions it needs six fixes for a "
        "two-sided p under 5 % (2 x 0.5^6 = 3.1 %), whatever the number of evals; flaky evals add discordant pairs "
        "both ways and so need a few more.",
        "",
    )
    behind = [
        (n, rate) for n, rate, ours, _, unpaired in rows if unpaired is not None and (ours is None or ours > unpaired)
    ]
    section.goal(
        "calibration: eval comparison needs no more fixes than an unpaired test, at every n and flip rate",
        "every one" if not behind else "behind at " + ", ".join(f"n={n} ({rate:.0%})" for n, rate in behind),
        not behind,
    )


def _t_test_shift(n: int) -> float:
    """Normal-theory 80 % power shift of a two-sided paired t-test at 5 % (the noncentral t, solved)."""
    sd = NOISE_SD * math.sqrt(2)
    low, high = 0.0, 10.0
    critical = stats.t.ppf(1 - verdicts.ALPHA / 2, n - 1)
    for _ in range(60):
        effect = (low + high) / 2
        power = stats.nct.sf(critical, n - 1, effect * math.sqrt(n))
        low, high = (effect, high) if power < verdicts.POWER else (low, effect)
    return high * sd


def _pct(value: float) -> str:
    return f"{value:.1%}"


# Writing this section into BENCHMARKS.md alone


def write_section(section: Section, path: Path = BENCHMARKS_MD) -> None:
    """Replace this section (or the power section it replaces) and its goal rows; leave the rest as it is."""
    text = path.read_text()
    mine = section.markdown() + "\n"  # a blank line before the next section, as run.py writes them
    old_titles = (TITLE, "Is it real? The comparison's power")
    for title in old_titles:
        start = text.find(f"## {title}\n")
        if start >= 0:
            end = text.find("\n## ", start + 1)
            text = text[:start] + mine + (text[end + 1 :] if end >= 0 else "")
            break
    else:
        marker = text.find("\n## Soak")
        text = text[: marker + 1] + mine + text[marker + 1 :] if marker >= 0 else text + mine
    lines = text.split("\n")
    kept = [line for line in lines if not line.startswith(("| comparison:", "| calibration:"))]
    goals_at = kept.index("## Goals")
    last = goals_at + 1
    while last + 1 < len(kept) and (kept[last + 1].startswith("|") or not kept[last].startswith("|")):
        last += 1
    rows = [f"| {goal} | {measured} | {verdict} |" for goal, measured, verdict in section.goals]
    path.write_text("\n".join([*kept[: last + 1], *rows, *kept[last + 1 :]]))


def main() -> None:
    import anyio

    section = anyio.run(measure)
    print(section.markdown())
    print("\n".join(table(["goal", "measured", "met"], section.goals, "llr")))
    write_section(section)
    print(f"wrote its section of {BENCHMARKS_MD.name}", file=sys.stderr)


if __name__ == "__main__":
    main()

"""Verdicts an agent can defend: is a change between two runs more than run-to-run noise?

Pure functions, no I/O: the experiment comparison (views/compare.py), triage's line about the prior run
and the eval-run comparison all call them. Written without SciPy or NumPy (start-up time matters, and
these few exact computations are the product); tests check them against SciPy on fixed data.

The API (Direction = "improved" | "regressed" | "no detectable change"; k = candidate_index, this
candidate's place among the tries against one base, 1 for a single comparison):

    sign_flip(deltas: Sequence[float], *, candidate_index: int = 1, factor: float | None = None) -> SignFlip
        SignFlip(n, mean, sd, p_value, adjusted_p_value, alpha, low, high, verdict, exact, patterns,
                 min_detectable_shift, reading, leaning)
    field_verdicts(deltas_by_field: Mapping[str, Sequence[float]], *, candidate_index: int = 1)
        -> list[FieldVerdict(path, n, mean, p_value, adjusted_p_value, verdict)]
    mcnemar_exact(regressions: int, fixes: int) -> float
    pass_fail_verdict(regressions: int, fixes: int, *, candidate_index: int = 1)
        -> PassFailVerdict(regressions, fixes, p_value, adjusted_p_value, alpha, verdict, gate)
    discordant_pairs(base: Mapping[str, bool | None], candidate: Mapping[str, bool | None])
        -> Discordance(paired, regressions: list[str], fixes: list[str])
    sequence_factor(candidate_index: int) -> float        # k (k + 1) / 2
    sequence_alpha(candidate_index: int) -> float         # ALPHA / sequence_factor(k)
    holm(p_values: Sequence[float]) -> list[float]
    documents_needed(test: SignFlip, shift: float = NEGLIGIBLE) -> int | None

Paired scores (one delta per document, candidate minus base), `sign_flip`:

- The test: a sign-flip (permutation) test of the mean delta. If nothing changed, the two runs are
  exchangeable, so each document's delta is as likely to be d as -d, and every pattern of signs is as
  likely as the one observed. Exact (all 2**n patterns) up to `EXACT_MAX_N` documents, else the observed
  pattern plus random ones from a fixed seed (the same deltas always give the same answer). The one-sided
  p-value towards "improved" is the share of patterns whose sum is at least the observed one; the
  two-sided p is twice the smaller one-sided p (at most 1).
- The interval: the test inverted. It holds every shift d for which the test of (delta - d) does not
  reject, which is [the r-th smallest, the r-th largest] of the means of the 2**n - 1 subsets of
  documents (Hartigan 1969): for a subset S, flipping the signs of S raises the sum of (delta - d) past the
  observed one exactly when the mean of S is below d. Interval and test come from one sorted list of
  subset means, so "improved" <=> the interval lies above 0 <=> adjusted p < 0.05, by construction.
- The level: `ALPHA` for the first candidate against a base. The k-th candidate against the same base is
  tested at ALPHA / (k (k + 1) / 2) (0.05, 0.0167, 0.0083, ...; `sequence_factor`): the one-sided levels
  sum to ALPHA / 2 * sum 2/(k (k + 1)) < ALPHA, so an agent that tries any number of edits against one
  base is told "improved" by chance in under 5 % of such sequences (and "regressed" likewise). The
  adjusted p is min(1, p * k (k + 1) / 2) and the interval is widened to the matching level.
- `min_detectable_shift`: the shift of every document's agreement this test would call "improved" 80 %
  of the time, from the observed noise: the interval's half-width (what the mean must clear: the
  interval moves with a shift of every delta) plus t(0.80, n - 1) standard errors (how far the mean
  wanders below a true shift). None when no outcome of this many documents could reach the level.
- `reading` of "no detectable change": "no change" when the interval lies within +-`NEGLIGIBLE`,
  otherwise "too few documents to tell".

Fields: `field_verdicts({path: deltas}, candidate_index=k)` tests each field with `sign_flip` over the
documents that score it in both runs, then corrects across fields with Holm's step-down method at the
same level: the chance of naming any unchanged field stays under 5 % whatever the correlation between
fields (they share each document's noise). Benjamini-Hochberg would name more fields when many move, but
bounds only the share of wrong names and needs positively dependent tests; an agent edits every field
named, so a wrong name costs an edit.

Pass/fail outcomes (eval runs, paired by eval), `pass_fail_verdict(b, c, candidate_index=k)`: McNemar's
exact test: under "no change" each discordant pair is a regression or a fix with
probability 1/2, so p = min(1, 2 P(Binomial(b + c, 1/2) <= min(b, c))) (b=0, c=6: 0.03125). The verdict
follows the same levels as above; the gate is strict: "failed" on any regression, whatever the p-value.
`discordant_pairs(base, candidate)` pairs outcomes by id (None = blocked, left out) into regressions and
fixes.
"""

from __future__ import annotations

import bisect
import math
import random
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

Direction = Literal["improved", "regressed", "no detectable change"]
Reading = Literal["no change", "too few documents to tell"]
Gate = Literal["passed", "failed"]

ALPHA = 0.05
MIN_PAIRED = 6  # below this no sign pattern is rare enough for p < 0.05: 2 / 2**5 = 0.0625
EXACT_MAX_N = 16  # 65,536 patterns, some 20 ms; beyond, random patterns
PATTERNS = 20_000  # patterns beyond EXACT_MAX_N, the observed one included: p resolution 1e-4
MAX_PATTERNS = 200_000
TAIL_PATTERNS = 40  # at least this many patterns in each tail at the level tested, when random
FIELDS_MAX = 60  # fields tested in one comparison, those scored in the most documents first
FIELD_FACTOR_MAX = 60.0  # random patterns enough for Holm over 60 fields; beyond, coarser (still valid) p
SEED = 20_261_202
TIE = 1e-9  # subset means within this of a shift count as equal to it (float sums of tied deltas)
NEGLIGIBLE = 0.02  # a change in mean agreement smaller than this reads as "no change"
POWER = 0.80
Z_POWER = statistics.NormalDist().inv_cdf(POWER)
_CHUNK = 8  # deltas per lookup table: subset sums are summed per 8 documents, 256 entries a table


@dataclass(frozen=True)
class SignFlip:
    """The paired test of one set of deltas, its interval and its verdict at the level `alpha`."""

    n: int
    mean: float
    sd: float  # of the deltas: run-to-run noise when nothing changed
    p_value: float  # two-sided, as if this were the only comparison
    adjusted_p_value: float  # min(1, p_value * sequence_factor(k)): the verdict is adjusted p < ALPHA
    alpha: float  # the level the verdict uses: ALPHA / sequence_factor(k); the interval is 1 - alpha
    low: float | None  # None: unbounded, too few documents for this level
    high: float | None
    verdict: Direction
    exact: bool
    patterns: int  # sign patterns the p-value counts over (2**n when exact)
    min_detectable_shift: float | None
    reading: Reading | None  # for "no detectable change" only
    leaning: Direction  # the side of the smaller one-sided p, significant or not


@dataclass(frozen=True)
class FieldVerdict:
    path: str
    n: int
    mean: float
    p_value: float  # the field's own two-sided sign-flip p
    adjusted_p_value: float  # Holm across the fields tested, times sequence_factor(k)
    verdict: Direction


@dataclass(frozen=True)
class PassFailVerdict:
    regressions: int  # b: passed in the base, failed in the candidate
    fixes: int  # c: failed in the base, passed in the candidate
    p_value: float  # McNemar's exact two-sided p
    adjusted_p_value: float
    alpha: float
    verdict: Direction
    gate: Gate  # "failed" on any regression


@dataclass(frozen=True)
class Discordance:
    paired: int  # ids with a pass or a fail in both runs
    regressions: list[str]
    fixes: list[str]


def sequence_factor(candidate_index: int) -> float:
    """k (k + 1) / 2 for the k-th candidate against one base: what its p-value is multiplied by."""
    k = max(1, candidate_index)
    return k * (k + 1) / 2


def sequence_alpha(candidate_index: int) -> float:
    return ALPHA / sequence_factor(candidate_index)


def sign_flip(deltas: Sequence[float], *, candidate_index: int = 1, factor: float | None = None) -> SignFlip:
    """The sign-flip test of `deltas` (candidate minus base, one per paired document), its inverted
    interval and verdict, for the `candidate_index`-th candidate against one base. `factor` replaces
    the sequence factor (a caller with a multiplicity rule of its own)."""
    m = sequence_factor(candidate_index) if factor is None else max(1.0, factor)
    alpha = ALPHA / m
    n = len(deltas)
    if n == 0:
        none: Direction = "no detectable change"
        return SignFlip(0, 0.0, 0.0, 1.0, 1.0, alpha, None, None, none, True, 1, None, None, none)
    mean = math.fsum(deltas) / n
    sd = statistics.stdev(deltas) if n > 1 else 0.0
    means, extra, total, exact = _subset_means(deltas, m)
    count = len(means)

    def significant(at_or_beyond: int) -> bool:
        return _adjusted(at_or_beyond, total, m) < ALPHA

    below = bisect.bisect_right(means, TIE)  # subsets whose mean is at most 0
    above = count - bisect.bisect_left(means, -TIE)  # at least 0
    p = min(1.0, 2 * (extra + min(below, above)) / total)
    adjusted = _adjusted(extra + min(below, above), total, m)
    # r: the fewest subsets at or beyond a shift for the test of it not to reject; the interval's ends
    # are the r-th smallest and r-th largest subset means.
    r = max(0, math.ceil(ALPHA * total / (2 * m)) - extra - 1)
    while significant(extra + r):
        r += 1
    while r > 0 and not significant(extra + r - 1):
        r -= 1
    low = means[r - 1] - TIE if 0 < r <= count else None
    high = means[count - r] + TIE if 0 < r <= count else None
    verdict: Direction = "no detectable change"
    if significant(extra + below):
        verdict = "improved"
    elif significant(extra + above):
        verdict = "regressed"
    mds = None
    if low is not None and high is not None and n > 1:
        mds = (high - low) / 2 + t_quantile(POWER, n - 1) * sd / math.sqrt(n)
    reading: Reading | None = None
    if verdict == "no detectable change":
        tight = low is not None and high is not None and low >= -NEGLIGIBLE and high <= NEGLIGIBLE
        reading = "no change" if tight else "too few documents to tell"
    leaning: Direction = "no detectable change"
    if below != above:
        leaning = "improved" if below < above else "regressed"
    return SignFlip(n, mean, sd, p, adjusted, alpha, low, high, verdict, exact, total, mds, reading, leaning)


def t_quantile(q: float, df: int) -> float:
    """Student's t quantile by its Cornish-Fisher expansion around the normal one (within 0.2 % at the 80 %
    quantile from 5 degrees of freedom on; SciPy is not imported here)."""
    z = statistics.NormalDist().inv_cdf(q)
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def _adjusted(at_or_beyond: int, total: int, factor: float) -> float:
    # The one expression both the verdict and the shown adjusted p come from, so they cannot disagree.
    return min(1.0, 2 * at_or_beyond / total * factor)


def documents_needed(test: SignFlip, shift: float = NEGLIGIBLE) -> int | None:
    """About how many paired documents would detect `shift` 80 % of the time at this test's level, with
    this test's noise (normal approximation; None without noise to go by)."""
    if test.n < 2 or test.sd <= 0 or shift <= 0:
        return None
    z = statistics.NormalDist().inv_cdf(1 - test.alpha / 2) + Z_POWER
    return max(MIN_PAIRED, math.ceil((z * test.sd / shift) ** 2))


def _subset_means(deltas: Sequence[float], factor: float) -> tuple[list[float], int, int, bool]:
    """(the sorted means of the non-empty subsets counted, the patterns counted at or beyond any shift
    whatever it is (the observed one, empty random subsets), all patterns, exact?)."""
    n = len(deltas)
    tables = [_subset_sums(deltas[i : i + _CHUNK]) for i in range(0, n, _CHUNK)]
    if n <= EXACT_MAX_N:
        sums, sizes = tables[0], _sizes(min(n, _CHUNK))
        if len(tables) > 1:  # every subset: a subset of the first 8 documents with one of the rest
            high_sizes = _sizes(n - _CHUNK)
            sums = [h + low for h in tables[1] for low in sums]
            sizes = [h + low for h in high_sizes for low in sizes]
        means = sorted(map(float.__truediv__, sums[1:], sizes[1:]))
        return means, 1, 2**n, True
    total = pattern_count(n, factor)
    columns, sizes, empty = _random_patterns(n, total - 1)
    sums = list(map(tables[0].__getitem__, columns[0]))
    for table, column in zip(tables[1:], columns[1:], strict=True):
        sums = list(map(float.__add__, sums, map(table.__getitem__, column)))
    return sorted(map(float.__truediv__, sums, sizes)), 1 + empty, total, False


def _subset_sums(values: Sequence[float]) -> list[float]:
    """The sum of every subset of `values`, indexed by the subset's bit mask."""
    sums = [0.0]
    for value in values:
        sums += [s + value for s in sums]
    return sums


@lru_cache(maxsize=32)
def _sizes(n: int) -> list[int]:
    return [mask.bit_count() for mask in range(2**n)]


@lru_cache(maxsize=16)
def _random_patterns(n: int, count: int) -> tuple[list[list[int]], list[int], int]:
    """`count` random subsets of n documents, from a fixed seed: per chunk of 8 documents the column of
    their 8-bit masks, the subsets' sizes, and how many were empty (left out of the columns)."""
    masks = random_masks(n, count)
    kept = [mask for mask in masks if mask]
    columns = [[(mask >> shift) & 0xFF for mask in kept] for shift in range(0, n, _CHUNK)]
    return columns, [mask.bit_count() for mask in kept], len(masks) - len(kept)


def random_masks(n: int, count: int) -> list[int]:
    """The random subsets (bit masks, empty ones included) `sign_flip` uses for n documents beyond
    EXACT_MAX_N when it counts over `count` + 1 patterns: for a vectorised copy of the test in a benchmark."""
    rng = random.Random(f"{SEED}/{n}/{count}")
    return [rng.getrandbits(n) for _ in range(count)]


def pattern_count(n: int, factor: float = 1.0) -> int:
    """How many sign patterns `sign_flip` counts over for n documents when p is multiplied by `factor`:
    enough for TAIL_PATTERNS of them beyond the level in each tail."""
    if n <= EXACT_MAX_N:
        return 2**n
    return min(MAX_PATTERNS, max(PATTERNS, math.ceil(TAIL_PATTERNS * factor / ALPHA)))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values, in the order given: the i-th smallest p times (m - i + 1),
    never below the one before it, at most 1."""
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def field_verdicts(
    deltas_by_field: Mapping[str, Sequence[float]], *, candidate_index: int = 1, min_paired: int = MIN_PAIRED
) -> list[FieldVerdict]:
    """Each field with at least `min_paired` paired documents (at most FIELDS_MAX of them, the most
    documents first) tested on its own, Holm-corrected across them and adjusted for the k-th candidate;
    most significant first."""
    enough = sorted(
        ((path, deltas) for path, deltas in deltas_by_field.items() if len(deltas) >= min_paired),
        key=lambda item: (-len(item[1]), item[0]),
    )
    tested = dict(enough[:FIELDS_MAX])
    # Each field's p-value resolved as far as Holm needs at the family's strictest level (up to a cap).
    factor = min(FIELD_FACTOR_MAX, len(tested) * sequence_factor(candidate_index))
    tests = {path: sign_flip(deltas, factor=factor) for path, deltas in tested.items()}
    paths = list(tests)
    holm_p = holm([tests[path].p_value for path in paths])
    verdicts: list[FieldVerdict] = []
    for path, corrected in zip(paths, holm_p, strict=True):
        test = tests[path]
        adjusted = min(1.0, corrected * sequence_factor(candidate_index))
        verdict: Direction = "no detectable change"
        if adjusted < ALPHA:
            verdict = test.leaning
        verdicts.append(FieldVerdict(path, test.n, test.mean, test.p_value, adjusted, verdict))
    return sorted(verdicts, key=lambda v: (v.adjusted_p_value, -abs(v.mean), v.path))


def mcnemar_exact(regressions: int, fixes: int) -> float:
    """Two-sided exact McNemar p-value of `regressions` (b) against `fixes` (c) discordant pairs."""
    b, c = max(0, regressions), max(0, fixes)
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(b, c) + 1))
    return min(1.0, 2 * tail / 2**n)


def pass_fail_verdict(regressions: int, fixes: int, *, candidate_index: int = 1) -> PassFailVerdict:
    """McNemar's verdict on the discordant pairs, at the k-th candidate's level, and the strict gate."""
    p = mcnemar_exact(regressions, fixes)
    m = sequence_factor(candidate_index)
    adjusted = min(1.0, p * m)
    verdict: Direction = "no detectable change"
    if adjusted < ALPHA and fixes != regressions:
        verdict = "improved" if fixes > regressions else "regressed"
    gate: Gate = "failed" if regressions > 0 else "passed"
    return PassFailVerdict(regressions, fixes, p, adjusted, ALPHA / m, verdict, gate)


def discordant_pairs(base: Mapping[str, bool | None], candidate: Mapping[str, bool | None]) -> Discordance:
    """Outcomes paired by id (True passed, False failed, None blocked: neither, so left out)."""
    regressions: list[str] = []
    fixes: list[str] = []
    paired = 0
    for key in sorted(base.keys() & candidate.keys()):
        before, after = base[key], candidate[key]
        if before is None or after is None:
            continue
        paired += 1
        if before and not after:
            regressions.append(key)
        elif after and not before:
            fixes.append(key)
    return Discordance(paired, regressions, fixes)

"""Is a change in agreement real? A paired test over the documents two runs share.

Each document is its own control: the delta of its agreement between the runs removes how hard the
document is, and what is left is the change plus run-to-run noise (every consensus pass is a model call).

- The interval: a 95 % percentile bootstrap of the mean delta (documents resampled with replacement,
  `RESAMPLES` times, from a fixed seed, so the same runs always give the same answer).
- The p-value: a two-sided sign-flip (permutation) test of the mean delta: under "no change" each
  document's delta is as likely to have either sign. Exact (every sign pattern) up to `EXACT_MAX_N`
  documents, else `FLIPS` random patterns from a fixed seed.
- The verdict: "improved" when the interval lies above 0 and p < 0.05, "regressed" when it lies below 0
  and p < 0.05, otherwise "no detectable change". Both must agree: the bootstrap interval alone is too
  narrow on a dozen documents, and the exact test keeps false alarms under 5 %.

Written here rather than taken from SciPy, which is a 40 MB dependency for two short procedures; the
tests check both against `scipy.stats` on fixed data.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

Verdict = Literal["improved", "regressed", "no detectable change"]
RESAMPLES = 10_000
FLIPS = 20_000
EXACT_MAX_N = 16
ALPHA = 0.05
SEED = 20_261_202
MIN_DOCUMENTS = 6  # below this, no sign pattern is rare enough for p < 0.05 (2 / 2**5 = 0.0625)


@dataclass(frozen=True)
class PairedTest:
    n: int
    mean_delta: float
    ci_low: float
    ci_high: float
    p_value: float
    sd: float  # of the per-document deltas: the run-to-run noise when nothing changed
    verdict: Verdict


def paired_test(deltas: Sequence[float]) -> PairedTest:
    """The test of `deltas` (candidate minus base, one per shared document)."""
    n = len(deltas)
    if n == 0:
        return PairedTest(0, 0.0, 0.0, 0.0, 1.0, 0.0, "no detectable change")
    mean = statistics.fmean(deltas)
    low, high = bootstrap_interval(deltas)
    p = sign_flip_p_value(deltas)
    verdict: Verdict = "no detectable change"
    if p < ALPHA and low > 0:
        verdict = "improved"
    elif p < ALPHA and high < 0:
        verdict = "regressed"
    sd = statistics.stdev(deltas) if n > 1 else 0.0
    return PairedTest(n, mean, low, high, p, sd, verdict)


def bootstrap_interval(
    values: Sequence[float], *, confidence: float = 0.95, resamples: int = RESAMPLES, seed: int = SEED
) -> tuple[float, float]:
    """The percentile bootstrap interval of the mean of `values`."""
    rng = random.Random(seed)
    n = len(values)
    means = sorted(math.fsum(rng.choices(values, k=n)) / n for _ in range(resamples))
    tail = (1 - confidence) / 2
    return _percentile(means, tail), _percentile(means, 1 - tail)


def sign_flip_p_value(values: Sequence[float], *, flips: int = FLIPS, seed: int = SEED) -> float:
    """Two-sided p-value of the mean of `values` under random signs: exact up to EXACT_MAX_N values."""
    n = len(values)
    observed = abs(math.fsum(values)) - 1e-12 * max(1.0, n)  # ties count as extreme, as in SciPy
    if n <= EXACT_MAX_N:
        return _exact_sign_flip(values, observed)
    rng = random.Random(seed)
    extreme = sum(abs(math.fsum(v if rng.random() < 0.5 else -v for v in values)) >= observed for _ in range(flips))
    return extreme / flips


def _exact_sign_flip(values: Sequence[float], observed: float) -> float:
    # Every sign pattern, walked in Gray-code order: each step flips one sign, so each sum costs O(1).
    n = len(values)
    total = math.fsum(values)
    extreme = int(abs(total) >= observed)
    signs = [1] * n
    for step in range(1, 2**n):
        i = (step & -step).bit_length() - 1
        total -= 2 * signs[i] * values[i]
        signs[i] = -signs[i]
        extreme += abs(total) >= observed
    return extreme / 2**n


def _percentile(ordered: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (NumPy's default)."""
    position = q * (len(ordered) - 1)
    below = math.floor(position)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (position - below)

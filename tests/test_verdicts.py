"""views/verdicts.py, the pure statistics: known values, SciPy on fixed data, the interval as the test
inverted by brute force, and properties on generated deltas (derandomized, so CI sees the same inputs)."""

from __future__ import annotations

import itertools
import math
import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import stats

from retab_mcp.views import verdicts
from retab_mcp.views.compare import keep_side, keep_sign, p_text, signed_text

PROFILE = settings(
    max_examples=300, derandomize=True, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)


def normal_deltas(n: int, shift: float, seed: int, sd: float = 0.04) -> list[float]:
    rng = random.Random(seed)
    return [round(rng.gauss(shift, sd), 4) for _ in range(n)]


def brute_force_p(values: list[float], shift: float = 0.0) -> float:
    """Twice the smaller one-sided share of all 2**n sign patterns at or beyond the observed sum."""
    x = np.array(values) - shift
    signs = np.array(list(itertools.product([1, -1], repeat=len(values))))
    sums, observed = signs @ x, x.sum()
    upper, lower = np.mean(sums >= observed - 1e-9), np.mean(sums <= observed + 1e-9)
    return min(1.0, 2 * min(upper, lower))


def test_mcnemar_exact_p_matches_known_values_and_the_binomial_test() -> None:
    assert verdicts.mcnemar_exact(0, 6) == 0.03125
    assert verdicts.mcnemar_exact(6, 0) == 0.03125
    assert verdicts.mcnemar_exact(0, 0) == 1.0
    assert verdicts.mcnemar_exact(3, 3) == 1.0
    for b, c in ((1, 6), (2, 9), (10, 25), (40, 61), (0, 1)):
        assert verdicts.mcnemar_exact(b, c) == pytest.approx(stats.binomtest(b, b + c).pvalue, rel=1e-12)


def test_the_eval_gate_fails_on_any_regression_whatever_the_p_value() -> None:
    clear_fix = verdicts.pass_fail_verdict(regressions=1, fixes=30)
    assert clear_fix.verdict == "improved" and clear_fix.gate == "failed"
    assert verdicts.pass_fail_verdict(0, 6).verdict == "improved"
    assert verdicts.pass_fail_verdict(0, 6).gate == "passed"
    assert verdicts.pass_fail_verdict(0, 5).verdict == "no detectable change"  # 0.0625
    assert verdicts.pass_fail_verdict(6, 0).verdict == "regressed"
    second = verdicts.pass_fail_verdict(0, 6, candidate_index=2)  # 0.03125 x 3 = 0.094
    assert second.verdict == "no detectable change" and second.adjusted_p_value == pytest.approx(0.09375)


def test_discordant_pairs_pair_by_id_and_leave_blocked_ones_out() -> None:
    base = {"a": True, "b": True, "c": False, "d": None, "e": True}
    candidate = {"a": False, "b": True, "c": True, "d": True, "f": False}
    pairs = verdicts.discordant_pairs(base, candidate)
    assert pairs == verdicts.Discordance(paired=3, regressions=["a"], fixes=["c"])


def test_holm_adjusts_each_p_by_its_rank_and_never_lets_an_adjusted_p_drop() -> None:
    assert verdicts.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert verdicts.holm([0.5, 0.001]) == pytest.approx([0.5, 0.002])
    assert verdicts.holm([]) == []


def test_the_kth_candidate_is_tested_at_alpha_over_k_k_plus_1_over_2() -> None:
    assert [verdicts.sequence_factor(k) for k in (1, 2, 3, 7)] == [1, 3, 6, 28]
    assert verdicts.sequence_alpha(1) == 0.05
    one_sided_total = sum(verdicts.sequence_alpha(k) / 2 for k in range(1, 10_000))
    assert one_sided_total < verdicts.ALPHA  # any number of tries: under 5 % told "improved" by chance


@pytest.mark.parametrize(("n", "shift"), [(6, 0.03), (9, 0.0), (12, 0.02), (16, -0.01)])
def test_the_exact_p_value_is_scipys_permutation_test(n: int, shift: float) -> None:
    values = normal_deltas(n, shift, seed=n)
    reference = stats.permutation_test(
        (np.array(values),), np.mean, permutation_type="samples", n_resamples=2**n, alternative="greater"
    ).pvalue
    lower = stats.permutation_test(
        (np.array(values),), np.mean, permutation_type="samples", n_resamples=2**n, alternative="less"
    ).pvalue
    assert verdicts.sign_flip(values).p_value == pytest.approx(min(1.0, 2 * min(reference, lower)), abs=1e-12)


def test_beyond_16_documents_the_p_value_comes_from_random_patterns_close_to_scipys() -> None:
    values = normal_deltas(40, 0.012, seed=40)
    test = verdicts.sign_flip(values)
    assert not test.exact and test.patterns == verdicts.PATTERNS
    reference = stats.permutation_test(
        (np.array(values),),
        np.mean,
        permutation_type="samples",
        n_resamples=400_000,
        rng=np.random.default_rng(0),
    ).pvalue
    assert abs(test.p_value - reference) < 0.01
    assert verdicts.sign_flip(values) == test  # a fixed seed: the same deltas, the same answer


@pytest.mark.parametrize("seed", range(6))
def test_the_interval_is_the_set_of_shifts_the_test_does_not_reject(seed: int) -> None:
    values = normal_deltas(9, 0.02 * (seed - 2), seed=seed, sd=0.05)
    test = verdicts.sign_flip(values)
    assert test.low is not None and test.high is not None
    step = 1e-6
    assert brute_force_p(values, test.low - step) < 0.05 <= brute_force_p(values, test.low + step)
    assert brute_force_p(values, test.high + step) < 0.05 <= brute_force_p(values, test.high - step)
    assert brute_force_p(values) == pytest.approx(test.p_value)


def test_the_demo_runs_delta_gets_an_interval_that_includes_0_beside_p_above_5_percent() -> None:
    # The demo's older -> latest deltas: p=0.0547 used to sit beside a bootstrap interval below 0.
    values = [-0.184, -0.151, -0.131, -0.095, -0.081, -0.063, 0.011, 0.068, 0.065]
    test = verdicts.sign_flip(values)
    assert test.p_value >= 0.05 and test.low is not None and test.high is not None
    assert test.low < 0 <= test.high and test.verdict == "no detectable change"


def test_below_6_documents_no_interval_exists_and_nothing_is_called() -> None:
    test = verdicts.sign_flip([0.2, 0.3, 0.25, 0.1, 0.2])
    assert test.p_value == 0.0625 and test.low is None and test.verdict == "no detectable change"
    assert test.min_detectable_shift is None and test.reading == "too few documents to tell"
    assert verdicts.sign_flip([]).n == 0


def test_six_documents_are_called_improved_only_when_all_moved_up() -> None:
    assert verdicts.sign_flip([0.01, 0.02, 0.03, 0.01, 0.05, 0.02]).verdict == "improved"
    assert verdicts.sign_flip([0.01, 0.02, 0.03, 0.01, 0.05, -0.001]).verdict == "no detectable change"
    # The second candidate against one base is tested at 0.05/3: 6 documents can never reach it.
    assert verdicts.sign_flip([0.1] * 6, candidate_index=2).low is None


def test_a_tight_interval_around_0_reads_as_no_change_and_a_wide_one_as_too_few_documents() -> None:
    assert verdicts.sign_flip(normal_deltas(40, 0.0, seed=1, sd=0.01)).reading == "no change"
    wide = verdicts.sign_flip(normal_deltas(8, 0.0, seed=2, sd=0.08))
    assert wide.reading == "too few documents to tell"
    needed = verdicts.documents_needed(wide)
    assert needed is not None and needed > 8


def test_the_minimal_detectable_shift_shrinks_with_more_documents() -> None:
    shifts = [verdicts.sign_flip(normal_deltas(n, 0.0, seed=3)).min_detectable_shift for n in (8, 16, 64)]
    assert all(s is not None for s in shifts)
    assert shifts[0] > shifts[1] > shifts[2]  # type: ignore[operator]


def test_a_shifted_field_is_named_and_unchanged_ones_are_not() -> None:
    fields = {f"f{i}": normal_deltas(20, 0.0, seed=10 + i) for i in range(5)}
    fields["moved"] = normal_deltas(20, 0.06, seed=99)
    fields["thin"] = [0.3, 0.3, 0.3]  # too few documents: not tested
    found = {v.path: v for v in verdicts.field_verdicts(fields)}
    assert "thin" not in found and len(found) == 6
    assert found["moved"].verdict == "improved"
    assert [v.path for v in found.values() if v.verdict != "no detectable change"] == ["moved"]
    assert all(v.adjusted_p_value >= v.p_value for v in found.values())


def test_the_t_quantile_is_within_a_fraction_of_a_percent_of_scipys() -> None:
    for df in (5, 8, 11, 29, 99):
        assert verdicts.t_quantile(0.8, df) == pytest.approx(stats.t.ppf(0.8, df), rel=2e-3)


deltas_strategy = st.lists(
    st.one_of(
        st.floats(-0.5, 0.5, allow_nan=False),
        st.sampled_from([0.0, 0.01, -0.01, 0.05]),  # ties and zeros
    ),
    min_size=0,
    max_size=14,
)


@PROFILE
@given(deltas_strategy, st.integers(1, 12), st.floats(-0.1, 0.1, allow_nan=False))
def test_verdict_interval_and_adjusted_p_always_agree(values: list[float], k: int, shift: float) -> None:
    values = [round(v, 4) for v in values]
    test = verdicts.sign_flip(values, candidate_index=k)
    called = test.verdict != "no detectable change"
    assert called == (test.adjusted_p_value < verdicts.ALPHA)
    if test.low is None or test.high is None:
        assert not called
        return
    assert test.low <= test.high
    says = "improved" if test.low > 0 else "regressed" if test.high < 0 else "no detectable change"
    assert says == test.verdict
    # What is shown says the same: numbers are rounded without crossing 0 or the level.
    shown_low, shown_high = keep_sign(test.low), keep_sign(test.high)
    assert shown_low is not None and shown_high is not None
    assert (shown_low > 0) == (test.low > 0) and (shown_high < 0) == (test.high < 0)
    assert (float(signed_text(test.low)) > 0) == (test.low > 0)
    assert (float(p_text(keep_side(test.adjusted_p_value, 0.05), 0.05)) < 0.05) == called
    # Shifting every delta shifts the interval: the test is the same for every candidate shift.
    if shift and len(values) >= verdicts.MIN_PAIRED:
        moved = verdicts.sign_flip([v + shift for v in values], candidate_index=k)
        assert moved.low is not None and moved.high is not None
        assert math.isclose(moved.low, test.low + shift, abs_tol=1e-6)
        assert math.isclose(moved.high, test.high + shift, abs_tol=1e-6)

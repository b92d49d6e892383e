"""Scores on hand-computed point sets, verdicts on constructed seed scores, and the test's calibration."""
import math

import numpy as np
import pytest

from harness import stats


# ---- scores -------------------------------------------------------------------------------------
def test_dominated_area_is_the_union_of_rectangles():
    # [0,.5]x[0,.2] U [0,.8]x[0,.1] = .5*.2 + (.8-.5)*.1
    assert stats.dominated_area([0.5, 0.8], [0.2, 0.1]) == pytest.approx(0.13)
    # a dominated point adds nothing; order does not matter
    assert stats.dominated_area([0.4, 0.8, 0.5], [0.1, 0.1, 0.2]) == pytest.approx(0.13)


def test_dominated_area_of_all_zero_adversarial_accuracy_is_zero():
    assert stats.dominated_area([0.3, 0.6, 0.9], [0.0, 0.0, 0.0]) == 0.0


def test_mean_adv_over_shared_range_integrates_the_envelope():
    # envelope: 0.2 for c <= 0.5, 0.1 for 0.5 < c <= 0.8; over [0.4, 0.7]: (.1*.2 + .2*.1) / .3
    assert stats.mean_adv_over_range([0.5, 0.8], [0.2, 0.1], 0.4, 0.7) == pytest.approx(0.04 / 0.3)
    # a range that is a single point takes the envelope there
    assert stats.mean_adv_over_range([0.5, 0.8], [0.2, 0.1], 0.6, 0.6) == pytest.approx(0.1)


def test_non_overlapping_clean_ranges_give_nan_not_a_number_that_looks_real():
    lo, hi = stats.shared_range([np.array([0.1, 0.2]), np.array([0.5, 0.6])])
    assert (lo, hi) == (0.5, 0.2)
    assert math.isnan(stats.mean_adv_over_range([0.1, 0.2], [0.05, 0.04], lo, hi))


def test_reference_scores():
    adv = np.array([[0.2, 0.4, 0.1]])
    s = stats.scores(np.array([[0.3, 0.5, 0.7]]), adv, 0.3, 0.7)
    assert s["final_adv"] == [0.1]
    assert s["area_over_epochs"] == [pytest.approx((0.3 + 0.25) / 2)]
    assert set(s) == set(stats.SCORES) and stats.PRIMARY in s


# ---- tests and verdicts -----------------------------------------------------------------------------
def test_holm_step_down():
    assert stats.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = stats.holm([0.01, float("nan")])
    # An untested case stays NaN but counts: its failure must not spare the others the correction.
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1])


def test_exact_permutation_p_of_complete_separation_is_one_over_the_relabelings():
    p, p_min = stats.permutation_p([3, 4, 5], [0, 1, 2])
    assert p == pytest.approx(1 / 20) and p_min == pytest.approx(1 / 20)
    p, _ = stats.permutation_p([0, 1, 2], [3, 4, 5])
    assert p == pytest.approx(1.0)


def test_welch_interval_and_p_match_scipy():
    from scipy import stats as st
    a, b = [0.31, 0.33, 0.36], [0.30, 0.29, 0.31]
    w = stats.welch(a, b)
    ref = st.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert w["p_greater"] == pytest.approx(ref.pvalue)
    assert w["p_greater"] + w["p_less"] == pytest.approx(1.0)
    assert w["ci"][0] < w["effect"] < w["ci"][1]


@pytest.mark.parametrize("better, worse, expected", [
    ([0.30, 0.31, 0.32], [0.20, 0.21, 0.22], "supported"),
    ([0.20, 0.21, 0.22], [0.30, 0.31, 0.32], "contradicted"),
    ([0.20, 0.30, 0.25], [0.22, 0.28, 0.24], "inconclusive"),
    ([0.30], [0.20, 0.21, 0.22], "inconclusive"),  # fewer than 2 seeds: never a pass
    ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], "inconclusive"),  # degenerate (e.g. all adv acc 0 at 8/255)
])
def test_verdicts_on_constructed_scores(better, worse, expected):
    t = stats.compare(better, worse, alpha=0.05)
    assert stats.verdict(t["p_greater"], t["p_less"], 0.05) == expected


def test_constant_scores_in_each_variant_are_untestable_whatever_float_rounding_leaves():
    # np.var([0.2] * 3) is about 1e-33, not 0: a naive zero check would call this difference certain.
    t = stats.compare([0.3] * 3, [0.2] * 3, 0.05)
    assert math.isnan(t["p_greater"]) and t["problem"] == "every seed of both variants has the same score"
    assert stats.verdict(t["p_greater"], t["p_less"], 0.05) == "inconclusive"


def test_too_few_seeds_says_so():
    t = stats.compare([0.3], [0.2, 0.21], 0.05)
    assert "fewer than 2 finished seeds" in t["problem"]


def test_welch_false_positive_rate_under_the_null_is_at_most_alpha():
    rng = np.random.default_rng(1)
    sims, alpha = 4000, 0.05
    rejections = sum(stats.welch(rng.normal(0, 1, 3), rng.normal(0, 1, 3))["p_greater"] <= alpha
                     for _ in range(sims))
    rate = rejections / sims
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / sims)


def test_power_rises_with_the_effect_in_simulation_and_in_theory():
    rng = np.random.default_rng(2)
    n, sims, alpha = 5, 1000, 0.05
    rates = []
    for effect in (0.0, 1.0, 2.0, 3.0):
        rates.append(sum(stats.welch(rng.normal(effect, 1, n), rng.normal(0, 1, n))["p_greater"] <= alpha
                         for _ in range(sims)) / sims)
    assert rates == sorted(rates) and rates[-1] > 0.8 and rates[0] < 0.1
    theory = [stats.power(e, 1.0, n, alpha) for e in (0.5, 1.0, 2.0)]
    assert theory == sorted(theory)
    assert stats.seeds_needed(2.0, 1.0, alpha) < stats.seeds_needed(1.0, 1.0, alpha)
    assert stats.seeds_needed(-0.1, 1.0, alpha) is None

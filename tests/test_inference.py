"""The tests on per-seed scores (harness.judge.inference) against scipy and hand-computed values; their
error rates in bulk are in tests/test_calibration.py."""
import itertools
import math

import numpy as np
import pytest
from scipy import stats as st

from harness.judge import inference
from harness.spec.config import ConfigError

def test_holm_step_down():
    assert inference.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = inference.holm([0.01, float("nan")])
    # An untested case stays NaN but counts: its failure must not spare the others the correction.
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1])


def test_exact_permutation_p_of_complete_separation_is_one_over_the_relabelings():
    p, p_min = inference.permutation_p([3, 4, 5], [0, 1, 2])
    assert p == pytest.approx(1 / 20) and p_min == pytest.approx(1 / 20)
    p, _ = inference.permutation_p([0, 1, 2], [3, 4, 5])
    assert p == pytest.approx(1.0)


def test_welch_interval_and_p_match_scipy():
    from scipy import stats as st
    a, b = [0.31, 0.33, 0.36], [0.30, 0.29, 0.31]
    w = inference.welch(a, b)
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
    t = inference.compare(better, worse, alpha=0.05)
    assert inference.verdict(t["p_greater"], t["p_less"], 0.05) == expected


def test_constant_scores_in_each_variant_are_untestable_whatever_float_rounding_leaves():
    # np.var([0.2] * 3) is about 1e-33, not 0: a naive zero check would call this difference certain.
    t = inference.compare([0.3] * 3, [0.2] * 3, 0.05)
    assert math.isnan(t["p_greater"]) and t["problem"] == "every seed of both variants has the same score"
    assert inference.verdict(t["p_greater"], t["p_less"], 0.05) == "inconclusive"


def test_too_few_seeds_says_so():
    t = inference.compare([0.3], [0.2, 0.21], 0.05)
    assert "fewer than 2 finished seeds" in t["problem"]


def test_power_rises_with_the_effect_in_simulation_and_in_theory():
    rng = np.random.default_rng(2)
    n, sims, alpha = 5, 1000, 0.05
    rates = []
    for effect in (0.0, 1.0, 2.0, 3.0):
        rates.append(sum(inference.welch(rng.normal(effect, 1, n), rng.normal(0, 1, n))["p_greater"] <= alpha
                         for _ in range(sims)) / sims)
    assert rates == sorted(rates) and rates[-1] > 0.8 and rates[0] < 0.1
    theory = [inference.power(e, 1.0, n, alpha) for e in (0.5, 1.0, 2.0)]
    assert theory == sorted(theory)
    assert inference.seeds_needed(2.0, 1.0, alpha) < inference.seeds_needed(1.0, 1.0, alpha)
    assert inference.seeds_needed(-0.1, 1.0, alpha) is None


def test_vectorised_permutation_p_counts_the_relabelings_one_by_one():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.3, 0.1, 4), rng.normal(0.25, 0.1, 3)
    pooled, observed = np.concatenate([a, b]), a.mean() - b.mean()
    hits = [pooled[list(i)].mean() - np.delete(pooled, list(i)).mean() >= observed - 1e-12
            for i in itertools.combinations(range(7), 4)]
    p, p_min = inference.permutation_p(a, b)
    assert p == pytest.approx(np.mean(hits)) and p_min == pytest.approx(1 / 35)
    # The seeded Monte Carlo branch estimates the same p.
    assert inference.permutation_p(a, b, max_exact=10)[0] == pytest.approx(np.mean(hits), abs=0.01)


def test_sign_flip_p_by_hand():
    # flips of (1, -2, 3) with sum >= 2: (1,2,3), (-1,2,3), (1,-2,3) -> 3 of 8
    assert inference.signflip_p([1.0, -2.0, 3.0]) == (pytest.approx(3 / 8), 1 / 8)
    assert inference.signflip_p([1.0, 2.0, 3.0])[0] == pytest.approx(1 / 8)


# ---- design limits ----------------------------------------------------------------------------------
def test_smallest_exact_p_of_a_design():
    assert inference.min_p_exact(3, 3) == 0.05
    assert inference.min_p_exact(6, 6) == pytest.approx(1 / 924)
    assert inference.min_p_exact(4, 2) == inference.permutation_p([5, 6, 7, 8], [0, 1])[0] == pytest.approx(1 / 15)
    assert inference.min_p_signflip(3) == 1 / 8


@pytest.mark.parametrize("n, family, paired, underpowered, seeds", [
    (3, 1, False, False, 3),  # 1/20 reaches 0.05 exactly (complete separation)
    (3, 2, False, True, 4),  # 1/20 > 0.05/2: Holm rejects nothing in the family
    (6, 2, False, False, 4),
    (3, 1, True, True, 5),  # 1/8 > 0.05; 1/32 <= 0.05
    (6, 2, True, False, 6),  # 1/64 <= 0.025
])
def test_design_says_when_holm_can_reject_nothing(n, family, paired, underpowered, seeds):
    d = inference.design(n, n, 0.05, family, paired=paired)
    assert d["alpha_holm"] == pytest.approx(0.05 / family)
    assert d["underpowered"] is underpowered and d["seeds_for_exact"] == seeds
    if not paired:  # the best outcome the design allows, on every dataset, through Holm
        best = inference.permutation_p(np.arange(n) + n, np.arange(n))[0]
        assert (min(inference.holm([best] * family)) > 0.05) is underpowered


def test_detectable_effect_inverts_power():
    for paired in (False, True):
        e = inference.detectable_effect(0.02, 6, 0.025, paired=paired)
        assert inference.power(e, 0.02, 6, 0.025, paired) == pytest.approx(0.8, abs=1e-9)
        assert inference.detectable_effect(0.04, 6, 0.025, paired=paired) == pytest.approx(2 * e)
        assert inference.detectable_effect(0.02, 12, 0.025, paired=paired) < e
    assert math.isnan(inference.detectable_effect(0.0, 6, 0.05))
    with pytest.raises(ConfigError, match="target power"):
        inference.detectable_effect(1.0, 6, 0.05, target=0.01)


def test_detectable_effect_is_detected_80_percent_of_the_time_by_scipys_t_tests():
    rng, reps, n, alpha = np.random.default_rng(5), 20_000, 5, 0.025
    se80 = 3 * math.sqrt(0.8 * 0.2 / reps)
    e = inference.detectable_effect(1.0, n, alpha)
    rate = np.mean(st.ttest_ind(rng.normal(e, 1, (reps, n)), rng.normal(0, 1, (reps, n)), axis=1,
                                alternative="greater").pvalue <= alpha)
    assert rate == pytest.approx(0.8, abs=se80)
    e = inference.detectable_effect(1.0, n, alpha, paired=True)
    rate = np.mean(st.ttest_1samp(rng.normal(e, 1, (reps, n)), 0, axis=1, alternative="greater").pvalue <= alpha)
    assert rate == pytest.approx(0.8, abs=se80)


def test_design_and_seeds_needed_use_holms_threshold():
    better, worse = [0.31, 0.33, 0.36, 0.30], [0.30, 0.29, 0.31, 0.28]
    one, two = inference.compare(better, worse, 0.05), inference.compare(better, worse, 0.05, family=2)
    sd = math.sqrt((np.var(better, ddof=1) + np.var(worse, ddof=1)) / 2)
    assert two["seeds_needed"] == inference.seeds_needed(two["effect"], sd, 0.025) > one["seeds_needed"]
    assert two["design"]["detectable_effect"] == pytest.approx(inference.detectable_effect(sd, 4, 0.025))
    assert two["p_greater"] == one["p_greater"]  # the design changes no p-value


def test_seeds_needed_stops_where_scipy_cannot_compute_power(monkeypatch):
    # A near-zero sd makes the noncentral t's parameter astronomically large and scipy returns NaN;
    # the search used to walk all 100,000 steps to the cap (minutes) instead of stopping.
    calls = []
    real = inference.power
    monkeypatch.setattr(inference, "power", lambda *a, **k: calls.append(a) or real(*a, **k))
    assert inference.seeds_needed(0.1, 2.4e-17, 0.05) is None and len(calls) == 1


# ---- equivalence ------------------------------------------------------------------------------------
def test_tost_matches_two_shifted_scipy_welch_tests_and_their_90_percent_interval():
    a, b, margin = [0.31, 0.33, 0.36, 0.32], [0.30, 0.29, 0.31], 0.05
    t = inference.tost(a, b, margin, 0.05)
    lower = st.ttest_ind(np.add(a, margin), b, equal_var=False, alternative="greater").pvalue
    upper = st.ttest_ind(np.subtract(a, margin), b, equal_var=False, alternative="less").pvalue
    assert t["p_lower"] == pytest.approx(lower) and t["p_upper"] == pytest.approx(upper)
    assert t["p_tost"] == pytest.approx(max(lower, upper)) and t["ci_level"] == pytest.approx(0.9)
    ci = st.ttest_ind(a, b, equal_var=False).confidence_interval(0.9)
    assert t["ci"] == pytest.approx([ci.low, ci.high])


def test_tost_is_equivalent_exactly_when_its_interval_lies_within_the_margin():
    rng = np.random.default_rng(6)
    for _ in range(300):
        t = inference.tost(rng.normal(0, 0.01, 4), rng.normal(rng.uniform(-0.03, 0.03), 0.02, 3), 0.02, 0.05)
        assert t["equivalent"] == (-0.02 <= t["ci"][0] and t["ci"][1] <= 0.02)


def test_tost_on_constructed_scores():
    close = inference.tost([0.300, 0.301, 0.299], [0.302, 0.300, 0.301], 0.02, 0.05)
    far = inference.tost([0.30, 0.31, 0.29], [0.35, 0.36, 0.34], 0.02, 0.05)
    assert close["equivalent"] is True and far["equivalent"] is False
    flat = inference.tost([0.3] * 3, [0.3] * 3, 0.02, 0.05)  # no spread: untestable, never equivalent
    assert flat["equivalent"] is False and "same score" in flat["problem"]
    assert "fewer than 2" in inference.tost([0.3], [0.3, 0.31], 0.02, 0.05)["problem"]
    with pytest.raises(ConfigError, match="margin"):
        inference.tost([0.3, 0.31], [0.3, 0.31], 0.0, 0.05)


# ---- paired -------------------------------------------------------------------------------------------
def test_paired_matches_scipys_paired_t_test():
    better, worse = [0.31, 0.35, 0.28, 0.40], [0.30, 0.33, 0.28, 0.37]
    p = inference.paired(better, worse, 0.05)
    ref = st.ttest_rel(better, worse, alternative="greater")
    ci = st.ttest_rel(better, worse).confidence_interval(0.95)
    assert p["p_greater"] == pytest.approx(ref.pvalue) and p["p_greater"] + p["p_less"] == pytest.approx(1)
    assert p["ci"] == pytest.approx([ci.low, ci.high]) and p["effect"] == pytest.approx(0.015)
    assert p["method"] == "paired" and set(p) == set(inference.compare(better, worse, 0.05))


def test_paired_sees_a_shared_seed_effect_that_welch_cannot():
    # Seeds differ a lot from each other; within a seed, the better arm gains a steady 0.01.
    base = np.array([0.20, 0.35, 0.27, 0.42, 0.31, 0.24])
    better = base + 0.01 + np.array([0.001, -0.001, 0.002, 0.0, -0.002, 0.001])
    assert inference.paired(better, base, 0.05)["p_greater"] < 1e-4
    assert inference.compare(better, base, 0.05)["p_greater"] > 0.3


def test_paired_on_identical_differences_is_untestable():
    p = inference.paired([0.3, 0.4, 0.5], [0.2, 0.3, 0.4], 0.05)
    assert math.isnan(p["p_greater"]) and p["problem"] == "every seed has the same difference between the arms"
    assert p["effect"] == pytest.approx(0.1) and p["p_perm"] == pytest.approx(1 / 8)
    assert inference.verdict(p["p_greater"], p["p_less"], 0.05) == "inconclusive"


def test_paired_drops_a_seed_missing_in_either_arm_and_refuses_unaligned_arms():
    p = inference.paired([0.3, float("nan"), 0.5, 0.45], [0.2, 0.3, 0.41, 0.4], 0.05)
    assert p["n"] == [3, 3] and p["effect"] == pytest.approx((0.1 + 0.09 + 0.05) / 3)
    with pytest.raises(ConfigError, match="aligned by seed"):
        inference.paired([0.3, 0.4, 0.5], [0.2, 0.3], 0.05)


# ---- trend ----------------------------------------------------------------------------------------------
def test_trend_over_two_levels_is_welchs_statistic_with_hsus_df_per_unit_of_level():
    low, high = [0.20, 0.22, 0.25], [0.30, 0.29, 0.35, 0.33]
    t, w = inference.trend([2, 6], [low, high]), inference.welch(high, low)
    welch_t = st.ttest_ind(high, low, equal_var=False).statistic
    assert t["slope"] == pytest.approx(w["effect"] / 4) and t["df"] == 2  # min(3, 4) - 1
    assert t["p_increasing"] == pytest.approx(st.t.sf(welch_t, 2))
    half = st.t.ppf(0.975, 2) * (w["effect"] / welch_t) / 4
    assert t["ci"] == pytest.approx([w["effect"] / 4 - half, w["effect"] / 4 + half])
    assert t["means"] == pytest.approx([np.mean(low), np.mean(high)]) and t["n"] == [3, 4]


def test_trend_slope_is_the_ols_slope_through_every_seed_with_equal_seeds_per_level():
    rng, levels = np.random.default_rng(7), [2, 4, 6, 8]
    y = [rng.normal(0.1 + 0.02 * x, 0.01, 3) for x in levels]
    ref = st.linregress(np.repeat(levels, 3), np.concatenate(y))
    assert inference.trend(levels, y)["slope"] == pytest.approx(ref.slope)


def test_trend_finds_a_monotone_dose_and_not_a_flat_one():
    rng, levels, alpha = np.random.default_rng(8), [2, 4, 6, 8], 0.05
    saturating = [0.10, 0.20, 0.25, 0.27]  # monotone, far from linear: most of the gain is at low bits

    def rate(means, direction):
        return np.mean([inference.trend(levels, [rng.normal(m, 0.02, 3) for m in means])[direction] <= alpha
                        for _ in range(300)])
    assert rate(saturating, "p_increasing") > 0.95 and rate(saturating[::-1], "p_decreasing") > 0.95
    assert rate([0.2] * 4, "p_increasing") < 0.1


def test_trend_refuses_bad_levels_and_says_when_a_level_lacks_seeds():
    with pytest.raises(ConfigError, match="distinct"):
        inference.trend([4, 4], [[0.1, 0.2], [0.1, 0.2]])
    with pytest.raises(ConfigError, match="one per level"):
        inference.trend([2, 4, 6], [[0.1, 0.2], [0.1, 0.2]])
    t = inference.trend([2, 4], [[0.1, float("nan")], [0.2, 0.3]])
    assert math.isnan(t["p_increasing"]) and "seeds per level: [1, 2]" in t["problem"]
    assert "same score" in inference.trend([2, 4], [[0.1, 0.1], [0.2, 0.2]])["problem"]


def _plain(x) -> bool:
    if isinstance(x, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in x.items())
    if isinstance(x, list):
        return all(_plain(v) for v in x)
    return x is None or type(x) in (float, int, bool, str)


def test_every_result_is_plain_json_types():
    a, b = [0.31, 0.33, 0.36], [0.30, 0.29, 0.31]
    for out in (inference.compare(a, b, 0.05, family=2), inference.compare([0.3], b, 0.05),
                inference.paired(a, b, 0.05), inference.paired([0.3] * 3, [0.2] * 3, 0.05),
                inference.tost(a, b, 0.02, 0.05), inference.trend([2, 4, 6], [a, b, a]),
                inference.design(3, 3, 0.05, 2, sd=0.02)):
        assert _plain(out), out

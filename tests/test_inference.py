"""The tests on per-seed scores (harness.judge.inference) against scipy and hand-computed values; their
error rates in bulk are in tests/test_calibration.py and, through the whole judge, tests/test_null_simulation.py."""
import itertools
import math

import numpy as np
import pytest
from scipy import stats as st

from harness.judge import inference
from harness.spec.config import ConfigError


def _p(better, worse) -> dict:
    return inference.read(inference.welch(better, worse))


def test_holm_step_down():
    assert inference.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    adjusted = inference.holm([0.01, float("nan")])
    # An untested case stays NaN but counts: its failure must not spare the others the correction.
    assert adjusted[0] == pytest.approx(0.02) and math.isnan(adjusted[1])


def test_exact_permutation_p_of_complete_separation_is_one_over_the_relabelings():
    assert inference.permutation_p([3, 4, 5], [0, 1, 2]) == pytest.approx(1 / 20) == inference.min_p_exact([3, 3])
    assert inference.permutation_p([0, 1, 2], [3, 4, 5]) == pytest.approx(1.0)


def test_welch_statistic_with_hsus_df_matches_scipys_t_statistic():
    a, b = [0.31, 0.33, 0.36, 0.30], [0.30, 0.29, 0.31]
    w, r = inference.welch(a, b), _p(a, b)
    ref = st.ttest_ind(a, b, equal_var=False)
    assert w["effect"] / w["se"] == pytest.approx(ref.statistic) and w["df"] == 2  # min(4, 3) - 1
    assert r["p_greater"] == pytest.approx(st.t.sf(ref.statistic, 2)) and r["p_greater"] + r["p_less"] == 1
    half = st.t.ppf(0.975, 2) * w["se"]
    assert r["ci"] == pytest.approx([w["effect"] - half, w["effect"] + half])
    assert inference.read(w, sign=-1.0)["p_greater"] == pytest.approx(r["p_less"])  # the other direction


@pytest.mark.parametrize("better, worse, expected", [
    ([0.30, 0.31, 0.32], [0.20, 0.21, 0.22], "supported"),
    ([0.20, 0.21, 0.22], [0.30, 0.31, 0.32], "contradicted"),
    ([0.20, 0.30, 0.25], [0.22, 0.28, 0.24], "inconclusive"),
    ([0.30], [0.20, 0.21, 0.22], "inconclusive"),  # fewer than 2 seeds: never a pass
    ([0.0, 0.0, 0.0], [0.0, 0.0, 0.0], "inconclusive"),  # degenerate (e.g. all adv acc 0 at 8/255)
])
def test_verdicts_on_constructed_scores(better, worse, expected):
    r = _p(better, worse)
    assert inference.verdict(r["p_greater"], r["p_less"], 0.05) == expected


def test_constant_scores_in_each_arm_are_untestable_whatever_float_rounding_leaves():
    # np.var([0.2] * 3) is about 1e-33, not 0: a naive zero check would call this difference certain.
    w = inference.welch([0.3] * 3, [0.2] * 3)
    assert math.isnan(_p([0.3] * 3, [0.2] * 3)["p_greater"])
    assert w["problem"] == "every seed of every arm has the same score"
    assert "fewer than 2 finished seeds (1 vs 2)" == inference.welch([0.3, math.nan], [0.2, 0.21])["problem"]


def test_vectorised_permutation_p_counts_the_relabelings_one_by_one():
    rng = np.random.default_rng(4)
    a, b = rng.normal(0.3, 0.1, 4), rng.normal(0.25, 0.1, 3)
    pooled, observed = np.concatenate([a, b]), a.mean() - b.mean()
    hits = [pooled[list(i)].mean() - np.delete(pooled, list(i)).mean() >= observed - 1e-12
            for i in itertools.combinations(range(7), 4)]
    assert inference.permutation_p(a, b) == pytest.approx(np.mean(hits))
    # The seeded Monte Carlo branch estimates the same p.
    assert inference.permutation_p(a, b, max_exact=10) == pytest.approx(np.mean(hits), abs=0.01)


# ---- design limits ----------------------------------------------------------------------------------
def test_smallest_exact_p_of_a_design():
    assert inference.min_p_exact([3, 3]) == 0.05
    assert inference.min_p_exact([6, 6]) == pytest.approx(1 / 924)
    assert inference.min_p_exact([4, 2]) == inference.permutation_p([5, 6, 7, 8], [0, 1]) == pytest.approx(1 / 15)
    assert inference.min_p_exact([3, 3, 3, 3]) == pytest.approx(1 / 369600)  # a 4-level dose


@pytest.mark.parametrize("n, alpha_holm, underpowered, seeds", [
    ([3, 3], 0.05, False, 3),  # 1/20 reaches 0.05 exactly (complete separation)
    ([3, 3], 0.025, True, 4),  # 1/20 > 0.05/2: Holm rejects nothing in the family
    ([3, 3], 0.0152, True, 4),  # the paper look over 2 datasets: 1/70 <= 0.0152
    ([6, 6], 0.0152, False, 4),
    ([3, 3, 3, 3], 0.0152, False, 2),
])
def test_design_says_when_no_exact_test_can_reach_the_threshold(n, alpha_holm, underpowered, seeds):
    d = inference.design(n, alpha_holm, inference.welch([0.1, 0.2, 0.3], [0.0, 0.1, 0.2]))
    assert d["underpowered"] is underpowered and d["seeds_for_exact"] == seeds and d["p_min_exact"] == \
        inference.min_p_exact(n)


def test_detectable_effect_is_detected_80_percent_of_the_time():
    rng, reps, n, alpha = np.random.default_rng(5), 20_000, 6, 0.025
    stat = {"se": math.sqrt(2 / n), "df": n - 1.0, "n": [n, n]}  # unit sd per seed
    e = inference.design([n, n], alpha, stat)["detectable_effect"]
    a, b = rng.normal(e, 1, (reps, n)), rng.normal(0, 1, (reps, n))
    t = (a.mean(1) - b.mean(1)) / np.sqrt(a.var(1, ddof=1) / n + b.var(1, ddof=1) / n)
    assert np.mean(st.t.sf(t, n - 1) <= alpha) == pytest.approx(0.8, abs=0.02)  # a t approximation of power
    needed = inference.seeds_needed(e, stat, alpha)
    assert needed in (n, n + 1) and inference.seeds_needed(2 * e, stat, alpha) < needed
    assert inference.seeds_needed(-0.1, stat, alpha) is None
    assert inference.seeds_needed(1e-9, stat, alpha) is None  # beyond the cap: no figure


def test_pococks_level_keeps_two_looks_at_alpha_for_a_normal_statistic():
    level = inference.pocock(0.05, (3, 6))
    assert level == pytest.approx(0.0304, abs=1e-4) and inference.pocock(0.05, (6,)) == 0.05
    rng = np.random.default_rng(6)  # z of the first 3 of 6 unit-normal seeds, and of all 6
    x = rng.normal(size=(400_000, 6))
    z3, z6 = x[:, :3].sum(1) / math.sqrt(3), x.sum(1) / math.sqrt(6)
    either = np.mean((st.norm.sf(z3) <= level) | (st.norm.sf(z6) <= level))
    assert either == pytest.approx(0.05, abs=0.0015)


# ---- equivalence ------------------------------------------------------------------------------------
def test_tost_is_two_shifted_one_sided_tests_and_its_interval():
    a, b, margin = [0.31, 0.33, 0.36, 0.32], [0.30, 0.29, 0.31], 0.05
    w = inference.welch(a, b)
    t = inference.tost(w, margin, 0.05)
    shifted = [_p(np.add(a, margin), b)["p_greater"], _p(np.subtract(a, margin), b)["p_less"]]
    assert [t["p_lower"], t["p_upper"]] == pytest.approx(shifted) and t["p_tost"] == max(t["p_lower"], t["p_upper"])
    half = st.t.ppf(0.95, w["df"]) * w["se"]
    assert t["ci"] == pytest.approx([w["effect"] - half, w["effect"] + half]) and t["ci_level"] == pytest.approx(0.9)


def test_tost_is_within_the_margin_exactly_when_its_interval_is():
    rng = np.random.default_rng(6)
    for _ in range(300):
        t = inference.tost(inference.welch(rng.normal(0, 0.01, 4), rng.normal(rng.uniform(-0.03, 0.03), 0.02, 3)),
                           0.02, 0.05)
        assert (t["p_tost"] <= 0.05) == (-0.02 <= t["ci"][0] and t["ci"][1] <= 0.02)


def test_tost_on_constructed_scores():
    assert inference.tost(inference.welch([0.300, 0.301, 0.299], [0.302, 0.300, 0.301]), 0.02, 0.05)["p_tost"] < 0.05
    assert inference.tost(inference.welch([0.30, 0.31, 0.29], [0.35, 0.36, 0.34]), 0.02, 0.05)["p_tost"] > 0.5
    assert math.isnan(inference.tost(inference.welch([0.3] * 3, [0.3] * 3), 0.02, 0.05)["p_tost"])  # untestable
    with pytest.raises(ConfigError, match="margin"):
        inference.tost(inference.welch([0.3, 0.31], [0.3, 0.31]), 0.0, 0.05)


# ---- trend ----------------------------------------------------------------------------------------------
def test_trend_over_two_levels_is_welchs_statistic_per_unit_of_level():
    low, high = [0.20, 0.22, 0.25], [0.30, 0.29, 0.35, 0.33]
    t, w = inference.trend([2, 6], [low, high]), inference.welch(high, low)
    assert t["effect"] == pytest.approx(w["effect"] / 4) and t["df"] == w["df"] == 2  # min(3, 4) - 1
    assert inference.read(t)["p_greater"] == pytest.approx(inference.read(w)["p_greater"])
    assert t["means"] == pytest.approx([np.mean(low), np.mean(high)]) and t["n"] == [3, 4]


def test_trend_slope_is_the_ols_slope_through_every_seed_with_equal_seeds_per_level():
    rng, levels = np.random.default_rng(7), [2, 4, 6, 8]
    y = [rng.normal(0.1 + 0.02 * x, 0.01, 3) for x in levels]
    ref = st.linregress(np.repeat(levels, 3), np.concatenate(y))
    assert inference.trend(levels, y)["effect"] == pytest.approx(ref.slope)


def test_trend_finds_a_monotone_dose_and_not_a_flat_one():
    rng, levels, alpha = np.random.default_rng(8), [2, 4, 6, 8], 0.05
    saturating = [0.10, 0.20, 0.25, 0.27]  # monotone, far from linear: most of the gain is at low bits

    def rate(means, sign):
        return np.mean([inference.read(inference.trend(levels, [rng.normal(m, 0.02, 3) for m in means]), sign)
                        ["p_greater"] <= alpha for _ in range(300)])
    assert rate(saturating, 1.0) > 0.9 and rate(saturating[::-1], -1.0) > 0.9
    assert rate([0.2] * 4, 1.0) < 0.1


def test_trend_refuses_bad_levels_and_says_when_a_level_lacks_seeds():
    with pytest.raises(ConfigError, match="distinct"):
        inference.trend([4, 4], [[0.1, 0.2], [0.1, 0.2]])
    with pytest.raises(ConfigError, match="one per level"):
        inference.trend([2, 4, 6], [[0.1, 0.2], [0.1, 0.2]])
    t = inference.trend([2, 4], [[0.1, float("nan")], [0.2, 0.3]])
    assert math.isnan(inference.read(t)["p_greater"]) and "(1 vs 2)" in t["problem"]
    assert "same score" in inference.trend([2, 4], [[0.1, 0.1], [0.2, 0.2]])["problem"]

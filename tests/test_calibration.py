"""Error rates of one look of the suite's decisions under the null, by simulation (20,000 repetitions each).

The seed scores come from tests/helpers_stats.py (bounded Beta scores, unequal variances, equal means
unless shifted); the p-values of all repetitions come from vectorised twins of the suite's statistic
(`inference.welch` and `trend`: each group's own variance, Hsu's df = min(n) - 1), `read` and `tost`, which the
first tests check against the scalar functions; Holm and the verdict are the suite's own functions. Each look
decides at Pocock's level (0.0304 for alpha 0.05); a rate passes at that level + 2 standard errors (0.0328).
The whole procedure, paper then confirm, through the real judge: tests/test_null_simulation.py.

What holds and what does not at one look (family-wise rate of "supported", Holm across 2 datasets): symmetric
scores with an sd ratio of 2 give 0.007 (3 seeds) and 0.018 (6 seeds); scores skewed toward the claim (mean
0.2, sd 0.018 vs 0.056) 0.015 and 0.030. Scores skewed near 0 (6 seeds, mean 0.05, sd 0.005 vs 0.015) exceed the
look's level (0.037, a strict xfail below); the procedure over both looks stays within alpha there (the null
simulation), because 3 seeds with Hsu's df are conservative. With Welch's Satterthwaite df, as the suite used
before, the same skewed scores passed 0.07-0.08 of the time at alpha 0.05.
"""
import math

import numpy as np
import pytest
from helpers_stats import null_families, tost_batch, trend_batch, welch_batch

from harness.judge import inference
from harness.spec.config import LOOKS

REPS, ALPHA = 20_000, 0.05
LEVEL = inference.pocock(ALPHA, LOOKS)  # each look's
BOUND = LEVEL + 2 * math.sqrt(LEVEL * (1 - LEVEL) / REPS)


def supported_rate(better: np.ndarray, worse: np.ndarray, alpha: float) -> float:
    """Share of repetitions in which any case of the family is 'supported'. better, worse: (reps,
    datasets, seeds); each repetition is one claim with a Holm family of `datasets` cases."""
    w = welch_batch(better, worse)
    hits = 0
    for pg, pl in zip(w["p_greater"], w["p_less"]):
        hits += "supported" in map(inference.verdict, inference.holm(pg), inference.holm(pl), [alpha] * len(pg))
    return hits / len(better)


# ---- the twins are the suite's functions -------------------------------------------------------------
@pytest.mark.parametrize("n", [3, 6])
def test_vectorised_twins_match_compare_and_tost(n):
    better, worse = null_families(np.random.default_rng(10), 50, n, n, 2, 0.3, 2000, 200, shift=0.01)
    better[0, 0], worse[0, 0] = 0.3, 0.2  # a constant repetition: untestable in both
    w, equivalent = welch_batch(better, worse), tost_batch(better, worse, 0.02, ALPHA)
    for r, d in np.ndindex(50, 2):
        stat = inference.welch(better[r, d], worse[r, d])
        c, t = inference.read(stat), inference.tost(stat, 0.02, ALPHA)
        assert [c["p_greater"], c["p_less"]] == pytest.approx([w["p_greater"][r, d], w["p_less"][r, d]], nan_ok=True)
        assert (t["p_tost"] <= ALPHA) == equivalent[r, d]
    assert math.isnan(w["p_greater"][0, 0]) and equivalent.any() and not equivalent.all()


def test_vectorised_trend_matches_trend():
    levels, rng = [2, 4, 6, 8], np.random.default_rng(11)
    y = rng.normal(0.2, [[0.01], [0.02], [0.03], [0.04]], (50, 4, 3))
    b = trend_batch(levels, y)
    for r in range(50):
        t = inference.trend(levels, y[r])
        assert [t["effect"], inference.read(t)["p_greater"]] == pytest.approx([b["slope"][r], b["p_increasing"][r]])


# ---- family-wise false positives of "supported", Holm across 2 datasets -----------------------------
SKEWED = pytest.mark.xfail(strict=True, reason="one-sided t with 6 seeds is anti-conservative when the wider arm "
                           "is skewed toward the claim: 0.037 at the look's 0.0304 (mean 0.05, sd 0.005 vs 0.015, "
                           "skewness 0.6); the two-look procedure stays within alpha (test_null_simulation.py)")


@pytest.mark.parametrize("n, mean, conc_better, conc_worse", [
    (3, 0.5, 400, 100), (3, 0.5, 100, 400), (6, 0.5, 400, 100), (6, 0.5, 100, 400),  # sd 0.025 vs 0.05
    (3, 0.2, 500, 50), (6, 0.2, 500, 50),  # sd 0.018 vs 0.056, skewness 0.4: 0.015 and 0.030
    pytest.param(6, 0.05, 2000, 200, marks=SKEWED),
])
def test_family_wise_false_positive_rate_of_supported_under_the_null(n, mean, conc_better, conc_worse):
    better, worse = null_families(np.random.default_rng(n), REPS, n, n, 2, mean, conc_better, conc_worse)
    assert supported_rate(better, worse, LEVEL) <= BOUND


# ---- equivalence when the true difference is exactly the margin ---------------------------------------
@pytest.mark.parametrize("n, mean, conc_better, conc_worse, shift", [
    (3, 0.3, 2000, 200, 0.02), (3, 0.3, 200, 2000, -0.02), (6, 0.3, 2000, 200, -0.02),
    (6, 0.3, 500, 500, 0.02), (6, 0.5, 200, 2000, 0.02),
    pytest.param(6, 0.05, 200, 2000, 0.02, marks=pytest.mark.xfail(strict=True, reason=(
        "skewed scores near 0 (sd 0.015 vs 0.005): TOST declares equivalence at the margin 0.037 of the time at "
        "the look's 0.0304"))),
])
def test_tost_declares_equivalence_at_the_margin_at_most_the_looks_level(n, mean, conc_better, conc_worse, shift):
    better, worse = null_families(np.random.default_rng(20 + n), REPS, n, n, 1, mean, conc_better, conc_worse,
                                  shift=shift)
    assert tost_batch(better, worse, abs(shift), LEVEL).mean() <= BOUND


# ---- a flat dose with unequal spread across levels ------------------------------------------------------
@pytest.mark.parametrize("n", [3, 6])
def test_trend_false_positive_rate_on_a_flat_dose_with_unequal_spread(n):
    rng = np.random.default_rng(30 + n)  # sd 0.09, 0.05, 0.03, 0.016 at the four levels
    y = np.stack([null_families(rng, REPS, n, n, 1, 0.5, c, c)[0][:, 0] for c in (30, 100, 300, 1000)], axis=1)
    assert np.mean(trend_batch([2, 4, 6, 8], y)["p_increasing"] <= LEVEL) <= BOUND

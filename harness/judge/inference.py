"""Tests on per-seed scores: one statistic for every claim, read one way.

Shapes: an arm's (or a dose level's) evidence is a 1-D sequence of per-seed scores (one float per finished
seed, in the score's units; non-finite entries are runs that did not finish and are dropped). Every
function returns plain floats, ints, bools, strings, lists and dicts (JSON).

A claim's statistic is a contrast of its groups' means (`contrast`): better minus worse for a pair, the
least-squares slope along the dose for a trend. Its standard error comes from each group's own variance
and its degrees of freedom are Hsu's conservative min(n) - 1, so unequal spread cannot inflate it (Welch's
Satterthwaite df passes a claim 0.07-0.08 of the time at nominal 0.05 when the wider arm is skewed, as
scores near 0 are: tests/test_calibration.py). Everything after the statistic is shared: the one-sided
p's and CI (`read`), equivalence (`tost`), Holm, the design's limits, and the sequential level (`pocock`).
"""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np
from scipy import optimize, special, stats

from ..spec.config import ConfigError

NAN = float("nan")


def _t_sf(x: float, df: float) -> float:  # scipy.stats.t's functions without their argument handling (~50x)
    return float(special.stdtr(df, -x))


def _t_ppf(q: float, df: float) -> float:
    return float(special.stdtrit(df, q))


def _finite(x) -> np.ndarray:
    x = np.asarray(x, float)
    return x[np.isfinite(x)]


def contrast(weights, groups) -> dict:
    """sum_i weights[i] * mean(groups[i]): {"effect", "se", "df", "n", "means", "problem"}; se and df are
    NaN, and `problem` says why, where a group has fewer than 2 finished seeds or no group has any spread."""
    w, ys = np.asarray(weights, float), [_finite(g) for g in groups]
    n = [len(y) for y in ys]
    means = [float(y.mean()) if len(y) else NAN for y in ys]
    out = {"n": n, "means": means, "effect": float(w @ np.array(means)), "se": NAN, "df": NAN, "problem": None}
    if min(n) < 2:
        return {**out, "problem": f"fewer than 2 finished seeds ({' vs '.join(map(str, n))})"}
    se = math.sqrt(float(w ** 2 @ np.array([y.var(ddof=1) / len(y) for y in ys])))
    # Relative: the variance of equal floats can come out as 1e-33, which would make any difference "significant".
    if se <= 1e-12 * max(1.0, *(abs(m) for m in means)):
        return {**out, "problem": "every seed of every arm has the same score"}
    return {**out, "se": se, "df": float(min(n) - 1)}


def welch(better, worse) -> dict:
    """mean(better) - mean(worse): Welch's statistic, with Hsu's df."""
    return contrast([1.0, -1.0], [better, worse])


def trend(levels, scores_per_level) -> dict:
    """The least-squares slope of the level means on the levels (score units per unit of dose; with equal
    seeds per level, the OLS slope through every seed's point), plus "levels". Any monotone pattern of the
    true means gives a slope of that sign, but the test is of a trend, not of every step being monotone."""
    x = np.asarray(levels, float)
    if x.ndim != 1 or len(x) < 2 or len(set(x.tolist())) != len(x) or not np.isfinite(x).all():
        raise ConfigError(f"trend needs at least 2 distinct finite dose levels; got {levels!r}")
    if len(scores_per_level) != len(x):
        raise ConfigError(f"trend got {len(scores_per_level)} lists of scores for {len(x)} levels; pass one per level")
    return {**contrast((x - x.mean()) / ((x - x.mean()) ** 2).sum(), scores_per_level), "levels": x.tolist()}


def read(stat: dict, sign: float = 1.0) -> dict:
    """The statistic signed so that > 0 is the claimed direction: effect, its 95% CI, one-sided p's
    (p_greater: the claimed direction; NaN where untestable)."""
    effect, se, df = sign * stat["effect"], stat["se"], stat["df"]
    if math.isnan(se):
        return {"effect": effect, "ci": [NAN, NAN], "p_greater": NAN, "p_less": NAN}
    half = _t_ppf(0.975, df) * se
    return {"effect": effect, "ci": [effect - half, effect + half], "p_greater": _t_sf(effect / se, df),
            "p_less": _t_sf(-effect / se, df)}


def tost(stat: dict, margin: float, alpha: float) -> dict:
    """Two one-sided tests of |effect| < margin (score units): p_lower tests 'effect <= -margin', p_upper
    'effect >= +margin', p_tost is the larger. ci is the (1 - 2 alpha) interval: inside +-margin exactly
    when p_tost <= alpha. Untestable is never equivalent (p_tost NaN)."""
    if not margin > 0:
        raise ConfigError(f"equivalence margin {margin!r} must be a positive number in the score's units")
    effect, se, df = stat["effect"], stat["se"], stat["df"]
    out = {"margin": float(margin), "ci_level": 1 - 2 * alpha}
    if math.isnan(se):
        return {**out, "ci": [NAN, NAN], "p_lower": NAN, "p_upper": NAN, "p_tost": NAN}
    half = _t_ppf(1 - alpha, df) * se
    p_lower, p_upper = _t_sf((effect + margin) / se, df), _t_sf((margin - effect) / se, df)
    return {**out, "ci": [effect - half, effect + half], "p_lower": p_lower, "p_upper": p_upper,
            "p_tost": max(p_lower, p_upper)}


def permutation_p(a, b, max_exact: int = 200_000, samples: int = 20_000) -> float:
    """One-sided p of mean(a) - mean(b) >= observed over relabelings: exact enumeration up to `max_exact`
    relabelings, else a seeded Monte Carlo. Shown beside the decision, with its floor `min_p_exact`."""
    a, b = _finite(a), _finite(b)
    if len(a) < 1 or len(b) < 1:
        return NAN
    pooled, na, nb = np.concatenate([a, b]), len(a), len(b)
    if math.comb(na + nb, na) <= max_exact:
        idx = np.array(list(itertools.combinations(range(na + nb), na)))
    else:
        idx = np.argsort(np.random.default_rng(0).random((samples, na + nb)), axis=1)[:, :na]
    sum_a = pooled[idx].sum(axis=1)
    return float(np.mean(sum_a / na - (pooled.sum() - sum_a) / nb >= a.mean() - b.mean() - 1e-12))


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment. A NaN p-value (a case that could not be tested) stays NaN but still
    counts in the family's size: a failed case must not make the others' correction milder."""
    p = np.asarray(pvalues, float)
    valid = np.flatnonzero(~np.isnan(p))
    out = np.full(len(p), np.nan)
    running = 0.0
    for rank, i in enumerate(valid[np.argsort(p[valid], kind="stable")]):
        running = max(running, min(1.0, (len(p) - rank) * p[i]))
        out[i] = running
    return out.tolist()


def verdict(p_adj_greater: float, p_adj_less: float, level: float) -> str:
    if p_adj_greater <= level:
        return "supported"
    if p_adj_less <= level:
        return "contradicted"
    return "inconclusive"  # includes NaN: an untestable case never passes


@functools.lru_cache(maxsize=32)
def pocock(alpha: float, looks: tuple[int, ...]) -> float:
    """The one-sided nominal level at which each look of a Pocock group-sequential design decides, so that
    deciding at any of the looks (seeds per arm so far, e.g. (3, 6)) keeps the rate at `alpha` for a normal
    statistic: the z-statistics of looks i < j correlate as sqrt(n_i / n_j). (3, 6) at 0.05: 0.0304."""
    if len(looks) == 1:
        return alpha
    cov = [[math.sqrt(min(a, b) / max(a, b)) for b in looks] for a in looks]
    mvn = stats.multivariate_normal(mean=np.zeros(len(looks)), cov=cov, seed=0)
    c = optimize.brentq(lambda z: 1 - mvn.cdf(np.full(len(looks), z)) - alpha, 0.0, 6.0, xtol=1e-6)
    return float(special.ndtr(-c))


# ---- design limits: what the seeds can show, known before the test ---------------------------------
def min_p_exact(n: list[int]) -> float:
    """Smallest one-sided p an exact permutation test over relabelings of the groups' seeds can reach:
    1 / (ways to split sum(n) seeds into groups of sizes n) (3 vs 3: 1/20; 6 vs 6: 1/924)."""
    ways = math.factorial(sum(n)) // math.prod(math.factorial(k) for k in n)
    return 1 / ways


def design(n: list[int], alpha_holm: float, stat: dict) -> dict:
    """What the seeds can show before any p-value. alpha_holm: the level the case's smallest p must reach
    (the look's level over the Holm family's size). Where the exact permutation test's floor exceeds it,
    no distribution-free test of these seeds could decide ("underpowered"); the t-test still can, leaning on
    normality that a few bounded scores cannot check. seeds_for_exact: the fewest seeds per group whose
    floor reaches it. detectable_effect: the true effect the t-test finds with 80% power at this se."""
    floor, k = min_p_exact(n), 2
    while min_p_exact([k] * len(n)) > alpha_holm * (1 + 1e-9):  # the tolerance keeps 1/20 vs 0.05 reachable
        k += 1
    power80 = _t_ppf(1 - alpha_holm, stat["df"]) + _t_ppf(0.8, stat["df"]) if not math.isnan(stat["se"]) else NAN
    return {"alpha_holm": alpha_holm, "p_min_exact": floor, "underpowered": floor > alpha_holm * (1 + 1e-9),
            "seeds_for_exact": k, "detectable_effect": power80 * stat["se"]}


def seeds_needed(effect: float, stat: dict, alpha_holm: float, cap: int = 100_000) -> int | None:
    """Seeds per group for 80% power at `effect` (> 0, the claimed direction) with this spread, at alpha_holm:
    a planning figure (the se shrinks as 1/sqrt(seeds)). None when the effect is not in the claimed
    direction, untestable, or beyond `cap`."""
    if not effect > 0 or math.isnan(stat["se"]):
        return None
    unit = stat["se"] * math.sqrt(min(stat["n"]))  # the se at one seed per group
    z = (special.ndtri(1 - alpha_holm) + special.ndtri(0.8)) * unit / effect
    m = max(2, math.ceil(z * z) - 2)  # the normal approximation slightly underestimates: walk up from it
    while m <= cap and (_t_ppf(1 - alpha_holm, m - 1) + _t_ppf(0.8, m - 1)) * unit / math.sqrt(m) > effect:
        m += 1
    return m if m <= cap else None

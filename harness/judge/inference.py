"""Tests on per-seed scores, the Holm correction, and what a design can show before it is run.

Shapes: an arm's evidence is a 1-D sequence of per-seed scores (one float per finished seed, in the
score's units; non-finite entries are runs that did not finish and are dropped). Paired functions take
two such sequences aligned by seed (better[i] and worse[i] share seed i). `trend` takes one sequence
per dose level. Every function returns plain floats, ints, bools, strings, lists and dicts (JSON).
One-sided p-values come in both directions: p_greater tests "better > worse", p_less the reverse.
A little over 300 lines on purpose: each test sits beside the design limits it reports.
"""
from __future__ import annotations

import functools
import itertools
import math

import numpy as np
from scipy import optimize, special

from ..spec.config import ConfigError

VERDICTS = ("supported", "contradicted", "inconclusive")
NAN = float("nan")


# Student's t through the functions scipy.stats.t wraps (its _sf, _cdf, _ppf): the same numbers without
# the generic argument handling, which costs ~50x the computation; the null simulation calls them ~10^6 times.
def _t_sf(x: float, df: float) -> float:
    return float(special.stdtr(df, -x))


def _t_cdf(x: float, df: float) -> float:
    return float(special.stdtr(df, x))


def _t_ppf(q: float, df: float) -> float:
    return float(special.stdtrit(df, q))


def _finite(x) -> np.ndarray:
    x = np.asarray(x, float)
    return x[np.isfinite(x)]


def _constant(se: float, *means: float) -> bool:
    # Relative, because the variance of equal floats can come out as 1e-33 instead of 0, which would
    # make any difference "significant".
    return se <= 1e-12 * max(1.0, *(abs(m) for m in means))


def welch(a, b) -> dict:
    """Difference of means (a - b), its 95% Welch interval, and one-sided p-values in both directions."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if _constant(se, a.mean(), b.mean()):  # identical scores within each arm: no test, decide nothing
        return {"effect": diff, "ci": [diff, diff], "p_greater": NAN, "p_less": NAN, "df": NAN}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    t = diff / se
    half = float(_t_ppf(0.975, df) * se)
    return {"effect": diff, "ci": [diff - half, diff + half], "p_greater": _t_sf(t, df),
            "p_less": _t_cdf(t, df), "df": float(df)}


def permutation_p(a, b, max_exact: int = 200_000, samples: int = 20_000) -> tuple[float, float]:
    """One-sided p of mean(a) - mean(b) >= observed over relabelings, and the smallest p possible.

    Exact enumeration when there are at most `max_exact` relabelings, else a seeded Monte Carlo.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    pooled, na, nb = np.concatenate([a, b]), len(a), len(b)
    total = math.comb(na + nb, na)
    if total <= max_exact:
        idx = np.array(list(itertools.combinations(range(na + nb), na)))  # (total, na)
    else:
        idx = np.argsort(np.random.default_rng(0).random((samples, na + nb)), axis=1)[:, :na]
    sum_a = pooled[idx].sum(axis=1)
    diffs = sum_a / na - (pooled.sum() - sum_a) / nb
    return float(np.mean(diffs >= a.mean() - b.mean() - 1e-12)), min_p_exact(na, nb)


def signflip_p(d, max_exact: int = 2 ** 16, samples: int = 20_000) -> tuple[float, float]:
    """One-sided p of mean(d) >= observed over sign flips of the paired differences d, and the smallest
    p possible. Exact when there are at most `max_exact` sign patterns, else a seeded Monte Carlo."""
    d = np.asarray(d, float)
    if 2 ** len(d) <= max_exact:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    else:
        signs = np.random.default_rng(0).choice((1.0, -1.0), size=(samples, len(d)))
    return float(np.mean(signs @ d / len(d) >= d.mean() - 1e-12)), min_p_signflip(len(d))


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


def verdict(p_adj_greater: float, p_adj_less: float, alpha: float) -> str:
    if p_adj_greater <= alpha:
        return "supported"
    if p_adj_less <= alpha:
        return "contradicted"
    return "inconclusive"  # includes NaN: an untestable case never passes


# ---- design limits: what n seeds per arm can show, known before the test ---------------------------
def min_p_exact(n_better: int, n_worse: int) -> float:
    """Smallest one-sided p an exact permutation test over relabelings can reach: 1 / C(n1 + n2, n1)
    (3 vs 3 seeds: 1/20 = 0.05; 6 vs 6: 1/924)."""
    return 1 / math.comb(n_better + n_worse, n_better)


def min_p_signflip(n_pairs: int) -> float:
    """Smallest one-sided p an exact sign-flip test on n paired differences can reach: 2**-n (3 pairs: 1/8)."""
    return 2.0 ** -n_pairs


def power(effect: float, sd: float, n: int, alpha: float, paired: bool = False) -> float:
    """Power of the one-sided t-test at a true difference `effect` (score units). Unpaired: two-sample
    test, n per arm, sd within an arm. Paired: one-sample test on n differences, sd of the differences."""
    if sd <= 0 or n < 2:
        return NAN
    df, se = (n - 1, sd / math.sqrt(n)) if paired else (2 * n - 2, sd * math.sqrt(2 / n))
    return float(1 - special.nctdtr(df, effect / se, _t_ppf(1 - alpha, df)))


def detectable_effect(sd: float, n: int, alpha: float, target: float = 0.8, paired: bool = False) -> float:
    """The smallest true difference (score units) that the one-sided t-test of `power` detects with
    probability `target` at level alpha; NaN where power() is undefined (sd <= 0 or n < 2)."""
    if not (sd > 0 and n >= 2):
        return NAN
    if not alpha < target < 1:
        raise ConfigError(f"target power {target} must lie between alpha ({alpha}) and 1")
    return sd * _detectable_in_sds(n, alpha, target, paired)  # power depends on effect / sd only


@functools.lru_cache(maxsize=256)
def _detectable_in_sds(n: int, alpha: float, target: float, paired: bool) -> float:
    hi = 1.0
    while power(hi, 1.0, n, alpha, paired) < target:  # power rises with the effect: bracket, then solve
        hi *= 2
    return float(optimize.brentq(lambda e: power(e, 1.0, n, alpha, paired) - target, 0.0, hi, xtol=1e-12 * hi))


def seeds_needed(effect: float, sd: float, alpha: float, target: float = 0.8, cap: int = 100_000,
                 paired: bool = False) -> int | None:
    """Seeds per arm (pairs, if paired) for `target` power at `effect`: a planning figure, pass the
    Holm-adjusted alpha. None when the effect is not in the claimed direction, or above `cap` seeds."""
    if not effect > 0 or not sd > 0:
        return None
    # The normal approximation is a slight underestimate for the t-test: start there and walk up.
    z = special.ndtri(1 - alpha) + special.ndtri(target)
    n = max(2, math.ceil((1 if paired else 2) * (z * sd / effect) ** 2) - 2)
    while n <= cap:
        p = power(effect, sd, n, alpha, paired)
        if not p < target:  # reached, or NaN (scipy's nct gives up at huge noncentrality): stop either way
            return n if p >= target else None
        n += 1
    return None


def design(n_better: int, n_worse: int, alpha: float, family: int = 1, sd: float = NAN,
           paired: bool = False) -> dict:
    """What a design can show, before any p-value: can its exact test reach Holm's threshold, and what
    effect could a t-test detect with 80% power at that threshold.

    alpha_holm = alpha / family is Holm's threshold for the smallest p of a family of `family` cases; if
    the exact test's smallest p exceeds it, Holm rejects nothing in the family ("underpowered"). The
    floor is the exact (permutation or sign-flip) test's because a t-test has none: its p falls towards
    0 as the seeds agree, so it can "reach" any alpha from any design, resting on a normality that three
    bounded scores cannot check (tests/test_calibration.py measures where it fails). seeds_for_exact: the smallest seeds per arm whose exact floor reaches
    alpha_holm. detectable_effect: at min(n_better, n_worse) per arm and the given sd (score units).
    """
    alpha_holm = alpha / family
    floor = min_p_signflip if paired else (lambda k: min_p_exact(k, k))
    p_min = min_p_signflip(min(n_better, n_worse)) if paired else min_p_exact(n_better, n_worse)
    n_exact = 1
    while floor(n_exact) > alpha_holm * (1 + 1e-9):  # the tolerance keeps 1/20 vs 0.05 "reachable"
        n_exact += 1
    return {"alpha_holm": alpha_holm, "p_min_exact": p_min, "underpowered": p_min > alpha_holm * (1 + 1e-9),
            "seeds_for_exact": n_exact,
            "detectable_effect": detectable_effect(sd, min(n_better, n_worse), alpha_holm, paired=paired)}


# ---- the comparisons ---------------------------------------------------------------------------------
def _untestable(method: str, n: list[int], alpha: float, family: int, problem: str) -> dict:
    return {"method": method, "n": n, "effect": NAN, "ci": [NAN, NAN], "p_greater": NAN, "p_less": NAN,
            "df": NAN, "p_perm": NAN, "p_min": NAN, "seeds_needed": None,
            "design": design(*n, alpha, family, paired=method == "paired"), "problem": problem}


def compare(better, worse, alpha: float, family: int = 1) -> dict:
    """The claim 'better > worse' on per-seed scores of independent arms: the evidence for one case
    (before Holm). Welch's t-test decides; the exact permutation p and the design's limits at Holm's
    threshold for a family of `family` cases are reported beside it (seeds_needed: a planning figure)."""
    better, worse = _finite(better), _finite(worse)
    if len(better) < 2 or len(worse) < 2:
        return _untestable("welch", [len(better), len(worse)], alpha, family,
                           f"fewer than 2 finished seeds ({len(better)} vs {len(worse)})")
    w = welch(better, worse)
    p_perm, p_min = permutation_p(better, worse)
    testable = not math.isnan(w["p_greater"])
    sd = math.sqrt((np.var(better, ddof=1) + np.var(worse, ddof=1)) / 2) if testable else NAN
    problem = None if testable else "every seed of both variants has the same score"
    return {"method": "welch", "n": [len(better), len(worse)], **w, "p_perm": p_perm, "p_min": p_min,
            "seeds_needed": seeds_needed(w["effect"], sd, alpha / family),
            "design": design(len(better), len(worse), alpha, family, sd), "problem": problem}


def paired(better, worse, alpha: float, family: int = 1) -> dict:
    """The claim 'better > worse' for arms that share seeds (initial weights, data order): a one-sided
    t-test on the per-seed differences better[i] - worse[i], with its 95% CI and the exact sign-flip p.
    A seed missing in either arm (non-finite) drops the pair. Same keys as compare()."""
    better, worse = np.asarray(better, float), np.asarray(worse, float)
    if better.shape != worse.shape or better.ndim != 1:
        raise ConfigError(f"paired needs one score per seed in both arms, aligned by seed; got shapes "
                          f"{better.shape} and {worse.shape}")
    d = (better - worse)[np.isfinite(better) & np.isfinite(worse)]
    if len(d) < 2:
        return _untestable("paired", [len(d)] * 2, alpha, family,
                           f"fewer than 2 seeds finished in both arms ({len(d)})")
    mean, sd = float(d.mean()), float(d.std(ddof=1))
    se, df = sd / math.sqrt(len(d)), len(d) - 1
    p_perm, p_min = signflip_p(d)
    common = {"method": "paired", "n": [len(d)] * 2, "effect": mean, "p_perm": p_perm, "p_min": p_min}
    if _constant(se, better.mean(), worse.mean()):  # every seed moved by the same amount: no spread to test
        return {**common, "ci": [mean, mean], "p_greater": NAN, "p_less": NAN, "df": NAN, "seeds_needed": None,
                "design": design(len(d), len(d), alpha, family, paired=True),
                "problem": "every seed has the same difference between the arms"}
    half = float(_t_ppf(0.975, df) * se)
    return {**common, "ci": [mean - half, mean + half], "p_greater": _t_sf(mean / se, df),
            "p_less": _t_cdf(mean / se, df), "df": float(df),
            "seeds_needed": seeds_needed(mean, sd, alpha / family, paired=True),
            "design": design(len(d), len(d), alpha, family, sd, paired=True), "problem": None}


def tost(better, worse, margin: float, alpha: float) -> dict:
    """Two one-sided Welch tests of equivalence: is |mean(better) - mean(worse)| < margin (score units)?

    p_lower tests H0 'effect <= -margin', p_upper tests H0 'effect >= +margin'; p_tost is the larger, and
    the arms are equivalent iff p_tost <= alpha. ci is the (1 - 2 alpha) Welch interval of the effect: it
    lies within [-margin, +margin] exactly when p_tost <= alpha (the report shows it beside the margin).
    Untestable (fewer than 2 seeds, or no spread) is never equivalent.
    """
    if not margin > 0:
        raise ConfigError(f"equivalence margin {margin!r} must be a positive number in the score's units")
    better, worse = _finite(better), _finite(worse)
    out = {"n": [len(better), len(worse)], "margin": float(margin), "ci_level": 1 - 2 * alpha}
    if len(better) < 2 or len(worse) < 2:
        return {**out, "effect": NAN, "ci": [NAN, NAN], "p_lower": NAN, "p_upper": NAN, "p_tost": NAN,
                "df": NAN, "equivalent": False,
                "problem": f"fewer than 2 finished seeds ({len(better)} vs {len(worse)})"}
    w = welch(better, worse)
    diff, df = w["effect"], w["df"]
    if math.isnan(df):
        return {**out, "effect": diff, "ci": [diff, diff], "p_lower": NAN, "p_upper": NAN, "p_tost": NAN,
                "df": NAN, "equivalent": False, "problem": "every seed of both variants has the same score"}
    se = math.sqrt(np.var(better, ddof=1) / len(better) + np.var(worse, ddof=1) / len(worse))
    p_lower, p_upper = _t_sf((diff + margin) / se, df), _t_cdf((diff - margin) / se, df)
    half = float(_t_ppf(1 - alpha, df) * se)
    p_tost = max(p_lower, p_upper)
    return {**out, "effect": diff, "ci": [diff - half, diff + half], "p_lower": p_lower, "p_upper": p_upper,
            "p_tost": p_tost, "df": df, "equivalent": p_tost <= alpha, "problem": None}


def trend(levels, scores_per_level) -> dict:
    """A linear trend of a score across ordered doses (e.g. bit depths 2, 4, 6, 8), seeds at each level.

    levels: k distinct dose values; scores_per_level: k 1-D sequences of per-seed scores (lengths may
    differ). slope is the least-squares slope of the level means on the levels (score units per unit of
    level; with equal seeds per level, the OLS slope through every seed's point). Its standard error uses
    each level's own variance, so unequal spread across doses does not inflate the test as it does the
    pooled OLS t-test (0.08 at nominal 0.05, 3 seeds per level, sd 0.016 to 0.09) or a rank test
    (Jonckheere-Terpstra assumes exchangeable levels). df is the conservative min(n) - 1 (Hsu's choice for
    Welch's statistic; for k = 2 this is Welch's statistic): Satterthwaite's df gave 0.056 in that case,
    this 0.035 (200,000 normal repetitions). Any monotone pattern of the true means gives a slope of that
    sign, but the test is of a trend, not of every step being monotone.
    Returns slope, its 95% ci, p_increasing / p_decreasing (one-sided), df, and per level: means, n.
    """
    x = np.asarray(levels, float)
    if x.ndim != 1 or len(x) < 2 or len(set(x.tolist())) != len(x) or not np.isfinite(x).all():
        raise ConfigError(f"trend needs at least 2 distinct finite dose levels; got {levels!r}")
    if len(scores_per_level) != len(x):
        raise ConfigError(f"trend got {len(scores_per_level)} lists of scores for {len(x)} levels; "
                          "pass one per level")
    ys = [_finite(y) for y in scores_per_level]
    n = [len(y) for y in ys]
    means = [float(y.mean()) if len(y) else NAN for y in ys]
    out = {"levels": x.tolist(), "means": means, "n": n}
    if min(n) < 2:
        return {**out, "slope": NAN, "ci": [NAN, NAN], "p_increasing": NAN, "p_decreasing": NAN, "df": NAN,
                "problem": f"fewer than 2 finished seeds at some level (seeds per level: {n})"}
    c = (x - x.mean()) / ((x - x.mean()) ** 2).sum()  # contrast weights: slope = c . means
    slope = float(c @ np.array(means))
    v = np.array([y.var(ddof=1) / len(y) for y in ys])  # squared standard error of each level's mean
    if _constant(math.sqrt(v.sum()), *means):
        return {**out, "slope": slope, "ci": [slope, slope], "p_increasing": NAN, "p_decreasing": NAN,
                "df": NAN, "problem": "every seed at each level has the same score"}
    se, df = math.sqrt(c ** 2 @ v), float(min(n) - 1)
    half = float(_t_ppf(0.975, df) * se)
    return {**out, "slope": slope, "ci": [slope - half, slope + half],
            "p_increasing": _t_sf(slope / se, df), "p_decreasing": _t_cdf(slope / se, df),
            "df": df, "problem": None}

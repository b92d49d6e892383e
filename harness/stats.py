"""Tradeoff scores, the comparison of two variants across seeds, and the verdict.

Shapes: one run's curve is two 1-D arrays of its per-epoch points, `clean` and `adv` (fractions in
[0, 1]); a variant's curves are arrays shaped (n_seeds, n_epochs). Every function returns plain floats,
strings and lists (they cross process boundaries as JSON).
"""
from __future__ import annotations

import itertools
import math

import numpy as np
from scipy import stats as st

SCORES = {  # name -> one line for the report; the first is the primary score that decides
    "dominated_area": "area of the (clean acc, adv acc) plane dominated by the run's per-epoch points "
                      "(hypervolume against the origin; larger is a better tradeoff)",
    "mean_adv_shared_range": "mean of the run's best adv acc at clean acc >= c, over the clean-acc range "
                             "every compared run covers (NaN when the ranges do not overlap)",
    "final_adv": "adversarial accuracy after the last epoch",
    "area_over_epochs": "mean adversarial accuracy over epochs (trapezoidal area / number of epochs - 1)",
}
PRIMARY = "dominated_area"
VERDICTS = ("supported", "contradicted", "inconclusive")


def dominated_area(clean, adv) -> float:
    """Area of the union of the rectangles [0, clean_i] x [0, adv_i]."""
    pts = sorted(zip(np.asarray(clean, float), np.asarray(adv, float)), key=lambda p: -p[0])
    area, best_adv = 0.0, 0.0
    for i, (c, a) in enumerate(pts):
        best_adv = max(best_adv, a)
        next_c = pts[i + 1][0] if i + 1 < len(pts) else 0.0
        area += (c - next_c) * best_adv
    return float(area)


def envelope(clean, adv, c: float) -> float:
    """Best adversarial accuracy among the run's points with clean accuracy >= c (0 if none)."""
    clean, adv = np.asarray(clean, float), np.asarray(adv, float)
    ok = clean >= c
    return float(adv[ok].max()) if ok.any() else 0.0


def shared_range(cleans) -> tuple[float, float]:
    """The clean-accuracy interval every run covers: [max of the minima, min of the maxima]."""
    return float(max(np.min(c) for c in cleans)), float(min(np.max(c) for c in cleans))


def mean_adv_over_range(clean, adv, lo: float, hi: float) -> float:
    """Mean of the envelope over [lo, hi]; its value at lo when the range is a point; NaN if empty."""
    if hi < lo:
        return float("nan")
    if hi == lo:
        return envelope(clean, adv, lo)
    # The envelope is a step function that changes only at the run's clean values: integrate exactly.
    cuts = sorted({lo, hi, *[c for c in np.asarray(clean, float) if lo < c < hi]})
    area = sum((b - a) * envelope(clean, adv, b) for a, b in zip(cuts, cuts[1:]))
    return float(area / (hi - lo))


def area_over_epochs(adv) -> float:
    adv = np.asarray(adv, float)
    return float(adv[0]) if len(adv) == 1 else float((adv[1:] + adv[:-1]).sum() / 2 / (len(adv) - 1))


def scores(clean: np.ndarray, adv: np.ndarray, lo: float, hi: float) -> dict[str, list[float]]:
    """Every score for each seed. clean, adv: (n_seeds, n_epochs); [lo, hi]: the shared clean range."""
    return {
        "dominated_area": [dominated_area(c, a) for c, a in zip(clean, adv)],
        "mean_adv_shared_range": [mean_adv_over_range(c, a, lo, hi) for c, a in zip(clean, adv)],
        "final_adv": [float(a[-1]) for a in adv],
        "area_over_epochs": [area_over_epochs(a) for a in adv],
    }


def welch(a, b) -> dict:
    """Difference of means (a - b), its 95% Welch interval, and one-sided p-values in both directions."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    # Identical scores within each variant: no test is possible, decide nothing. Relative, because the
    # variance of equal floats can come out as 1e-33 instead of 0, which would make any difference "significant".
    if se <= 1e-12 * max(1.0, abs(a.mean()), abs(b.mean())):
        return {"effect": diff, "ci": [diff, diff], "p_greater": float("nan"), "p_less": float("nan"),
                "df": float("nan")}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    t = diff / se
    half = float(st.t.ppf(0.975, df) * se)
    return {"effect": diff, "ci": [diff - half, diff + half], "p_greater": float(st.t.sf(t, df)),
            "p_less": float(st.t.cdf(t, df)), "df": float(df)}


def permutation_p(a, b, max_exact: int = 200_000, samples: int = 20_000) -> tuple[float, float]:
    """One-sided p of mean(a) - mean(b) >= observed over relabelings, and the smallest p possible.

    Exact enumeration when there are at most `max_exact` relabelings, else a seeded Monte Carlo.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    pooled, na = np.concatenate([a, b]), len(a)
    observed = a.mean() - b.mean()
    total = math.comb(len(pooled), na)
    if total <= max_exact:
        splits = (list(idx) for idx in itertools.combinations(range(len(pooled)), na))
        n = total
    else:
        rng = np.random.default_rng(0)
        splits = (rng.permutation(len(pooled))[:na] for _ in range(samples))
        n = samples
    hits = 0
    for idx in splits:
        mask = np.zeros(len(pooled), bool)
        mask[idx] = True
        hits += pooled[mask].mean() - pooled[~mask].mean() >= observed - 1e-12
    return float(hits / n), float(1 / total)


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


def power(effect: float, sd: float, n: int, alpha: float) -> float:
    """Power of the one-sided two-sample t-test with n per group at a true difference `effect`."""
    if sd <= 0 or n < 2:
        return float("nan")
    df = 2 * n - 2
    nc = effect / (sd * math.sqrt(2 / n))
    return float(st.nct.sf(st.t.ppf(1 - alpha, df), df, nc))


def seeds_needed(effect: float, sd: float, alpha: float, target: float = 0.8, cap: int = 100_000) -> int | None:
    """Seeds per variant for `target` power at `effect`; None when the effect is not in the claimed
    direction, or more than `cap` seeds would be needed."""
    if not effect > 0 or not sd > 0:
        return None
    # The normal approximation is a slight underestimate for the t-test: start there and walk up.
    z = st.norm.ppf(1 - alpha) + st.norm.ppf(target)
    n = max(2, math.ceil(2 * (z * sd / effect) ** 2) - 2)
    while n <= cap:
        if power(effect, sd, n, alpha) >= target:
            return n
        n += 1
    return None


def compare(better, worse, alpha: float) -> dict:
    """The claim 'better > worse' on per-seed scores: the evidence for one case (before Holm)."""
    better, worse = [x for x in better if math.isfinite(x)], [x for x in worse if math.isfinite(x)]
    if len(better) < 2 or len(worse) < 2:
        return {"n": [len(better), len(worse)], "effect": float("nan"), "ci": [float("nan")] * 2,
                "p_greater": float("nan"), "p_less": float("nan"), "p_perm": float("nan"),
                "p_min": float("nan"), "seeds_needed": None,
                "problem": f"fewer than 2 finished seeds ({len(better)} vs {len(worse)})"}
    w = welch(better, worse)
    p_perm, p_min = permutation_p(better, worse)
    sd = math.sqrt((np.var(better, ddof=1) + np.var(worse, ddof=1)) / 2)
    problem = "every seed of both variants has the same score" if math.isnan(w["p_greater"]) else None
    return {"n": [len(better), len(worse)], **w, "p_perm": p_perm, "p_min": p_min,
            "seeds_needed": seeds_needed(w["effect"], sd, alpha), "problem": problem}


def verdict(p_adj_greater: float, p_adj_less: float, alpha: float) -> str:
    if p_adj_greater <= alpha:
        return "supported"
    if p_adj_less <= alpha:
        return "contradicted"
    return "inconclusive"  # includes NaN: an untestable case never passes

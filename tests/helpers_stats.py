"""Null data and vectorised twins of the scalar tests, for calibration by simulation.

Shapes: a batch of seed scores is an array shaped (reps, ..., n_seeds); the twins reduce the last axis
and return arrays shaped (reps, ...). Each twin is checked against its scalar original in
tests/test_calibration.py, so the simulations speak for the functions the suite runs.
"""
from __future__ import annotations

import numpy as np
from scipy import stats as st


def beta_scores(rng: np.random.Generator, shape, mean: float, concentration: float) -> np.ndarray:
    """Bounded scores in [0, 1] with the given mean and variance mean (1 - mean) / (concentration + 1):
    a small concentration gives a wide, skewed arm, a large one a tight arm."""
    return rng.beta(mean * concentration, (1 - mean) * concentration, size=shape)


def null_families(rng: np.random.Generator, reps: int, n_better: int, n_worse: int, datasets: int,
                  mean: float, conc_better: float, conc_worse: float, shift: float = 0.0):
    """(better, worse) seed scores shaped (reps, datasets, n): one claim's Holm family per rep, each
    dataset an independent draw. The arms' true means differ by exactly `shift` (better - worse); their
    variances differ through the concentrations."""
    better = beta_scores(rng, (reps, datasets, n_better), mean + shift, conc_better)
    worse = beta_scores(rng, (reps, datasets, n_worse), mean, conc_worse)
    return better, worse


def welch_batch(a: np.ndarray, b: np.ndarray) -> dict[str, np.ndarray]:
    """harness.judge.inference.welch, then `read`, over the last axis: effect, se, Hsu's df, p_greater, p_less
    (NaN where both arms are constant, as the scalar decides)."""
    va, vb = a.var(axis=-1, ddof=1) / a.shape[-1], b.var(axis=-1, ddof=1) / b.shape[-1]
    effect, se = a.mean(-1) - b.mean(-1), np.sqrt(va + vb)
    scale = np.maximum(1.0, np.maximum(np.abs(a.mean(-1)), np.abs(b.mean(-1))))
    ok = se > 1e-12 * scale
    with np.errstate(divide="ignore", invalid="ignore"):
        df = np.where(ok, min(a.shape[-1], b.shape[-1]) - 1.0, np.nan)
        t = np.where(ok, effect / se, np.nan)
    return {"effect": effect, "se": se, "df": df, "p_greater": st.t.sf(t, df), "p_less": st.t.cdf(t, df)}


def tost_batch(a: np.ndarray, b: np.ndarray, margin: float, alpha: float) -> np.ndarray:
    """Whether harness.judge.inference.tost's p_tost <= alpha, over the last axis (False where untestable)."""
    w = welch_batch(a, b)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_tost = np.maximum(st.t.sf((w["effect"] + margin) / w["se"], w["df"]),
                            st.t.cdf((w["effect"] - margin) / w["se"], w["df"]))
    return p_tost <= alpha  # NaN compares False: untestable is never equivalent


def trend_batch(levels, y: np.ndarray) -> dict[str, np.ndarray]:
    """harness.judge.inference.trend, then `read`, over a batch: y shaped (reps, n_levels, n_seeds); slope,
    p_increasing."""
    x = np.asarray(levels, float)
    c = (x - x.mean()) / ((x - x.mean()) ** 2).sum()
    se, slope = np.sqrt(y.var(axis=-1, ddof=1) / y.shape[-1] @ c ** 2), y.mean(-1) @ c
    return {"slope": slope, "p_increasing": st.t.sf(slope / se, y.shape[-1] - 1)}

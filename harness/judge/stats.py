"""Tradeoff scores of a run's (clean, adv) curve. The tests on them live in `inference`.

Shapes: one run's curve is two 1-D arrays of its per-epoch points, `clean` and `adv` (fractions in
[0, 1]); a variant's curves are arrays shaped (n_seeds, n_epochs). Every function returns plain floats,
strings and lists (they cross process boundaries as JSON).
"""
from __future__ import annotations

import numpy as np

# Re-exported until the core imports them from `inference` (their one home); then delete this line.

SCORES = {  # name -> one line for the report; the first is the primary score that decides
    "dominated_area": "area of the (clean acc, adv acc) plane dominated by the run's per-epoch points "
                      "(hypervolume against the origin; larger is a better tradeoff)",
    "mean_adv_shared_range": "mean of the run's best adv acc at clean acc >= c, over the clean-acc range "
                             "every compared run covers (NaN when the ranges do not overlap)",
    "final_adv": "adversarial accuracy after the last epoch",
    "area_over_epochs": "mean adversarial accuracy over epochs (trapezoidal area / number of epochs - 1)",
}
PRIMARY = "dominated_area"


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

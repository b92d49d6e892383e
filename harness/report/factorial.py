"""A declared factorial design (harness.spec.design.Factorial) read off a session's results: per dataset,
the cell means at the claims' deciding eps and the design's contrasts of them.

A cell's runs are those its arm name holds in the cases of the modules that declare the design, at their
deciding eps; the modules share them through the cache, so a run counts once however many modules name it.
Each cell: the per-seed primary score of its finished runs on the strongest attack (the score the claims
decide on), on a clean-accuracy range shared by the whole table. A contrast is sum(w_i * mean_i); its 95%
interval treats the cells as independent samples (standard error from each cell's own variance, df = the
smallest cell's seeds - 1, as harness.judge.inference.trend), NaN below 2 seeds per cell. Descriptive: the
claim modules decide.

Pure: Case and Run objects in, plain data out; nothing here knows which claims or pipelines a design has.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as st

from ..judge import stats
from ..spec.design import Factorial
from ..spec.records import Run


def tables(designs: list[Factorial], cases, runs: dict[str, Run]) -> list[dict]:
    """One table per design, dataset and deciding eps where every cell has runs. cases: harness.spec.case.Case
    objects; runs: results.json's runs by key."""
    out = []
    for design in designs:
        groups: dict[tuple, dict[str, dict[str, Run]]] = {}  # (dataset, eps, score) -> cell -> key -> run
        for case in cases:
            if case.module in design.modules and case.eps == case.deciding_eps:
                cells = groups.setdefault((case.dataset, case.eps, case.primary), {c: {} for c in design.cells})
                for arm in set(case.run_keys) & set(design.cells):
                    cells[arm].update((k, runs[k]) for k in case.run_keys[arm])
        out += [_table(design, *where, cells) for where, cells in groups.items() if all(cells.values())]
    return out


def _table(design: Factorial, dataset: str, eps: float, score: str, cell_runs: dict[str, dict[str, Run]]) -> dict:
    finished = {c: [r for r in rs.values() if r.done] for c, rs in cell_runs.items()}
    curves = {c: [r.curve(eps) for r in rs] for c, rs in finished.items()}
    cleans = [clean for cs in curves.values() for clean, _ in cs]
    lo, hi = stats.shared_range(cleans) if cleans else (math.nan, math.nan)
    cells = {}
    for c in design.cells:
        scores = [stats.scores(np.array([clean]), np.array([adv]), lo, hi)[score][0] for clean, adv in curves[c]]
        scores = [s for s in scores if math.isfinite(s)]
        cells[c] = {"n": len(scores), "scores": scores, "mean": float(np.mean(scores)) if scores else math.nan,
                    "sd": float(np.std(scores, ddof=1)) if len(scores) > 1 else math.nan,
                    "not_finished": sorted(r.label for r in cell_runs[c].values() if r.status != "done")}
    config = next(iter(next(iter(cell_runs.values())).values())).config  # what the table's runs are
    return {"design": design, "dataset": dataset, "eps": eps, "score": score, "model": config.variant.model,
            "input_size": config.variant.input_size, "epochs": config.epochs, "cells": cells,
            "effects": [{"name": c.name, "what": c.what, **contrast(cells, c.weights)} for c in design.contrasts]}


def contrast(cells: dict, weights: dict[str, float]) -> dict:
    """sum(w_i * mean_i) over the weighted cells, its standard error sqrt(sum(w_i^2 sd_i^2 / n_i)), and a 95% t
    interval with df = min(n_i) - 1 over the cells it uses (NaN below 2 seeds in any of them)."""
    used = [(w, cells[c]) for c, w in weights.items() if w]
    estimate = float(sum(w * cell["mean"] for w, cell in used))
    n = min(cell["n"] for _, cell in used)
    if n < 2:
        return {"estimate": estimate, "se": math.nan, "ci": [math.nan, math.nan], "df": math.nan}
    se = math.sqrt(sum(w * w * cell["sd"] ** 2 / cell["n"] for w, cell in used))
    half = float(st.t.ppf(0.975, n - 1) * se)
    return {"estimate": estimate, "se": se, "ci": [estimate - half, estimate + half], "df": float(n - 1)}

"""H1's 2x2 design read off a session's results: normalization x rounding, one table per dataset.

The four pipelines of harness.run.pipelines are the cells: baseline (normalized, float), plain (unnormalized,
float), round (unnormalized, rounded), norm_round (normalized, rounded). Runs fall into one table when
their configs differ in nothing but the pipeline, the seed and the attack modes and restarts (a rounding
arm is attacked in its rounding modes, a float arm with as many restarts), so the table holds exactly the runs the H1 modules share; a `round`
run at another bit depth than 8 (the dose hypothesis's) is left out.

Each cell: the per-seed primary score of its finished runs at the claims' deciding eps, on the strongest
attack (the score the claims decide on). Effects are contrasts of the cell means: the two rounding effects
at a fixed input scale, the main effects, the interaction (NormRound - Baseline) - (Round - Plain), and
the post's Round - Baseline (rounding plus dropping normalization). Descriptive: the claim modules decide;
the 95% intervals treat the cells as independent samples (standard error from each cell's own variance,
df = the smallest cell's seeds - 1, as harness.judge.inference.trend), and are NaN below 2 seeds per cell.

Pure: Case and Run objects in, plain data out.
"""
from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
from scipy import stats as st

from ..judge import stats
from ..spec.config import eps_key
from ..spec.records import Run

CELLS = ("Baseline", "Plain", "Round", "NormRound")  # the order of every contrast's weights
PIPELINE_CELL = {"baseline": "Baseline", "plain": "Plain", "round": "Round", "norm_round": "NormRound"}
LAYOUT = {  # (normalized, rounded) -> cell: the table's rows and columns
    (True, False): "Baseline", (True, True): "NormRound", (False, False): "Plain", (False, True): "Round"}
EFFECTS = (  # name, weights over CELLS, what it isolates
    ("rounding, unnormalized: Round − Plain", (0, -1, 1, 0), "rounding alone, [0, 1] inputs"),
    ("rounding, normalized: NormRound − Baseline", (-1, 0, 0, 1), "rounding alone, normalized inputs"),
    ("rounding, main effect", (-.5, -.5, .5, .5), "mean of the two rounding effects"),
    ("normalization, main effect", (.5, -.5, -.5, .5), "mean of Baseline − Plain and NormRound − Round"),
    ("interaction: (NormRound − Baseline) − (Round − Plain)", (-1, 1, -1, 1),
     "how much rounding's effect depends on normalization"),
    ("the post's comparison: Round − Baseline", (-1, 0, 1, 0), "rounding and dropping normalization at once"),
)


def tables(cases, runs: dict[str, Run]) -> list[dict]:
    """The 2x2 tables the cases' runs fill: one per group of runs that differ only in pipeline and seed,
    at a deciding eps, where all four pipelines have runs. cases: harness.spec.case.Case objects; runs:
    results.json's runs by key."""
    groups: dict[str, dict] = {}
    for case in cases:
        if case.eps != case.deciding_eps:
            continue
        for k in (k for keys in case.run_keys.values() for k in keys):
            run = runs[k]
            variant = run.config.variant
            cell = PIPELINE_CELL.get(variant.pipeline)
            if cell is None or variant.pipeline_kwargs.get("bits", 8) != 8:
                continue
            g = groups.setdefault(_group(run, case), {
                "dataset": case.dataset, "model": variant.model, "input_size": variant.input_size,
                "eps": case.deciding_eps, "score": case.primary, "epochs": run.config.epochs,
                "runs": {c: {} for c in CELLS}})
            g["runs"][cell][k] = run
    return [_table(g) for g in groups.values() if all(g["runs"][c] for c in CELLS)]


def _group(run: Run, case) -> str:
    """What a run shares with the other cells of its table: its config but pipeline, seed and attack modes and
    restarts (a float arm's restarts match a rounding arm's gradient modes: harness.spec.plan's equal effort)."""
    config = dataclasses.asdict(run.config)
    rest = {**config, "seed": None, "variant": {**config["variant"], "pipeline": None},
            "attack": {**config["attack"], "modes": None, "restarts": None}}
    return json.dumps([rest, case.deciding_eps, case.primary], sort_keys=True)


def _table(g: dict) -> dict:
    finished = {c: [r for r in rs.values() if r.done] for c, rs in g["runs"].items()}
    curves = {c: [r.curve(g["eps"]) for r in rs] for c, rs in finished.items()}
    cleans = [clean for cs in curves.values() for clean, _ in cs]
    lo, hi = stats.shared_range(cleans) if cleans else (math.nan, math.nan)
    cells = {}
    for c in CELLS:
        scores = [stats.scores(np.array([clean]), np.array([adv]), lo, hi)[g["score"]][0] for clean, adv in curves[c]]
        scores = [s for s in scores if math.isfinite(s)]
        cells[c] = {"n": len(scores), "scores": scores, "mean": float(np.mean(scores)) if scores else math.nan,
                    "sd": float(np.std(scores, ddof=1)) if len(scores) > 1 else math.nan,
                    "not_finished": sorted(r.label for r in g["runs"][c].values() if r.status != "done")}
    return {**{k: g[k] for k in ("dataset", "model", "input_size", "eps", "score", "epochs")}, "cells": cells,
            "effects": [{"name": name, "what": what, **contrast(cells, w)} for name, w, what in EFFECTS]}


def contrast(cells: dict, weights) -> dict:
    """sum(w_i * mean_i) over CELLS, its standard error sqrt(sum(w_i^2 sd_i^2 / n_i)), and a 95% t
    interval with df = min(n_i) - 1 over the cells it uses (NaN below 2 seeds in any of them)."""
    used = [(w, cells[c]) for w, c in zip(weights, CELLS) if w]
    estimate = float(sum(w * cell["mean"] for w, cell in used))
    n = min(cell["n"] for _, cell in used)
    if n < 2:
        return {"estimate": estimate, "se": math.nan, "ci": [math.nan, math.nan], "df": math.nan}
    se = math.sqrt(sum(w * w * cell["sd"] ** 2 / cell["n"] for w, cell in used))
    half = float(st.t.ppf(0.975, n - 1) * se)
    return {"estimate": estimate, "se": se, "ci": [estimate - half, estimate + half], "df": float(n - 1)}

"""H1's 2x2 design and the bit-depth dose as hypothesis modules: they collect, and identical arms across
modules are identical runs (the same cache keys), so the design costs four arms, not eight."""
import dataclasses
import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import NO_CHECKS, make_run
from harness.spec import plan
from harness.judge import verdict
from harness.spec.claim import TrendClaim
from harness.spec.config import PROFILES, key

ROOT = Path(__file__).resolve().parent.parent
H1 = ("test_quantized_input", "test_rounding_unnormalized", "test_rounding_normalized", "test_normalization_report")
DOSE = "test_bit_depth_dose"


def _module(module: str):
    spec = importlib.util.spec_from_file_location(f"h1_{module}", ROOT / "hypotheses" / f"{module}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _claim(module: str):
    return _module(module).CLAIM


def _keys(module: str, profile: str, dataset: str = "cifar10") -> dict[str, list[str]]:
    """arm -> its runs' cache keys, as the executor makes them (config.key; one fixed data fingerprint and code)."""
    claim = _claim(module)
    p = plan.Plan(claim=claim, profile=PROFILES[profile], datasets=(dataset,), eps=claim.eps)
    return {arm: [key(c, "data-fingerprint", "code") for c in cs]
            for arm, cs in plan.run_configs(p, dataset, "fp32").items()}


@pytest.mark.parametrize("profile", ["paper", "smoke"])
def test_the_h1_modules_share_runs_through_the_cache(profile):
    keys = {m: _keys(m, profile) for m in H1 + (DOSE,)}
    arms = {}  # arm -> the keys every module that names it gives it
    for m in H1:
        for arm, ks in keys[m].items():
            arms.setdefault(arm, []).append(ks)
    arms.setdefault("Round", []).append(keys[DOSE]["8 bits"])  # the dose's 8-bit level is H1's Round
    assert {arm: len(lists) for arm, lists in arms.items()} == {"Baseline": 3, "Round": 3, "Plain": 2, "NormRound": 1}
    for arm, lists in arms.items():
        assert all(ks == lists[0] for ks in lists), f"{arm} runs differ between modules"
    distinct = {k for lists in arms.values() for k in lists[0]} | {k for a, ks in keys[DOSE].items() for k in ks}
    seeds = len(PROFILES[profile].seeds)
    assert len(distinct) == (4 + 3) * seeds  # four 2x2 cells, plus the 6-, 4- and 2-bit levels


def test_the_report_claim_is_computed_and_never_decides():
    claim = _claim("test_normalization_report")
    assert claim.decides is False and claim.factor == "pipeline"
    runs = {arm: [make_run(f"{arm}{s}", [0.5], [a + d], dataset_used="cifar10")
                  for s, d in enumerate((0.0, 0.01, 0.02))] for arm, a in (("Plain", 0.3), ("Baseline", 0.1))}
    p = plan.Plan(claim=claim, profile=PROFILES["paper"], datasets=("cifar10",), eps=(1.0,))
    case = verdict.judge(p, "cifar10", 1.0, {"cifar10": runs}, NO_CHECKS, 0.05)
    assert case.verdict == "supported" and not case.decides and case.outcome == "skipped"
    assert "this claim is a report" in verdict.message(case)
    assert case.test.holm_family == ["cifar10 eps=1"]  # adjusted like a deciding case
    deciding = verdict.judge(dataclasses.replace(p, claim=dataclasses.replace(claim, decides=True)), "cifar10", 1.0,
                             {"cifar10": runs}, NO_CHECKS, 0.05)
    assert deciding.decides and deciding.outcome == "passed"


def test_the_post_pair_and_the_dose_state_what_the_source_claimed():
    post = _claim("test_quantized_input")
    assert (post.better, post.worse, post.factor) == ("Round", "Baseline", "pipeline")
    assert post.claimed.direction == "better" and "Figure 1" in post.claimed.source
    dose = _claim(DOSE)
    assert isinstance(dose, TrendClaim) and dose.expect == dose.claimed.direction == "decreasing"
    assert dose.doses == (2.0, 4.0, 6.0, 8.0) and dose.datasets == ("cifar10",)


def test_collect_only_lists_every_h1_module(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "pytest", "hypotheses/", "--collect-only", "-q", "-p",
                           "no:cacheprovider", "--profile", "smoke", f"--cache-dir={tmp_path / 'c'}",
                           f"--reports-dir={tmp_path / 'r'}"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for m in H1 + (DOSE,):
        assert sum(line.startswith(f"hypotheses/{m}.py::") for line in proc.stdout.splitlines()) == 4, m


def test_the_h1_modules_declare_the_2x2_whose_levels_are_what_their_pipelines_do():
    """hypotheses/h1_2x2.py as data: every H1 module declares it, names only its cells, and each cell's declared
    levels are what that arm's pipeline does to a grey image (normalized: mean -> 0; rounded: `rounds`)."""
    import torch
    from harness.run import pipelines
    from hypotheses.h1_2x2 import H1_2X2
    arms = {}
    for m in H1:
        mod = _module(m)
        assert mod.DESIGN == H1_2X2, m
        assert set(mod.CLAIM.variants) <= set(H1_2X2.cells), m
        arms.update(mod.CLAIM.variants)
    assert set(arms) == set(H1_2X2.cells)  # the four modules fill all four cells
    assert not hasattr(_module(DOSE), "DESIGN")  # the dose's 8-bit level is Round's runs, but not a cell
    grey = 128 / 255  # on the 8-bit grid, so rounding leaves it, and the mean normalization maps to 0
    for arm, variant in arms.items():
        normalization, rounding = H1_2X2.cells[arm]
        pipe = pipelines.create(variant.pipeline, (grey,) * 3, (0.25,) * 3, None, **variant.pipeline_kwargs)
        assert (normalization == "normalized") == bool(pipe(torch.full((1, 3, 4, 4), grey)).abs().max() < 1e-6), arm
        assert (rounding == "rounded (8-bit)") == pipe.rounds, arm

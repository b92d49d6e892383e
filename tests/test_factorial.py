"""H1's 2x2 table (harness.report.factorial) and the dose-response section, from a results.json built here: the
real H1 modules' run configs and keys, constructed records, cases judged by the real verdict module."""
import importlib.util
import math
from pathlib import Path

import pytest

from helpers import NO_CHECKS, make_run, run_dict
from harness.report import factorial, page as report
from harness.spec import plan, results
from harness.judge import verdict
from harness.spec.case import Case
from harness.spec.config import PROFILES, key

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("test_quantized_input", "test_rounding_unnormalized", "test_rounding_normalized",
           "test_normalization_report", "test_bit_depth_dose")
ADV = {"Baseline": 0.10, "Plain": 0.14, "Round": 0.20, "NormRound": 0.12,  # the 2x2 cells
       "2 bits": 0.30, "4 bits": 0.26, "6 bits": 0.22, "8 bits": 0.20}  # the dose (8 bits = Round's runs)
SEED = (0.0, 0.01, 0.02)  # added to a run's adversarial accuracy, per seed


def _claim(module):
    spec = importlib.util.spec_from_file_location(f"fact_{module}", ROOT / "hypotheses" / f"{module}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.CLAIM


def _doc(drop_cell: str | None = None) -> dict:
    """A paper-profile session of the five modules on cifar10 at eps 1: every run one epoch at clean 0.5, so
    its dominated area is 0.5 * adv."""
    doc = results.new({"profile": "paper", "alpha": 0.05})
    for module in MODULES:
        claim = _claim(module)
        p = plan.Plan(claim=claim, profile=PROFILES["paper"], datasets=("cifar10",), eps=(1.0,))
        runs = {}
        for arm, cs in plan.run_configs(p, "cifar10", "fp32").items():
            runs[arm] = [make_run(key(c, "fp", "code"), [0.5], [ADV[arm] + d], config=c, dataset_used="cifar10",
                                  label=c.label, status="done" if arm != drop_cell else "failed")
                         for c, d in zip(cs, SEED)]
        case = verdict.judge(p, "cifar10", 1.0, {"cifar10": runs}, NO_CHECKS, 0.05,
                             nodeid=f"hypotheses/{module}.py::t[cifar10-eps1]", module=module)
        results.add(doc, {"case": case.to_dict(), "runs": {r.key: run_dict(r) for rs in runs.values() for r in rs}})
    doc["partial"] = False
    results.parse(doc)
    return doc


def _tables(doc):
    typed = results.parse(doc)
    return factorial.tables(typed.cases, typed.runs)


def test_the_2x2_table_holds_each_cell_once_with_its_effects_and_interaction():
    doc = _doc()
    assert len(doc["runs"]) == 7 * 3  # 4 cells + 3 dose levels, 3 seeds each: shared between modules
    [t] = _tables(doc)
    assert (t["dataset"], t["model"], t["input_size"], t["eps"], t["score"]) == ("cifar10", "vit_tiny", 224, 1.0,
                                                                                 "dominated_area")
    cells = t["cells"]
    # three seeds a cell: the 2- to 6-bit runs of the dose are not Round's
    assert {c: cells[c]["n"] for c in factorial.CELLS} == dict.fromkeys(factorial.CELLS, 3)
    assert cells["Round"]["mean"] == pytest.approx(0.5 * 0.21) and cells["Baseline"]["mean"] == pytest.approx(0.055)
    assert cells["Plain"]["sd"] == pytest.approx(0.005)
    effect = {e["name"].split(":")[0]: e for e in t["effects"]}
    assert effect["rounding, unnormalized"]["estimate"] == pytest.approx(0.03)
    assert effect["rounding, normalized"]["estimate"] == pytest.approx(0.01)
    assert effect["interaction"]["estimate"] == pytest.approx((0.065 - 0.055) - (0.105 - 0.075))
    assert effect["rounding, main effect"]["estimate"] == pytest.approx(0.02)
    assert effect["normalization, main effect"]["estimate"] == pytest.approx(-0.03)
    assert effect["the post's comparison"]["estimate"] == pytest.approx(0.05)
    # Round - Plain: se = sqrt(2 * 0.005^2 / 3); 95% t interval with 2 df
    half = 4.302652729911275 * math.sqrt(2 * 0.005 ** 2 / 3)
    assert effect["rounding, unnormalized"]["ci"] == pytest.approx([0.03 - half, 0.03 + half])


def test_no_table_without_four_cells_and_a_cell_without_finished_runs_has_no_numbers():
    doc = _doc(drop_cell="NormRound")
    [t] = _tables(doc)  # the runs exist (failed): the table shows the hole
    assert t["cells"]["NormRound"]["n"] == 0 and len(t["cells"]["NormRound"]["not_finished"]) == 3
    effect = {e["name"].split(":")[0]: e for e in t["effects"]}
    assert math.isnan(effect["interaction"]["estimate"]) and effect["rounding, unnormalized"]["estimate"] > 0
    only_post = [c for c in (Case.from_dict(c) for c in doc["cases"]) if c.module == "test_quantized_input"]
    assert factorial.tables(only_post, results.parse(doc).runs) == []  # two pipelines are not a 2x2


def test_the_page_shows_the_2x2_and_the_dose_response():
    doc = _doc()
    html = report.page(results.parse(doc), "t")
    assert "<h2>H1's 2x2: normalization × rounding</h2>" in html
    assert "interaction: (NormRound − Baseline) − (Round − Plain)" in html and "-0.0200" in html
    assert "<h2>Dose response</h2>" in html and 'alt="dose response of hypotheses/test_bit_depth_dose.py' in html
    dose = next(Case.from_dict(c) for c in doc["cases"] if c["trend"])
    assert dose.verdict == "supported" and dose.trend.slope == pytest.approx(  # OLS on 2, 4, 6, 8 bits
        sum(x * 0.5 * ADV[f"{b} bits"] for x, b in zip((-3, -1, 1, 3), (2, 4, 6, 8))) / 20)
    assert f"slope per bits: {dose.trend.slope:+.4g}" in html  # the summary's effect column for a trend
    assert html.count("<img ") == 1 + len(doc["cases"])  # the dose figure, and one figure per case

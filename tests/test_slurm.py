"""JobArray against a real single-node SLURM cluster (tools/slurm/cluster.sh; the slurm_cluster
fixture starts it). Skipped, with the reason, where slurm-wlm, munge or submitit are missing, or where the
cluster cannot start (it needs root: without systemd or cgroups, slurmd runs jobs as the user who starts it).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

submitit = pytest.importorskip("submitit", reason="submitit is not installed: pip install -e .[test]")
import cloudpickle  # noqa: E402  (submitit's dependency)

from harness.spec.config import ConfigError  # noqa: E402
from harness.executors.slurm import JobArray  # noqa: E402
from harness.plugin.settings import SlurmOptions  # noqa: E402

# The jobs unpickle this module's job function; SLURM's job cannot import a pytest test module by name.
cloudpickle.register_pickle_by_value(sys.modules[__name__])


@dataclass(frozen=True)
class Spec:
    """One stand-in run: `epochs` steps of `epoch_s` seconds, each published as a file under folder/name."""
    folder: str
    name: str
    epochs: int = 1
    epoch_s: float = 0.0
    fail: bool = False


def slurm_job_id() -> str:
    """This job's id as scancel takes it: ARRAYID_TASKID for an array task (scancel ignores the raw id)."""
    if "SLURM_ARRAY_JOB_ID" in os.environ:
        return f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
    return os.environ["SLURM_JOB_ID"]


def train_like(spec: Spec) -> None:
    """Stands in for training one run into the cache: resumes after the last published epoch, and logs the
    epoch it started from on each attempt."""
    folder = Path(spec.folder) / spec.name
    folder.mkdir(exist_ok=True)
    first = len(list(folder.glob("epoch-*")))
    with open(folder / "starts", "a") as f:
        f.write(f"{first}\n")
    if spec.fail:
        raise ValueError(f"run {spec.name} fails on purpose")
    for epoch in range(first, spec.epochs):
        time.sleep(spec.epoch_s)
        (folder / f"epoch-{epoch}").write_text(slurm_job_id())


def starts(tmp_path, name) -> list[int]:
    return [int(x) for x in (tmp_path / name / "starts").read_text().split()]


CPU_JOBS = SlurmOptions(gpus=0, time_min=5, parallel=2)  # --slurm-* as settings.read checks them


def executor(tmp_path) -> JobArray:
    return JobArray(tmp_path / "logs", CPU_JOBS, poll_s=0.5, state_check_s=2)


def test_the_options_become_slurm_parameters_and_a_missing_sbatch_is_refused_with_the_fix(tmp_path, monkeypatch):
    given = SlurmOptions(partition="gpu", gpus=2, time_min=2, parallel=4, cpus=8, mem_gb=1.5)
    assert JobArray(tmp_path, given, setup=["export A=1"]).parameters == {
        "job_name": "advhyp", "time": 2, "array_parallelism": 4, "signal_delay_s": 60, "partition": "gpu",
        "setup": ["export A=1"], "gpus_per_node": 2, "cpus_per_task": 8, "mem": "1536M"}
    assert set(executor(tmp_path).parameters) == {"job_name", "time", "array_parallelism", "signal_delay_s"}
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch here
    with pytest.raises(ConfigError, match=r"needs SLURM's sbatch on PATH.*cluster\.sh start"):
        executor(tmp_path).run(train_like, [Spec(str(tmp_path), "a")])


def listening_addresses(port: int) -> set[str]:
    """The local addresses (hex, as /proc/net/tcp writes them) of TCP sockets listening on port."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            local, state = row.split()[1], row.split()[3]
            address, hex_port = local.rsplit(":", 1)
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def test_the_cluster_listens_on_loopback_only(slurm_cluster):
    conf = dict(line.split("=", 1) for line in Path(os.environ["SLURM_CONF"]).read_text().splitlines()
                if line.startswith(("SlurmctldPort=", "SlurmdPort=")))
    for key in ("SlurmctldPort", "SlurmdPort"):
        assert listening_addresses(int(conf[key])) == {"0100007F"}, key  # 127.0.0.1 only


def test_an_array_of_two_runs_both_finish(slurm_cluster, tmp_path):
    calls = []
    specs = [Spec(str(tmp_path), "a"), Spec(str(tmp_path), "b")]
    assert executor(tmp_path).run(train_like, specs, progress=lambda: calls.append(1)) == [None, None]
    for name in ("a", "b"):
        assert (tmp_path / name / "epoch-0").exists() and starts(tmp_path, name) == [0]
    assert calls, "progress() was never called"


def test_a_failing_run_is_reported_and_the_other_finishes(slurm_cluster, tmp_path):
    specs = [Spec(str(tmp_path), "bad", fail=True), Spec(str(tmp_path), "good")]
    errors = executor(tmp_path).run(train_like, specs)
    assert errors[0] is not None and "run bad fails on purpose" in errors[0]
    assert errors[1] is None and (tmp_path / "good" / "epoch-0").exists()


def test_a_preempted_run_is_requeued_and_resumes_from_its_last_epoch(slurm_cluster, tmp_path):
    spec = Spec(str(tmp_path), "long", epochs=4, epoch_s=1.0)
    signalled = []

    def preempt_after_first_epoch():
        # SLURM warns a job with USR2 before its time limit or a preemption; submitit then checkpoints
        # the job and requeues it.
        first = tmp_path / "long" / "epoch-0"
        if not signalled and first.exists():
            job_id = first.read_text()
            subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
            signalled.append(job_id)

    assert executor(tmp_path).run(train_like, [spec], progress=preempt_after_first_epoch) == [None]
    assert signalled, "the run finished before it could be preempted"
    first_start, resumed_from = starts(tmp_path, "long")  # two attempts, exactly
    assert first_start == 0 and resumed_from >= 1
    assert sorted(p.name for p in (tmp_path / "long").glob("epoch-*")) == [f"epoch-{i}" for i in range(4)]


def test_a_run_out_of_requeues_is_reported_failed(slurm_cluster, tmp_path):
    spec = Spec(str(tmp_path), "long", epochs=30, epoch_s=1.0)
    signalled = []

    def time_out_after_first_epoch():
        first = tmp_path / "long" / "epoch-0"
        if not signalled and first.exists():
            subprocess.run(["scancel", "--signal=USR2", first.read_text()], check=True)
            signalled.append(1)

    ex = JobArray(tmp_path / "logs", CPU_JOBS, max_timeouts=0, poll_s=0.5, state_check_s=2)
    [error] = ex.run(train_like, [spec], progress=time_out_after_first_epoch)
    assert error is not None and "timed-out too many times" in error
    assert starts(tmp_path, "long") == [0]  # not requeued


def test_a_cancelled_array_task_is_reported_failed_and_the_other_finishes(slurm_cluster, tmp_path):
    # SLURM ends a cancelled job without a result file: only the scheduler's state (the sacct stand-in,
    # which names array tasks ARRAYID_TASKID) tells submitit that it is over.
    specs = [Spec(str(tmp_path), "cancelled", epochs=60, epoch_s=1.0), Spec(str(tmp_path), "done")]

    def cancel_after_first_epoch():
        first = tmp_path / "cancelled" / "epoch-0"
        if first.exists() and (tmp_path / "cancelled" / "starts").read_text() == "0\n":
            subprocess.run(["scancel", first.read_text()], check=True)

    errors = executor(tmp_path).run(train_like, specs, progress=cancel_after_first_epoch)
    assert errors[0] is not None and "CANCELLED" in errors[0]
    assert errors[1] is None and (tmp_path / "done" / "epoch-0").exists()


def test_a_caller_that_stops_cancels_its_jobs(slurm_cluster, tmp_path):
    specs = [Spec(str(tmp_path), "a", epochs=60, epoch_s=1.0), Spec(str(tmp_path), "b", epochs=60, epoch_s=1.0)]

    def stop_after_first_epoch():
        if (tmp_path / "a" / "epoch-0").exists():
            raise RuntimeError("caller stops")

    with pytest.raises(RuntimeError, match="caller stops"):
        executor(tmp_path).run(train_like, specs, progress=stop_after_first_epoch)
    array_id = (tmp_path / "a" / "epoch-0").read_text().split("_")[0]
    deadline = time.monotonic() + 60
    while subprocess.run(["squeue", "-h", "-j", array_id], capture_output=True, text=True).stdout.strip():
        assert time.monotonic() < deadline, "the array is still queued a minute after the caller stopped"
        time.sleep(0.5)
    assert not (tmp_path / "a" / "epoch-59").exists() and not (tmp_path / "b" / "epoch-59").exists()

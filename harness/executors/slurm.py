"""--executor slurm: the session's runs as one SLURM job array through submitit, and the waiting for them.

`train_runs` is the controller's part: it submits the runs the cache lacks, or whose final-checkpoint
evaluation it lacks (each array task runs `harness.executors.local.perform` on one `Job`), prints each finished
epoch as the jobs write it, and returns the failures; the tests then read the finished runs (and their
final evaluations) from the cache. `SlurmExecutor` is the array itself.

The controller plans; each array task calls the job function on one spec. A preempted or timed-out task
is requeued with the same spec (submitit's checkpointing): the job function itself must resume its work
from whatever it already published (the run cache keeps every finished epoch), so nothing is pickled at
checkpoint time but the spec. A task that fails (an exception, cancelled, out of requeues) is reported by
its error text and does not stop the others or the caller.
"""
from __future__ import annotations

import shlex
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

from ..spec import plan
from ..cache.runs import RunCache
from ..spec.config import ConfigError, RunConfig
from .local import Job, LocalExecutor, perform
from ..plugin.settings import Settings

try:
    import submitit
except ImportError:  # only --executor slurm imports this module
    raise ConfigError("--executor slurm needs submitit: pip install submitit") from None

HERE = Path(__file__).resolve().parents[2]  # the jobs import this very harness (not another install)
# submitit's default: SLURM warns a job this long before its time limit, so that it can requeue itself.
SIGNAL_DELAY_S = 90


class Resumable(submitit.helpers.Checkpointable):
    """The job callable: runs fn(spec); on preemption or timeout, requeues itself with the same spec."""

    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn

    def __call__(self, spec: Any) -> None:
        self.fn(spec)

    def checkpoint(self, spec: Any) -> submitit.helpers.DelayedSubmission:
        # The same callable and spec: the work resumes from what it published before it was stopped.
        return submitit.helpers.DelayedSubmission(self, spec)


class SlurmExecutor:
    """Submits jobs as one SLURM job array (submitit) and waits for them.

    log_folder: where submitit keeps its pickles and each task's stdout/stderr; must be on a filesystem
        the compute nodes share, as must whatever the jobs write.
    partition: the SLURM partition; None takes the cluster's default.
    gpus_per_job: GPUs per array task (0: none asked for).
    timeout_min: each task's time limit in minutes (at least 2: SLURM warns a task shortly before its
        limit so that it can requeue itself, and that warning needs time to land).
    array_parallelism: most tasks of the array running at once.
    cpus_per_job: CPU cores per task; None takes the cluster's default.
    mem_gb: memory per task in GB; None takes the cluster's default.
    max_timeouts: how often one task may be requeued after reaching its time limit (preemptions do not count).
    poll_s: seconds between checks of the jobs' result files and calls of progress().
    state_check_s: seconds between queries of the scheduler's job states (jobs that SLURM ends without a
        result file, e.g. cancelled, are noticed this way); keep it large on a busy cluster.
    setup: shell lines each job runs before Python starts (e.g. an export).
    """

    def __init__(self, log_folder: str | Path, *, partition: str | None = None, gpus_per_job: int = 0,
                 timeout_min: int = 60, array_parallelism: int = 16, cpus_per_job: int | None = None,
                 mem_gb: float | None = None, max_timeouts: int = 3, poll_s: float = 5.0,
                 state_check_s: float = 60.0, setup: Sequence[str] = ()):
        for name, value, low in (("gpus_per_job", gpus_per_job, 0), ("timeout_min", timeout_min, 2),
                                 ("array_parallelism", array_parallelism, 1), ("max_timeouts", max_timeouts, 0)):
            if not isinstance(value, int) or value < low:
                raise ConfigError(f"SLURM option {name}={value!r} must be a whole number >= {low}")
        if cpus_per_job is not None and (not isinstance(cpus_per_job, int) or cpus_per_job < 1):
            raise ConfigError(f"SLURM option cpus_per_job={cpus_per_job!r} must be a whole number >= 1")
        if mem_gb is not None and not mem_gb > 0:
            raise ConfigError(f"SLURM option mem_gb={mem_gb!r} must be a positive number of GB")
        self.log_folder = Path(log_folder)
        self.max_timeouts, self.poll_s, self.state_check_s = max_timeouts, poll_s, state_check_s
        self.parameters: dict[str, Any] = {
            "job_name": "advhyp", "time": timeout_min, "array_parallelism": array_parallelism,
            # The warning before the time limit, at most half the limit (SIGNAL_DELAY_S would kill a
            # 2-minute job at once).
            "signal_delay_s": min(SIGNAL_DELAY_S, timeout_min * 30),
        }
        if partition:
            self.parameters["partition"] = partition
        if setup:
            self.parameters["setup"] = list(setup)
        if gpus_per_job:
            self.parameters["gpus_per_node"] = gpus_per_job  # one task per job, so per node = per job
        if cpus_per_job is not None:
            self.parameters["cpus_per_task"] = cpus_per_job
        if mem_gb is not None:
            self.parameters["mem"] = f"{int(mem_gb * 1024)}M"

    def run(self, fn: Callable[[Any], Any], specs: Sequence[Any],
            progress: Callable[[], None] | None = None) -> list[str | None]:
        """Runs fn(spec) for every spec as one job array and waits for all of them.

        fn must be a top-level (importable) function and each spec picklable; what fn returns is dropped.
        progress() is called every poll_s seconds while jobs run and once at the end.
        Returns, in the order of specs, None for a job that finished and the error text for one that failed.
        If the caller is interrupted (Ctrl-C), the jobs not yet finished are cancelled.
        """
        if not specs:
            return []
        self.check_available()
        ex = submitit.SlurmExecutor(folder=self.log_folder, max_num_timeout=self.max_timeouts)
        ex.update_parameters(**self.parameters)
        jobs = ex.map_array(Resumable(fn), list(specs))
        try:
            return self._wait(jobs, progress)
        except BaseException:
            # One scancel for the whole array (tasks already ended are left as they are).
            subprocess.run(["scancel", jobs[0].job_id.split("_")[0]], check=False)
            raise

    @staticmethod
    def check_available() -> None:
        """A ConfigError unless SLURM's tools are here."""
        if shutil.which("sbatch") is None:
            raise ConfigError("--executor slurm needs SLURM's sbatch on PATH: run on the cluster's login "
                              "node (or start a local one: bash tools/slurm/cluster.sh start PREFIX)")

    def _wait(self, jobs, progress) -> list[str | None]:
        errors: list[str | None] = [None] * len(jobs)
        pending = dict(enumerate(jobs))
        last_state_check = time.monotonic()
        while pending:
            if time.monotonic() - last_state_check >= self.state_check_s:
                jobs[0].watcher.update()  # one scheduler query for all jobs; done() then reads its answer
                last_state_check = time.monotonic()
            finished = [i for i, job in pending.items() if job.done()]
            if finished:
                # A job SLURM ended without a result file (cancelled, killed) costs submitit a 15 s wait
                # for that file: wait for all jobs that finished together at once.
                with ThreadPoolExecutor(min(len(finished), 32)) as pool:
                    for i, error in zip(finished, pool.map(lambda i: pending[i].exception(), finished)):
                        errors[i] = None if error is None else f"SLURM job {pending[i].job_id}: {error}"
                for i in finished:
                    del pending[i]
            if progress is not None:
                progress()
            if pending:
                time.sleep(self.poll_s)
        return errors


def planned_runs(ex: LocalExecutor, cases: Iterable[tuple[plan.Plan, str, float]],
                 precision: str) -> dict[str, tuple[RunConfig, tuple[float, ...]]]:
    """key -> (config, the eps of its final-checkpoint evaluation) of every run the cases ((plan, dataset,
    eps) each) need, as the suite fixture asks for them: each case's Holm family on every dataset, and the
    final checks of the case's own dataset's runs at the claim's deciding eps."""
    runs: dict[str, tuple[RunConfig, tuple[float, ...]]] = {}
    for p, dataset, eps in cases:
        for d in p.family(dataset, eps):
            configs = plan.run_configs(p, d, precision)
            checked = {p.claim.deciding_eps} if d == dataset and plan.checks_masking(p.claim) else set()
            for k, c in ex.keys(configs, ex.dataset(configs)).items():
                before = runs[k][1] if k in runs else ()
                runs[k] = (c, tuple(sorted(set(before) | checked)))
    return runs


def train_runs(runs: dict[str, tuple[RunConfig, tuple[float, ...]]], ex: LocalExecutor, s: Settings,
               log: Callable[[str], None], poll_s: float = 5.0) -> dict[str, str]:
    """Trains the runs the cache lacks, and evaluates the final checkpoints it lacks, as one job array, and
    waits for it; returns key -> why, for each run that failed (its error's first line, the job and its log
    folder). The jobs' logs and pickles live in <cache>/slurm/<session>/, removed when every job succeeded."""
    cache, session = ex.cache, ex.session

    def todo(k: str, final_eps) -> bool:
        return cache.lookup(k) is None or (ex.final_eval is not None and not all(
            (cache.dir(k) / f"final-{ex.final_tag(e)}.json").exists() for e in final_eps))
    work = {k: r for k, r in runs.items() if todo(k, r[1])}
    if not work:
        log(f"SLURM: all {len(runs)} runs are in the cache; nothing to submit")
        return {}
    SlurmExecutor.check_available()
    folder = s.cache_dir / "slurm" / session
    folder.mkdir(parents=True, exist_ok=True)
    o = s.slurm
    jobs = [Job(config=c, key=k, cache_dir=str(s.cache_dir), sources=s.sources, session=session,
                progress=str(folder / f"{k}.progress"), compile_mode=s.compile, early_exit=s.early_exit,
                attack_shapes=s.attack_shapes,
                deterministic=s.deterministic, threads=o.cpus or torch.get_num_threads(), gpus=o.gpus,
                final_eval=ex.final_eval, final_eps=final_eps)
            for k, (c, final_eps) in work.items()]
    array = SlurmExecutor(folder, partition=o.partition, gpus_per_job=o.gpus, timeout_min=o.time_min,
                          array_parallelism=o.parallel, cpus_per_job=o.cpus, mem_gb=o.mem_gb, poll_s=poll_s,
                          state_check_s=max(poll_s, 30.0),
                          setup=[f"export PYTHONPATH={shlex.quote(str(HERE))}${{PYTHONPATH:+:$PYTHONPATH}}"])
    log(f"SLURM: submitting {len(jobs)} of the session's {len(runs)} runs as one job array (the others are in "
        f"the cache); job logs in {folder}")
    errors = array.run(perform, jobs, progress=_tail(folder, log))
    failed, kept = {}, False
    for job, error in zip(jobs, errors):
        trained = cache.lookup(job.key) is not None
        if error is None and not trained:
            error = "the job ended, but its run is not in the cache"
        if error is None:
            continue
        kept = True
        why = _why(cache, job, error, folder)
        if trained:  # its final-checkpoint evaluation failed: the tests compute it, and say why if it fails
            log(f"{job.key[:8]} {job.config.label}: its final-checkpoint checks failed in the job: {why}")
        else:
            failed[job.key] = why
            log(f"{job.key[:8]} {job.config.label} FAILED: {why}")
    log(f"SLURM: {len(jobs) - len(failed)} of {len(jobs)} runs done" + (f", {len(failed)} failed" if failed else ""))
    if not kept:
        shutil.rmtree(folder, ignore_errors=True)
    return failed


def _tail(folder: Path, log: Callable[[str], None]) -> Callable[[], None]:
    """progress(): logs the lines the jobs appended to their progress files since the last call."""
    offsets: dict[Path, int] = {}

    def progress() -> None:
        for path in sorted(folder.glob("*.progress")):
            with open(path, "rb") as f:
                f.seek(offsets.get(path, 0))
                text = f.read()
            whole = text[:text.rfind(b"\n") + 1]  # a line still being written waits for the next call
            offsets[path] = offsets.get(path, 0) + len(whole)
            for line in whole.decode(errors="replace").splitlines():
                log(line)
    return progress


def _why(cache: RunCache, job: Job, error: str, folder: Path) -> str:
    """One line: the run's own error where training failed, else the job's exception (as the last traceback
    names it) or SLURM's word (cancelled, out of requeues, ...)."""
    job_id, _, text = error.partition(": ") if error.startswith("SLURM job") else ("SLURM job", "", error)
    failure = cache.failure(job.key)
    if failure and failure.get("session") == job.session:
        first = failure["error"].splitlines()[0]
    elif "Traceback (most recent call last):" in text:
        after = text.rsplit("Traceback (most recent call last):", 1)[1].splitlines()
        first = next((x for x in after if x.strip() and not x[0].isspace()), text.splitlines()[0])
    else:
        first = text.strip().splitlines()[0] if text.strip() else "no error text"
    return f"{first} ({job_id}; logs in {folder})"

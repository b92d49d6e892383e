"""--executor slurm: the session's missing runs as one SLURM job array through submitit, waited for.

`SlurmExecutor.obtain` is the controller's part, before the first test: it submits the runs the cache lacks,
or whose final-checkpoint evaluation it lacks, one `Job` per array task (`perform`), prints each finished
epoch as the jobs write it, and waits; the tests then read the runs (and their final evaluations) from the
cache, as collect mode does, and a run whose job failed reads as failed, with why. `JobArray` is the array.

The controller plans; each array task calls the job function on one spec. A preempted or timed-out task
is requeued with the same spec (submitit's checkpointing): the job function itself must resume its work
from whatever it already published (the run cache keeps every finished epoch), so nothing is pickled at
checkpoint time but the spec. A task that fails (an exception, cancelled, out of requeues) is reported by
its error text and does not stop the others or the caller.
"""
from __future__ import annotations

import contextlib
import dataclasses
import io
import os
import platform
import shlex
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

import torch

from ..cache.runs import RunCache
from ..run import runtime
from ..spec.config import ConfigError, RunConfig
from ..spec.plan import Need
from . import Refused
from .local import CollectExecutor, LocalExecutor

if TYPE_CHECKING:
    from ..plugin.settings import Settings, SlurmOptions

try:
    import submitit
except ImportError:  # only --executor slurm imports this module
    raise ConfigError("--executor slurm needs submitit: pip install submitit") from None


class SubmissionError(Refused):
    """SLURM refused the job array (sbatch failed: no cluster configuration, a wrong partition, a limit):
    one line with the scheduler's own message."""


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


class JobArray:
    """Submits jobs as one SLURM job array (submitit) and waits for them.

    log_folder: submitit's pickles and each task's output, on a filesystem the compute nodes share (as must
        be whatever the jobs write). options: --slurm-*'s partition, GPUs, time limit (minutes), tasks at
        once, CPU cores and memory (GB) per task (None: the cluster's default). max_timeouts: requeues after
        reaching the time limit (preemptions do not count). poll_s: seconds between looks at the jobs' result
        files and calls of progress(). state_check_s: seconds between queries of the scheduler (jobs it ends
        without a result file, e.g. cancelled, are noticed this way; keep it large on a busy cluster).
        setup: shell lines each job runs before Python starts.
    """

    def __init__(self, log_folder: str | Path, options: SlurmOptions, *, max_timeouts: int = 3,
                 poll_s: float = 5.0, state_check_s: float = 60.0, setup: Sequence[str] = ()):
        self.log_folder = Path(log_folder)
        self.max_timeouts, self.poll_s, self.state_check_s = max_timeouts, poll_s, state_check_s
        self.parameters: dict[str, Any] = {
            "job_name": "advhyp", "time": options.time_min, "array_parallelism": options.parallel,
            # The warning before the time limit, at most half the limit (SIGNAL_DELAY_S would kill a
            # 2-minute job at once).
            "signal_delay_s": min(SIGNAL_DELAY_S, options.time_min * 30),
        }
        given = {"partition": options.partition, "setup": list(setup) or None,
                 "gpus_per_node": options.gpus or None,  # one task per job, so per node = per job
                 "cpus_per_task": options.cpus, "mem": options.mem_gb and f"{int(options.mem_gb * 1024)}M"}
        self.parameters.update({k: v for k, v in given.items() if v is not None})

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
        try:
            with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's complaint: ours says it
                jobs = ex.map_array(Resumable(fn), list(specs))
        except (submitit.core.utils.FailedJobError, submitit.core.utils.FailedSubmissionError, OSError) as e:
            said = [ln.strip() for ln in str(e).splitlines() if ln.strip()]
            errors = [ln for ln in said if "error" in ln.lower()] or said or [type(e).__name__]
            raise SubmissionError(f"SLURM refused the job array: {'; '.join(errors[:3])} (check --slurm-partition "
                                  f"and the other --slurm-* options against `sinfo`)") from None
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


@dataclass
class SlurmExecutor(CollectExecutor):
    """Obtains the session's missing runs as one job array before the tests, then reads them from the cache
    as collect mode does (a run whose job failed is "failed", with why: `failures`)."""
    options: SlurmOptions | None = None
    deterministic: bool = False
    poll_s: float = 5.0

    @classmethod
    def from_settings(cls, s: Settings, device: torch.device, session: str, log: Callable[[str], None]):
        return dataclasses.replace(super().from_settings(s, device, session, log), options=s.slurm,
                                   deterministic=s.deterministic)

    def obtain(self, needs: list[Need]) -> None:
        """Trains the runs the cache lacks, and evaluates the final checkpoints it lacks, as one job array, and
        waits for it; each run that failed goes into `failures` (its error's first line, the job and its log
        folder). The jobs' logs and pickles live in <cache>/slurm/<session>/, removed when every job succeeded."""
        work = []
        for n in needs:
            configs = {"run": [n.config]}
            [k] = self.keys(configs, self.dataset(configs))
            if not self.complete(k, n.final_eps):
                work.append((k, n))
        if not work:
            self.log(f"SLURM: all {len(needs)} runs are in the cache; nothing to submit")
            return
        JobArray.check_available()
        folder = self.cache.root / "slurm" / self.session
        folder.mkdir(parents=True, exist_ok=True)
        trainer = LocalExecutor(**{f.name: getattr(self, f.name) for f in dataclasses.fields(LocalExecutor)
                                   if f.name not in ("log", "failures", "data_notes")})
        jobs = [Job(trainer, n.config, k, n.final_eps, str(folder / f"{k}.progress"), self.deterministic,
                    self.options.cpus or torch.get_num_threads(), self.options.gpus) for k, n in work]
        array = JobArray(folder, self.options, poll_s=self.poll_s, state_check_s=max(self.poll_s, 30.0),
                         setup=[f"export PYTHONPATH={shlex.quote(str(HERE))}${{PYTHONPATH:+:$PYTHONPATH}}"])
        self.log(f"SLURM: submitting {len(jobs)} of the session's {len(needs)} runs as one job array (the others "
                 f"are in the cache); job logs in {folder}")
        try:
            ran = array.run(perform, jobs, progress=_tail(folder, self.log))
        except SubmissionError:
            shutil.rmtree(folder, ignore_errors=True)  # the pickles of an array that never ran
            raise
        errors = [e or (None if self.cache.lookup(j.key) else "the job ended, but its run is not in the cache")
                  for j, e in zip(jobs, ran)]
        for job, error in ((j, e) for j, e in zip(jobs, errors) if e):
            why = _why(self.cache, job, error, folder)
            if self.cache.lookup(job.key):  # its final-checkpoint evaluation failed: the tests compute it, or say why
                self.log(f"{job.key[:8]} {job.config.label}: its final-checkpoint checks failed in the job: {why}")
            else:
                self.failures[job.key] = why
                self.log(f"{job.key[:8]} {job.config.label} FAILED: {why}")
        failed = sum(job.key in self.failures for job in jobs)
        self.log(f"SLURM: {len(jobs) - failed} of {len(jobs)} runs done" + (f", {failed} failed" if failed else ""))
        if not any(errors):  # else the failed jobs' logs stay, named in their errors
            shutil.rmtree(folder, ignore_errors=True)


@dataclass(frozen=True)
class Job:
    """One array task: a run to train into the shared cache and evaluate (picklable, small)."""
    executor: LocalExecutor  # the session's cache, data and settings; the job sets its device and log
    config: RunConfig
    key: str  # as the session planned it; the job refuses to train under another key
    final_eps: tuple[float, ...]  # the eps of its final-checkpoint evaluations (the claims' deciding eps)
    progress: str  # file the job appends its log lines to (one per finished epoch), read by the controller
    deterministic: bool = False
    threads: int = 1  # torch threads: as the controller's, so that CPU numbers equal a local run's
    gpus: int = 0  # 0: train on the CPU; else on the job's first GPU


def perform(job: Job) -> None:
    """The job function, in each array task: trains job.config into the cache with a LocalExecutor, on the
    job's GPU or its CPU, resuming from the run's checkpoint (a requeued job starts here again), then
    evaluates its final checkpoint at job.final_eps (the costly part of the final checks; the tests then read
    it from the cache). A run another process trains is waited for, then read; writes nothing but the run's
    cache entry and job.progress. Raises when the run or its evaluation fails, so that SLURM says so."""
    torch.set_num_threads(job.threads)
    runtime.set_deterministic(job.deterministic)
    if job.gpus and not torch.cuda.is_available():
        raise RuntimeError(f"the job asked for {job.gpus} GPU(s), but CUDA sees none on {platform.node()}: "
                           f"pick a GPU partition (--slurm-partition) or use --slurm-gpus 0")
    device = torch.device("cuda" if job.gpus else "cpu")

    def log(line: str) -> None:
        with open(job.progress, "a") as f:
            f.write(line + "\n")
    ex = dataclasses.replace(job.executor, device=device, log=log)
    configs = {"run": [job.config]}
    ds = ex.dataset(configs)
    [k] = ex.keys(configs, ds)
    if k != job.key:
        raise RuntimeError(f"{job.config.label}: its key is {k[:8]} here, {job.key[:8]} in the session that "
                           f"submitted it: the code or the data changed since; run the session again")
    env = os.environ  # the id scancel takes: ARRAYID_TASKID for an array task
    slurm_id = (f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}" if "SLURM_ARRAY_JOB_ID" in env
                else env.get("SLURM_JOB_ID", "none"))
    log(f"{k[:8]} {job.config.label} starts on {platform.node()} {device} (SLURM job {slurm_id})")
    [run] = ex.runs(configs)["run"]  # trained here, or by another process and waited for
    if not run.done:
        raise RuntimeError(run.error)
    for eps in job.final_eps if ex.final_eval else ():
        ex.evaluations(run, job.config, ds, eps, f"at eps {eps:g}")


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
    if failure and failure.get("session") == job.executor.session:
        first = failure["error"].splitlines()[0]
    elif "Traceback (most recent call last):" in text:
        after = text.rsplit("Traceback (most recent call last):", 1)[1].splitlines()
        first = next((x for x in after if x.strip() and not x[0].isspace()), text.splitlines()[0])
    else:
        first = text.strip().splitlines()[0] if text.strip() else "no error text"
    return f"{first} ({job_id}; logs in {folder})"

"""Where runs come from: the cache, or training; and the final-checkpoint checks beside them.

Every executor makes the same promise, `runs(configs) -> finished, failed or missing run dicts`, and the
run cache is the rendezvous of all of them (keys, locks and atomic publish make a shared folder safe):
- `LocalExecutor` trains in this process what the cache lacks. Workers that need the same runs share
  them: a run another process is training is skipped and collected at the end, so three workers asking
  for six runs train six, not eighteen.
- `CollectExecutor` trains nothing: every verdict from the cache alone, and each absent run named.
- `harness.executors.slurm.SlurmExecutor` trains the absent runs as a SLURM job array (`perform` is the job).
"""
from __future__ import annotations

import hashlib
import os
import platform
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import torch

from ..run import data, diagnostics, runtime, train
from ..spec import plan, results
from ..cache.runs import RunCache, code_version
from ..spec.config import STRONGEST, Claim, ConfigError, FinalEvalConfig, RunConfig, key
from ..run.attacks import eps_key
from ..run.data import fixed_subset

Runs = dict[str, list[dict]]  # arm -> one run dict per seed


class Executor(Protocol):
    def runs(self, configs: dict[str, list[RunConfig]]) -> Runs:
        """arm -> one run dict per config: status "done" (with per-epoch records), "failed" or "missing"."""

    def final_checks(self, claim: Claim, configs: dict[str, list[RunConfig]], runs: Runs) -> dict | None:
        """Each finished run's final-checkpoint evaluation (attached as run["final"]) and the transfer checks;
        {"transfer", "masking_warnings"}, or None when the profile has no final evaluation."""


@dataclass
class LocalExecutor:
    cache: RunCache
    sources: data.Sources
    device: torch.device
    final_eval: FinalEvalConfig | None
    compile_mode: str = "off"  # torch.compile: on, off, auto (see train.run)
    early_exit: bool = True
    attack_shapes: str = "exact"  # see harness.run.attacks
    session: str = ""  # the report folder's name: one pytest session across its workers
    log: Callable[[str], None] = print
    failures: dict = field(default_factory=dict)  # key -> error, in this process
    data_notes: list = field(default_factory=list)  # what loading the data noticed (skipped files, ...)

    def dataset(self, configs: dict[str, list[RunConfig]]) -> data.Dataset:
        names = {c.dataset for cs in configs.values() for c in cs}
        if len(names) != 1:
            raise ValueError(f"one dataset per call, got {sorted(names)}")
        ds = data.load(names.pop(), self.sources, self.cache.root)
        self.data_notes += [f"{ds.name}: {n}" for n in ds.notes if f"{ds.name}: {n}" not in self.data_notes]
        return ds

    def keys(self, configs: dict[str, list[RunConfig]], ds: data.Dataset) -> dict[str, RunConfig]:
        code = code_version()
        return {key(c, ds.fingerprint, code): c for cs in configs.values() for c in cs}

    def runs(self, configs: dict[str, list[RunConfig]]) -> Runs:
        ds = self.dataset(configs)
        keyed = self.keys(configs, ds)
        done: dict[str, dict] = {}
        pending = list(keyed)
        while pending:
            progressed = False
            for k in list(pending):
                result = self.obtain(k, keyed[k], ds)
                if result is not None:
                    done[k] = result
                    pending.remove(k)
                    progressed = True
            if pending and not progressed:
                self.cache.lock(pending[0]).release()  # wait for the process training it
        by_config = {id(c): k for k, c in keyed.items()}
        return {name: [done[by_config[id(c)]] for c in cs] for name, cs in configs.items()}

    def obtain(self, k: str, cfg: RunConfig, ds: data.Dataset) -> dict | None:
        """The run's result (finished or failed), or None if another process holds it right now."""
        if k in self.failures:
            return absent(k, cfg, ds, "failed", self.failures[k])
        hit = self.cache.lookup(k)
        if hit is not None:
            return hit
        failure = self.cache.failure(k)
        if failure and failure.get("session") == self.session:  # failed in this session: don't retry now
            return absent(k, cfg, ds, "failed", failure["error"].splitlines()[0])
        lock = self.cache.try_lock(k)
        if lock is None:
            return None
        with lock:
            hit = self.cache.lookup(k)
            return hit if hit is not None else self.train(k, cfg, ds)

    def train(self, k: str, cfg: RunConfig, ds: data.Dataset) -> dict:
        start = time.perf_counter()

        def progress(r: dict) -> None:
            adv = "  ".join(f"adv@{e} {m[STRONGEST]:.3f}" for e, m in r["adv"].items())
            self.log(f"{k[:8]} {cfg.label} epoch {r['epoch']}/{cfg.epochs} loss {r['train_loss']:.3f} "
                     f"clean {r['clean']:.3f}  {adv}  {r['seconds']:.1f}s")
        try:
            records, final_state, best = train.run(cfg, ds, self.device, self.cache.checkpointer(k), progress,
                                                   compile_mode=self.compile_mode, early_exit=self.early_exit,
                                                   attack_shapes=self.attack_shapes)
        except (KeyboardInterrupt, SystemExit, OSError, ConfigError):
            raise  # interrupts and bad input stop the session; finished epochs stay in the checkpoint
        except Exception as e:  # a failed run is reported, never cached, and retried next session
            error = f"{type(e).__name__}: {e}"
            self.log(f"{k[:8]} {cfg.label} FAILED: {error}")
            self.failures[k] = error
            self.cache.record_failure(k, self.session, error + "\n" + traceback.format_exc(limit=5))
            return absent(k, cfg, ds, "failed", error)
        result = results.plain({"key": k, "status": "done", "label": cfg.label, "config": cfg.to_dict(),
                  "dataset_used": ds.name, "data_fingerprint": ds.fingerprint, "code_version": code_version(),
                  "device": str(self.device), "records": records,
                  # what a cache hit in a later session was trained under (its session may differ)
                  "trained_with": {"compile": self.compile_mode, "early_exit": self.early_exit,
                                   "attack_shapes": self.attack_shapes,
                                   "deterministic": torch.are_deterministic_algorithms_enabled(),
                                   "session": self.session},
                  "train_wall_seconds": time.perf_counter() - start})  # as the cache returns it
        self.cache.publish(k, result, final_state, best)
        return result

    # ---- the final checkpoint: stronger attacks and masking diagnostics -----------------------------
    def final_checks(self, claim: Claim, configs: dict[str, list[RunConfig]], runs: Runs) -> dict | None:
        """Attach each finished run's final evaluation (run["final"], at the claim's deciding eps) and,
        seed by seed, transfer checks between the arms in both directions; failed checks are named in
        "masking_warnings". Each is computed once and kept in the cache beside its run."""
        fe = self.final_eval
        if fe is None or not plan.checks_masking(claim):
            return None
        ds = self.dataset(configs)
        eps = claim.deciding_eps
        cfg_of = {r["key"]: c for name in runs for r, c in zip(runs[name], configs[name])}
        tag = self.final_tag(eps)
        warnings, transfers = [], []
        finished = [r for rs in runs.values() for r in rs if r["status"] == "done"]
        for i, r in enumerate(finished, 1):
            r["final"] = self.final_evaluation(r["key"], cfg_of[r["key"]], ds, eps, f"{i}/{len(finished)}")
            warnings += [f"{r['label']}: {name}: {c['detail']}" for name, c in r["final"]["checks"].items()
                         if not c["ok"]]
            # Where the score is made: the epoch of the highest adversarial accuracy, if not the last.
            best = train.best_epoch(r["records"], eps_key(eps))
            if best < len(r["records"]):
                r["best"] = self.final_evaluation(r["key"], cfg_of[r["key"]], ds, eps, f"{i}/{len(finished)}", best)
                warnings += [f"{r['label']} (epoch {best}, its best adversarial accuracy): {name}: {c['detail']}"
                             for name, c in r["best"]["checks"].items() if not c["ok"]]
        # Both ways, seed by seed: a masked white-box attack on either arm shows as a transfer attack beating it.
        seeds = zip(runs[claim.worse], runs[claim.better]) if claim.expect in ("better", "masked") else ()
        pairs = [(pair if d == "worse->better" else pair[::-1], d) for pair in seeds
                 for d in diagnostics.TRANSFER_DIRECTIONS if pair[0]["status"] == pair[1]["status"] == "done"]
        for (src, tgt), direction in pairs:
            s_cfg, t_cfg = cfg_of[src["key"]], cfg_of[tgt["key"]]

            def transfer(src=src, tgt=tgt, s_cfg=s_cfg, t_cfg=t_cfg, direction=direction):
                x, y = self.eval_set(t_cfg, ds)
                value = results.plain(diagnostics.transfer_check(
                    self.final_model(src["key"], s_cfg, ds), self.final_model(tgt["key"], t_cfg, ds), x, y,
                    eps, t_cfg.attack.steps, t_cfg.attack.step_ratio, t_cfg.precision, seed=t_cfg.attack.eval_seed,
                    whitebox_acc=tgt["final"]["pgd"][STRONGEST], tolerance=fe.tolerance, direction=direction))
                self.log(f"{tgt['key'][:8]} transfer {src['label']} -> {tgt['label']}: {value['transfer_acc']:.3f} "
                         f"({'ok' if value['ok'] else 'FAILED'})")
                return value
            check = self.cache.derived(tgt["key"], f"transfer-{src['key'][:12]}-{tag}", transfer)
            transfers.append({"source": src["label"], "target": tgt["label"], **check})
            if not check["ok"]:
                warnings.append(f"{tgt['label']}: transfer from {src['label']}: {check['detail']}")
        return {"transfer": transfers, "masking_warnings": warnings}

    def final_tag(self, eps: float) -> str:
        """Names the final-checkpoint results of `eps` in the cache: recomputed when the settings, the eps,
        the attack and diagnostics code or torchattacks' version change."""
        attack_code = code_version(modules=("run/attacks.py", "spec/budget.py", "run/diagnostics.py"))
        return hashlib.sha256(repr((self.final_eval, eps, attack_code, diagnostics.library_version())).encode()
                              ).hexdigest()[:12]

    def final_evaluation(self, k: str, cfg: RunConfig, ds: data.Dataset, eps: float, which: str = "",
                         epoch: int | None = None) -> dict:
        """Finished run k's evaluation at eps on its final checkpoint, or on the weights of `epoch` (one of
        its best epochs): computed once, kept in the cache beside it."""
        where = "final-checkpoint" if epoch is None else f"epoch-{epoch}"

        def final():
            start = time.perf_counter()
            model, (x, y) = self.final_model(k, cfg, ds, epoch), self.eval_set(cfg, ds)
            value = results.plain(diagnostics.final_evaluation(
                model, x, y, eps, cfg.attack.modes, self.final_eval, cfg.attack.steps, cfg.attack.step_ratio,
                cfg.precision, seed=cfg.attack.eval_seed, restarts=cfg.attack.restarts))
            self.log(f"{k[:8]} {cfg.label} {where} checks {which}: "
                     f"{sum(c['ok'] for c in value['checks'].values())}/{len(value['checks'])} ok  "
                     f"{time.perf_counter() - start:.1f}s")
            return value if epoch is None else {**value, "epoch": epoch}
        name = f"final-{self.final_tag(eps)}" if epoch is None else f"best-e{epoch}-{self.final_tag(eps)}"
        return self.cache.derived(k, name, final)

    def final_model(self, k: str, cfg: RunConfig, ds: data.Dataset, epoch: int | None = None) -> torch.nn.Module:
        """The finished run's model with its final weights, or those of `epoch` (a best epoch)."""
        model = train.build(cfg, ds, self.device)
        state = self.cache.final_state(k, epoch)
        if state is None:
            raise RuntimeError(f"{cfg.label}: weights of {'the final' if epoch is None else f'epoch {epoch}'} "
                               f"unreadable; moved aside, the run retrains next time")
        model.load_state_dict(state)
        return model.eval()

    def eval_set(self, cfg: RunConfig, ds: data.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n of the run's per-epoch evaluation subset, on the device, images in [0, 1]."""
        idx = fixed_subset(len(ds.test_x), cfg.attack.n_eval, cfg.attack.eval_seed)[:self.final_eval.n_eval]
        return ds.test_x[idx].to(self.device).float().div_(255), ds.test_y[idx].to(self.device)


class CollectExecutor(LocalExecutor):
    """Trains nothing: runs come from the cache, and a run it lacks is "missing" (the case fails and names
    it), or "failed" with the error of the SLURM job that trained it (`failures`, --executor slurm).
    Final-checkpoint checks are computed for the runs that are there."""

    def obtain(self, k: str, cfg: RunConfig, ds: data.Dataset) -> dict:
        if k in self.failures:
            return absent(k, cfg, ds, "failed", self.failures[k])
        hit = self.cache.lookup(k)
        if hit is not None:
            return hit
        return absent(k, cfg, ds, "missing", "not in the cache (collect mode trains nothing): run the session "
                                              "without --collect-only-runs, or with --executor slurm")


def absent(k: str, cfg: RunConfig, ds: data.Dataset, status: str, error: str) -> dict:
    """A run that has no numbers: failed in training, or missing from the cache."""
    return results.plain({"key": k, "status": status, "label": cfg.label, "config": cfg.to_dict(),
                          "dataset_used": ds.name, "data_fingerprint": ds.fingerprint, "error": error, "records": []})


@dataclass(frozen=True)
class Job:
    """One SLURM job of --executor slurm: a run to train into the shared cache (picklable, small)."""
    config: RunConfig
    key: str  # as the session planned it; the job refuses to train under another key
    cache_dir: str
    sources: data.Sources
    session: str  # the report folder's name
    progress: str  # file the job appends its log lines to (one per finished epoch), read by the controller
    compile_mode: str = "off"
    early_exit: bool = True
    attack_shapes: str = "exact"
    deterministic: bool = False
    threads: int = 1  # torch threads: as the controller's, so that CPU numbers equal a local run's
    gpus: int = 0  # 0: train on the CPU; else on the job's first GPU
    final_eval: FinalEvalConfig | None = None  # the profile's final-checkpoint evaluation ...
    final_eps: tuple[float, ...] = ()  # ... at these eps (the deciding eps of the claims that check the run)


def perform(job: Job) -> None:
    """The job function (harness.executors.slurm runs it in each array task): trains job.config into the cache with a
    LocalExecutor, on the job's GPU or its CPU, resuming from the run's checkpoint (a requeued job starts
    here again), then evaluates its final checkpoint at job.final_eps (the costly part of the final checks;
    the tests then read it from the cache). Takes the run's lock (a run another process trains is waited
    for, then read); writes nothing but the run's cache entry and job.progress. Raises when the run or its
    evaluation fails, so that SLURM says so."""
    torch.set_num_threads(job.threads)
    runtime.set_deterministic(job.deterministic)
    if job.gpus and not torch.cuda.is_available():
        raise RuntimeError(f"the job asked for {job.gpus} GPU(s), but CUDA sees none on {platform.node()}: "
                           f"pick a GPU partition (--slurm-partition) or use --slurm-gpus 0")
    device = torch.device("cuda" if job.gpus else "cpu")

    def log(line: str) -> None:
        with open(job.progress, "a") as f:
            f.write(line + "\n")
    ex = LocalExecutor(cache=RunCache(Path(job.cache_dir)), sources=job.sources, device=device,
                       final_eval=job.final_eval, compile_mode=job.compile_mode, early_exit=job.early_exit,
                       attack_shapes=job.attack_shapes, session=job.session, log=log)
    cfg = job.config
    ds = ex.dataset({"run": [cfg]})
    [k] = ex.keys({"run": [cfg]}, ds)
    if k != job.key:
        raise RuntimeError(f"{cfg.label}: its key is {k[:8]} here, {job.key[:8]} in the session that submitted "
                           f"it: the code or the data changed since; run the session again")
    env = os.environ  # the id scancel takes: ARRAYID_TASKID for an array task
    slurm_id = (f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}" if "SLURM_ARRAY_JOB_ID" in env
                else env.get("SLURM_JOB_ID", "none"))
    log(f"{k[:8]} {cfg.label} starts on {platform.node()} {device} (SLURM job {slurm_id})")
    while (result := ex.obtain(k, cfg, ds)) is None:
        ex.cache.lock(k).release()  # another process trains it: wait for it, then read its result
    if result["status"] != "done":
        raise RuntimeError(result["error"])
    for eps in job.final_eps if job.final_eval else ():
        ex.final_evaluation(k, cfg, ds, eps, f"at eps {eps:g}")
        best = train.best_epoch(result["records"], eps_key(eps))
        if best < len(result["records"]):
            ex.final_evaluation(k, cfg, ds, eps, f"at eps {eps:g}", best)

"""Runs from the cache, or trained in this process; and the final-checkpoint checks beside them.

`LocalExecutor` (`--executor local`) trains what the cache lacks when a test asks for it. Workers that need
the same runs share them through the cache's locks: a run another process trains is skipped and collected
at the end, so three workers asking for six runs train six, not eighteen. `CollectExecutor`
(`--collect-only-runs`) trains nothing and names each run the cache lacks. harness.executors.slurm trains
in SLURM jobs, each a LocalExecutor, and reads back as CollectExecutor does.
"""
from __future__ import annotations

import dataclasses
import hashlib
import time
import traceback
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import torch

from ..cache.runs import RunCache, code_version
from ..run import data, diagnostics, train
from ..spec import plan, results
from ..spec.claim import Claim
from ..spec.config import STRONGEST, ConfigError, FinalEvalConfig, RunConfig, key
from ..spec.plan import Need
from ..spec.records import EpochRecord, FinalChecks, FinalEvaluation, Run, Runs, TrainedWith, Transfer

if TYPE_CHECKING:
    from ..plugin.settings import Settings


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

    @classmethod
    def from_settings(cls, s: Settings, device: torch.device, session: str, log: Callable[[str], None]):
        """The session's executor (harness.executors.EXECUTORS): its cache, data, profile and switches."""
        return cls(cache=RunCache(s.cache_dir), sources=s.sources, device=device, final_eval=s.profile.final_eval,
                   compile_mode=s.compile, early_exit=s.early_exit, attack_shapes=s.attack_shapes, session=session,
                   log=log)

    def obtain(self, needs: list[Need]) -> None:
        """Nothing before the tests: each test trains what it asks for (`runs`), so that xdist's workers share
        the session's runs one by one through the cache's locks."""

    def warnings(self) -> list[str]:
        """What the report should warn about: cache files moved aside, data files skipped."""
        return list(self.cache.warnings) + self.data_notes

    def dataset(self, configs: dict[str, list[RunConfig]]) -> data.Dataset:
        [name] = {c.dataset for cs in configs.values() for c in cs}  # one dataset per call
        ds = data.load(name, self.sources, self.cache.root)
        self.data_notes += [f"{ds.name}: {n}" for n in ds.notes if f"{ds.name}: {n}" not in self.data_notes]
        return ds

    def keys(self, configs: dict[str, list[RunConfig]], ds: data.Dataset) -> dict[str, RunConfig]:
        code = code_version()
        return {key(c, ds.fingerprint, code): c for cs in configs.values() for c in cs}

    def runs(self, configs: dict[str, list[RunConfig]]) -> Runs:
        ds = self.dataset(configs)
        keyed = self.keys(configs, ds)
        done: dict[str, Run] = {}
        pending = list(keyed)
        while pending:
            progressed = False
            for k in list(pending):
                result = self.get(k, keyed[k], ds)
                if result is not None:
                    done[k] = result
                    pending.remove(k)
                    progressed = True
            if pending and not progressed:
                self.cache.lock(pending[0]).release()  # wait for the process training it
        by_config = {id(c): k for k, c in keyed.items()}
        return {name: [done[by_config[id(c)]] for c in cs] for name, cs in configs.items()}

    def get(self, k: str, cfg: RunConfig, ds: data.Dataset) -> Run | None:
        """The run (finished or failed), or None if another process holds it right now."""
        if k in self.failures:
            return absent(k, cfg, ds, "failed", self.failures[k])
        hit = self.cache.lookup(k)
        return hit if hit is not None else self.missing(k, cfg, ds)

    def missing(self, k: str, cfg: RunConfig, ds: data.Dataset) -> Run | None:
        """A run the cache lacks: trained here, or None while another process trains it."""
        failure = self.cache.failure(k)
        if failure and failure.get("session") == self.session:  # failed in this session: don't retry now
            return absent(k, cfg, ds, "failed", failure["error"].splitlines()[0])
        lock = self.cache.lock(k, blocking=False)
        if lock is None:
            return None
        with lock:
            hit = self.cache.lookup(k)
            return hit if hit is not None else self.train(k, cfg, ds)

    def train(self, k: str, cfg: RunConfig, ds: data.Dataset) -> Run:
        start = time.perf_counter()

        def progress(r: EpochRecord) -> None:
            adv = "  ".join(f"adv@{e} {m[STRONGEST]:.3f}" for e, m in r.adv.items())
            self.log(f"{k[:8]} {cfg.label} epoch {r.epoch}/{cfg.epochs} loss {r.train_loss:.3f} "
                     f"clean {r.clean:.3f}  {adv}  {r.seconds:.1f}s")
        self.log(f"{k[:8]} {cfg.label} training starts")  # what a crashed worker was doing
        try:
            trained = train.run(cfg, ds, self.device, self.cache.checkpointer(k), progress,
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
        run = Run(key=k, status="done", label=cfg.label, config=cfg, records=trained.records, dataset_used=ds.name,
                  data_fingerprint=ds.fingerprint, code_version=code_version(), device=str(self.device),
                  # what a cache hit in a later session was trained under (its session may differ)
                  trained_with=TrainedWith(compile=self.compile_mode, early_exit=self.early_exit,
                                           attack_shapes=self.attack_shapes,
                                           deterministic=torch.are_deterministic_algorithms_enabled(),
                                           threads=torch.get_num_threads(), session=self.session,
                                           precision=trained.precision),
                  train_wall_seconds=time.perf_counter() - start)
        self.cache.publish(k, results.plain(run.to_dict()), trained.final_state, trained.best_states)
        return run

    # ---- the final checkpoint: stronger attacks and masking diagnostics -----------------------------
    def final_checks(self, claim: Claim, configs: dict[str, list[RunConfig]], runs: Runs) -> FinalChecks | None:
        """Each finished run's evaluation at the claim's deciding eps on its final weights and, where that is
        not the last epoch, on its best adversarial epoch's (where the score is made); then, seed by seed,
        transfer checks between the arms in both directions, on the final weights and on each run's best
        epoch. Each is computed once and kept in the cache beside its run."""
        if self.final_eval is None or not plan.checks_masking(claim):
            return None
        ds = self.dataset(configs)
        eps = claim.deciding_eps
        cfg_of = {r.key: c for name in runs for r, c in zip(runs[name], configs[name])}
        finished = [r for rs in runs.values() for r in rs if r.done]
        done: dict[str, tuple] = {}
        for wait in (False, True):  # first the runs no other worker is evaluating, then wait for the rest
            for i, r in enumerate(finished, 1):
                if r.key not in done and (got := self.evaluations(r, cfg_of[r.key], ds, eps, f"{i}/{len(finished)}",
                                                                   wait)):
                    done[r.key] = got
        finals, bests, warnings, transfers = {}, {}, [], []
        for r in finished:
            finals[r.key], best = done[r.key]
            warnings += [f"{r.label}: {w}" for w in finals[r.key].failed]
            if best is not None:
                bests[r.key] = best
                warnings += [f"{r.label} (epoch {best.epoch}, its best adversarial accuracy): {w}" for w in best.failed]
        # Both ways, seed by seed: a masked white-box attack on either arm shows as a transfer attack beating it
        # (a dose: between its ends; a null control compares an arm with itself).
        seeds = zip(runs[claim.worse], runs[claim.better]) if claim.expect != "null" else ()
        for worse, better in seeds:
            if not (worse.done and better.done):
                continue
            for (src, tgt), direction in zip(((worse, better), (better, worse)), diagnostics.TRANSFER_DIRECTIONS):
                for at_best in (False, True):
                    evaluations = bests if at_best else finals
                    if at_best and not (src.key in bests or tgt.key in bests):
                        continue  # both runs' best epochs are their last: the final weights' check covers it
                    whitebox = (evaluations.get(tgt.key) or finals[tgt.key]).pgd[STRONGEST]
                    check = self.transfer(src, tgt, cfg_of, ds, eps, direction, whitebox, at_best)
                    transfers.append(check)
                    if not check.ok:
                        warnings.append(f"{tgt.label}: transfer from {src.label}: {check.detail}")
        return FinalChecks(finals, bests, transfers, warnings)

    def transfer(self, src: Run, tgt: Run, cfg_of: dict[str, RunConfig], ds: data.Dataset, eps: float,
                 direction: str, whitebox: float, at_best: bool) -> Transfer:
        """PGD crafted on `src`, scored on `tgt`: on their final weights, or each on its best epoch's."""
        s_cfg, t_cfg = cfg_of[src.key], cfg_of[tgt.key]
        s_epoch, t_epoch = (_best_not_last(r, eps) if at_best else None for r in (src, tgt))
        where = f"e{s_epoch}-e{t_epoch}-" if at_best else ""

        def compute() -> dict:
            x, y = self.eval_set(t_cfg, ds)
            value = results.plain(diagnostics.transfer_check(
                self.final_model(src.key, s_cfg, ds, s_epoch), self.final_model(tgt.key, t_cfg, ds, t_epoch), x, y,
                dataclasses.replace(t_cfg.attack, eps=(eps,)), t_cfg.precision, whitebox, self.final_eval.tolerance))
            self.log(f"{tgt.key[:8]} transfer {src.label} -> {tgt.label}{' (best epochs)' if at_best else ''}: "
                     f"{value['transfer_acc']:.3f} ({'ok' if value['ok'] else 'FAILED'})")
            return {**value, "direction": direction, "detail": f"{direction}: {value['detail']}"}
        value = self.cache.derived(tgt.key, f"transfer-{src.key[:12]}-{where}{self.final_tag(eps)}", compute)
        return Transfer(**value, source=src.label, target=tgt.label, weights="best" if at_best else "final")

    def final_tag(self, eps: float) -> str:
        """Names the final-checkpoint results of `eps` in the cache: recomputed when the settings, the eps,
        the attack and diagnostics code or torchattacks' version change."""
        attack_code = code_version(modules=("run/attacks.py", "spec/budget.py", "run/diagnostics.py"))
        return hashlib.sha256(repr((self.final_eval, eps, attack_code, diagnostics.library_version())).encode()
                              ).hexdigest()[:12]

    def evaluations(self, run: Run, cfg: RunConfig, ds: data.Dataset, eps: float, which: str = "",
                    wait: bool = True) -> tuple[FinalEvaluation, FinalEvaluation | None] | None:
        """Finished `run`'s evaluation at eps on its final weights, and on its best adversarial epoch's where
        that is not the last (None otherwise); without `wait`, None while another process evaluates the run."""
        best = _best_not_last(run, eps)
        final = self.final_evaluation(run.key, cfg, ds, eps, which, wait=wait)
        if final is None:
            return None
        return final, None if best is None else self.final_evaluation(run.key, cfg, ds, eps, which, best)

    def complete(self, k: str, final_eps: tuple[float, ...]) -> bool:
        """Whether run k and its final-checkpoint evaluations at `final_eps` are in the cache."""
        return self.cache.lookup(k) is not None and (self.final_eval is None or all(
            (self.cache.dir(k) / f"final-{self.final_tag(e)}.json").exists() for e in final_eps))

    def final_evaluation(self, k: str, cfg: RunConfig, ds: data.Dataset, eps: float, which: str = "",
                         epoch: int | None = None, wait: bool = True) -> FinalEvaluation | None:
        """Finished run k's evaluation at eps on its final checkpoint, or on the weights of `epoch` (one of
        its best epochs): computed once, kept in the cache beside it (None: another process holds the run
        and `wait` is off)."""
        where = "final-checkpoint" if epoch is None else f"epoch-{epoch}"

        def final():
            start = time.perf_counter()
            model, (x, y) = self.final_model(k, cfg, ds, epoch), self.eval_set(cfg, ds)
            value = results.plain(diagnostics.final_evaluation(
                model, x, y, dataclasses.replace(cfg.attack, eps=(eps,)), self.final_eval, cfg.precision))
            self.log(f"{k[:8]} {cfg.label} {where} checks {which}: "
                     f"{sum(c['ok'] for c in value['checks'].values())}/{len(value['checks'])} ok  "
                     f"{time.perf_counter() - start:.1f}s")
            return value if epoch is None else {**value, "epoch": epoch}
        name = f"final-{self.final_tag(eps)}" if epoch is None else f"best-e{epoch}-{self.final_tag(eps)}"
        value = self.cache.derived(k, name, final, wait)
        return None if value is None else FinalEvaluation.from_dict(value, f"{name} of run {k}")

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
        x, y = train.eval_set(cfg, ds, self.device)
        return x[:self.final_eval.n_eval], y[:self.final_eval.n_eval]


class CollectExecutor(LocalExecutor):
    """Trains nothing: runs come from the cache, and a run it lacks is "missing" (the case fails and names
    it), or "failed" with the error of the SLURM job that trained it (`failures`, --executor slurm).
    Final-checkpoint checks are computed for the runs that are there."""

    def missing(self, k: str, cfg: RunConfig, ds: data.Dataset) -> Run:
        return absent(k, cfg, ds, "missing", "not in the cache (collect mode trains nothing): run the session "
                                              "without --collect-only-runs, or with --executor slurm")


def _best_not_last(run: Run, eps: float) -> int | None:
    """The run's epoch of best adversarial accuracy at eps, unless it is the last (its final weights)."""
    best = run.best_epoch(eps)
    return best if best < len(run.records) else None


def absent(k: str, cfg: RunConfig, ds: data.Dataset, status: str, error: str) -> Run:
    """A run that has no numbers: failed in training, or missing from the cache."""
    return Run(key=k, status=status, label=cfg.label, config=cfg, records=[], dataset_used=ds.name,
               data_fingerprint=ds.fingerprint, error=error)

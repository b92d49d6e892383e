"""From a claim to a verdict: expand variants x seeds into runs, get each from the cache or train it,
and compare the variants across seeds. No pytest here (harness.plugin is the glue)."""
from __future__ import annotations

import dataclasses
import hashlib
import math
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from . import data, diagnostics, results, stats, train
from .attacks import eps_key
from .cache import RunCache, code_version
from .config import (NO_ROUNDING, STRONGEST, Claim, ConfigError, Profile, RunConfig,
                     Variant, key)
from .data import Sources, fixed_subset


@dataclass
class Suite:
    profile: Profile
    sources: Sources
    cache: RunCache
    device: torch.device
    precision: str  # resolved: "bf16" or "fp32"
    alpha: float = 0.05
    datasets_override: tuple[str, ...] | None = None  # --datasets
    eps_override: tuple[float, ...] | None = None  # --eps, in 1/255 units
    compile_mode: str = "off"  # torch.compile: on, off, auto (see train.run)
    early_exit: bool = True
    session: str = ""  # the report folder's name: one pytest session across its workers
    log: Callable[[str], None] = print
    failures: dict = field(default_factory=dict)  # key -> error, in this process
    configs: dict = field(default_factory=dict)  # key -> RunConfig of every run asked for

    # ---- which cases a claim has under this profile ------------------------------------------------
    def datasets(self, claim: Claim) -> list[str]:
        """The datasets the claim runs on here: its own (or --datasets); in a profile that substitutes,
        only the first one that can be reached."""
        wanted = self.datasets_override or claim.datasets
        if not self.profile.substitute_data:
            return list(wanted)
        found = data.first_reachable(tuple(wanted), self.sources)
        return [found or wanted[0]]

    def eps_cases(self, claim: Claim) -> list[float]:
        return list(self.eps_override or claim.eps)

    # ---- runs ------------------------------------------------------------------------------------
    def run_configs(self, claim: Claim, variant: Variant, dataset: str) -> list[RunConfig]:
        size = variant.input_size
        if size and self.profile.max_input_size:
            size = min(size, self.profile.max_input_size)
        rounds = _pipeline_rounds(variant.pipeline)
        # Every run evaluates the profile's radii (plus any a claim adds), so runs with the same variant are
        # shared between hypotheses (the control's first arm is the pooling hypothesis's Max).
        eps = tuple(sorted(set(self.profile.attack.eps) | set(self.eps_cases(claim))))
        attack = dataclasses.replace(self.profile.attack, eps=eps, modes=claim.modes if rounds else (NO_ROUNDING,))
        recipe = variant.recipe
        if self.profile.max_batch_size and recipe.batch_size > self.profile.max_batch_size:
            recipe = dataclasses.replace(recipe, batch_size=self.profile.max_batch_size)
        base = dataclasses.replace(variant, input_size=size, recipe=recipe, seed_offset=0)
        return [RunConfig(dataset=dataset, variant=base, seed=s + variant.seed_offset,
                          epochs=self.profile.epochs or claim.epochs, train_subset=self.profile.train_subset,
                          attack=attack, precision=self.precision)
                for s in self.profile.seeds]

    def curves(self, claim: Claim, dataset: str) -> dict[str, list[dict]]:
        """variant name -> one run dict per seed (finished or failed), trained here or read from the cache.

        Workers that need the same runs share them: a run another process is training is skipped and
        collected at the end, so three workers asking for six runs train six, not eighteen.
        """
        ds = data.load(dataset, self.sources, self.cache.root)
        fingerprint, code = ds.fingerprint, code_version()
        wanted = {name: self.run_configs(claim, v, dataset) for name, v in claim.variants.items()}
        keyed = {key(c, fingerprint, code): c for cfgs in wanted.values() for c in cfgs}
        if len(keyed) < sum(map(len, wanted.values())):  # one run counted in two arms, or twice in one
            raise ConfigError(f"{claim.statement}: seeds {list(self.profile.seeds)} make the variants share runs "
                              f"(a variant's seed_offset maps its seeds onto another's): pick seeds below the "
                              f"smallest nonzero offset, e.g. --seeds 0,1,2")
        self.configs.update(keyed)
        done: dict[str, dict] = {}
        pending = list(keyed)
        while pending:
            progressed = False
            for k in list(pending):
                result = self._try(k, keyed[k], ds)
                if result is not None:
                    done[k] = result
                    pending.remove(k)
                    progressed = True
            if pending and not progressed:
                self.cache.lock(pending[0]).release()  # wait for the process training it
        return {name: [done[key(c, fingerprint, code)] for c in cfgs] for name, cfgs in wanted.items()}

    def _try(self, k: str, cfg: RunConfig, ds: data.Dataset) -> dict | None:
        """The run's result (finished or failed), or None if another process holds it right now."""
        if k in self.failures:
            return _failed(k, cfg, ds, self.failures[k])
        hit = self.cache.lookup(k)
        if hit is not None:
            return hit
        failure = self.cache.failure(k)
        if failure and failure.get("session") == self.session:  # failed in this session: don't retry now
            return _failed(k, cfg, ds, failure["error"])
        lock = self.cache.try_lock(k)
        if lock is None:
            return None
        with lock:
            hit = self.cache.lookup(k)
            return hit if hit is not None else self._train(k, cfg, ds)

    def _train(self, k: str, cfg: RunConfig, ds: data.Dataset) -> dict:
        start = time.perf_counter()

        def progress(r: dict) -> None:
            adv = "  ".join(f"adv@{e} {m[STRONGEST]:.3f}" for e, m in r["adv"].items())
            self.log(f"{k[:8]} {cfg.label} epoch {r['epoch']}/{cfg.epochs} loss {r['train_loss']:.3f} "
                     f"clean {r['clean']:.3f}  {adv}  {r['seconds']:.1f}s")
        try:
            records, final_state = train.run(cfg, ds, self.device, self.cache.checkpointer(k), progress,
                                             compile_mode=self.compile_mode, early_exit=self.early_exit)
        except (KeyboardInterrupt, SystemExit, OSError, ConfigError):
            raise  # interrupts and bad input stop the session; finished epochs stay in the checkpoint
        except Exception as e:  # a failed run is reported, never cached, and retried next session
            error = f"{type(e).__name__}: {e}"
            self.log(f"{k[:8]} {cfg.label} FAILED: {error}")
            self.failures[k] = error
            self.cache.record_failure(k, self.session, error + "\n" + traceback.format_exc(limit=5))
            return _failed(k, cfg, ds, error)
        result = results.plain({"key": k, "status": "done", "label": cfg.label, "config": cfg.to_dict(),
                  "dataset_used": ds.name, "data_fingerprint": ds.fingerprint, "code_version": code_version(),
                  "device": str(self.device), "records": records,
                  # what a cache hit in a later session was trained under (its session may differ)
                  "trained_with": {"compile": self.compile_mode, "early_exit": self.early_exit,
                                   "deterministic": torch.are_deterministic_algorithms_enabled(),
                                   "session": self.session},
                  "train_wall_seconds": time.perf_counter() - start})  # as the cache returns it
        self.cache.publish(k, result, final_state)
        return result

    # ---- the comparison --------------------------------------------------------------------------
    def evaluate(self, claim: Claim, dataset: str, eps: float, module: str = "") -> dict:
        """One test case: the claim on one dataset at one eps, with its Holm family when it decides.
        The runs it used (with their final-checkpoint evaluations) are under case["_runs"]."""
        decides = eps == claim.deciding_eps
        runs = self.curves(claim, dataset)
        case = _compare_case(claim, runs, eps, self.alpha)
        if self.profile.final_eval is not None:
            case.update(self.final_checks(claim, dataset, runs))
        else:
            case.update(transfer=[], masking_warnings=[])
            if claim.expect == "better":
                case["problems"].append("no final-checkpoint checks ran (the profile has no final evaluation), "
                                        "so nothing vouches that the attacks were not masked")
        family = self.datasets(claim) if decides else [dataset]
        if decides:
            raw = {ds: (case if ds == dataset else _compare_case(claim, self.curves(claim, ds), eps, self.alpha))
                   ["test"] for ds in family}
            adj_g = stats.holm([raw[d]["p_greater"] for d in family])
            adj_l = stats.holm([raw[d]["p_less"] for d in family])
            i = family.index(dataset)
            case["test"].update(p_adj_greater=adj_g[i], p_adj_less=adj_l[i],
                                holm_family=[f"{d} eps={eps:g}" for d in family])
        else:
            case["test"].update(p_adj_greater=case["test"]["p_greater"], p_adj_less=case["test"]["p_less"],
                                holm_family=[])
        t = case["test"]
        case.update(module=module, statement=claim.statement, better=claim.better, worse=claim.worse,
                    expect=claim.expect, dataset=dataset, eps=eps, decides=decides,
                    deciding_eps=claim.deciding_eps, profile_decides=self.profile.decides,
                    profile=self.profile.name, alpha=self.alpha, seeds=list(self.profile.seeds),
                    epochs=self.profile.epochs or claim.epochs,
                    verdict=stats.verdict(t["p_adj_greater"], t["p_adj_less"], self.alpha),
                    _runs={r["key"]: r for rs in runs.values() for r in rs})
        return case

    # ---- the final checkpoint: stronger attacks and masking diagnostics ---------------------------------
    def final_checks(self, claim: Claim, dataset: str, runs: dict[str, list[dict]]) -> dict:
        """Attach each finished run's final evaluation (run["final"], at the claim's deciding eps) and,
        seed by seed, a transfer check from the worse variant to the better; failed checks are named in
        "masking_warnings". Each is computed once and kept in the cache beside its run."""
        ds = data.load(dataset, self.sources, self.cache.root)
        fe, eps = self.profile.final_eval, claim.deciding_eps
        # Recomputed when the settings, the eps, the attack and diagnostics code or torchattacks' version change.
        attack_code = code_version(modules=("attacks.py", "diagnostics.py"))
        tag = hashlib.sha256(repr((fe, eps, attack_code, diagnostics.library_version())).encode()).hexdigest()[:12]
        warnings, transfers = [], []
        for r in (r for rs in runs.values() for r in rs if r["status"] == "done"):
            cfg = self.configs[r["key"]]

            def final(cfg=cfg, k=r["key"]):
                model, (x, y) = self._final_model(k, cfg, ds), self._eval_set(cfg, ds)
                return results.plain(diagnostics.final_evaluation(
                    model, x, y, eps, cfg.attack.modes, fe, cfg.attack.steps, cfg.attack.step_ratio,
                    cfg.precision, seed=cfg.attack.eval_seed))
            r["final"] = self.cache.derived(r["key"], f"final-{tag}", final)
            warnings += [f"{r['label']}: {name}: {c['detail']}" for name, c in r["final"]["checks"].items()
                         if not c["ok"]]
        pairs = zip(runs[claim.worse], runs[claim.better]) if claim.expect == "better" else ()
        for src, tgt in ((s, t) for s, t in pairs if s["status"] == t["status"] == "done"):
            s_cfg, t_cfg = self.configs[src["key"]], self.configs[tgt["key"]]

            def transfer(src=src, tgt=tgt, s_cfg=s_cfg, t_cfg=t_cfg):
                x, y = self._eval_set(t_cfg, ds)
                return results.plain(diagnostics.transfer_check(
                    self._final_model(src["key"], s_cfg, ds), self._final_model(tgt["key"], t_cfg, ds), x, y,
                    eps, t_cfg.attack.steps, t_cfg.attack.step_ratio, t_cfg.precision, seed=t_cfg.attack.eval_seed,
                    whitebox_acc=tgt["final"]["pgd"][STRONGEST], tolerance=fe.tolerance))
            check = self.cache.derived(tgt["key"], f"transfer-{src['key'][:12]}-{tag}", transfer)
            transfers.append({"source": src["label"], "target": tgt["label"], **check})
            if not check["ok"]:
                warnings.append(f"{tgt['label']}: transfer from {src['label']}: {check['detail']}")
        return {"transfer": transfers, "masking_warnings": warnings}

    def _final_model(self, k: str, cfg: RunConfig, ds: data.Dataset) -> torch.nn.Module:
        model = train.build(cfg, ds, self.device)
        state = self.cache.final_state(k)
        if state is None:
            raise RuntimeError(f"{cfg.label}: final weights unreadable; moved aside, the run retrains next time")
        model.load_state_dict(state)
        return model.eval()

    def _eval_set(self, cfg: RunConfig, ds: data.Dataset) -> tuple[torch.Tensor, torch.Tensor]:
        """The first n of the run's per-epoch evaluation subset, on the device, images in [0, 1]."""
        idx = fixed_subset(len(ds.test_x), cfg.attack.n_eval, cfg.attack.eval_seed)[:self.profile.final_eval.n_eval]
        return ds.test_x[idx].to(self.device).float().div_(255), ds.test_y[idx].to(self.device)


def _pipeline_rounds(name: str) -> bool:
    from .pipelines import PIPELINES
    if name not in PIPELINES:
        raise ConfigError(f"unknown pipeline {name!r}: choose one of {', '.join(PIPELINES)}")
    return PIPELINES[name].rounds


def _failed(k: str, cfg: RunConfig, ds: data.Dataset, error: str) -> dict:
    return results.plain({"key": k, "status": "failed", "label": cfg.label, "config": cfg.to_dict(),
                          "dataset_used": ds.name, "error": error, "records": []})


def _compare_case(claim: Claim, runs: dict[str, list[dict]], eps: float, alpha: float) -> dict:
    """Scores per seed and the test for 'better > worse' at one eps, on the strongest attack."""
    ek = eps_key(eps)
    pair = (claim.better, claim.worse)
    curves = {n: _curves([r for r in runs[n] if r["status"] == "done"], ek) for n in pair}
    cleans = [c for n in pair if curves[n] for c in curves[n][0]]
    lo, hi = stats.shared_range(cleans) if cleans else (math.nan, math.nan)
    scores = {n: stats.scores(curves[n][0], curves[n][1][STRONGEST], lo, hi) if curves[n]
              else {s: [] for s in stats.SCORES} for n in pair}
    test = stats.compare(scores[claim.better][stats.PRIMARY], scores[claim.worse][stats.PRIMARY], alpha)
    per_mode = {}
    if len(claim.modes) > 1 and all(curves.values()):
        for mode in claim.modes:  # each rounding mode on its own, beside the strongest that decides
            s = {n: stats.scores(curves[n][0], curves[n][1].get(mode, curves[n][1][STRONGEST]), lo, hi)
                 [stats.PRIMARY] for n in pair}
            c = stats.compare(s[claim.better], s[claim.worse], alpha)
            per_mode[mode] = {"effect": c["effect"], "p_greater": c["p_greater"], "scores": s}
    problems = [f"{r['label']} failed: {r['error']}" for rs in runs.values() for r in rs if r["status"] != "done"]
    if test.get("problem"):
        problems.append(test["problem"])
    return {"run_keys": {n: [r["key"] for r in rs] for n, rs in runs.items()},
            "dataset_used": next((r["dataset_used"] for rs in runs.values() for r in rs), None),
            "shared_clean_range": [lo, hi], "scores": scores, "primary": stats.PRIMARY,
            "attack": STRONGEST, "test": test, "per_mode": per_mode, "problems": problems}


def _curves(finished: list[dict], ek: str):
    """(clean, {attack: adv}) of one variant's finished runs, arrays shaped (n_seeds, n_epochs); None if none."""
    if not finished:
        return None
    clean = np.array([[e["clean"] for e in r["records"]] for r in finished])
    adv = {m: np.array([[e["adv"][ek][m] for e in r["records"]] for r in finished])
           for m in finished[0]["records"][0]["adv"][ek]}
    return clean, adv

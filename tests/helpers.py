"""Builders the harness's tests share (not fixtures: plain functions, imported as `from helpers import ...`).

sample_case: a complete, valid Case to change field by field; small_claim and small_suite: runs at the
smallest size that still trains and attacks for real, in this process; fake_config: what the plugin's
settings.read asks of pytest's config. (export_subset, a real dataset small enough that a subprocess decodes
it in a moment, is harness.chaos's, as is the size small_suite trains at.)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

from harness.plugin import settings
from harness.run import runtime
from harness.cache.runs import RunCache
from harness.spec.case import Case, Design, Evidence
from harness.chaos import small_profile
from harness.spec import plan
from harness.spec.claim import Claim
from harness.spec.config import AttackConfig, Profile, Recipe, RunConfig, Variant, eps_key
from harness.spec.records import EpochRecord, FinalChecks, Run
from harness.spec.results import plain
from harness.run.data import Sources
from harness.executors.local import LocalExecutor


def small_claim(dataset: str, variants: dict | None = None) -> Claim:
    """A claim whose runs are `variants` (default: ResNet18 with 32-image batches) x the suite's seeds."""
    variants = variants or {"resnet18": Variant("resnet18", "baseline", Recipe(batch_size=32))}
    first, last = list(variants)[0], list(variants)[-1]
    return Claim(statement="a test's claim", better=first, worse=last, variants=variants, datasets=(dataset,),
                 epochs=1, eps=(8.0,), deciding_eps=8.0)


@dataclass
class SmallSuite:
    """Runs at chaos's smallest size through a LocalExecutor on the CPU, in fp32: `curves(claim, dataset)`."""
    executor: LocalExecutor
    profile: Profile

    @property
    def cache(self) -> RunCache:
        return self.executor.cache

    def curves(self, claim: Claim, dataset: str) -> dict[str, list[Run]]:
        p = plan.Plan(claim, self.profile, (dataset,), claim.eps)
        return self.executor.runs(plan.run_configs(p, dataset, "fp32"))


def small_suite(cache: RunCache, sources: Sources, seeds: tuple[int, ...], epochs: int, session: str = "tests",
                log=print) -> SmallSuite:
    """64 training images in 2 steps of 32 per epoch, PGD (1 step, eps 8/255) on 32 test images per epoch."""
    executor = LocalExecutor(cache=cache, sources=sources, device=runtime.pick_device("cpu"), final_eval=None,
                             session=session, log=log)
    return SmallSuite(executor, small_profile(seeds, epochs))


EVIDENCE = Evidence(method="welch", n=[3, 3], effect=0.05, ci=[0.01, 0.09], p_greater=0.01, p_less=0.99,
                    p_adj_greater=0.01, p_adj_less=0.99, holm_family=["cifar10 eps=1"], df=2.0, p_perm=0.05,
                    p_min=0.05, seeds_needed=None, problem=None,
                    design=Design(alpha_holm=0.0304, p_min_exact=0.05, underpowered=True, seeds_for_exact=4,
                                  detectable_effect=0.1))
DECIDING = Case(nodeid="h.py::t[c-eps1]", module="h", statement="A beats B", better="A", worse="B", expect="better",
                dataset="cifar10", dataset_used="cifar10", eps=1.0, deciding_eps=1.0, decides=True, profile="paper",
                profile_decides=True, alpha=0.05, level=0.0304, seeds=[0, 1, 2], epochs=10, primary="dominated_area",
                attack="strongest", shared_clean_range=[0.1, 0.5], scores={}, run_keys={}, test=EVIDENCE, per_mode={},
                along_eps=[], equivalence=None, trend=None, transfer=[], masking_warnings=[], failed_runs=[],
                problems=[], notes=[], reduced=[], allow_reduced=False, verdict="supported", outcome="", claimed=None,
                reading=None, known=None, known_stale=None)


def sample_case(**changes) -> Case:
    """A deciding, supported case of the paper profile, with `changes` (fields of Case; `test` may be a dict
    of Evidence fields to change)."""
    if isinstance(changes.get("test"), dict):
        changes["test"] = dataclasses.replace(EVIDENCE, **changes["test"])
    return dataclasses.replace(DECIDING, **changes)


def fake_config(cli: dict | None = None, ini: dict | None = None, numprocesses: int | None = None):
    """What settings.read asks of a pytest config: these command-line values (by dest, "advhyp_seeds") and ini
    keys, every other option and switch unset; numprocesses is xdist's -n."""
    defaults = {o[2]: o[3] for o in settings.OPTIONS.values()} | {f[2]: False for f in settings.FLAGS.values()}
    return SimpleNamespace(getoption=lambda name: (cli or {}).get(name), rootpath=Path(__file__).parents[1],
                           getini=lambda name: (ini or {}).get(name, defaults[name]),
                           option=SimpleNamespace(numprocesses=numprocesses))


# ---- runs built with the types ---------------------------------------------------------------------------
TOY_CONFIG = RunConfig(dataset="toy", variant=Variant("resnet18", "baseline"), seed=0, epochs=2, train_subset=None,
                       attack=AttackConfig(eps=(1.0,)), precision="fp32")
NO_CHECKS = FinalChecks(finals={}, bests={}, transfer=[], masking_warnings=[])  # checks that ran, all passed


def make_run(key: str, clean, adv, status: str = "done", eps: float = 1.0, config: RunConfig = TOY_CONFIG,
             dataset_used: str = "toy", error: str | None = None, label: str | None = None) -> Run:
    """A Run whose epochs have clean accuracies `clean` and, at `eps`, adversarial accuracies `adv`: a list
    (one attack, `pgd`, which is then the strongest) or {attack: list} with "strongest" among them. A run
    that is not done has no records and the error `error` (default "boom")."""
    per_attack = adv if isinstance(adv, dict) else {"pgd": adv, "strongest": adv}
    records = [EpochRecord(epoch=i + 1, clean=c, adv={eps_key(eps): {m: float(v[i]) for m, v in per_attack.items()}})
               for i, c in enumerate(clean)]
    return Run(key=key, status=status, label=label or key, config=config, records=records if status == "done" else [],
               dataset_used=dataset_used, error=None if status == "done" else (error or "boom"))


def run_dict(run: Run) -> dict:
    """The run as results.json stores it."""
    return plain(run.to_dict())

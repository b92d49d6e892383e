"""The record of one run, as the executors return it, the cache keeps it and results.json stores it.

A run is a value: made once by an executor (trained, read from the cache, or found missing), never changed
after. Its final-checkpoint evaluations are values too (`FinalEvaluation`), made by the executor's final
checks and set on the run with `with_checks` when the session records it. `to_dict` / `from_dict` are the
JSON form; `from_dict` checks every field against these annotations (harness.spec.schema), so the
dataclasses are the schema.

Accuracies are fractions in [0, 1] (NaN where nothing was measured); eps are in 1/255 units, and a record's
per-eps maps are keyed by `eps_key(eps)` ("1", "0.5").
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from .config import STRONGEST, RunConfig, eps_key
from .schema import Record, SchemaError, from_dict

RUN_STATUSES = ("done", "failed", "missing")


@dataclass(frozen=True)
class EpochRecord(Record):
    """One epoch's point of a run (harness.run.train.run)."""
    epoch: int
    clean: float
    adv: dict[str, dict[str, float]]  # eps key -> attack mode (and "strongest") -> robust accuracy
    train_loss: float = math.nan
    seconds: float = math.nan  # the epoch's wall time, training and evaluation
    train_seconds: float = math.nan
    effort: dict[str, dict] = field(default_factory=dict)  # "budget": planned, "spent": per eps and mode

    def adv_at(self, eps: float, attack: str = STRONGEST) -> float:
        return self.adv[eps_key(eps)][attack]


@dataclass(frozen=True)
class Check(Record):
    """One masking check on a final checkpoint: whether it passed, and what it measured."""
    ok: bool
    detail: str


@dataclass(frozen=True)
class FinalEvaluation(Record):
    """Stronger attacks and masking checks at one eps on a finished run's final weights, or on those of its
    epoch of highest adversarial accuracy (`epoch`; None: the final weights). harness.run.diagnostics."""
    n: int  # examples
    clean: float
    eps: float
    pgd: dict[str, float]  # attack mode (and "strongest") -> robust accuracy under the run's own PGD
    apgd_ce: dict[str, float] | None
    apgd_dlr: dict[str, float] | None
    square: float | None
    zero_grad: dict[str, float]  # mode -> fraction of examples with an exactly zero input gradient
    steps_curve: dict[str, list[float]]  # "steps" and "acc": strongest-PGD accuracy along more steps
    eps_curve: dict[str, list[float]]  # "eps" and "acc": along larger radii
    strongest_overall: float
    checks: dict[str, Check]
    warnings: list[str]  # problems that are not checks (torchattacks missing)
    seconds: float = math.nan
    epoch: int | None = None

    @property
    def failed(self) -> list[str]:
        """The checks that failed, as 'name: detail'."""
        return [f"{name}: {c.detail}" for name, c in self.checks.items() if not c.ok]


@dataclass(frozen=True)
class Transfer(Record):
    """PGD crafted on one arm's run and scored on the other's, seed by seed (harness.run.diagnostics)."""
    eps: float
    direction: str  # "worse->better" or "better->worse"
    transfer_acc: float
    whitebox_acc: float  # the target's own strongest white-box accuracy at the same eps and weights
    ok: bool
    detail: str
    source: str = ""  # run labels
    target: str = ""
    weights: str = "final"  # "final", or "best": each run at its epoch of best adversarial accuracy


@dataclass(frozen=True)
class TrainedWith(Record):
    """How a run was computed, where it does not change its numbers (so not in its key)."""
    compile: str = "off"
    early_exit: bool = True
    attack_shapes: str = "exact"
    deterministic: bool = False
    threads: int = 0  # torch's CPU threads: runs under other counts share a key, not every bit (docs/cache.md)
    session: str = ""  # the report folder of the session that trained it
    precision: dict[str, str] = field(default_factory=dict)  # what ran at which precision (Deployed.precision_note)


@dataclass(frozen=True)
class Run(Record):
    """One run of a RunConfig: "done" (trained, with one record per epoch), "failed" (with its error), or
    "missing" (collect mode: not in the cache)."""
    key: str
    status: str
    label: str
    config: RunConfig
    records: list[EpochRecord]
    dataset_used: str | None = None
    data_fingerprint: str | None = None
    error: str | None = None
    code_version: str | None = None
    device: str | None = None
    trained_with: TrainedWith | None = None
    train_wall_seconds: float | None = None
    final: FinalEvaluation | None = None  # at the claim's deciding eps, on the final weights
    best: FinalEvaluation | None = None  # the same on the weights of its best adversarial epoch, if not the last

    @property
    def done(self) -> bool:
        return self.status == "done" and bool(self.records)

    def curve(self, eps: float, attack: str = STRONGEST) -> tuple[list[float], list[float]]:
        """Per-epoch (clean, adversarial) accuracies: the run's tradeoff curve at `eps`."""
        return [r.clean for r in self.records], [r.adv_at(eps, attack) for r in self.records]

    def best_epoch(self, eps: float) -> int:
        """The epoch of highest strongest-attack accuracy at `eps` (the first of ties): where a tradeoff
        score is mostly made, so where the masking checks must look too."""
        return max(self.records, key=lambda r: r.adv_at(eps)).epoch  # max keeps the first of ties

    def with_checks(self, final: FinalEvaluation | None, best: FinalEvaluation | None) -> "Run":
        return dataclasses.replace(self, final=final, best=best)

    @classmethod
    def from_dict(cls, d: dict, where: str = "run") -> "Run":
        """A Run from its JSON form, every field checked, accuracies in [0, 1] (SchemaError names the field)."""
        run = from_dict(cls, d, where)
        if run.status not in RUN_STATUSES:
            raise SchemaError(f"{where}.status = {run.status!r}: one of {', '.join(RUN_STATUSES)}")
        for i, rec in enumerate(run.records):
            values = [("clean", rec.clean)] + [(f"adv.{e}.{a}", v) for e, m in rec.adv.items() for a, v in m.items()]
            for name, v in values:
                if not (0 <= v <= 1 or math.isnan(v)):
                    raise SchemaError(f"{where}.records[{i}].{name} = {v!r} is not an accuracy in [0, 1]")
        return run


Runs = dict[str, list[Run]]  # arm -> one run per seed, in the order of the plan's seeds


@dataclass(frozen=True)
class FinalChecks(Record):
    """The final-checkpoint checks of one case's runs at the claim's deciding eps: each finished run's
    evaluation on its final weights and on its best adversarial epoch's (by run key), the transfer checks
    between the arms, and every failed check, named."""
    finals: dict[str, FinalEvaluation]
    bests: dict[str, FinalEvaluation]
    transfer: list[Transfer]
    masking_warnings: list[str]

    def attach(self, runs: Runs) -> Runs:
        """The runs with their evaluations set (as results.json records them)."""
        return {arm: [r.with_checks(self.finals.get(r.key), self.bests.get(r.key)) for r in rs]
                for arm, rs in runs.items()}


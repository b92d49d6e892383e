"""The record of one test case (a claim on one dataset at one eps) and of its evidence.

`Case` is the one shape every part of the suite shares: the verdict module builds it, the plugin sends it
from the xdist workers to the controller as `to_dict()`, results.json stores it, and the report reads its
fields. `from_dict` checks every field's presence and type against the annotations below, so the
dataclasses are the results schema.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field


class SchemaError(ValueError):
    """A stored record does not have the shape of its dataclass; the message names the field."""


@dataclass(frozen=True)
class Evidence:
    """The comparison 'better > worse' on the primary score, per seed (harness.judge.inference.compare), with the Holm
    adjustment across the claim's datasets when the case decides (else the adjusted p's equal the raw ones)."""
    n: list[int]  # finished seeds per arm: [better, worse]
    effect: float  # mean(better) - mean(worse), in the score's units
    ci: list[float]  # 95% Welch interval of the effect
    p_greater: float  # one-sided Welch p for better > worse (NaN: untestable)
    p_less: float
    p_perm: float  # one-sided permutation p over seed relabelings
    p_min: float  # the smallest p the permutation test can reach with these seed counts
    seeds_needed: int | None  # planning figure: seeds per arm for 80% power at this effect
    problem: str | None  # why the comparison could not be made, if it could not
    df: float = math.nan
    p_adj_greater: float = math.nan
    p_adj_less: float = math.nan
    holm_family: list[str] = field(default_factory=list)  # the cases whose p's were adjusted together
    method: str = "welch"  # the test that decides: welch (independent arms), paired, trend
    design: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Case:
    """One hypothesis test case and its outcome. Scores are per seed, in the order of `run_keys`."""
    # what was asked
    nodeid: str
    module: str
    statement: str
    better: str  # arm names
    worse: str
    expect: str  # "better", or "null" for a control
    dataset: str  # the logical dataset the case runs on
    dataset_used: str | None  # what the runs actually read (e.g. cifar10-jpeg75)
    eps: float  # 1/255 units
    deciding_eps: float
    decides: bool  # the claim's deciding eps (others are reported only)
    profile: str
    profile_decides: bool  # False: the profile computes everything and decides nothing
    alpha: float
    seeds: list[int]
    epochs: int
    # what was measured
    primary: str  # the score that decides (harness.judge.stats.SCORES)
    attack: str  # the per-example attack the scores use ("strongest": worst case over the epoch's attacks)
    shared_clean_range: list[float]
    scores: dict[str, dict[str, list[float]]]  # arm -> score name -> per seed
    test: Evidence
    per_mode: dict[str, dict]  # rounding mode -> {"effect", "p_greater", "scores"}: each attack on its own
    run_keys: dict[str, list[str]]  # arm -> run keys, one per seed
    transfer: list[dict]  # final-checkpoint transfer checks
    masking_warnings: list[str]  # failed masking checks, named
    failed_runs: list[str]  # runs that failed or are missing: the case fails under every profile
    problems: list[str]  # why the comparison cannot decide (too few seeds, identical scores, no checks)
    notes: list[str]  # what the plan changed from the claim (a substituted dataset)
    reduced: list[str]  # how the protocol falls short of the claim's: report only, unless allow_reduced
    allow_reduced: bool
    # what it means
    verdict: str  # one of harness.judge.verdict.VERDICTS
    outcome: str  # the test's outcome: passed, failed, skipped or xfailed
    # beside the verdict
    kind: str = "pair"  # "pair": better vs worse; "trend": a score along ordered levels (a dose)
    trend: dict = field(default_factory=dict)  # kind "trend": levels, per-level means, slope, its CI and p's
    design: dict = field(default_factory=dict)  # what the seed counts can reach (harness.judge.inference.design)
    equivalence: dict | None = None  # TOST within the claim's margin, where the claim states one
    parity: list[str] = field(default_factory=list)  # settings the arms differ in besides the declared factor
    intended: dict[str, str] = field(default_factory=dict)  # differences the claim declares, with the reason
    claimed: dict | None = None  # what the source claimed: direction, size, source
    known: dict | None = None  # the verdict recorded for this claim, with its evidence
    along_eps: list[dict] = field(default_factory=list)  # effect and 95% CI at every eps the runs evaluated

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict, where: str = "case") -> "Case":
        return from_dict(cls, d, where)


def from_dict(cls, d, where: str):
    """An instance of dataclass `cls` from plain JSON data, every field checked against its annotation."""
    if not isinstance(d, dict):
        raise SchemaError(f"{where} must be an object, not {type(d).__name__}")
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in d:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SchemaError(f"{where} lacks field {f.name!r}")
            continue
        values[f.name] = check(d[f.name], hints[f.name], f"{where}.{f.name}")
    return cls(**values)


def check(value, kind, where: str):
    """`value` if it has type `kind` (a plain type, a dataclass, list[X], dict[str, X], X | None);
    a nested dataclass comes back as an instance. Raises SchemaError naming the field."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin in (typing.Union, types.UnionType):
        errors = []
        for option in args:
            try:
                return check(value, option, where)
            except SchemaError as e:
                errors.append(str(e))
        raise SchemaError(errors[0] if len(errors) == 1 else f"{where} = {value!r:.60} has the wrong type")
    if dataclasses.is_dataclass(kind):
        return from_dict(kind, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise SchemaError(f"{where} must be a list, not {type(value).__name__}")
        return [check(v, args[0], f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SchemaError(f"{where} must be an object, not {type(value).__name__}")
        return {k: check(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if kind is type(None):
        if value is not None:
            raise SchemaError(f"{where} must be null")
        return value
    if kind is float:  # JSON writes 1.0 as 1: an int is a float here, a bool is not
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SchemaError(f"{where} = {value!r:.60} must be a number")
        return float(value)
    if kind in (int, str, bool):
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise SchemaError(f"{where} = {value!r:.60} must be {'an' if kind is int else 'a'} {kind.__name__}")
        return value
    if kind is dict or kind is list:
        if not isinstance(value, kind):
            raise SchemaError(f"{where} must be a{'n object' if kind is dict else ' list'}")
        return value
    raise TypeError(f"{where}: no schema rule for {kind!r}")


@dataclass(frozen=True)
class EpochRecord:
    """One epoch's point of a run (harness.run.train.run): accuracies are fractions in [0, 1]."""
    epoch: int
    clean: float
    adv: dict[str, dict[str, float]]  # eps key ("1", "0.5") -> attack -> robust accuracy
    train_loss: float = math.nan
    seconds: float = math.nan


@dataclass(frozen=True)
class Run:
    """A run as results.json holds it (the cache's result.json, or a failed or missing run)."""
    key: str
    status: str  # done, failed, or missing (collect mode: not in the cache)
    label: str
    config: dict
    records: list[EpochRecord]
    dataset_used: str | None = None
    error: str | None = None
    final: dict | None = None  # the final-checkpoint evaluation at the claim's deciding eps
    best: dict | None = None  # the same on the weights of the epoch of highest adversarial accuracy there,
    #                           with its "epoch" (absent when that is the last epoch)


def check_run(d: dict, where: str) -> None:
    """Raise SchemaError unless `d` has a Run's shape with accuracies in [0, 1]."""
    run = from_dict(Run, d, where)
    if run.status not in RUN_STATUSES:
        raise SchemaError(f"{where}.status = {run.status!r}: one of {', '.join(RUN_STATUSES)}")
    for i, rec in enumerate(run.records):
        values = [("clean", rec.clean)] + [(f"adv.{e}.{a}", v) for e, m in rec.adv.items() for a, v in m.items()]
        for name, v in values:
            if not (0 <= v <= 1 or math.isnan(v)):
                raise SchemaError(f"{where}.records[{i}].{name} = {v!r} is not an accuracy in [0, 1]")


RUN_STATUSES = ("done", "failed", "missing")

"""The record of one test case (a claim on one dataset at one eps) and of its evidence.

`Case` is the one shape every part of the suite shares: the verdict module builds it, the plugin sends it
from the xdist workers to the controller as `to_dict()`, results.json stores it, and the report reads its
fields. `from_dict` checks every field's presence and type against the annotations below, so the
dataclasses are the results schema.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .records import Transfer
from .schema import Record


@dataclass(frozen=True)
class Evidence(Record):
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
class Case(Record):
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
    transfer: list[Transfer]  # transfer checks between the arms, both ways, at the final and the best epochs
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

"""The record of one test case (a claim on one dataset at one eps) and of its evidence.

`Case` is the one shape every part of the suite shares: the verdict module builds it, the plugin sends it
from the xdist workers to the controller as `to_dict()`, results.json stores it, and the report reads its
fields. `from_dict` checks every field's presence and type against the annotations below, so the
dataclasses are the results schema.
"""
from __future__ import annotations

from dataclasses import dataclass

from .claim import Claimed, Known
from .records import Transfer
from .schema import Record


@dataclass(frozen=True)
class Design(Record):
    """What the seeds could show before any p-value (harness.judge.inference.design)."""
    alpha_holm: float  # the level the case's p must reach: the look's level over the Holm family's size
    p_min_exact: float  # the smallest p an exact permutation test of these seed counts can reach
    underpowered: bool  # p_min_exact > alpha_holm: no distribution-free test of these seeds could decide
    seeds_for_exact: int  # the fewest seeds per arm (per level) whose exact floor reaches alpha_holm
    detectable_effect: float  # the true effect the t-test finds with 80% power at this spread


@dataclass(frozen=True)
class Evidence(Record):
    """The claim's statistic on the primary score, signed so that > 0 is the claimed direction: better -
    worse for a pair (Welch's statistic), the slope along the dose for a trend; Holm-adjusted across the
    claim's datasets when the case decides (else the adjusted p's equal the raw ones)."""
    method: str  # "welch" (a pair) or "trend" (a dose)
    n: list[int]  # finished seeds per arm (pair: [better, worse]; trend: per level, ascending dose)
    effect: float  # in the score's units (per unit of dose for a trend)
    ci: list[float]  # its 95% interval
    p_greater: float  # one-sided p of the claimed direction (NaN: untestable)
    p_less: float  # one-sided p of the opposite direction
    p_adj_greater: float
    p_adj_less: float
    holm_family: list[str]  # the cases whose p's were adjusted together
    df: float  # Hsu's min(n) - 1
    p_perm: float  # pair: one-sided permutation p over seed relabelings (shown, not deciding); trend: NaN
    p_min: float  # the smallest p the exact permutation test can reach with these seed counts
    seeds_needed: int | None  # planning figure: seeds per arm for 80% power at this effect
    problem: str | None  # why the statistic could not be computed, if it could not
    design: Design


@dataclass(frozen=True)
class Equivalence(Record):
    """Two one-sided tests of |effect| < margin, Holm-adjusted across the claim's datasets like the difference."""
    margin: float  # in the effect's units
    ci_level: float  # 1 - 2 alpha
    ci: list[float]  # inside +-margin exactly when p_tost <= alpha
    p_lower: float
    p_upper: float
    p_tost: float
    p_adj: float  # p_tost, Holm-adjusted


@dataclass(frozen=True)
class ModeEvidence(Record):
    """One rounding mode's attack on its own (rounding claims only)."""
    effect: float
    p_greater: float
    scores: dict[str, list[float]]  # arm -> per seed


@dataclass(frozen=True)
class EpsPoint(Record):
    """The effect and its 95% CI at one radius (raw, not Holm-adjusted)."""
    eps: float
    effect: float
    ci: list[float]
    p_greater: float


@dataclass(frozen=True)
class CleanCost(Record):
    """A dose's final clean accuracy along the levels: shown beside the trend, not tested."""
    values: dict[str, list[float]]  # level name -> per seed
    means: list[float]
    slope: float  # per unit of dose, as measured
    p_decreasing: float


@dataclass(frozen=True)
class Trend(Record):
    """A dose's levels and its slope as measured (Case.test holds it signed in the claimed direction)."""
    unit: str
    direction: str  # the claimed direction: increasing or decreasing (or equivalent)
    names: list[str]  # level names, ascending dose
    levels: list[float]
    means: list[float]  # per level
    slope: float
    ci: list[float]
    clean_cost: CleanCost


@dataclass(frozen=True)
class Case(Record):
    """One hypothesis test case: a common head, the claim's evidence (Trend only for a dose), the checks,
    and what it means. Scores are per seed, in the order of `run_keys`."""
    # what was asked
    nodeid: str
    module: str
    statement: str
    better: str  # arm names (a trend: the ends of the dose, the claimed-higher first)
    worse: str
    expect: str  # better, equivalent or null (a pair); increasing, decreasing or equivalent (a trend)
    dataset: str  # the logical dataset the case runs on
    dataset_used: str | None  # what the runs actually read (e.g. cifar10-jpeg75)
    eps: float  # 1/255 units
    deciding_eps: float
    decides: bool  # the claim's deciding eps (others are reported only)
    profile: str
    profile_decides: bool  # False: the profile computes everything and decides nothing
    alpha: float  # the family-wise rate of the whole seed procedure
    level: float  # the nominal level each look decides at (harness.judge.inference.pocock)
    seeds: list[int]
    epochs: int
    primary: str  # the score that decides (harness.judge.stats.SCORES)
    attack: str  # the per-example attack the scores use ("strongest": worst case over the epoch's attacks)
    # what was measured
    shared_clean_range: list[float]
    scores: dict[str, dict[str, list[float]]]  # arm -> score name -> per seed
    run_keys: dict[str, list[str]]  # arm -> run keys, one per seed
    test: Evidence
    per_mode: dict[str, ModeEvidence]
    along_eps: list[EpsPoint]
    equivalence: Equivalence | None  # where the claim states a margin
    trend: Trend | None  # a dose only
    # the checks
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
    claimed: Claimed | None  # what the source claimed
    reading: str | None  # the claim beside the verdict: replicated, direction only, or the verdict
    known: Known | None  # the verdict recorded for this claim under this profile, with its provenance
    known_stale: str | None  # why the record does not apply here (other data, older code), if it does not

    @property
    def kind(self) -> str:
        return "pair" if self.trend is None else "trend"

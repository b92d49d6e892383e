"""What a hypothesis asserts: `Claim` (two arms compared), `TrendClaim` (a dose response), what the source
claimed and the verdict known so far, and the checks a claim passes where it is written (each names the field,
the value and the fix).

Apart from harness.spec.config on purpose: that module's text is part of every run's cache key (numeric
code), and a claim's wording and checks decide nothing a run computes, so editing them retrains nothing.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .config import NO_ROUNDING, ROUNDING_MODES, AttackConfig, ConfigError, Recipe, RunConfig, Variant


@dataclass(frozen=True)
class Claimed:
    """What the source claimed, as the report sets it beside what was measured."""
    direction: str  # "better" (the claim's better arm wins), "equivalent", or "increasing"/"decreasing"
    source: str  # where: "research post, Figure 1"
    size: float | None = None  # the effect on the claim's score the source reports or implies; None if none


@dataclass(frozen=True)
class Known:
    """The verdict a claim is known to have and where it was measured: while it holds, a case with this
    verdict is an expected outcome (an xfail for a contradiction) and a different verdict fails, naming
    both. A record measured on other data or with other numeric code than a case's runs does not apply to
    it: the case shows the record as stale and is judged as an expected outcome, never failed by it, until
    the claim is re-measured and the record updated."""
    verdict: str
    data: str  # what the runs read (a Case's dataset_used): "cifar10", "cifar10-jpeg75"
    code: str  # the numeric code's version (each run's code_version; harness.cache.runs.code_version)
    card: str  # "NVIDIA H100 80GB"
    date: str  # "2026-11-26"
    profile: str = "paper"  # the profile the record holds for; other profiles judge as usual


EXPECTATIONS = ("better", "equivalent", "null", "masked")  # what a Claim expects (Claim.expect)


@dataclass(frozen=True)
class Claim:
    """What a hypothesis module asserts, at the scale of the published protocol."""
    statement: str  # one sentence, as the report shows it
    better: str  # name of the variant claimed to have the better tradeoff
    worse: str
    variants: dict  # name -> Variant
    datasets: tuple[str, ...]
    epochs: int  # the published epoch count (a profile may shorten it)
    eps: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)  # radii in 1/255 units, one test case each
    deciding_eps: float = 1.0  # the case per dataset that decides (Holm across datasets); others report
    modes: tuple[str, ...] = (NO_ROUNDING,)  # rounding modes to attack with (rounding pipelines only)
    expect: str = "better"  # "better"; "equivalent" (needs equivalent_within); "null": a control that must
    #                         come out not significant; "masked": a control whose gain is gradient masking by
    #                         construction: never supported, and a masking check must fail on its better arm
    train_subset: int | None = None  # the protocol's training images (a fixed subset); None: all of them
    n_eval: int | None = None  # the protocol's evaluation images per epoch (the final checks take at most as
    #                            many); None: the profile's. With train_subset: a protocol for 2 CPU cores
    score: str = "dominated_area"  # the per-seed score that decides (harness.judge.stats.SCORES)
    factor: str | None = None  # the setting the arms differ in, e.g. "pipeline" or "model_kwargs.pooling"
    intended: dict = field(default_factory=dict)  # other settings the arms differ in on purpose -> why
    equivalent_within: float | None = None  # a margin in the score's units: equivalence is tested (TOST)
    claimed: Claimed | None = None
    known: Known | None = None
    decides: bool = True  # False: a report; its verdict is computed and shown, and its test always skips

    def __post_init__(self):
        if not isinstance(self.variants, dict) or not all(isinstance(v, Variant) for v in self.variants.values()):
            raise ConfigError(f"variants={self.variants!r:.80} must map names to Variant(...), e.g. "
                              f"variants={{'Max': Variant('resnet18', 'baseline')}}")
        for name in (self.better, self.worse):
            if name not in self.variants:
                raise ConfigError(f"claim names variant {name!r}, but the variants are {sorted(self.variants)}")
        if self.better == self.worse and len(self.variants) > 1:  # one variant: a tool's runs, not a comparison
            raise ConfigError(f"better and worse both name {self.better!r}: name the two variants compared, "
                              f"e.g. better={sorted(self.variants)[0]!r}, worse={sorted(self.variants)[1]!r}")
        check_protocol(self)
        if self.expect not in EXPECTATIONS:
            raise ConfigError(f"expect={self.expect!r}: use one of {', '.join(map(repr, EXPECTATIONS))}")
        if self.expect == "equivalent" and not self.equivalent_within:
            raise ConfigError("expect='equivalent' needs a margin: equivalent_within=0.02 (in the score's units)")


@dataclass(frozen=True)
class TrendClaim:
    """What a dose-response hypothesis asserts: the per-seed score moves one way along a dose (one arm per
    level), decided by one linear trend test across the levels (harness.judge.inference.trend), not by pairwise
    tests. The levels are arms named "<dose> <unit>" (`variants`), so the planner, the executors and the
    cache treat them as a Claim's arms: a level whose Variant equals another hypothesis's arm shares its runs.
    """
    statement: str  # one sentence, as the report shows it
    unit: str  # what the dose counts, e.g. "bits"
    levels: dict  # dose (a number, in `unit`) -> Variant
    datasets: tuple[str, ...]
    epochs: int  # the published epoch count (a profile may shorten it)
    expect: str = "decreasing"  # the claimed sign of the score's slope along the dose: increasing, decreasing;
    #                             or "equivalent" (needs equivalent_within): the slope lies within the margin
    eps: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)  # radii in 1/255 units, one test case each
    deciding_eps: float = 1.0  # the case per dataset that decides (Holm across datasets); others report
    modes: tuple[str, ...] = (NO_ROUNDING,)  # rounding modes to attack with (rounding pipelines only)
    score: str = "dominated_area"  # the per-seed score whose trend decides (harness.judge.stats.SCORES)
    factor: str | None = None  # the setting the levels differ in, e.g. "pipeline_kwargs.bits"
    intended: dict = field(default_factory=dict)  # other settings the levels differ in on purpose -> why
    equivalent_within: float | None = None  # a margin on the slope (score units per unit of dose): TOST
    claimed: Claimed | None = None
    known: Known | None = None
    train_subset: int | None = None  # the protocol's training images, as Claim's
    n_eval: int | None = None  # the protocol's evaluation images per epoch, as Claim's

    def __post_init__(self):
        doses = list(self.levels)
        if len(doses) < 2 or any(isinstance(d, bool) or not isinstance(d, (int, float)) or d != d
                                 or d in (float("inf"), float("-inf")) for d in doses):
            raise ConfigError(f"levels {doses!r}: a trend needs at least 2 finite numeric doses, "
                              f"e.g. levels={{8: Variant(...), 4: Variant(...)}}")
        if not all(isinstance(v, Variant) for v in self.levels.values()):
            raise ConfigError(f"levels={self.levels!r:.80} must map doses to Variant(...), e.g. "
                              f"levels={{8: Variant('resnet18', 'round', pipeline_kwargs={{'bits': 8}})}}")
        check_protocol(self)
        if self.expect not in ("increasing", "decreasing", "equivalent"):
            raise ConfigError(f"expect={self.expect!r}: use 'increasing' or 'decreasing' (the score's claimed "
                              f"direction as the dose grows), or 'equivalent' with equivalent_within")
        if self.expect == "equivalent" and not self.equivalent_within:
            raise ConfigError("expect='equivalent' needs a margin on the slope: equivalent_within=0.001 (score "
                              "units per unit of dose)")

    @property
    def doses(self) -> tuple[float, ...]:
        """The dose levels, ascending."""
        return tuple(sorted(float(d) for d in self.levels))

    def level_name(self, dose: float) -> str:
        return f"{dose:g} {self.unit}"

    @property
    def variants(self) -> dict:
        """level name -> Variant, ascending dose: the arms the planner makes runs for."""
        return {self.level_name(float(d)): v for d, v in sorted(self.levels.items(), key=lambda kv: float(kv[0]))}

    @property
    def better(self) -> str:
        """The level the claim expects to score highest (an end of the dose range; the highest dose for an
        equivalence claim, whose effect is read as increasing)."""
        return self.level_name(self.doses[0] if self.expect == "decreasing" else self.doses[-1])

    @property
    def worse(self) -> str:
        return self.level_name(self.doses[-1] if self.expect == "decreasing" else self.doses[0])


CLAIM_TYPES = (Claim, TrendClaim)  # what a hypothesis module's CLAIM may be


# ---- the checks a claim passes where it is written: each names the field, the value and the fix ---------
def check_protocol(c: Claim | TrendClaim) -> None:
    """The fields Claim and TrendClaim share: datasets, epochs, eps, deciding_eps, modes, factor, and the
    protocol's sizes (train_subset, n_eval: numbers of images or None)."""
    for name in ("train_subset", "n_eval"):
        n = getattr(c, name)
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise ConfigError(f"{name}={n!r}: give a number of images (a whole number >= 1), or None for all")
    _check_tuple("datasets", c.datasets, str, "('cifar10',)")
    if not c.datasets or len(set(c.datasets)) != len(c.datasets):
        raise ConfigError(f"datasets={c.datasets!r} must name each dataset once, e.g. datasets=('cifar10',)")
    if isinstance(c.epochs, bool) or not isinstance(c.epochs, int) or c.epochs < 1:
        raise ConfigError(f"epochs={c.epochs!r} must be a whole number of at least 1: the claim's published "
                          f"epoch count, e.g. epochs=10")
    _check_tuple("eps", c.eps, (int, float), "(1, 2, 4, 8)")
    for e in (*c.eps, c.deciding_eps):
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not 0 < e <= 255:
            raise ConfigError(f"eps {e!r} is out of range: a claim's eps are L-inf radii in 1/255 units, in "
                              f"(0, 255] (eps=(1, 8) means 1/255 and 8/255)")
    if len(set(c.eps)) != len(c.eps):
        raise ConfigError(f"eps={c.eps!r} repeats a radius: list each once, e.g. eps=(1, 2, 4, 8)")
    if c.deciding_eps not in c.eps:
        raise ConfigError(f"deciding_eps={c.deciding_eps!r} is not one of eps={c.eps!r}: the deciding case must "
                          f"be one of the claim's cases; add it to eps or pick one of them")
    _check_tuple("modes", c.modes, str, "ROUNDING_MODES")
    odd = [m for m in c.modes if m not in (*ROUNDING_MODES, NO_ROUNDING)]
    if odd or not c.modes:
        raise ConfigError(f"modes={c.modes!r}: use ({NO_ROUNDING!r},) or rounding modes of {ROUNDING_MODES}")
    for field, name in (("factor", c.factor), *(("intended key", k) for k in getattr(c, "intended", {}))):
        if name is not None:
            check_setting(field, name, c.variants)


def _check_tuple(field: str, value, kind, example: str) -> None:
    if not isinstance(value, tuple) or not all(isinstance(x, kind) and not isinstance(x, bool) for x in value):
        letters = " (a bare string is read letter by letter)" if isinstance(value, str) else ""
        raise ConfigError(f"{field}={value!r} must be a tuple{letters}, e.g. {field}={example}")


def check_setting(field: str, name: str, variants: dict) -> None:
    """`name` (a claim's factor or intended difference) names a setting the arms' runs have: a run's field
    (seed, attack.steps), a variant's (pipeline, recipe.lr), or a key of some arm's model or pipeline kwargs."""
    head, _, rest = str(name).partition(".")
    nested = {"attack": AttackConfig, "recipe": Recipe, "variant": Variant}
    runs = {f.name for f in dataclasses.fields(RunConfig)} - {"variant"} | {"data"}
    if head in ("model_kwargs", "pipeline_kwargs"):
        ok = not rest or any(rest.split(".")[0] in getattr(v, head) for v in variants.values())
    elif head in nested and rest:
        ok = rest.split(".")[0] in {f.name for f in dataclasses.fields(nested[head])}
    else:
        ok = not rest and head in runs | {f.name for f in dataclasses.fields(Variant)}
    if not isinstance(name, str) or not ok:
        raise ConfigError(f"{field} {name!r} names no setting of the arms: use a variant's "
                          f"field (pipeline, recipe.lr, model_kwargs.NAME with NAME in an arm's model_kwargs) "
                          f"or a run's (seed, dataset, attack.steps)")

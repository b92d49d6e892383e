"""Every setting in one place: frozen dataclasses, the profiles, and the cache key.

Units are stated beside each field. Nothing here does I/O.

Over 300 lines on purpose: one settings table, as airbench keeps its own; splitting it would scatter the
units and the evidence beside each default. The checks a claim passes where it is written (`check_*`, at
the end) sit beside the fields they check.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

ROUNDING_MODES = ("off", "bpda", "exact")  # how a rounding pipeline behaves while PGD crafts
NO_ROUNDING = "pgd"  # the single attack of a pipeline that does not round
STRONGEST = "strongest"  # per-example worst case over the attacks of one epoch


class ConfigError(ValueError):
    """Bad input from the user: the message names the value and the fix."""


ADVERSARIAL_TRAINING = (None, "fgsm_rs")  # a Recipe's training attack (None: standard training)


@dataclass(frozen=True)
class Recipe:
    """How a model is trained. Defaults are common from-scratch CIFAR recipes (the post says only
    'standardly trained')."""
    optimizer: str = "sgd"  # "sgd" (momentum 0.9, nesterov) or "adamw"
    lr: float = 0.2  # peak learning rate, reached after warmup
    weight_decay: float = 5e-4
    batch_size: int = 512  # images per step
    warmup_epochs: float = 1.0  # linear warmup, then cosine decay to 0
    label_smoothing: float = 0.0
    crop_padding: int = 4  # random crop: zero-pad by this many pixels, crop back; plus h-flip
    adversarial: str | None = None  # None: standard training; "fgsm_rs": every batch replaced by its FGSM
    #   example from a uniform random start (Wong, Rice and Kolter 2020), crafted through the deployed model
    adv_eps: float = 8.0  # the training attack's radius, 1/255 units (L-inf)
    adv_step: float = 10.0  # its step, 1/255 units (Wong et al.: 1.25 eps)

    def __post_init__(self):
        if self.adversarial not in ADVERSARIAL_TRAINING:
            raise ConfigError(f"adversarial={self.adversarial!r}: use one of {ADVERSARIAL_TRAINING}")
        if not (0 < self.adv_eps <= 255 and 0 < self.adv_step <= 255):
            raise ConfigError(f"adv_eps={self.adv_eps:g}, adv_step={self.adv_step:g}: the training attack's radius "
                              f"and step are in 1/255 units, in (0, 255], e.g. adv_eps=8, adv_step=10")


SGD_RESNET = Recipe()
ADAMW_VIT = Recipe(optimizer="adamw", lr=1e-3, weight_decay=0.05, batch_size=512, warmup_epochs=2.0)
SGD_SMALL = Recipe(batch_size=128)  # the controls' test_resnet: 78 steps an epoch on CPU_PROTOCOL's images
# The controls' protocol (hypotheses/test_control_*.py), declared by each control's Claim: small enough that
# the paper profile decides them all on 2 CPU cores in about 10 minutes (README, "What it found").
CPU_PROTOCOL = {"datasets": ("cifar10",), "epochs": 5, "train_subset": 10_000, "n_eval": 200}


@dataclass(frozen=True)
class Variant:
    """One arm of a hypothesis: a model, an input pipeline and a training recipe.

    Keyword arguments go to the model's and the pipeline's constructors, as timm's `create_model` takes
    them: `Variant("resnet18", "baseline", model_kwargs={"pooling": "avg"})`."""
    model: str  # name in harness.run.models' registry
    pipeline: str  # name in harness.run.pipelines' registry
    recipe: Recipe = SGD_RESNET
    model_kwargs: dict = field(default_factory=dict)  # e.g. {"pooling": "avg"}, {"act_layer": "relu"}
    pipeline_kwargs: dict = field(default_factory=dict)  # e.g. {"bits": 4}
    input_size: int | None = None  # side in pixels the pipeline resizes to; None keeps the data's
    seed_offset: int = 0  # added to every profile seed (a control arm uses seeds disjoint from its twin)

    def __post_init__(self):
        check_variant(self)

    @property
    def name(self) -> str:
        """model[k=v]/pipeline[k=v], then /the training attack if any: what run labels and log lines show."""
        def part(name, kwargs):
            return name + ("[" + ",".join(f"{k}={v}" for k, v in sorted(kwargs.items())) + "]" if kwargs else "")
        trained = f"/{self.recipe.adversarial}" if self.recipe.adversarial else ""
        return f"{part(self.model, self.model_kwargs)}/{part(self.pipeline, self.pipeline_kwargs)}{trained}"


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
class AttackConfig:
    """PGD, L-inf, random start, evaluated after every epoch on a fixed test subset."""
    eps: tuple[float, ...] = (1.0, 2.0, 4.0, 8.0)  # radii, in 1/255 units (a claim's eps replace these)
    steps: int = 10  # PGD iterations
    step_ratio: float = 0.25  # step size = eps * step_ratio (eps/4)
    restarts: int = 1  # random restarts; the worst case per example is kept
    modes: tuple[str, ...] = (NO_ROUNDING,)  # rounding modes while crafting (rounding pipelines only)
    n_eval: int = 1000  # images of the fixed test subset (clean and adversarial accuracy)
    eval_seed: int = 0  # which fixed subset, and the attacks' random starts


@dataclass(frozen=True)
class FinalEvalConfig:
    """Stronger attacks and gradient-masking diagnostics on each run's final checkpoint, at the claim's
    deciding eps (see harness.run.diagnostics)."""
    n_eval: int = 1000  # images: the first n of the per-epoch evaluation subset
    apgd_steps: int = 100  # APGD-CE and APGD-DLR iterations (Croce & Hein 2020 use 100)
    apgd_dlr: bool = True  # APGD with the DLR (margin) loss too: APGD-CE's cost; catches cross-entropy saturation
    square_queries: int = 1000  # Square attack queries (gradient-free)
    steps_curve: tuple[int, ...] = (1, 2, 5, 10, 20, 50)  # PGD steps: accuracy must not rise along these
    eps_curve: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 255)  # 1/255 units: must fall to ~0 at 255
    tolerance: float = 0.02  # accuracy slack of every check but the next two (a few examples of noise)
    attack_gap: float = 0.08  # how far APGD or Square may beat PGD. On genuinely robust networks they beat PGD-10
    #   by up to 0.044 (the positive control's FGSM-RS runs; standard training's first epoch 0.032), where masking
    #   shows as tens of points (the logit-scale control: 0.6). At `tolerance` the positive control failed.


@dataclass(frozen=True)
class RunConfig:
    """One training run: everything that changes its numbers, and nothing else."""
    dataset: str  # logical name (cifar10, cifar100, fashion-mnist, or a --data-source name)
    variant: Variant
    seed: int
    epochs: int
    train_subset: int | None  # first N images of a fixed shuffle of the training set; None = all
    attack: AttackConfig
    precision: str  # "bf16" (autocast) or "fp32"; resolved from the device before the key is made

    @property
    def label(self) -> str:
        return f"{self.variant.name}/{self.dataset}/s{self.seed}"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def derive_seed(seed: int, purpose: str, *parts) -> int:
    """Every random stream of a run, from its seed and what the stream is for ("init", "order" with the
    epoch, "attack" with the epoch): a 63-bit seed, so streams of one run never coincide.

    Training streams also take the arm's identity (`arm_identity`): two arms with the same seed are then
    independent draws, as Welch's test across seeds assumes; without it, arms differing in one setting
    started from the same weights and saw the same data order, correlating their scores seed by seed.
    Evaluation streams (the test subset, attack starts) are shared by every arm: the same images and noise."""
    blob = json.dumps([seed, purpose, *parts], sort_keys=True, default=str)
    return int.from_bytes(hashlib.sha256(blob.encode()).digest()[:8], "big") >> 1


def arm_identity(v: Variant) -> str:
    """What makes an arm this arm: its model, pipeline, their keyword arguments and its recipe (not the
    input-size cap or the seed offset a profile or claim applies). Identical variants share runs."""
    d = dataclasses.asdict(v)
    d.pop("seed_offset")
    return json.dumps(d, sort_keys=True)


def key(cfg: RunConfig, data_fingerprint: str, code_version: str) -> str:
    """Content address of a run: its config, the exact data and the code that computes the numbers."""
    blob = json.dumps({"cfg": cfg.to_dict(), "data": data_fingerprint, "code": code_version},
                      sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


@dataclass(frozen=True)
class Profile:
    """How big an experiment is. `paper` is the published protocol; `smoke` exercises every code path
    on two CPU cores in minutes and decides nothing."""
    name: str
    seeds: tuple[int, ...]
    epochs: int | None  # None: each hypothesis's published epoch count
    train_subset: int | None  # None: the whole training set
    attack: AttackConfig
    max_input_size: int | None  # cap on a variant's resize target (ViT at 224 is not CPU-sized)
    decides: bool  # False: compute and record everything, but report the claim as not decided
    substitute_data: bool  # True: use the first dataset that can be reached when one is missing
    final_eval: FinalEvalConfig | None = None  # APGD and masking diagnostics on the final checkpoint
    max_batch_size: int | None = None  # cap on a recipe's batch: a small subset still gets several steps
    lr_scale: float = 1.0  # multiplies every recipe's peak lr (a recipe's lr is set for its full batch)
    warmup_epochs: float | None = None  # replaces every recipe's warmup; None keeps it

    def recipe(self, r: Recipe) -> Recipe:
        """`r` as this profile trains it: batch capped (never raised), peak lr scaled, warmup replaced."""
        return dataclasses.replace(
            r, batch_size=min(r.batch_size, self.max_batch_size or r.batch_size), lr=r.lr * self.lr_scale,
            warmup_epochs=r.warmup_epochs if self.warmup_epochs is None else self.warmup_epochs)


PROFILES = {
    # Smoke trains 2 epochs of 1024 images per run. At the recipes' batch 512 / lr set for it, ResNet18's SGD
    # diverged (loss 2.8 -> 3.9 on CIFAR-10); at batch 32, lr x0.15 and a quarter epoch of warmup both models
    # learn (README, "Profiles", has the numbers). ViT-tiny at 32 px (4 patches of 16) learns faster than at 48.
    "smoke": Profile(
        name="smoke", seeds=(0, 1), epochs=2, train_subset=1024,
        attack=AttackConfig(steps=2, n_eval=128), max_input_size=32,
        decides=False, substitute_data=True, max_batch_size=32, lr_scale=0.15, warmup_epochs=0.25,
        # tolerance 3 of 64 examples: 0.02 would be about one example, below the noise of so few
        final_eval=FinalEvalConfig(n_eval=64, apgd_steps=5, square_queries=20, steps_curve=(1, 2, 4),
                                   eps_curve=(1, 8, 64, 255), tolerance=0.05)),
    "paper": Profile(
        name="paper", seeds=(0, 1, 2), epochs=None, train_subset=None,
        attack=AttackConfig(steps=10, n_eval=1000), max_input_size=None,
        decides=True, substitute_data=False,
        final_eval=FinalEvalConfig(n_eval=500, steps_curve=(1, 5, 10, 20),
                                   eps_curve=(1, 4, 16, 64, 255))),
}
# The paper protocol's second look, with 3 more seeds per arm (the first 3 are the paper look's runs): the exact
# permutation test can then reach p = 1/924, below the look's Holm threshold for two datasets (0.0152), where 3
# seeds reach only 0.05.
PROFILES["confirm"] = dataclasses.replace(PROFILES["paper"], name="confirm", seeds=(0, 1, 2, 3, 4, 5))
# Seeds per arm at each look of the pre-registered group-sequential design: paper, then confirm when the paper
# look did not decide. Each look decides at Pocock's level (harness.judge.inference.pocock: 0.0304 each at
# alpha 0.05), so "paper, then more seeds" keeps the family-wise rate at alpha; any other seed count is not a
# look of the design, and counts as a reduced protocol.
LOOKS = (len(PROFILES["paper"].seeds), len(PROFILES["confirm"].seeds))


def get_profile(name: str) -> Profile:
    if name not in PROFILES:
        raise ConfigError(f"unknown profile {name!r}: choose one of {', '.join(PROFILES)} "
                          f"(--profile NAME, or the ADVHYP_PROFILE environment variable)")
    return PROFILES[name]


def eps_key(eps: float) -> str:
    """How records name an eps (1/255 units) in JSON: 1.0 -> "1", 0.5 -> "0.5". Eps are floats in 1/255
    units everywhere else; a fraction of 1 (eps / 255) exists only inside an attack."""
    return f"{float(eps):g}"


def check_eps(eps: tuple[float, ...]) -> tuple[float, ...]:
    for e in eps:
        if not 0 < e <= 255:
            raise ConfigError(f"eps {e:g} is out of range: eps is in 1/255 units and must be in (0, 255], "
                              f"e.g. --eps 1,2,4,8")
    return tuple(float(e) for e in eps)


def check_seeds(seeds: tuple[int, ...]) -> tuple[int, ...]:
    if len(set(seeds)) != len(seeds):  # a repeated seed is the same run counted twice: false evidence
        raise ConfigError(f"seeds {list(seeds)} repeat a seed: list each once, e.g. --seeds 0,1,2")
    if len(seeds) < 2:
        raise ConfigError(f"seeds {list(seeds)}: a comparison across seeds needs at least 2 distinct seeds "
                          f"per variant, e.g. --seeds 0,1,2")
    return tuple(seeds)


@dataclass(frozen=True)
class Overrides:
    """Command-line overrides of the profile; recorded in the results."""
    seeds: tuple[int, ...] | None = None
    epochs: int | None = None
    datasets: tuple[str, ...] | None = None
    eps: tuple[float, ...] | None = None

    def apply(self, profile: Profile) -> Profile:
        """The profile with seeds and epochs overridden (eps and datasets are per claim: see Suite)."""
        if self.eps is not None:
            check_eps(self.eps)
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs {self.epochs} must be at least 1, e.g. --epochs 2")
        return dataclasses.replace(
            profile,
            seeds=check_seeds(self.seeds) if self.seeds is not None else profile.seeds,
            epochs=self.epochs if self.epochs is not None else profile.epochs)

    def as_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items() if v is not None}


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


def check_variant(v: Variant) -> None:
    for field in ("model", "pipeline"):
        if not isinstance(getattr(v, field), str) or not getattr(v, field):
            raise ConfigError(f"Variant {field}={getattr(v, field)!r} must be a registry name, e.g. "
                              f"Variant('resnet18', 'baseline')")
    if not isinstance(v.recipe, Recipe):
        raise ConfigError(f"Variant recipe={v.recipe!r:.60} must be a Recipe, e.g. SGD_RESNET or Recipe(lr=0.1)")
    for field in ("model_kwargs", "pipeline_kwargs"):
        if not isinstance(getattr(v, field), dict):
            raise ConfigError(f"Variant {field}={getattr(v, field)!r} must be a dict, e.g. "
                              f"{field}={{'pooling': 'avg'}}")
    for field, low in (("input_size", 1), ("seed_offset", 0)):
        value = getattr(v, field)
        if (value is not None or field == "seed_offset") and (
                isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigError(f"Variant {field}={value!r} must be a whole number >= {low}")

"""Every setting in one place: frozen dataclasses, the profiles, and the cache key.

Units are stated beside each field. Nothing here does I/O.

What a hypothesis claims about these settings is harness.spec.claim: this module is numeric code (its text is
part of every run's cache key), a claim's wording and checks are not.
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

"""From a claim, a profile and the command line's overrides to the cases it has and the runs they need.

Pure: no torch, no device, no cache, no decoding. pytest's collection calls `cases` for every hypothesis
module, so `pytest --collect-only` stays cheap and leaves nothing behind; `run_configs` is called where runs
execute, with the precision resolved for the device there. `case_runs` is the one rule for the runs a case
needs, and `needs` gathers it over a session's cases for an executor to obtain before the tests ask.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import budget
from ..judge import stats
from ..run import sources
from .claim import Claim
from .config import LOOKS, NO_ROUNDING, PROFILES, ConfigError, Profile, RunConfig, Variant, key
from .registry import PIPELINE_ROUNDS


@dataclass(frozen=True)
class Plan:
    """A claim under one profile: its datasets and eps cases after overrides and substitution."""
    claim: Claim
    profile: Profile  # with --seeds / --epochs applied
    datasets: tuple[str, ...]  # the datasets the claim runs on here
    eps: tuple[float, ...]  # one case per dataset and eps, in 1/255 units
    notes: tuple[str, ...] = ()  # what the plan changed from the claim (a substituted dataset), for the report
    reduced: tuple[str, ...] = ()  # how this protocol falls short of the claim's: its cases do not decide
    allow_reduced: bool = False  # --allow-reduced: a reduced protocol decides all the same (and says so)

    @property
    def epochs(self) -> int:
        return self.profile.epochs or self.claim.epochs

    def cases(self) -> list[tuple[str, float]]:
        return [(d, e) for d in self.datasets for e in self.eps]

    def family(self, dataset: str, eps: float) -> tuple[str, ...]:
        """The cases a case's p-value is Holm-adjusted with: the deciding eps on every dataset."""
        return self.datasets if eps == self.claim.deciding_eps else (dataset,)


def plan(claim: Claim, profile: Profile, bound: sources.Sources, datasets: tuple[str, ...] | None = None,
         eps: tuple[float, ...] | None = None, allow_reduced: bool = False) -> Plan:
    """The claim's cases here: its own datasets and eps, or the overrides. A bound data source that cannot
    be read is an error; a profile that substitutes runs on the first wanted dataset at hand, and only
    where none is, on another one, with a note (a smoke run on a machine without CIFAR still runs)."""
    check_claim(claim)
    found = sources.resolve(tuple(datasets or claim.datasets), bound, profile.substitute_data)
    notes = (found.note,) if found.substituted else ()
    p = Plan(claim=claim, profile=profile, datasets=found.names, eps=tuple(eps or claim.eps), notes=notes,
             reduced=shortfalls(claim, profile, found.names, notes), allow_reduced=allow_reduced)
    confounded = parity(p)
    if confounded:  # at collection, before anything trains: no profile could draw a verdict from these arms
        raise ConfigError(f"{claim.statement}: confounded: the arms' planned runs differ in "
                          f"{'; '.join(confounded)}, besides the declared factor {claim.factor!r}: make the arms "
                          f"equal, or declare each difference with its reason in the claim's `intended`")
    return p


def shortfalls(claim: Claim, profile: Profile, datasets: tuple[str, ...], notes: tuple[str, ...]) -> tuple[str, ...]:
    """How a deciding profile falls short of the claim's protocol (its epochs and datasets, and the paper
    profile's seeds and evaluation images): a verdict on less is a measurement, not a replication."""
    if not profile.decides:
        return ()
    paper, epochs = PROFILES["paper"], profile.epochs or claim.epochs
    out = [f"{epochs} epochs, the claim's protocol has {claim.epochs}"] if epochs < claim.epochs else []
    if len(profile.seeds) < len(paper.seeds):
        out.append(f"{len(profile.seeds)} seeds per arm, the protocol has {len(paper.seeds)}")
    elif len(profile.seeds) not in LOOKS:  # an unplanned look spends error rate the design did not budget
        out.append(f"{len(profile.seeds)} seeds per arm is not a look of the pre-registered design "
                   f"({' then '.join(map(str, LOOKS))} seeds per arm)")
    n_eval = smallest(paper.attack.n_eval, claim.n_eval)
    if profile.attack.n_eval < n_eval:
        out.append(f"{profile.attack.n_eval} evaluation images, the protocol has {n_eval}")
    missing = [d for d in claim.datasets if d not in datasets]
    if missing:
        out.append(f"not run on {', '.join(missing)}")
    return tuple(out + list(notes))


def check_claim(claim: Claim) -> None:
    """Names a claim uses that the harness does not have: one clear error at collection."""
    if claim.score not in stats.SCORES:
        raise ConfigError(f"{claim.statement}: score {claim.score!r} is not one of {', '.join(stats.SCORES)}")
    for name, v in claim.variants.items():
        if v.pipeline not in PIPELINE_ROUNDS:
            raise ConfigError(f"variant {name!r}: unknown pipeline {v.pipeline!r}: choose one of "
                              f"{', '.join(PIPELINE_ROUNDS)}")


def checks_masking(claim: Claim) -> bool:
    """Whether the claim's runs get final-checkpoint checks: a null control's outcome reads none of them."""
    return claim.expect != "null"


def run_configs(p: Plan, dataset: str, precision: str) -> dict[str, list[RunConfig]]:
    """arm -> one RunConfig per seed. Runs with the same settings are shared between hypotheses through
    the cache (the three controls share their Standard arm), so every run evaluates the
    profile's radii as well as the claim's."""
    configs = {name: _configs(p, v, dataset, precision) for name, v in p.claim.variants.items()}
    flat = [c for cs in configs.values() for c in cs]
    if len({key(c, "", "") for c in flat}) < len(flat):  # one run counted in two arms, or twice in one
        raise ConfigError(f"{p.claim.statement}: seeds {list(p.profile.seeds)} make the variants share runs "
                          f"(a variant's seed_offset maps its seeds onto another's): pick seeds below the "
                          f"smallest nonzero offset, e.g. --seeds 0,1,2")
    return configs


def _configs(p: Plan, v: Variant, dataset: str, precision: str) -> list[RunConfig]:
    profile = p.profile
    size = v.input_size
    if size and profile.max_input_size:
        size = min(size, profile.max_input_size)
    rounds = PIPELINE_ROUNDS[v.pipeline]
    eps = tuple(sorted(set(profile.attack.eps) | set(p.eps)))
    if rounds:
        attack = dataclasses.replace(profile.attack, eps=eps, modes=p.claim.modes)
    else:  # equal effort: as many random restarts as the claim's rounding arms have gradient attacks
        restarts = profile.attack.restarts * len(budget.gradient_modes(p.claim.modes))
        attack = dataclasses.replace(profile.attack, eps=eps, modes=(NO_ROUNDING,), restarts=restarts)
    attack = dataclasses.replace(attack, n_eval=smallest(attack.n_eval, p.claim.n_eval))
    base = dataclasses.replace(v, input_size=size, recipe=profile.recipe(v.recipe), seed_offset=0)
    return [RunConfig(dataset=dataset, variant=base, seed=s + v.seed_offset, epochs=p.epochs,
                      train_subset=smallest(profile.train_subset, p.claim.train_subset), attack=attack,
                      precision=precision)
            for s in profile.seeds]


def case_runs(p: Plan, dataset: str, eps: float, precision: str) -> dict[str, dict[str, list[RunConfig]]]:
    """The runs one case needs: dataset -> arm -> configs, for every dataset of its Holm family; the case's
    own dataset's runs also get the final-checkpoint checks at the claim's deciding eps."""
    return {d: run_configs(p, d, precision) for d in p.family(dataset, eps)}


@dataclass(frozen=True)
class Need:
    """A run some case of the session needs, and the eps its final-checkpoint checks run at (none: it is only
    in another dataset's Holm family)."""
    config: RunConfig
    final_eps: tuple[float, ...]


def needs(cases: list[tuple[Plan, str, float]], precision: str) -> list[Need]:
    """Every run a set of cases ((plan, dataset, eps) each) needs, once (`case_runs`)."""
    found: dict[str, tuple[RunConfig, set]] = {}  # by the config's own key (data and code are the same here)
    for p, dataset, eps in cases:
        for d, configs in case_runs(p, dataset, eps, precision).items():
            for c in (c for cs in configs.values() for c in cs):
                _, checked = found.setdefault(key(c, "", ""), (c, set()))
                if d == dataset and checks_masking(p.claim):
                    checked.add(p.claim.deciding_eps)
    return [Need(c, tuple(sorted(e))) for c, e in found.values()]


RUN_FIELDS = ("dataset", "seed", "epochs", "train_subset", "attack", "precision")  # else: variant.*


def parity(p: Plan) -> list[str]:
    """Settings in which the arms' planned runs differ besides the declared factor and the declared
    intended differences, seed by seed: "attack.n_eval: Max 1000, Avg 500". A pure function of the plan
    (the precision and the data are the same for every arm). Attack effort is compared as gradient attacks
    per example (a rounding arm's modes against the others' restarts), not as raw settings."""
    claim = p.claim
    declared = [k if k.split(".")[0] in RUN_FIELDS else f"variant.{k}" for k in (claim.factor, *claim.intended) if k]
    configs = run_configs(p, (p.datasets or claim.datasets)[0], "fp32")
    out: dict[str, str] = {}
    for seeds in zip(*configs.values()):
        flat = {arm: _settings(c) for arm, c in zip(configs, seeds)}
        for k in sorted(set().union(*flat.values())):
            values = {arm: f.get(k) for arm, f in flat.items()}
            if len(set(map(repr, values.values()))) > 1 and not any(_within(k, d) for d in declared):
                out.setdefault(k, f"{k}: " + ", ".join(f"{arm} {v}" for arm, v in values.items()))
    return list(out.values())


def _within(key_: str, declared: str) -> bool:
    """Whether flat setting `key_` belongs to `declared` (or holds it: an empty model_kwargs beside pooling=avg)."""
    return key_ == declared or key_.startswith(declared + ".") or declared.startswith(key_ + ".")


def _settings(cfg: RunConfig) -> dict:
    """A run's resolved settings as flat keys, its seed and seed offset left out (the seed is the unit of
    replication), with the attack effort in place of modes and restarts."""
    flat = dict(_flat(cfg.to_dict()))
    modes = flat.pop("attack.modes")
    flat["attack.gradient_attacks_per_example"] = flat.pop("attack.restarts") * len(budget.gradient_modes(modes))
    for k in ("seed", "variant.seed_offset"):
        flat.pop(k, None)
    return flat


def _flat(obj, prefix: str = ""):
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            yield from _flat(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix, obj


def smallest(*sizes: int | None) -> int | None:
    """The smallest of the sizes given (a profile's and a claim's), None (all) only when none is given."""
    return min((n for n in sizes if n is not None), default=None)

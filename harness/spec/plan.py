"""From a claim, a profile and the command line's overrides to the cases it has and the runs they need.

Pure: no device, no cache, no decoding. pytest's collection calls `cases` for every hypothesis module, so
`pytest --collect-only` stays cheap and leaves nothing behind; `run_configs` is called where runs execute,
with the precision resolved for the device there.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from . import budget
from ..run import data, pipelines
from ..judge import stats
from .config import NO_ROUNDING, PROFILES, Claim, ConfigError, Profile, RunConfig, Variant, key


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


def plan(claim: Claim, profile: Profile, sources: data.Sources, datasets: tuple[str, ...] | None = None,
         eps: tuple[float, ...] | None = None, allow_reduced: bool = False) -> Plan:
    """The claim's cases here: its own datasets and eps, or the overrides. A bound data source that cannot
    be read is an error; a profile that substitutes runs on the first wanted dataset at hand, and only
    where none is, on another one, with a note (a smoke run on a machine without CIFAR still runs)."""
    check_claim(claim)
    found = data.resolve(tuple(datasets or claim.datasets), sources, profile.substitute_data)
    notes = (found.note,) if found.substituted else ()
    return Plan(claim=claim, profile=profile, datasets=found.names, eps=tuple(eps or claim.eps), notes=notes,
                reduced=shortfalls(claim, profile, found.names, notes), allow_reduced=allow_reduced)


def shortfalls(claim: Claim, profile: Profile, datasets: tuple[str, ...], notes: tuple[str, ...]) -> tuple[str, ...]:
    """How a deciding profile falls short of the claim's protocol (its epochs and datasets, and the paper
    profile's seeds and evaluation images): a verdict on less is a measurement, not a replication."""
    if not profile.decides:
        return ()
    paper, epochs = PROFILES["paper"], profile.epochs or claim.epochs
    out = [f"{epochs} epochs, the claim's protocol has {claim.epochs}"] if epochs < claim.epochs else []
    if len(profile.seeds) < len(paper.seeds):
        out.append(f"{len(profile.seeds)} seeds per arm, the protocol has {len(paper.seeds)}")
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
        if v.pipeline not in pipelines.PIPELINES:
            raise ConfigError(f"variant {name!r}: unknown pipeline {v.pipeline!r}: choose one of "
                              f"{', '.join(pipelines.PIPELINES)}")


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
    rounds = pipelines.PIPELINES[v.pipeline].rounds
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


def smallest(*sizes: int | None) -> int | None:
    """The smallest of the sizes given (a profile's and a claim's), None (all) only when none is given."""
    return min((n for n in sizes if n is not None), default=None)

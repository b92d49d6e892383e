"""Attack effort: what an arm's per-epoch evaluation spends per example, planned (`attack_budget`, pure
arithmetic the planner compares across arms) and counted (`Effort`, filled in by harness.run.attacks).

An arm's gradient attacks per example are the restarts of its gradient modes (`off`, `bpda`; `pgd` for a
pipeline that does not round), each from its own random start (`first_starts`), each scoring every
iterate, its start included. `exact` is a diagnostic of masking, not counted: on a rounding pipeline its
gradient is zero, so it costs one gradient pass, and it starts where the first gradient attack starts,
so it scores no new point.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .config import NO_ROUNDING, AttackConfig

MASKING_MODE = "exact"  # the mode whose gradient is masked: a diagnostic, outside the attack budget


@dataclass
class Effort:
    """What attacks spent, in example-passes (one image through the model once), as harness.run.attacks'
    `attack` returns it; a gradient pass (forward and backward) costs about three forward passes."""
    attacks: int = 0  # attacks begun: one example, one restart of one mode (each scores its random start)
    gradient: int = 0  # gradient passes: attack steps
    forward: int = 0  # forward passes without gradient: iterates scored on the deployed model

    def add(self, other: Effort) -> None:
        self.attacks += other.attacks
        self.gradient += other.gradient
        self.forward += other.forward

    def per_example(self, n: int) -> dict:
        """Averages over the n examples attacked (early exit makes them fall below the budget)."""
        per = (lambda v: v / n) if n else (lambda v: math.nan)
        return {"attacks": per(self.attacks), "gradient_passes": per(self.gradient),
                "forward_passes": per(self.forward)}


def gradient_modes(modes) -> tuple[str, ...]:
    """The modes that count as gradient attacks (all but the masking diagnostic)."""
    return tuple(m for m in modes if m != MASKING_MODE)


def attack_budget(cfg: AttackConfig, rounds: bool) -> dict:
    """What `harness.run.attacks.evaluate` plans to spend on one example at one eps, before early exit (pure arithmetic).

    gradient_attacks: restarts x gradient modes (pgd for a pipeline that does not round; off and bpda
    for one that rounds), each up to `steps` gradient passes from its own random start, every iterate
    scored; starts_scored: the distinct random starts scored (one per gradient attack); gradient_passes:
    their product with steps; masking_attacks: restarts of `exact`, not in the budget (one gradient pass
    each on a rounding pipeline, from starts already scored). Two arms spend equal effort when these
    agree but for masking_attacks (and their eps and step_ratio agree): an arm that does not round needs
    restarts = the rounding arm's gradient modes x its restarts.
    """
    modes = cfg.modes if rounds else (NO_ROUNDING,)
    attacks_ = len(gradient_modes(modes)) * cfg.restarts
    return {"gradient_attacks": attacks_, "steps": cfg.steps, "starts_scored": attacks_,
            "gradient_passes": attacks_ * cfg.steps, "masking_attacks": (MASKING_MODE in modes) * cfg.restarts}


def first_starts(modes, restarts: int) -> dict[str, int]:
    """Index of each mode's first random start (restart r of mode m starts at index first_starts[m] + r):
    gradient mode j takes starts j*restarts .. (j+1)*restarts - 1, so two gradient modes and two restarts
    score the same two starts; `exact` reuses the first gradient mode's."""
    grad = gradient_modes(modes)
    return {m: grad.index(m) * restarts if m in grad else 0 for m in modes}

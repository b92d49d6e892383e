"""PGD, L-inf, with random start and restarts (Madry et al. 2018), and the per-epoch evaluation.

Contract of every attack here: `model` is in eval mode and maps images in [0, 1] to logits; the input
pipeline is part of `model`. Robust accuracy counts an example as robust when the deployed model is
right on the clean image and on every adversarial image found (the AutoAttack convention), so skipping
examples that are already wrong (early exit) never changes the result, only the cost.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import NO_ROUNDING, STRONGEST, AttackConfig, ConfigError
from .pipelines import crafting
from .runtime import autocast


def check_attack_inputs(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, step_size: float,
                        steps: int) -> None:
    """Clear errors before any attack runs (eps in [0, 1] units here: 8/255, not 8)."""
    if not 0 < eps <= 1:
        raise ConfigError(f"eps {eps:g} is out of range: pass a fraction in (0, 1], e.g. 8/255")
    if not 0 < step_size <= 1:
        raise ConfigError(f"step size {step_size:g} is out of range: pass a fraction in (0, 1], e.g. eps/4")
    if int(steps) != steps or steps < 0:
        raise ConfigError(f"steps {steps} must be a whole number >= 0")
    if model.training:
        raise ConfigError("the model is in training mode: call model.eval() before attacking it "
                          "(batch norm and dropout would change the model under attack)")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ConfigError(f"inputs span [{x.min().item():.3g}, {x.max().item():.3g}]: attacks take images "
                          f"in [0, 1]; put normalization inside the model's pipeline")
    if len(x) != len(y):
        raise ConfigError(f"{len(x)} images but {len(y)} labels")
    with torch.no_grad():
        out = model(x[:8]).float()
    if out.ndim != 2:
        raise ConfigError(f"the model returns shape {tuple(out.shape)}: it must return logits (batch, classes)")
    if out.min() >= 0 and torch.allclose(out.sum(1), torch.ones(len(out), device=out.device), atol=1e-3):
        raise ConfigError("the model's outputs are non-negative rows summing to 1: it returns probabilities; "
                          "return logits (remove the final softmax)")


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, precision: str, batch: int) -> torch.Tensor:
    out = []
    for i in range(0, len(x), batch):
        with autocast(x.device, precision):
            out.append(model(x[i:i + batch]).argmax(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, step_size: float,
        restarts: int = 1, seed: int = 0, mode: str | None = None, early_exit: bool = True,
        precision: str = "fp32", batch: int = 500, clean_correct: torch.Tensor | None = None) -> torch.Tensor:
    """Per-example robustness (bool, shape (N,)) of `model` at L-inf radius `eps` (in [0, 1] units).

    Each restart starts at x + U(-eps, eps) (noise drawn for all N examples from `seed`, so the subset
    attacked does not change which noise an example gets), takes `steps` signed-gradient steps of size
    `step_size` on the summed cross-entropy, and projects onto the eps-ball and [0, 1]. `mode` sets how
    rounding layers behave while crafting (harness.pipelines); the final images are scored on the
    deployed model. Early exit attacks only the examples still robust.
    """
    check_attack_inputs(model, x, y, eps, step_size, steps)
    if clean_correct is None:
        clean_correct = predict(model, x, precision, batch) == y
    robust = clean_correct.clone()
    gen = torch.Generator(device=x.device)
    for restart in range(restarts):
        gen.manual_seed(seed * 1000 + restart)
        noise = (torch.rand(x.shape, device=x.device, generator=gen) * 2 - 1) * eps
        todo = robust.nonzero().squeeze(1) if early_exit else torch.arange(len(x), device=x.device)
        for chunk in todo.split(batch):
            xa = _pgd_chunk(model, x[chunk], y[chunk], noise[chunk], eps, steps, step_size, mode, precision)
            with torch.no_grad(), autocast(x.device, precision):
                robust[chunk] &= model(xa).argmax(1) == y[chunk]
    return robust


def _pgd_chunk(model, x, y, noise, eps, steps, step_size, mode, precision):
    lo, hi = (x - eps).clamp_(min=0), (x + eps).clamp_(max=1)
    xa = torch.min(torch.max(x + noise, lo), hi)
    with crafting(model, mode or "exact"):
        for _ in range(steps):
            xa.requires_grad_(True)
            with autocast(x.device, precision):
                loss = F.cross_entropy(model(xa).float(), y, reduction="sum")
            grad, = torch.autograd.grad(loss, xa)
            xa = torch.min(torch.max(xa.detach() + step_size * grad.sign(), lo), hi)
    return xa.detach()


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig, rounds: bool,
             seed: int, precision: str, early_exit: bool = True, batch: int = 500) -> dict:
    """One epoch's point: clean accuracy and, per eps (1/255 units, as a string key) and attack mode,
    PGD robust accuracy on (x, y), plus `strongest`: robust under every mode at once.

    A pipeline that does not round has a single attack, named `pgd`.
    """
    model.eval()
    clean = predict(model, x, precision, batch) == y
    modes = cfg.modes if rounds else (NO_ROUNDING,)
    adv = {}
    for i, eps_units in enumerate(cfg.eps):
        eps = eps_units / 255
        per_mode = {}
        for mode in modes:
            per_mode[mode] = pgd(model, x, y, eps, cfg.steps, eps * cfg.step_ratio, cfg.restarts,
                                 seed=seed * 100 + i, mode=None if mode == NO_ROUNDING else mode,
                                 early_exit=early_exit, precision=precision, batch=batch,
                                 clean_correct=clean)
        strongest = torch.stack(list(per_mode.values())).all(0)
        adv[eps_key(eps_units)] = {**{m: _mean(r) for m, r in per_mode.items()}, STRONGEST: _mean(strongest)}
    return {"clean": _mean(clean), "adv": adv}


def eps_key(eps_units: float) -> str:
    """Stable JSON key of an eps in 1/255 units: 1.0 -> "1", 0.5 -> "0.5"."""
    return f"{eps_units:g}"


def _mean(mask: torch.Tensor) -> float:
    return mask.float().mean().item() if mask.numel() else float("nan")


"""PGD, L-inf, with random start and restarts (Madry et al. 2018), and the per-epoch evaluation.

Contract of every attack here: `model` is in eval mode and maps images in [0, 1] to logits; the input
pipeline is part of `model`, and it is deterministic and scores each example on its own (as eval-mode
BatchNorm, ViTs and the rounding pipelines do). Robust accuracy counts an example as robust when the
deployed model is right on the clean image and on every adversarial image found, and every PGD iterate
(the random start included) is an adversarial image found (the AutoAttack convention). So skipping
examples that are already wrong (early exit), fooled, or have stopped moving (an exactly zero gradient)
never changes the result, only the cost.

Rounding modes (harness.run.pipelines) change only how rounding layers behave while an attack crafts;
every iterate is scored on the deployed model, rounding on. What to attack with is an `AttackConfig` (eps
in 1/255 units there; a fraction of 1 only here, inside an attack); how is a `Context`.

Attack shapes (`Context.shapes`): early exit leaves a different number of examples at nearly every pass.
`exact` hands the model exactly those (least work; cuDNN's autotuner off, as it would time every new shape
again); `buckets` pads them to one of ATTACK_SHAPE_BUCKETS sizes per chunk with copies whose results are
dropped (at most an eighth of a chunk of extra work per pass), so that the autotuner, left as training set
it, tunes a handful of shapes once per process. The robust examples are the same either way. What an
attack spends, and the budget arms must share, is harness.spec.budget's.

A little over 300 lines on purpose: the attack, the per-epoch evaluation and the checks of their inputs
share the one contract above; apart, the checks would sit away from the math they guard.
"""
from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..spec.budget import Effort, attack_budget, first_starts
from ..spec.config import NO_ROUNDING, ROUNDING_MODES, STRONGEST, AttackConfig, ConfigError, eps_key
from .pipelines import crafting
from .runtime import autocast, without_autotuning

ATTACK_PRECISIONS = ("fp32", "bf16")  # resolved precisions ("auto" is resolved before any attack)
DEPLOYED_FORWARD = ("bpda", "exact")  # crafting modes whose forward pass is the deployed one (rounding on)
ATTACK_SHAPES = ("exact", "buckets")  # how many examples an attack pass gets (module docstring)
ATTACK_SHAPE_BUCKETS = 8  # sizes per chunk under `buckets`: padding costs at most 1/8 of a chunk per pass


@dataclass(frozen=True)
class Context:
    """How attacks run, which changes what they cost and never what they find: the autocast precision, the
    examples per pass, early exit (attack only what is still robust; stop stepping what is fooled) and the
    attack shapes (module docstring). It travels beside the `AttackConfig` that says what to attack with."""
    precision: str = "fp32"  # resolved: fp32 or bf16
    batch: int = 500  # examples per chunk
    early_exit: bool = True
    shapes: str = "exact"


def check_attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, cfg: AttackConfig,
                 ctx: Context, probe: bool = True) -> None:
    """Clear errors before any attack runs (eps in [0, 1] units here: 8/255, not 8). `probe` runs the model
    on a few images to check that it returns logits; pass False when the caller checks the first logits it
    computes anyway (`predict(..., check=True)`), which saves a forward pass per attack."""
    step_size, known = eps * cfg.step_ratio, (*ROUNDING_MODES, NO_ROUNDING)
    if not 0 < eps <= 1:
        raise ConfigError(f"eps {eps:g} is out of range: pass a fraction in (0, 1], e.g. 8/255")
    if not 0 < step_size <= 1:
        raise ConfigError(f"step size {step_size:g} is out of range: pass a fraction in (0, 1], e.g. eps/4")
    if int(cfg.steps) != cfg.steps or cfg.steps < 0:
        raise ConfigError(f"steps {cfg.steps} must be a whole number >= 0")
    if model.training:
        raise ConfigError("the model is in training mode: call model.eval() before attacking it "
                          "(batch norm and dropout would change the model under attack)")
    if x.numel() and not torch.isfinite(x).all():
        raise ConfigError("inputs contain NaN or infinite values: attacks take finite images in [0, 1]")
    if x.numel() and (x.min() < 0 or x.max() > 1):
        raise ConfigError(f"inputs span [{x.min().item():.3g}, {x.max().item():.3g}]: attacks take images "
                          f"in [0, 1]; put normalization inside the model's pipeline")
    if len(x) != len(y):
        raise ConfigError(f"{len(x)} images but {len(y)} labels")
    if not cfg.modes or any(m not in known for m in cfg.modes):
        unknown = "".join(f"unknown rounding mode {m!r}; " for m in cfg.modes if m not in known)
        raise ConfigError(f"attack modes {list(cfg.modes)}: {unknown}pass one or more of {', '.join(known)} "
                          f"({NO_ROUNDING!r} for a pipeline that does not round)")
    if int(cfg.restarts) != cfg.restarts or cfg.restarts < 1:
        raise ConfigError(f"restarts {cfg.restarts} must be a whole number >= 1")
    if ctx.precision not in ATTACK_PRECISIONS:
        raise ConfigError(f"precision {ctx.precision!r}: attacks take {' or '.join(ATTACK_PRECISIONS)} "
                          f"(resolve 'auto' with harness.run.runtime.resolve_precision first)")
    if ctx.shapes not in ATTACK_SHAPES:
        raise ConfigError(f"attack shapes {ctx.shapes!r}: choose {' or '.join(ATTACK_SHAPES)}")
    if probe and len(x):
        with torch.no_grad():
            check_logits(model(x[:8]))


def check_logits(out: torch.Tensor) -> None:
    """A model under attack returns logits: probabilities saturate the loss and hide its gradient."""
    out = out.float()
    if out.ndim != 2:
        raise ConfigError(f"the model returns shape {tuple(out.shape)}: it must return logits (batch, classes)")
    if out.min() >= 0 and torch.allclose(out.sum(1), torch.ones(len(out), device=out.device), atol=1e-3):
        raise ConfigError("the model's outputs are non-negative rows summing to 1: it returns probabilities; "
                          "return logits (remove the final softmax)")


def padded_size(n: int, batch: int, shapes: str) -> int:
    """How many rows an attack pass over n examples (of a chunk of at most `batch`) hands the model: n
    (`exact`), or n rounded up to a multiple of batch / ATTACK_SHAPE_BUCKETS, at most `batch` (`buckets`)."""
    if shapes == "exact" or not n:
        return n
    unit = -(-batch // ATTACK_SHAPE_BUCKETS)
    return min(-(-n // unit) * unit, batch)


def autotuning(shapes: str):
    """cuDNN's autotuner as an attack with these shapes wants it: as training left it for `buckets`, off
    for `exact` (runtime.without_autotuning)."""
    return contextlib.nullcontext() if shapes == "buckets" else without_autotuning()


def crafting_mode(attack: str) -> str:
    """The rounding mode an attack name crafts with: `pgd` (a pipeline that does not round) has no
    rounding layer to change, so any mode does; `exact` leaves the model as deployed."""
    return "exact" if attack == NO_ROUNDING else attack


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, precision: str, batch: int, check: bool = False) -> torch.Tensor:
    """Predicted classes, in chunks of `batch`; `check` runs `check_logits` on the first chunk's outputs."""
    out = []
    for i in range(0, len(x), batch):
        with autocast(x.device, precision):
            logits = model(x[i:i + batch])
        if check and not i:
            check_logits(logits)
        out.append(logits.argmax(1))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.long, device=x.device)


def random_start(x: torch.Tensor, eps: float, seed: int) -> torch.Tensor:
    """x + U(-eps, eps) noise drawn for the whole of x from one generator, so the subset attacked does not
    change which noise an example gets. Projection onto [0, 1] happens in `attack`."""
    gen = torch.Generator(device=x.device)
    gen.manual_seed(seed)
    return x + (torch.rand(x.shape, device=x.device, generator=gen) * 2 - 1) * eps


def pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, cfg: AttackConfig,
        ctx: Context = Context(), robust: torch.Tensor | None = None, first_start: int = 0) -> torch.Tensor:
    """Per-example robustness (bool, shape (N,)) of `model` at L-inf radius `eps` (a fraction: 8/255) under
    PGD with each attack mode of `cfg.modes` in turn, each attacking what the last left robust.

    Restart r of mode m starts at `random_start(x, eps, cfg.eval_seed * 1000 + first_start + s + r)`, s the
    mode's first start (`first_starts`), takes up to `cfg.steps` signed-gradient steps of eps *
    `cfg.step_ratio` on the cross-entropy, and projects onto the eps-ball and [0, 1] (`attack`). An example is
    fooled when ANY iterate of any restart (its random start included) is misclassified by the deployed
    model; it stays robust only if right on the clean image and on every iterate. The mode sets how rounding
    layers behave while crafting (`pgd`: as deployed); every iterate is scored on the deployed model.
    `robust`, when given, replaces the clean predictions (pass a robustness mask to attack only what earlier
    attacks left). `ctx`: how it runs (Context).
    """
    # Without `robust`, the clean predictions are this attack's first forward pass: they check the logits.
    check_attack(model, x, y, eps, cfg, ctx, probe=robust is not None)
    with autotuning(ctx.shapes):
        if robust is None:
            robust = predict(model, x, ctx.precision, ctx.batch, check=True) == y
        return _pgd(model, x, y, eps, cfg, ctx, robust, first_start)[0]


def _pgd(model, x, y, eps, cfg, ctx, robust, first_start) -> tuple[torch.Tensor, Effort]:
    """`pgd` without its checks, for callers that made them once for many attacks; and what it spent."""
    robust, effort = robust.clone(), Effort()
    for mode, first in first_starts(cfg.modes, cfg.restarts).items():
        one_mode = dataclasses.replace(cfg, modes=(mode,))
        for restart in range(cfg.restarts):
            start = random_start(x, eps, cfg.eval_seed * 1000 + first_start + first + restart)
            todo = robust.nonzero().squeeze(1) if ctx.early_exit else torch.arange(len(x), device=x.device)
            if len(todo):
                effort.attacks += len(todo)
                _, fooled, spent = attack(model, x[todo], y[todo], start[todo], eps, one_mode, ctx, model)
                effort.add(spent)
                robust[todo] &= ~fooled
    return robust, effort


def attack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, start: torch.Tensor, eps: float,
           cfg: AttackConfig, ctx: Context = Context(),
           judge: nn.Module | None = None) -> tuple[torch.Tensor, torch.Tensor, Effort]:
    """PGD from `start` (projected first) in the one mode of `cfg.modes`, in chunks of `ctx.batch`, scoring
    every iterate on `judge`: the deployed model that decides (`model` itself, or another for a transfer
    attack); with early exit a fooled example takes no more steps. Without a judge nothing is scored and
    every example steps to the end (as torchattacks' PGD). The loss is the summed cross-entropy, so each
    example's gradient is its own whatever the chunk.

    Returns (images, fooled, effort): fooled[i] says some iterate of example i (its projected start, or the
    image after any step) was misclassified by `judge`; its image is the first that was; the others' are the
    last iterate.

    Cost per example, in passes: up to `steps` gradient passes, plus forward passes without gradient
    (`Effort.forward`). When the judge is `model` and the crafting forward is the deployed one (a pipeline
    that does not round, or modes `bpda` and `exact`), the gradient pass's logits score the iterate it is
    taken at: one extra forward, for the last iterate. Otherwise (mode `off`: rounding removed while
    crafting; or a transfer attack) every iterate needs its own forward: steps + 1 in all, about a third of
    a gradient pass each, so `off` costs about 4/3 of `bpda` before early exit saves its part. The passes
    counted are the examples', whatever padding the shapes add (module docstring).
    """
    effort, parts = Effort(), []
    for i in range(0, len(x), ctx.batch):
        *part, spent = _attack_chunk(model, x[i:i + ctx.batch], y[i:i + ctx.batch], start[i:i + ctx.batch], eps,
                                     cfg, ctx, judge)
        parts.append(part)
        effort.add(spent)
    if not parts:
        return x.clone(), torch.zeros(0, dtype=torch.bool, device=x.device), effort
    return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts]), effort


def _attack_chunk(model, x, y, start, eps, cfg, ctx, judge):
    """(images, fooled, effort) of one chunk; `judge` None scores nothing (fooled stays False).

    The rows handed to the model are the examples still stepping (`idx`), padded by the shapes with copies of
    the first (`live` False: stepped along, never scored, never written back)."""
    [mode] = cfg.modes
    mode, step_size, effort = crafting_mode(mode), eps * cfg.step_ratio, Effort()
    lo, hi = (x - eps).clamp_(min=0), (x + eps).clamp_(max=1)
    xa = torch.min(torch.max(start, lo), hi)
    fooled = torch.zeros(len(x), dtype=torch.bool, device=x.device)
    reuse = judge is model and mode in DEPLOYED_FORWARD  # the gradient pass's logits are the judge's
    idx, live = torch.arange(len(x), device=x.device), torch.ones(len(x), dtype=torch.bool, device=x.device)
    xs, ys, los, his = xa, y, lo, hi  # the rows' current iterates, labels and bounds
    n_live = len(x)
    if (size := padded_size(n_live, ctx.batch, ctx.shapes)) > n_live:
        rows, live = _pad(idx, size)
        idx, xs, ys, los, his = (t[rows] for t in (idx, xa, y, lo, hi))
    for step in range(cfg.steps):
        # Rounding set per pass, not around the loop, so that the judge (maybe `model`) sees the deployed model.
        with crafting(model, mode):
            grad, logits = gradient_and_logits(model, xs, ys, ctx.precision)
        effort.gradient += n_live
        done = None
        if judge is not None:
            if not reuse:
                effort.forward += n_live
            hit = (logits.argmax(1) if reuse else _judge(judge, xs, ctx.precision)) != ys
            fooled[idx[live]] |= hit[live]
            done = hit if ctx.early_exit else None
        if step == 0:
            # An example whose gradient is exactly zero never moves (sign(0) = 0: the next step sees the same
            # image, so the same zero), and the model scores examples independently: it needs no more steps.
            # Under `exact` rounding that is every example, so the masked attack costs one step.
            zero = grad.flatten(1).eq(0).all(1)
            done = zero if done is None else done | zero
        if done is not None and (done := done & live).any():
            xa[idx[done]] = xs[done]  # they stay at the iterate just scored
            live = live & ~done
            n_live = int(live.sum())
            if not n_live:
                break
            if (size := padded_size(n_live, ctx.batch, ctx.shapes)) < len(idx):  # fewer rows: a smaller shape
                rows, live = _pad(live.nonzero().squeeze(1), size)
                idx, xs, ys, los, his, grad = (t[rows] for t in (idx, xs, ys, los, his, grad))
        xs = torch.min(torch.max(xs + step_size * grad.sign(), los), his)
    if judge is not None and n_live:  # the last iterate (the start, when steps == 0) is not scored yet
        effort.forward += n_live
        fooled[idx[live]] |= (_judge(judge, xs, ctx.precision) != ys)[live]
    if xs is not xa:  # (it is when no step was taken and nothing was padded)
        xa[idx[live]] = xs[live]
    return xa, fooled, effort


def _pad(rows: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`rows` followed by copies of its first up to `size`, and the mask of the originals."""
    live = torch.zeros(size, dtype=torch.bool, device=rows.device)
    live[:len(rows)] = True
    return torch.cat([rows, rows[:1].expand(size - len(rows))]), live


def _judge(judge: nn.Module, x: torch.Tensor, precision: str) -> torch.Tensor:
    return predict(judge, x, precision, max(len(x), 1))


def gradient_and_logits(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                        precision: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradient of the summed cross-entropy with respect to the images (each example's own gradient), and
    the float logits of the same forward pass (detached)."""
    x = x.detach().requires_grad_(True)
    with autocast(x.device, precision):
        logits = model(x).float()
    grad, = torch.autograd.grad(F.cross_entropy(logits, y, reduction="sum"), x)
    return grad, logits.detach()


def input_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str) -> torch.Tensor:
    """Gradient of the summed cross-entropy with respect to the images (each example's own gradient)."""
    return gradient_and_logits(model, x, y, precision)[0]


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, cfg: AttackConfig, rounds: bool, seed: int,
             ctx: Context) -> dict:
    """One epoch's point: clean accuracy and, per eps (1/255 units, as a string key) and attack mode,
    PGD robust accuracy on (x, y), plus `strongest`: robust under every mode at once; and `effort`: the
    arm's `attack_budget` and, per eps and mode, what was spent per example (`Effort.per_example`; the
    clean predictions, one forward per example, are not in it).

    Radii nest: an example fooled within a smaller radius counts as fooled at every larger one (its
    adversarial image lies in the larger ball too), so each radius attacks only what the last left
    robust. A pipeline that does not round has a single attack, named `pgd`. Every gradient attack
    (restart of a gradient mode) starts from its own random start (`first_starts`).
    """
    model.eval()
    modes = cfg.modes if rounds else (NO_ROUNDING,)
    for eps_units in cfg.eps:  # here for all the epoch's attacks: `_pgd` does not check again
        check_attack(model, x, y, eps_units / 255, dataclasses.replace(cfg, modes=modes), ctx, probe=False)
    starts = first_starts(modes, cfg.restarts)
    adv, spent = {}, {}
    with autotuning(ctx.shapes):
        clean = predict(model, x, ctx.precision, ctx.batch, check=True) == y
        robust = {mode: clean for mode in modes}
        for i, eps_units in sorted(enumerate(cfg.eps), key=lambda pair: pair[1]):
            effort = {}
            for mode in modes:
                one = dataclasses.replace(cfg, modes=(mode,), eval_seed=seed * 100 + i)
                robust[mode], effort[mode] = _pgd(model, x, y, eps_units / 255, one, ctx, robust[mode], starts[mode])
            adv[eps_key(eps_units)] = {**{m: accuracy(r) for m, r in robust.items()},
                                       STRONGEST: accuracy(worst_case(robust.values()))}
            spent[eps_key(eps_units)] = {m: e.per_example(len(x)) for m, e in effort.items()}
    return {"clean": accuracy(clean), "adv": adv, "effort": {"budget": attack_budget(cfg, rounds), "spent": spent}}


def worst_case(masks) -> torch.Tensor:
    """Robust under every attack at once: the per-example AND of robustness masks."""
    return torch.stack(list(masks)).all(0)


def accuracy(mask: torch.Tensor) -> float:
    return mask.float().mean().item() if mask.numel() else float("nan")

"""Stronger attacks and gradient-masking diagnostics on one run's final checkpoint.

Per-epoch PGD (harness.run.attacks) decides the claims; this module checks, once per run, that it was not
fooled (Athalye, Carlini & Wagner 2018; Carlini et al. 2019, "On evaluating adversarial robustness"):
APGD-CE and APGD-DLR (Croce & Hein 2020; the DLR margin loss does not saturate as cross-entropy can, at
APGD-CE's cost) and the gradient-free Square attack (Andriushchenko et al. 2020), all from torchattacks,
plus five checks on the attack the verdict relies on, the strongest over the
rounding modes per example. `exact` alone is expected to be masked on a rounding pipeline (that is the
masking the suite demonstrates), so a check fails only when the strongest attack is masked or weak. Each
check can fail: tests/test_diagnostics.py shows each one failing on a masked model and passing on an
honest one (a check that only compares a prefix of one attack with itself, as "accuracy never rises with
more steps" did while every iterate is scored, cannot).

torchattacks is a reference installed with --no-deps, not a runtime dependency: it is imported lazily,
and when it is missing its attacks are recorded as null with a warning.

A little over 300 lines on purpose: a cached final evaluation is keyed by this file's code (with attacks and
budget; harness.executors.local), so every attack and every check's rule stays here, where a change to any
of them recomputes the evaluations.
"""
from __future__ import annotations

import dataclasses
import math
import time
from typing import Callable

import torch
from torch import nn

from .attacks import (Context, accuracy, attack, check_attack, crafting_mode, input_gradient, pgd, predict,
                      random_start, worst_case)
from ..spec.budget import first_starts, gradient_modes
from ..spec.config import NO_ROUNDING, STRONGEST, AttackConfig, FinalEvalConfig
from .pipelines import crafting
from .runtime import autocast, without_autotuning

BATCH = 500  # images per attack call
DLR_MIN_CLASSES = 3  # the DLR loss divides by the gap between the largest and third-largest logits
TRANSFER_DIRECTIONS = ("worse->better", "better->worse")  # which arm crafts and which is scored
MISSING_LIBRARY = ("torchattacks is not installed: APGD-CE, APGD-DLR and Square are recorded as null "
                   "(install the reference with: pip install --no-deps torchattacks==3.5.1)")


@without_autotuning()
def final_evaluation(model: nn.Module, x: torch.Tensor, y: torch.Tensor, attack_cfg: AttackConfig,
                     cfg: FinalEvalConfig, precision: str) -> dict:
    """Every attack and masking check on the first `cfg.n_eval` examples of (x, y) at the one radius of
    `attack_cfg.eps` (1/255 units).

    Accuracies are robust accuracies over all n examples (right on the clean image and on every
    adversarial image: for PGD, every iterate). `attack_cfg` is the run's per-epoch attack (its modes
    ("pgd",) for a pipeline that does not round, steps, restarts and random starts: `first_starts`).
    APGD-DLR runs where the model has at least 3 classes (DLR's denominator needs a third logit).
    APGD skips `exact` (its gradient is zero almost everywhere on a rounding pipeline, so APGD would
    only repeat the masking PGD `exact` already shows); Square needs no gradient and attacks the
    deployed model. `checks` holds each masking check ({"ok", "detail"}); `warnings` the problems that
    are not checks (torchattacks missing), so a report lists each failed check once. Plain JSON types only.
    """
    start_time = time.perf_counter()
    ctx, x, y = Context(precision, BATCH), x[:cfg.n_eval], y[:cfg.n_eval]
    [eps_units] = attack_cfg.eps
    eps, modes, steps, seed = eps_units / 255, attack_cfg.modes, attack_cfg.steps, attack_cfg.eval_seed
    restarts = attack_cfg.restarts
    check_attack(model, x, y, eps, attack_cfg, ctx, probe=False)
    clean = predict(model, x, precision, BATCH, check=True) == y
    n_classes = _num_classes(model, x)
    starts = first_starts(modes, attack_cfg.restarts)

    def run(mode: str, eps_: float, steps_: int, robust: torch.Tensor) -> torch.Tensor:
        return pgd(model, x, y, eps_, dataclasses.replace(attack_cfg, steps=steps_, modes=(mode,)), ctx, robust,
                   starts[mode])

    def strongest_pgd(eps_: float, steps_: int, more: int = 1, fresh: int = 0) -> torch.Tensor:
        """Each mode attacks what the last left; `more` times the restarts, from starts `fresh` on."""
        cfg_ = dataclasses.replace(attack_cfg, steps=steps_, restarts=more * attack_cfg.restarts)
        return pgd(model, x, y, eps_, cfg_, ctx, clean, first_start=fresh)

    per_mode = {m: run(m, eps, steps, clean) for m in modes}
    pgd_strongest = worst_case(per_mode.values())
    warnings: list[str] = []
    library = _library()
    if library is None:
        warnings.append(MISSING_LIBRARY)
    apgd_ce = apgd_dlr = square = None

    def apgd(loss: str) -> dict[str, torch.Tensor]:
        return {m: _attack_with(model, x, y, clean, m, precision, lambda net: library.APGD(
            net, norm="Linf", eps=eps, steps=cfg.apgd_steps, n_restarts=1, seed=seed, loss=loss))
            for m in gradient_modes(modes)}

    if library and gradient_modes(modes):
        apgd_ce = apgd("ce")
        if cfg.apgd_dlr and n_classes >= DLR_MIN_CLASSES:
            apgd_dlr = apgd("dlr")
    if library:
        square = _attack_with(model, x, y, clean, "exact", precision, lambda net: library.Square(
            net, norm="Linf", eps=eps, n_queries=cfg.square_queries, n_restarts=1, seed=seed, loss="margin"))

    zero_grad = {m: zero_gradient(model, x, y, m, precision) for m in modes}
    informative = {m: gradient_beats_random(model, x, y, clean, eps, m, precision, seed)
                   for m in gradient_modes(modes)}
    steps_acc = [accuracy(strongest_pgd(eps, s)) for s in cfg.steps_curve]
    longest = max(steps, *cfg.steps_curve)  # with a profile's few steps, an unbounded attack may not arrive
    longer = strongest_pgd(eps, longest, more=2, fresh=len(modes) * restarts)  # starts the run's attack never had
    eps_acc = [accuracy(strongest_pgd(e / 255, longest)) for e in cfg.eps_curve]
    everything = [pgd_strongest, *(apgd_ce or {}).values(), *(apgd_dlr or {}).values()]
    strongest_overall = worst_case(everything + ([square] if square is not None else []))

    tol = cfg.tolerance
    checks = {
        # PGD with the curve's most steps and twice the restarts, from fresh starts, fools at most tol more of
        # the examples the run's own attack left robust: the per-epoch attack has converged.
        "more_effort_finds_little": _more_effort(pgd_strongest, longer, steps, longest, restarts, tol),
        # Strongest-PGD accuracy at the largest eps of cfg.eps_curve (255: the whole image) is <= tol.
        "unbounded_attack_wins": _unbounded_wins(cfg.eps_curve, eps_acc, tol),
        # Square's accuracy (gradient-free) is >= strongest-PGD accuracy - attack_gap.
        "gradient_free_not_stronger": _gradient_free(square, pgd_strongest, cfg.attack_gap),
        # APGD's accuracy (APGD-CE and APGD-DLR, worst case per example) is >= strongest-PGD accuracy - attack_gap:
        # the per-epoch PGD is not a weak attack whose curves a stronger one would lower.
        "apgd_not_stronger": _apgd_agrees({"CE": apgd_ce, "DLR": apgd_dlr}, pgd_strongest, library is not None,
                                          cfg.attack_gap),
        # Every gradient the attack relies on (off and bpda through rounding, pgd without; not exact, whose
        # zero gradient is the masking shown) lowers the deployed model's margin more than a random step of the
        # same size on clearly more than half the examples: a zero or uninformative gradient is a coin at best.
        "gradients_not_masked": _gradients_flow(informative),
    }
    return {
        "n": len(x), "clean": accuracy(clean), "eps": float(eps_units),
        "pgd": _accuracies(per_mode), "apgd_ce": _accuracies(apgd_ce), "apgd_dlr": _accuracies(apgd_dlr),
        "square": None if square is None else accuracy(square),
        "zero_grad": {m: accuracy(z) for m, z in zero_grad.items()},
        "steps_curve": {"steps": [int(s) for s in cfg.steps_curve], "acc": steps_acc},
        "eps_curve": {"eps": [float(e) for e in cfg.eps_curve], "acc": eps_acc},
        "strongest_overall": accuracy(strongest_overall),
        "checks": checks, "warnings": warnings, "seconds": time.perf_counter() - start_time,
    }


@without_autotuning()
def transfer_check(source_model: nn.Module, target_model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   attack_cfg: AttackConfig, precision: str, whitebox_acc: float, tolerance: float) -> dict:
    """PGD crafted on `source_model` (BPDA through its rounding, if it rounds) at the one radius of
    `attack_cfg.eps` (1/255 units), every iterate scored on `target_model` as deployed, on the target's
    clean-correct examples. `whitebox_acc` is the target's own strongest white-box accuracy at the same eps;
    a transfer attack that beats it by more than `tolerance` means the white-box attack was masked. Either
    arm may be the source: run it both ways (TRANSFER_DIRECTIONS; the caller records which). Cost:
    `steps` gradient passes on the source and steps + 1 forward passes on the target per example, less
    for examples fooled early."""
    [eps_units] = attack_cfg.eps
    eps, steps, ctx = eps_units / 255, attack_cfg.steps, Context(precision, BATCH)
    mode = "bpda" if getattr(source_model, "rounds", False) else NO_ROUNDING
    crafted = dataclasses.replace(attack_cfg, modes=(mode,))
    for model in (source_model, target_model):
        check_attack(model, x, y, eps, crafted, ctx)
    robust = predict(target_model, x, precision, BATCH) == y
    todo = robust.nonzero().squeeze(1)  # examples the target gets wrong are not robust anyway
    start = random_start(x, eps, attack_cfg.eval_seed)[todo]
    _, fooled, _ = attack(source_model, x[todo], y[todo], start, eps, crafted, ctx, judge=target_model)
    robust[todo] &= ~fooled
    acc = accuracy(robust)
    # Transfer accuracy >= white-box accuracy - tolerance.
    ok = acc >= whitebox_acc - tolerance
    as_deployed = "as deployed" if mode == NO_ROUNDING else mode
    detail = (f"PGD-{steps} crafted on the source ({as_deployed}) at eps {eps_units:g}/255 leaves the target at "
              f"{acc:.3f}; its white-box accuracy is {whitebox_acc:.3f}; {'ok' if ok else 'FAILED'}: transfer must "
              f"be >= white-box - {tolerance:g}")
    return {"eps": float(eps_units), "transfer_acc": acc, "whitebox_acc": float(whitebox_acc), "ok": bool(ok),
            "detail": detail}


def zero_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, mode: str, precision: str) -> torch.Tensor:
    """Per example (bool, shape (N,)): the input gradient of the cross-entropy at the clean image is
    exactly zero with rounding in `mode` (PGD's signed step then does not move it at all)."""
    zero = []
    with crafting(model, crafting_mode(mode)):
        for i in range(0, len(x), BATCH):
            grad = input_gradient(model, x[i:i + BATCH], y[i:i + BATCH], precision)
            zero.append(grad.flatten(1).abs().amax(1) == 0)
    return torch.cat(zero) if zero else torch.zeros(0, dtype=torch.bool, device=x.device)


def gradient_beats_random(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor, eps: float,
                          mode: str, precision: str, seed: int) -> torch.Tensor:
    """Per clean-correct example (bool): one signed step of `eps` along the cross-entropy's input gradient with
    rounding in `mode` lowers the deployed model's margin (true logit minus the largest other) by more than
    zero and more than a step of random signs of the same size does. On a rounding pipeline this is the check
    that BPDA's gradient says something about the model as deployed; a gradient that is zero, noise, or cut
    inside the network (which BPDA through the input rounding cannot mend) beats a coin flip at best."""
    idx = clean.nonzero().squeeze(1)
    gen = torch.Generator(device=x.device).manual_seed(seed)
    out = []
    for chunk in idx.split(BATCH):
        xb, yb = x[chunk], y[chunk]
        with crafting(model, crafting_mode(mode)):
            step = input_gradient(model, xb, yb, precision).sign() * eps
        noise = (torch.randint(0, 2, xb.shape, generator=gen, device=x.device) * 2 - 1) * eps
        m0, m_grad, m_rand = (_margin(model, (xb + d).clamp(0, 1), yb, precision) for d in (0, step, noise))
        out.append((m0 - m_grad > 0) & (m0 - m_grad > m0 - m_rand))
    return torch.cat(out) if out else torch.zeros(0, dtype=torch.bool, device=x.device)


@torch.no_grad()
def _margin(model: nn.Module, x: torch.Tensor, y: torch.Tensor, precision: str) -> torch.Tensor:
    with autocast(x.device, precision):
        logits = model(x).float()
    true = logits.gather(1, y[:, None]).squeeze(1)
    return true - logits.scatter(1, y[:, None], float("-inf")).amax(1)


class LibraryView(nn.Module):
    """`model` as an attack library calls it: rounding layers in `mode` (`bpda`'s forward is the
    deployed one, so the library's own success checks stay right), autocast at `precision`, and
    float logits."""

    def __init__(self, model: nn.Module, mode: str, precision: str):
        super().__init__()
        self.model, self.mode, self.precision = model, mode, precision
        self.eval()  # torchattacks puts a model that was in training mode back into it, `model` included

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with crafting(self.model, self.mode), autocast(x.device, self.precision):
            return self.model(x).float()


def _attack_with(model: nn.Module, x: torch.Tensor, y: torch.Tensor, clean: torch.Tensor, mode: str,
                 precision: str, make: Callable[[nn.Module], Callable]) -> torch.Tensor:
    """Per-example robustness under a torchattacks attack built by `make`, run on the clean-correct
    examples and scored on the deployed model. torchattacks seeds the global RNG itself; the fork
    keeps that from leaking into the caller."""
    attack = make(LibraryView(model, crafting_mode(mode), precision))
    robust = clean.clone()
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        for chunk in clean.nonzero().squeeze(1).split(BATCH):
            adv = attack(x[chunk], y[chunk])
            robust[chunk] &= predict(model, adv, precision, BATCH) == y[chunk]
    return robust


def _more_effort(pgd_strongest: torch.Tensor, longer: torch.Tensor, steps: int, more_steps: int, restarts: int,
                 tol: float) -> dict:
    found = accuracy(pgd_strongest & ~longer)  # robust under the run's attack, fooled by the longer one
    ok = found <= tol
    return {"ok": ok, "detail": f"strongest PGD-{steps} ({restarts} start(s) per mode) leaves "
                                f"{accuracy(pgd_strongest):.3f}; PGD-{more_steps} from {2 * restarts} fresh starts "
                                f"fools {found:.3f} more; {'ok' if ok else 'FAILED'}: at most {tol:g} more"}


def _unbounded_wins(eps_curve: tuple[float, ...], acc: list[float], tol: float) -> dict:
    ok = bool(acc) and acc[-1] <= tol
    last = f"{eps_curve[-1]:g}/255" if eps_curve else "none"
    return {"ok": ok, "detail": f"strongest-PGD accuracy at eps {[float(e) for e in eps_curve]} (1/255 units) is "
                                f"{_fmt(acc)}; at the largest eps ({last}) {'ok' if ok else 'FAILED'}: it must be "
                                f"<= {tol:g} (an attack that may change the whole image must win)"}


def _gradient_free(square: torch.Tensor | None, pgd_strongest: torch.Tensor, tol: float) -> dict:
    pgd_acc = accuracy(pgd_strongest)
    if square is None:
        return {"ok": False, "detail": f"FAILED, not checked: Square did not run (torchattacks missing); "
                                       f"strongest-PGD accuracy {pgd_acc:.3f}"}
    sq_acc = accuracy(square)
    only_square = accuracy(pgd_strongest & ~square)
    ok = sq_acc >= pgd_acc - tol
    return {"ok": ok, "detail": f"Square accuracy {sq_acc:.3f}, strongest-PGD accuracy {pgd_acc:.3f} (Square "
                                f"alone fools {only_square:.3f} of the examples); {'ok' if ok else 'FAILED'}: "
                                f"Square must be >= PGD - {tol:g}"}


def _apgd_agrees(apgd: dict[str, dict | None], pgd_strongest: torch.Tensor, have_library: bool, tol: float) -> dict:
    """`apgd`: loss name -> that APGD's per-mode robustness masks, or None where it did not run."""
    pgd_acc = accuracy(pgd_strongest)
    ran = {loss: worst_case(per_mode.values()) for loss, per_mode in apgd.items() if per_mode}
    if not ran:
        why = "torchattacks missing" if not have_library else "no attack mode has a gradient (only exact)"
        return {"ok": False, "detail": f"FAILED, not checked: APGD did not run ({why}); "
                                       f"strongest-PGD accuracy {pgd_acc:.3f}"}
    apgd_acc = accuracy(worst_case(ran.values()))
    each = ", ".join(f"{loss} {accuracy(r):.3f}" for loss, r in ran.items())
    ok = apgd_acc >= pgd_acc - tol
    return {"ok": ok, "detail": f"APGD accuracy {apgd_acc:.3f} ({each}), strongest-PGD accuracy {pgd_acc:.3f}; "
                                f"{'ok' if ok else 'FAILED'}: APGD must be >= PGD - {tol:g}"}


def _gradients_flow(beats: dict[str, torch.Tensor]) -> dict:
    """beats: gradient mode -> per clean-correct example, whether its gradient step beat a random one. A
    gradient that says nothing about the deployed model is a coin at best: each share must exceed 1/2 by two
    standard errors of one, 1/2 + 1/sqrt(n)."""
    if not beats:
        return {"ok": False, "detail": "FAILED, not checked: no mode with a gradient (only exact)"}
    n = len(next(iter(beats.values())))
    if n < 4:  # (nearly) nothing right on clean images: nothing for an attack to find, masked or not
        return {"ok": True, "detail": f"ok, not checked: {n} clean-correct examples, too few to tell"}
    need, shares = 0.5 + 1 / math.sqrt(n), {m: accuracy(b) for m, b in beats.items()}
    ok = min(shares.values()) > need
    return {"ok": ok, "detail": f"share of the {n} clean-correct examples whose eps step along the gradient lowers "
                                f"the deployed model's margin more than a random-sign step: "
                                f"{', '.join(f'{m} {v:.3f}' for m, v in shares.items())}; {'ok' if ok else 'FAILED'}: "
                                f"each must exceed {need:.3f} (a coin's 1/2 + 2 standard errors)"}


def _num_classes(model: nn.Module, x: torch.Tensor) -> int:
    with torch.no_grad():
        return model(x[:1]).shape[1]


def _library():
    try:
        import torchattacks
    except ImportError:
        return None
    return torchattacks


def library_version() -> str | None:
    """torchattacks' version, None when it is missing: part of a cached final evaluation's identity, so an
    evaluation made without the library is redone once it is installed."""
    library = _library()
    return getattr(library, "__version__", "unknown") if library else None


def _accuracies(per_mode: dict[str, torch.Tensor] | None) -> dict | None:
    if per_mode is None:
        return None
    return {**{m: accuracy(r) for m, r in per_mode.items()}, STRONGEST: accuracy(worst_case(per_mode.values()))}


def _fmt(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"

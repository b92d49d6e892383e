"""Input pipelines: small modules between a [0, 1] image and the network.

The pipeline is part of the model being attacked: PGD sees `Deployed(pipeline, net)`, whose input is
the [0, 1] image, so whatever the pipeline does (normalize, resize, round) the attack must get through.

Rounding modes (how `Round` behaves while an attack crafts; every mode scores on the deployed model):
- `exact`: round forward, true gradient (zero almost everywhere). This is the deployed behaviour; an
  attack run through it is fooled by gradient masking.
- `off`: rounding removed (identity), as the post crafted its adversarial examples.
- `bpda`: round forward, identity backward (Athalye et al. 2018, Backward Pass Differentiable Approx.).
"""
from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

from .config import ROUNDING_MODES, ConfigError


def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def quantize(x: torch.Tensor, mode: str) -> torch.Tensor:
    """Snap [0, 1] values to the k/255 grid, with the gradient the mode asks for."""
    if mode == "off":
        return x
    rounded = torch.round(x * 255) / 255
    if mode == "exact":
        return rounded
    if mode == "bpda":
        return x + (rounded - x).detach()
    raise ConfigError(f"unknown rounding mode {mode!r}: choose one of {', '.join(ROUNDING_MODES)}")


class Baseline(nn.Module):
    """uint8/255 -> normalize with the dataset's mean and std -> resize."""
    rounds = False

    def __init__(self, mean, std, size: int | None):
        super().__init__()
        self.size = size
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x):
        return resize((x - self.mean) / self.std, self.size)


class Round(nn.Module):
    """uint8/255 -> resize -> torch.round(x*255)/255 (no normalize): the network sees 8-bit ordinals."""
    rounds = True

    def __init__(self, mean, std, size: int | None):
        super().__init__()
        self.size = size
        self.mode = "exact"  # deployed; `crafting()` changes it for the duration of an attack

    def forward(self, x):
        return quantize(resize(x, self.size), self.mode)


PIPELINES = {"baseline": Baseline, "round": Round}


def create(name: str, mean, std, size: int | None, **kwargs) -> nn.Module:
    if name not in PIPELINES:
        raise ConfigError(f"unknown pipeline {name!r}: choose one of {', '.join(PIPELINES)} "
                          f"(harness/pipelines.py)")
    return PIPELINES[name](mean, std, size, **kwargs)


class Deployed(nn.Sequential):
    """The model as attacked and scored: [0, 1] image -> pipeline -> network -> logits."""

    def __init__(self, pipeline: nn.Module, net: nn.Module):
        super().__init__(pipeline, net)

    @property
    def rounds(self) -> bool:
        return getattr(self[0], "rounds", False)


@contextlib.contextmanager
def crafting(model: nn.Module, mode: str):
    """Within the block, every rounding layer of `model` behaves as `mode`; afterwards, as deployed."""
    if mode not in ROUNDING_MODES:
        raise ConfigError(f"unknown rounding mode {mode!r}: choose one of {', '.join(ROUNDING_MODES)}")
    layers = [m for m in model.modules() if isinstance(m, Round)]
    for m in layers:
        m.mode = mode
    try:
        yield
    finally:
        for m in layers:
            m.mode = "exact"

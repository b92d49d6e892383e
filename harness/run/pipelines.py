"""Input pipelines: small modules between a [0, 1] image and the network, and the model as attacked.

The pipeline is part of the model being attacked: PGD sees `Deployed(pipeline, net)`, whose input is
the [0, 1] image, so whatever the pipeline does (normalize, resize, round) the attack must get through.

Pipelines (`create(name, mean, std, size, **kwargs)`; `size`: side in pixels to resize to, None keeps it):
- `baseline`: normalize with the dataset's mean and std, then resize (the post's pipeline).
- `plain`: resize only: the network sees [0, 1] pixels, neither normalized nor rounded.
- `round`: resize, then snap to the grid of 2^bits - 1 levels (`bits`, default 8: the k/255 grid).
- `norm_round`: resize, round (as `round`), normalize. Rounding must act on the [0, 1] pixel grid, so it
  comes before normalization (after it the grid is (k/255 - mean)/std, per channel); and after resize,
  because bilinear resizing moves pixels off the grid. So norm_round differs from baseline by the rounding
  alone, and from round by the normalization alone (H1's 2x2 design).

Crafting protocol: a module takes part in an attack's crafting when it has a non-empty `modes` (the
rounding modes of config.ROUNDING_MODES it implements) and `set_crafting(mode) -> the previous mode`.
`crafting(model, mode)` finds every such module by duck typing, so a new masking transform (JPEG, ...)
needs no change here. Its deployed mode is "exact". The modes, for `round`'s rounding:
- `exact`: round forward, true gradient (zero almost everywhere). This is the deployed behaviour; an
  attack run through it is fooled by gradient masking.
- `off`: rounding removed (identity), as the post crafted its adversarial examples.
- `bpda`: round forward, identity backward (Athalye et al. 2018, Backward Pass Differentiable Approx.).

Precision rule: the pipeline and the network's first layer (`models.first_layer`) run in fp32 whatever
the precision of the rest: autocast off, float32 inputs, and TF32 off (cuDNN convolutions and cuBLAS
matmuls) for the first layer's forward and, from its start to the end of the pass, its backward. Under
bf16 autocast the first layer would otherwise see its input with 8 significant bits, about one pixel level
at bright unnormalized pixels, and a 0.6/255 change would not reach the network: the float arms would not
be float. `Deployed.precision_note` says what ran how, for the results.
"""
from __future__ import annotations

import contextlib
import functools
import types

import torch
import torch.nn.functional as F
from torch import nn

from . import models
from ..spec.config import ROUNDING_MODES, ConfigError
from ..spec.registry import PIPELINE_ROUNDS, Registry

DEPLOYED = "exact"  # the crafting mode of a masking module outside `crafting()`
PIPELINES = Registry("pipeline", "harness/run/pipelines.py")


def register_pipeline(name: str):
    """Decorator: `@register_pipeline("name")` over a pipeline class (or constructor); the plan learns whether
    it rounds (its `rounds`) from harness.spec.registry.PIPELINE_ROUNDS, without importing torch."""
    def add(constructor):
        PIPELINES.register(name)(constructor)
        PIPELINE_ROUNDS[name] = bool(getattr(constructor, "rounds", False))
        return constructor
    return add


def create(name: str, mean, std, size: int | None, **kwargs) -> nn.Module:
    """The registered pipeline `name`; `kwargs` (a Variant's pipeline_kwargs) go to its constructor."""
    return PIPELINES.create(name, mean, std, size, **kwargs)


def resize(x: torch.Tensor, size: int | None) -> torch.Tensor:
    if size is None or x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def quantize(x: torch.Tensor, mode: str, levels: int = 255) -> torch.Tensor:
    """Snap [0, 1] values to the k/levels grid (255: 8 bits), with the gradient the mode asks for."""
    if mode == "off":
        return x
    rounded = torch.round(x * levels) / levels
    if mode == "exact":
        return rounded
    if mode == "bpda":
        return x + (rounded - x).detach()
    raise ConfigError(f"unknown rounding mode {mode!r}: choose one of {', '.join(ROUNDING_MODES)}")


def grid_levels(bits: int) -> int:
    """Steps of the rounding grid for `bits` bits: 2^bits - 1 (8 bits: 255)."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ConfigError(f"bits={bits!r}: choose an integer from 1 to 16 (8: the k/255 grid)")
    return 2 ** bits - 1


class Pipeline(nn.Module):
    """Base of the pipelines here: `modes` as the crafting protocol wants it; `rounds` = bool(modes), also
    on the class (the planner asks a pipeline class whether it rounds before building one)."""
    modes: tuple[str, ...] = ()
    rounds = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.rounds = bool(cls.modes)

    def __init__(self, size: int | None):
        super().__init__()
        self.size = size

    def set_stats(self, mean, std) -> None:
        if mean is None or std is None:
            raise ConfigError(f"{type(self).__name__} normalizes: give the dataset's mean and std, not None")
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


@register_pipeline("baseline")
class Baseline(Pipeline):
    """uint8/255 -> normalize with the dataset's mean and std -> resize."""

    def __init__(self, mean, std, size: int | None):
        super().__init__(size)
        self.set_stats(mean, std)

    def forward(self, x):
        return resize(self.normalize(x), self.size)


@register_pipeline("round")
class Round(Pipeline):
    """uint8/255 -> resize -> round(x * L) / L, L = 2^bits - 1 (no normalize): the network sees `bits`-bit
    ordinals (bits=8: k/255)."""
    modes = ROUNDING_MODES

    def __init__(self, mean, std, size: int | None, bits: int = 8):
        super().__init__(size)
        self.bits, self.levels = bits, grid_levels(bits)
        self.mode = DEPLOYED  # `crafting()` changes it for the duration of an attack

    def set_crafting(self, mode: str) -> str:
        if mode not in self.modes:
            raise ConfigError(f"{type(self).__name__} has no crafting mode {mode!r}: choose one of "
                              f"{', '.join(self.modes)}")
        previous, self.mode = self.mode, mode
        return previous

    def forward(self, x):
        return quantize(resize(x, self.size), self.mode, self.levels)


# After Round: "unknown pipeline" messages list baseline, round first (the post's two).
@register_pipeline("plain")
class Plain(Pipeline):
    """uint8/255 -> resize: no normalization, no rounding."""

    def __init__(self, mean, std, size: int | None):
        super().__init__(size)

    def forward(self, x):
        return resize(x, self.size)


@register_pipeline("norm_round")
class NormRound(Round):
    """uint8/255 -> resize -> round (as `round`, `bits`) -> normalize (order: see the module docstring)."""

    def __init__(self, mean, std, size: int | None, bits: int = 8):
        super().__init__(mean, std, size, bits)
        self.set_stats(mean, std)

    def forward(self, x):
        return self.normalize(super().forward(x))


def masking_layers(model: nn.Module) -> list[nn.Module]:
    """The modules of `model` that follow the crafting protocol (non-empty `modes`, `set_crafting`)."""
    return [m for m in model.modules() if getattr(m, "modes", ()) and callable(getattr(m, "set_crafting", None))]


@contextlib.contextmanager
def crafting(model: nn.Module, mode: str):
    """Within the block, every masking module of `model` behaves as `mode`; afterwards, as before."""
    if mode not in ROUNDING_MODES:
        raise ConfigError(f"unknown rounding mode {mode!r}: choose one of {', '.join(ROUNDING_MODES)}")
    changed = []
    try:
        for m in masking_layers(model):
            changed.append((m, m.set_crafting(mode)))
        yield
    finally:
        for m, previous in reversed(changed):
            m.set_crafting(previous)


# ---- the model as attacked, and the precision rule ------------------------------------------------------

class Deployed(nn.Sequential):
    """The model as attacked and scored: [0, 1] image -> pipeline -> network -> logits.

    The pipeline and the network's first layer run in fp32 (module docstring); building a Deployed installs
    that rule on `net`'s first layer (an instance-level forward: parameter names and state dicts unchanged).
    """

    def __init__(self, pipeline: nn.Module, net: nn.Module):
        super().__init__(pipeline, net)
        first = models.first_layer(net)
        self.first_layer = first[0] if first else None  # its name in `net`, for the record
        if first:
            keep_float32(first[1])

    def forward(self, x):
        with torch.autocast(x.device.type, enabled=False):
            x = self[0](at_least_float32(x))
        return self[1](x)

    @property
    def rounds(self) -> bool:
        """Whether the pipeline has a module with crafting modes (its attacks then run once per mode)."""
        return bool(masking_layers(self[0]))

    def precision_note(self, precision: str) -> dict:
        """What ran at which precision, for the results; `precision`: the run's resolved one (bf16, fp32)."""
        first = f"{self.first_layer} fp32 (no TF32)" if self.first_layer is not None else "none"
        return {"pipeline": "fp32", "first_layer": first, "rest": precision}


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """x in fp32 where it was in less (bf16, fp16, uint8); fp64 stays fp64 (a float64 reference model)."""
    return x if x.dtype == torch.float64 else x.float()


def keep_float32(layer: nn.Module) -> None:
    """Make `layer` run in fp32 without TF32 under any autocast (idempotent)."""
    layer.forward = types.MethodType(_eager_float32_forward(), layer)


@functools.cache
def _eager_float32_forward():
    """`_float32_forward`, never compiled: the TF32 flags are set around the call, which a graph would skip.
    Wrapped when a model is first built, not at import: torch.compiler.disable imports torch._dynamo
    (2.5 s on 2 CPU cores), which planning and bad-input checks never need."""
    return torch.compiler.disable(_float32_forward)


def _float32_forward(self: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.autocast(x.device.type, enabled=False), no_tf32():
        out = type(self).forward(self, at_least_float32(x))
    if out.grad_fn is not None:
        out.grad_fn.register_prehook(_no_tf32_until_backward_ends)
    return out


def _no_tf32_until_backward_ends(grad_outputs):
    """Autograd pre-hook on the first layer's node: TF32 off for the rest of this backward pass (the first
    layer's and the pipeline's gradients, computed after every later layer's)."""
    before = _set_fp32_precision("ieee", "ieee")

    def restore() -> None:
        _set_fp32_precision(*before)
    torch.autograd.Variable._execution_engine.queue_callback(restore)


@contextlib.contextmanager
def no_tf32():
    """TF32 off for cuDNN convolutions and cuBLAS matmuls inside, restored after. These are global flags,
    read only by CUDA kernels; set through torch's fp32_precision API (torch >= 2.9), which must not be
    mixed with the legacy allow_tf32 flags: restoring the exact previous strings keeps them consistent."""
    before = _set_fp32_precision("ieee", "ieee")
    try:
        yield
    finally:
        _set_fp32_precision(*before)


def _set_fp32_precision(conv: str, matmul: str) -> tuple[str, str]:
    """Set cuDNN conv's and cuBLAS matmul's fp32 precision ("ieee", "tf32", "none"); returns the previous."""
    before = (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    torch.backends.cudnn.conv.fp32_precision = conv
    torch.backends.cuda.matmul.fp32_precision = matmul
    return before

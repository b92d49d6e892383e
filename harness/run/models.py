"""Models: one front door, `create(name, num_classes, in_chans, img_size, **kwargs)`, over a registry of
constructors (timm networks, randomly initialised: no weight downloads). A new network is one decorated
function: `@register_model("name")` over `f(num_classes, in_chans, img_size, **kwargs) -> nn.Module`."""
from __future__ import annotations

import torch
from torch import nn

from ..spec.config import ConfigError
from ..spec.registry import Registry

MODELS = Registry("model", "harness/run/models.py")
register_model = MODELS.register
POOLINGS = ("max", "avg")


def create(name: str, num_classes: int, in_chans: int, img_size: int, logit_scale: float = 1.0,
           **kwargs) -> nn.Module:
    """The registered network `name`, randomly initialised; `kwargs` (a Variant's model_kwargs) go to its
    constructor, and through it to timm: e.g. `pooling="avg"` (resnet18), `act_layer="relu"` (ViTs).
    `logit_scale` other than 1 deploys it with scaled logits (`LogitScale`), whatever the network."""
    net = MODELS.create(name, num_classes, in_chans, img_size, **kwargs)
    return net if logit_scale == 1 else LogitScale(net, logit_scale)


class LogitScale(nn.Module):
    """`net` with its logits multiplied by `scale` in eval mode only: it trains as `net` does and predicts
    what `net` predicts, so its true robustness is `net`'s. Deployed at a large scale (1e4) the softmax
    saturates and cross-entropy gradients vanish (exactly zero in fp32 for a margin above ~0.01): any
    robustness a cross-entropy attack measures is gradient masking, by construction (the masking control)."""

    def __init__(self, net: nn.Module, scale: float):
        super().__init__()
        if not scale > 0:
            raise ConfigError(f"logit_scale={scale!r}: use a positive number (1 leaves the logits as they are)")
        self.net, self.scale = net, float(scale)

    def forward(self, x):
        out = self.net(x)
        return out if self.training else out * self.scale


def timm_model(timm_name: str, num_classes: int, in_chans: int, **kwargs) -> nn.Module:
    """timm's `timm_name`, randomly initialised (no weight downloads), kwargs passed to its constructor."""
    import timm  # here, not at the top: timm loads torchvision's model zoo (3 s) that planning never needs
    act = kwargs.get("act_layer")
    if isinstance(act, str):  # timm raises a bare KeyError for an unknown name deep inside the model
        try:
            timm.layers.get_act_layer(act)
        except KeyError:
            raise ConfigError(f"unknown act_layer {act!r}: use a timm activation name "
                              f"(relu, gelu, silu, ...; timm.layers.create_act)") from None
    return timm.create_model(timm_name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)


@register_model("resnet18")
def resnet18(num_classes: int, in_chans: int, img_size: int, pooling: str = "max", **kwargs) -> nn.Module:
    """timm's ResNet18 with its ImageNet stem (7x7 conv stride 2 + 3x3 max pool stride 2), as the post's
    "ResNet18"; at 32 px it reaches the pool at 8x8. pooling="avg" swaps every max pool for an average
    pool (`swap_max_for_avg`). img_size is unused: the network takes any size."""
    if pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")
    model = timm_model("resnet18", num_classes, in_chans, **kwargs)
    if pooling == "avg":
        swap_max_for_avg(model)
    return model


@register_model("test_resnet")
def small_resnet(num_classes: int, in_chans: int, img_size: int, **kwargs) -> nn.Module:
    """timm's `test_resnet` (0.37 M parameters; a stride-2 stem and a max pool, so 8x8 after the stem at
    32 px): small enough that the controls train on 2 CPU cores (about 900 images/s per core)."""
    return timm_model("test_resnet", num_classes, in_chans, **kwargs)


@register_model("vit_tiny")
def vit_tiny(num_classes: int, in_chans: int, img_size: int, **kwargs) -> nn.Module:
    """timm's ViT-Ti/16 at `img_size`; kwargs go to timm's VisionTransformer (act_layer="relu" swaps the
    MLPs' GELU for ReLU)."""
    return timm_model("vit_tiny_patch16_224", num_classes, in_chans, img_size=img_size, **kwargs)


@register_model("vit_tiny_p4")
def vit_tiny_p4(num_classes: int, in_chans: int, img_size: int, **kwargs) -> nn.Module:
    """ViT-Ti with 4-pixel patches: 64 tokens at 32 px (harness.bench's ViT @32)."""
    return timm_model("vit_tiny_patch16_224", num_classes, in_chans, img_size=img_size, patch_size=4, **kwargs)


def swap_max_for_avg(model: nn.Module) -> list[str]:
    """Replace every max-pooling layer by an average pool of the same kernel, stride and padding.

    Padding is excluded from the average (count_include_pad=False): max pooling ignores its padding too,
    so only the reduction changes. Returns the names of the swapped layers (for ResNet18: the stem's
    `maxpool`; its global pool is already an average).
    """
    swapped = []
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            full = f"{name}.{child_name}" if name else child_name
            if isinstance(child, nn.MaxPool2d):
                if child.dilation not in (1, (1, 1)):
                    raise ConfigError(f"{full}: dilated max pooling has no average-pool equivalent")
                setattr(module, child_name, nn.AvgPool2d(child.kernel_size, child.stride, child.padding,
                                                         ceil_mode=child.ceil_mode, count_include_pad=False))
                swapped.append(full)
            elif isinstance(child, nn.AdaptiveMaxPool2d):
                setattr(module, child_name, nn.AdaptiveAvgPool2d(child.output_size))
                swapped.append(full)
    return swapped


def first_layer(net: nn.Module) -> tuple[str, nn.Module] | None:
    """(name, module) of the first Conv2d or Linear in module order: the layer that sees the pipeline's
    output (ViT: `patch_embed.proj`; ResNet: the stem's `conv1`); None if the network has neither."""
    return next(((n, m) for n, m in net.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)


def is_convolutional(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) and m.kernel_size != m.stride for m in model.modules())


def count_max_pools(model: nn.Module) -> int:
    return sum(isinstance(m, (nn.MaxPool2d, nn.AdaptiveMaxPool2d)) for m in model.modules()) + sum(
        getattr(m, "pool_type", "") == "max" for m in model.modules())


def forward_flops(model: nn.Module, shape: tuple[int, ...]) -> float:
    """FLOPs of one forward pass on one input of `shape` (C, H, W), counted by torch's flop counter."""
    from torch.utils.flop_counter import FlopCounterMode
    was_training = model.training
    model.eval()
    x = torch.zeros((1, *shape), device=next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    model.train(was_training)
    return float(counter.get_total_flops())

"""Models: one front door, `create(name, ...)`, over timm, randomly initialised (no weight downloads)."""
from __future__ import annotations

import timm
import torch
from torch import nn

from .config import ConfigError

# name -> (timm name, whether it takes img_size). ResNet18 keeps timm's ImageNet stem (7x7 conv stride 2
# + 3x3 max pool stride 2), as the post's "ResNet18"; at 32 px it reaches the pool at 8x8.
MODELS = {
    "resnet18": ("resnet18", False),
    "vit_tiny": ("vit_tiny_patch16_224", True),
    "vit_tiny_p4": ("vit_tiny_patch16_224", True),  # patch 4: 64 tokens at 32 px (harness.bench's ViT @32)
}
PATCH_SIZES = {"vit_tiny_p4": 4}  # timm's patch size overridden, by name
POOLINGS = ("max", "avg")


def create(name: str, num_classes: int, in_chans: int, img_size: int, pooling: str = "max") -> nn.Module:
    if name not in MODELS:
        raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(MODELS)} (harness/models.py)")
    if pooling not in POOLINGS:
        raise ConfigError(f"unknown pooling {pooling!r}: choose one of {', '.join(POOLINGS)}")
    timm_name, sized = MODELS[name]
    kwargs = {"img_size": img_size} if sized else {}
    if name in PATCH_SIZES:
        kwargs["patch_size"] = PATCH_SIZES[name]
    model = timm.create_model(timm_name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)
    if pooling == "avg":
        swap_max_for_avg(model)
    return model


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

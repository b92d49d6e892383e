"""The reference pipeline harness.bench compares against: what a user would write without the harness.

A torchvision-datasets-style Dataset over uint8 arrays, per-image CPU transforms in DataLoader workers,
fp32 throughout, the optimizer built the textbook way, and PGD from torchattacks. The network is the
same timm model as the harness's (harness.run.models.create), so the two sides differ only in the pipeline.
"""
from __future__ import annotations

import itertools
import time

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..spec.config import Recipe


class ArrayDataset(torch.utils.data.Dataset):
    """Images (N, C, H, W) uint8 and labels, served as torchvision's CIFAR10 serves them: a PIL image
    through `transform`, and an int label."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform):
        self.images = np.ascontiguousarray(images.permute(0, 2, 3, 1).numpy())  # HWC, as PIL wants
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = self.images[i]
        return self.transform(Image.fromarray(img[:, :, 0] if img.shape[2] == 1 else img)), self.labels[i]


def train_transform(mean, std, padding: int, crop: int, size: int | None):
    """The usual CIFAR augmentation, per image on the CPU; resized after normalising for a 224 model."""
    from torchvision import transforms as T
    steps = [T.RandomCrop(crop, padding=padding), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(mean, std)]
    if size:
        steps.append(T.Resize(size, antialias=True))
    return T.Compose(steps)


def loader(images, labels, transform, batch: int, workers: int, device: torch.device):
    return torch.utils.data.DataLoader(ArrayDataset(images, labels, transform), batch_size=batch, shuffle=True,
                                       num_workers=workers, pin_memory=device.type == "cuda", drop_last=True,
                                       persistent_workers=workers > 0)


def optimizer(net: nn.Module, r: Recipe) -> torch.optim.Optimizer:
    if r.optimizer == "sgd":
        return torch.optim.SGD(net.parameters(), lr=r.lr, momentum=0.9, nesterov=True, weight_decay=r.weight_decay)
    return torch.optim.AdamW(net.parameters(), lr=r.lr, weight_decay=r.weight_decay)


def time_training(net: nn.Module, data: torch.utils.data.DataLoader, r: Recipe, device: torch.device,
                  warmup: int, steps: int) -> float:
    """Seconds for `steps` fp32 training steps fed by `data`, after `warmup` untimed steps (which also
    start the workers). The loader is cycled if it holds fewer batches."""
    net = net.to(device).train()
    opt = optimizer(net, r)
    batches = itertools.chain.from_iterable(itertools.repeat(data))
    start = 0.0
    for i, (x, y) in enumerate(itertools.islice(batches, warmup + steps)):
        if i == warmup:
            _sync(device)
            start = time.perf_counter()
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        loss = F.cross_entropy(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    _sync(device)
    return time.perf_counter() - start


def attacked_model(net: nn.Module, mean, std, size: int | None) -> nn.Module:
    """What a torchattacks user attacks: [0, 1] images -> Normalize (-> Resize) -> net, all fp32."""
    from torchvision import transforms as T
    return nn.Sequential(T.Normalize(mean, std), T.Resize(size, antialias=True) if size else nn.Identity(), net)


def time_pgd(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, steps: int, step_size: float,
             batch: int, device: torch.device) -> float | None:
    """Seconds for torchattacks.PGD (random start) on x (CPU, [0, 1]), moved to `device` batch by batch,
    with the clean and final predictions the robust accuracy needs (as harness.run.attacks.pgd does);
    None when torchattacks is not installed."""
    try:
        import torchattacks
    except ImportError:
        return None
    model = model.to(device).eval()
    attack = torchattacks.PGD(model, eps=eps, alpha=step_size, steps=steps, random_start=True)
    _sync(device)
    start = time.perf_counter()
    robust = []
    for xb, yb in zip(x.split(batch), y.split(batch)):
        xb, yb = xb.to(device), yb.to(device)
        with torch.no_grad():
            clean = model(xb).argmax(1) == yb
        adv = attack(xb, yb)
        with torch.no_grad():
            robust.append(clean & (model(adv).argmax(1) == yb))
    torch.cat(robust).sum().item()
    return time.perf_counter() - start


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)

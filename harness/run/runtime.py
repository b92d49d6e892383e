"""Where and how code runs: device choice, precision, threads, determinism, environment record."""
from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import torch

from ..spec.config import ConfigError

PRECISIONS = ("auto", "bf16", "fp32")


def check_device(requested: str) -> None:
    """A ConfigError unless `requested` ("", "cpu", "cuda", "cuda:1") names a device this machine has."""
    if not requested:
        return
    try:
        dev = torch.device(requested)
    except RuntimeError:
        raise ConfigError(f"--device {requested!r} is not a device: use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"--device {requested!r}: the suite runs on cpu or cuda (cuda:N)")
    if dev.type == "cuda" and gpu_count() <= (dev.index or 0):
        raise ConfigError(f"--device {requested!r} asked for, but {gpu_count() or 'no'} CUDA GPU(s) are visible: "
                          f"use --device cpu, or leave --device out to take a GPU when there is one")


def gpu_count() -> int:
    # CUDA_VISIBLE_DEVICES narrows what device_count sees; cuda:N then indexes the visible ones.
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def pick_device(requested: str | None = None) -> torch.device:
    """`requested` ("cpu", "cuda", "cuda:1") or the first GPU, else the CPU."""
    if requested:
        check_device(requested)
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_precision(precision: str, device: torch.device | None) -> str:
    """bf16 autocast where the device does it fast (CUDA with bf16), fp32 elsewhere (CPU autocast is slow);
    with no device, only checks the name."""
    if precision not in PRECISIONS:
        raise ConfigError(f"unknown precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if device is None:
        return precision
    if precision == "auto":
        fast_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
        return "bf16" if fast_bf16 else "fp32"
    return precision


def autocast(device: torch.device, precision: str):
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def set_deterministic(on: bool) -> None:
    """Seeds are set per run; this asks for deterministic kernels too (slower on the GPU)."""
    if on:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=False)
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False
    else:
        torch.backends.cudnn.benchmark = True


@contextlib.contextmanager
def without_autotuning():
    """cuDNN's autotuner off inside, restored after. Used by attacks (`attacks.pgd`, `attacks.evaluate`, the
    final evaluation), which see a new batch size at nearly every call: early exit leaves a different
    number of examples per radius, mode and epoch, and the autotuner times every convolution again for each
    new shape. On an H100, with it on, ResNet18's per-epoch evaluation took 3 to 12 s against about 0.3 s
    for the same attacks at one fixed shape, while ViT-tiny (a single convolution) took its fixed-shape
    time. Training keeps it: its batch shape never changes."""
    before = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = False
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = before


def share_cpu(workers: int) -> None:
    """Give each of `workers` processes its share of the cores (oversubscription slows everyone), at most
    OMP_NUM_THREADS where the environment sets it (a machine shared with other jobs)."""
    n = max(1, (os.cpu_count() or 1) // max(1, workers))
    cap = os.environ.get("OMP_NUM_THREADS", "")
    torch.set_num_threads(min(n, int(cap)) if cap.isdigit() and int(cap) > 0 else n)


def environment(device: torch.device) -> dict:
    """What produced the numbers: versions, device, git revision."""
    env = {"python": platform.python_version(), "torch": torch.__version__, "timm": importlib.metadata.version("timm"),
           "platform": platform.platform(), "device": str(device), "cpu_count": os.cpu_count(),
           "torch_threads": torch.get_num_threads(), "git": git_revision(),
           # as set_deterministic left them
           "deterministic": {"algorithms": torch.are_deterministic_algorithms_enabled(),
                             "cudnn_deterministic": torch.backends.cudnn.deterministic,
                             "cudnn_benchmark": torch.backends.cudnn.benchmark,
                             "cublas_workspace_config": os.environ.get("CUBLAS_WORKSPACE_CONFIG", "")}}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    return env


def git_revision() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return (rev + ("+dirty" if dirty else "")) or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"

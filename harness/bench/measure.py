"""What harness.bench measures, per model: training and PGD images/s on both sides (harness and
reference), and the device's matmul peak. Plain measurements: no targets, no verdicts."""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch

from ..run import attacks, models
from ..spec.config import ADAMW_VIT, SGD_RESNET, AttackConfig, Recipe
from ..run.data import Dataset
from . import reference
from .concurrency import harness_trainer, sync


@dataclass(frozen=True)
class Spec:
    model: str  # name in harness.run.models.MODELS
    input_size: int | None  # side the pipeline resizes to; None keeps the data's 32 px
    recipe: Recipe


SPECS = {
    "resnet18_32": Spec("resnet18", None, SGD_RESNET),
    "vit_32": Spec("vit_tiny_p4", None, ADAMW_VIT),
    "vit_224": Spec("vit_tiny", 224, ADAMW_VIT),
}
# --compile auto compiles these: on an H200 compiling sped the ViTs up about 1.7x, launch-bound ResNet18 not at all.
COMPILE_GAINS = ("vit_32", "vit_224")


@dataclass(frozen=True)
class Size:
    batch: int | None  # training images per step; None: the recipe's (512, as the suite trains)
    warmup: int  # untimed steps first (compile, cuDNN autotuning, DataLoader workers starting)
    steps: int  # timed training steps per side
    pgd_images: int  # test images attacked per side
    pgd_steps: int
    pgd_batch: int
    train_images: int  # synthetic training set
    concurrency_steps: int  # timed steps per process in --concurrency
    repeats: int  # timings per measurement, the fastest kept (small sizes are noisy)


SIZES = {  # full: about 3-4 minutes on one H200 for all three models and --concurrency
    "small": Size(batch=16, warmup=1, steps=3, pgd_images=16, pgd_steps=2, pgd_batch=16, train_images=512,
                  concurrency_steps=3, repeats=3),
    "full": Size(batch=None, warmup=10, steps=50, pgd_images=2000, pgd_steps=10, pgd_batch=1000,
                 train_images=50_000, concurrency_steps=200, repeats=1),
}
PGD_EPS, PGD_STEP = 8 / 255, 2 / 255
PGD_RATIO = PGD_STEP / PGD_EPS  # 0.25 exactly: the harness's attack takes its step as a ratio of eps


def best_seconds(fn: Callable[[], None], repeats: int, device: torch.device) -> float:
    """The fastest of `repeats` timings of fn(): the least disturbed by other work on the machine."""
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def matmul_peak(device: torch.device) -> tuple[float, str]:
    """FLOP/s of a large square matmul: bf16 on a GPU, fp32 on the CPU (best of a few timings)."""
    n, dtype, reps = (8192, torch.bfloat16, 20) if device.type == "cuda" else (1024, torch.float32, 3)
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    a @ b
    seconds = best_seconds(lambda: [a @ b for _ in range(reps)], 5, device) / reps
    return 2 * n ** 3 / seconds, str(dtype).removeprefix("torch.")


NEW_SHAPES = 8  # batch sizes `new_shapes_rate` attacks


def new_shapes_rate(attack: Callable[[int], None], largest: int, device: torch.device) -> float:
    """Images/s of `attack` on NEW_SHAPES batch sizes just below `largest`, none attacked before in this
    process, timed once (a repeat would find them warm): the suite's early exit hands its attacks a new
    number of examples at nearly every call, which a fixed-shape timing never sees."""
    sizes = range(largest - 1, max(0, largest - 1 - NEW_SHAPES), -1)
    return sum(sizes) / best_seconds(lambda: [attack(n) for n in sizes], 1, device)


def bench_model(name: str, ds: Dataset, device: torch.device, precision: str, size: Size, compile_: bool,
                workers: int) -> dict:
    """Model `name` (a SPECS key) timed on both sides: {"batch", "forward_flops", "train": {path: img/s, ...,
    "harness", "harness_path", "ratio"}, "pgd": {path: img/s, ..., "harness", "ratio", ...}}, where a path
    is "reference", "harness_eager" or "harness_compiled" (with compile_), and a ratio is harness/reference.
    `workers`: the reference's DataLoader workers."""
    spec = SPECS[name]
    r = spec.recipe
    batch = size.batch or r.batch_size
    x, y = ds.test_x[:size.pgd_images].float().div(255), ds.test_y[:size.pgd_images]
    x_dev, y_dev = x.to(device), y.to(device)  # the harness holds its eval subset on the device
    train_s, pgd = {}, {}
    for path in ("eager", "compiled") if compile_ else ("eager",):
        run_steps, model, stepper = harness_trainer(spec.model, spec.input_size, r, ds, device, precision, batch,
                                                    compiled=path == "compiled")
        run_steps(size.warmup)
        train_s[f"harness_{path}"] = batch * size.steps / best_seconds(lambda: run_steps(size.steps),
                                                                      size.repeats, device)
        stepper.eval()

        def harness_pgd(n: int, steps: int, shapes: str = "exact") -> None:
            attacks.pgd(stepper, x_dev[:n], y_dev[:n], PGD_EPS, AttackConfig(steps=steps, step_ratio=PGD_RATIO),
                        attacks.Context(precision, size.pgd_batch, early_exit=False, shapes=shapes))
        harness_pgd(size.pgd_batch, 1)  # warm-up: compilation and first-call costs for the attack's shapes
        pgd[f"harness_{path}"] = len(x) / best_seconds(lambda: harness_pgd(len(x), size.pgd_steps),
                                                       size.repeats, device)
        if path == "eager":
            pgd["harness_new_shapes"] = new_shapes_rate(lambda n: harness_pgd(n, size.pgd_steps), size.pgd_batch,
                                                        device)
            # the same new example counts, padded to the attack's buckets (the autotuner on, as training left it)
            pgd["harness_buckets"] = new_shapes_rate(lambda n: harness_pgd(n, size.pgd_steps, "buckets"),
                                                     size.pgd_batch, device)
    flops = models.forward_flops(model, (ds.channels, ds.size, ds.size))

    mean, std = ds.mean_std
    net = models.create(spec.model, ds.num_classes, ds.channels, spec.input_size or ds.size)
    data = reference.loader(ds.train_x, ds.train_y, reference.train_transform(mean, std, r.crop_padding,
                            ds.size, spec.input_size), batch, workers, device)
    train_s["reference"] = batch * size.steps / min(
        reference.time_training(net, data, r, device, size.warmup, size.steps) for _ in range(size.repeats))
    del data

    attacked = reference.attacked_model(net, mean, std, spec.input_size)
    reference.time_pgd(attacked, x[:size.pgd_batch], y[:size.pgd_batch], PGD_EPS, 1, PGD_STEP, size.pgd_batch,
                       device)
    ref_s = [reference.time_pgd(attacked, x, y, PGD_EPS, size.pgd_steps, PGD_STEP, size.pgd_batch, device)
             for _ in range(size.repeats)]
    pgd["reference"] = len(x) / min(ref_s) if None not in ref_s else None  # None: torchattacks is not installed
    # The suite's own paths: training compiled where --compile asks (train.run compiles the same models on
    # GPUs), the attack eager (train.run evaluates the eager model; harness_compiled shows what compiling would give).
    best_train = max((k for k in train_s if k.startswith("harness")), key=train_s.get)
    return {"batch": batch, "forward_flops": flops, "train": {**train_s, "harness": train_s[best_train],
            "harness_path": best_train, "ratio": train_s[best_train] / train_s["reference"]},
            "pgd": {**pgd, "harness": pgd["harness_eager"], "harness_path": "harness_eager",
                    "ratio": pgd["harness_eager"] / pgd["reference"] if pgd["reference"] else None,
                    "steps": size.pgd_steps, "eps": PGD_EPS, "early_exit": False}}



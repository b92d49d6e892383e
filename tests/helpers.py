"""Builders the harness's tests share (not fixtures: plain functions, imported as `from helpers import ...`).

small_claim and small_suite: runs at the smallest size that still trains and attacks for real, in this
process; export_subset: a real dataset small enough that a subprocess decodes it in a moment.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness import runtime
from harness.cache import RunCache
from harness.chaos.worker import small_profile, small_runs
from harness.config import Claim, Profile, Recipe, Variant
from harness.data import Dataset, Sources
from harness.execute import LocalExecutor


def small_claim(dataset: str, variants: dict | None = None) -> Claim:
    """A claim whose runs are `variants` (default: ResNet18 with 32-image batches) x the suite's seeds."""
    variants = variants or {"resnet18": Variant("resnet18", "baseline", Recipe(batch_size=32))}
    first = next(iter(variants))
    return Claim(statement="a test's claim", better=first, worse=first, variants=variants, datasets=(dataset,),
                 epochs=1, eps=(8.0,), deciding_eps=8.0)


@dataclass
class SmallSuite:
    """Runs at chaos's smallest size through a LocalExecutor on the CPU, in fp32: `curves(claim, dataset)`."""
    executor: LocalExecutor
    profile: Profile

    @property
    def cache(self) -> RunCache:
        return self.executor.cache

    def curves(self, claim: Claim, dataset: str) -> dict[str, list[dict]]:
        return small_runs(self.executor, claim, self.profile, dataset)


def small_suite(cache: RunCache, sources: Sources, seeds: tuple[int, ...], epochs: int, session: str = "tests",
                log=print) -> SmallSuite:
    """64 training images in 2 steps of 32 per epoch, PGD (1 step, eps 8/255) on 32 test images per epoch."""
    executor = LocalExecutor(cache=cache, sources=sources, device=runtime.pick_device("cpu"), final_eval=None,
                             session=session, log=log)
    return SmallSuite(executor, small_profile(seeds, epochs))


def export_subset(ds: Dataset, folder: Path, n_train: int = 64, n_test: int = 32) -> Path:
    """The first images of a loaded dataset as an ImageFolder of PNGs (lossless). Bind it with
    --data-source NAME=folder."""
    from PIL import Image
    for split, x, y, n in (("train", ds.train_x, ds.train_y, n_train), ("test", ds.test_x, ds.test_y, n_test)):
        for i, (image, label) in enumerate(zip(x[:n], y[:n])):
            path = Path(folder) / split / f"{int(label):03d}" / f"{i:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = image.permute(1, 2, 0).numpy()
            Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(path)
    return Path(folder)

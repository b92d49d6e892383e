"""The paper profile's workload, and its wall time projected from measured training and PGD rates.

PAPER is a hand-kept table. Its numbers come from the hypotheses' CLAIMs under `config.PROFILES["paper"]`
(3 seeds): runs = variants x datasets x seeds, epochs = the claim's epochs, eps = the claim's radii,
modes = the attack modes a variant is evaluated in (three rounding modes for Round, of which `exact`
is masked). tests/test_bench.py checks it against the runs the runner plans for those claims, so a
changed claim fails that test until the table follows.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class Work:
    """One part of the paper profile: `runs` runs of `epochs` epochs; each epoch trains on TRAIN_IMAGES and
    attacks EVAL_IMAGES with PGD-EVAL_STEPS at `eps` radii x `modes` attack modes, of which `masked` craft
    through rounding's zero gradient (`exact`) and so stop after one step (harness.attacks.craft)."""
    part: str
    model: str  # key in harness.bench.measure.SPECS
    runs: int
    epochs: int
    eps: int
    modes: int
    masked: int = 0


PAPER = (
    Work("H1 Baseline, ViT-tiny/16 @224, 2 datasets", "vit_224", runs=6, epochs=40, eps=4, modes=1),
    Work("H1 Round, ViT-tiny/16 @224, 2 datasets", "vit_224", runs=6, epochs=40, eps=4, modes=3, masked=1),
    Work("H2 Max and Avg, ResNet18 @32", "resnet18_32", runs=6, epochs=10, eps=4, modes=1),
    # Only the control's Seeds B arm: its Seeds A runs are H2's Max runs, shared through the cache.
    Work("control Seeds B, ResNet18 @32", "resnet18_32", runs=3, epochs=10, eps=4, modes=1),
)
# CIFAR's training set; the paper profile's per-epoch evaluation (AttackConfig(steps=10, n_eval=1000)).
TRAIN_IMAGES, EVAL_IMAGES, EVAL_STEPS = 50_000, 1_000, 10


def pgd_passes(steps: int) -> int:
    """Forward-pass equivalents per image of one PGD attack: a clean and a final prediction, and per step
    a forward and an input-gradient backward (about one forward each)."""
    return 2 * steps + 2


def project(work: tuple[Work, ...], train_img_s: dict, pgd_img_s: dict, pgd_steps: int, speedup: dict) -> dict:
    """Wall time in seconds of `work` from measured rates (model -> images/s; PGD at `pgd_steps` steps), in
    one process and in concurrent processes (each model's work divided by its measured speedup, 1 where
    unmeasured). Assumes no early exit: every eval image is attacked at every radius (early exit and nested
    radii only lower the eval time); a masked mode costs one step. Parts whose model was not measured are
    left out and `complete` is False."""
    passes_s = {m: r * pgd_passes(pgd_steps) for m, r in pgd_img_s.items()}  # forward-equivalents per second
    parts = []
    for w in work:
        if w.model not in train_img_s or w.model not in passes_s:
            continue
        epoch_train = TRAIN_IMAGES / train_img_s[w.model]
        passes = (w.modes - w.masked) * pgd_passes(EVAL_STEPS) + w.masked * pgd_passes(1)
        epoch_eval = EVAL_IMAGES * w.eps * passes / passes_s[w.model]
        seconds = w.runs * w.epochs * (epoch_train + epoch_eval)
        parts.append({**dataclasses.asdict(w), "epoch_train_s": epoch_train, "epoch_eval_s": epoch_eval,
                      "seconds": seconds, "concurrent_s": seconds / speedup.get(w.model, 1.0)})
    return {"parts": parts, "complete": len(parts) == len(work), "early_exit": False,
            "one_process_s": sum(p["seconds"] for p in parts),
            "concurrent_s": sum(p["concurrent_s"] for p in parts),
            "concurrency_speedup": speedup}

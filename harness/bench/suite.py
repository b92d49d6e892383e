"""`python -m harness.bench --suite`: the suite's own epochs, timed, and the paper profile projected from them.

The hypotheses' paper-profile runs (harness.spec.plan) fall into a few kinds that cost alike: the same model,
input size, batch, attack modes, restarts and radii. For each kind this trains one real run with
harness.run.train.run, the code the suite runs, for a few epochs, and reads the run's own per-epoch records:
`train_seconds` (the epoch's steps) and `seconds - train_seconds` (its evaluation: PGD at every radius
and mode, early exit as the suite runs it). The last epoch counts (the first pays for compilation and
autotuning). Training is scaled to the run's training images (CIFAR's 50,000 unless its claim declares fewer)
and evaluation to its evaluation images; the full size measures exactly those, the small size (the CPU's)
fewer, at most 32 px, to show the shape.
Training compiles what the suite compiles by default (`--compile auto`).

Evaluation time depends on how robust the measured epochs are: a model that is fooled early stops being
attacked early (harness.run.attacks). A few epochs from scratch are less robust than the paper's later ones,
so the evaluation share is a lower bound; the training share is not.

The run's epochs attack with the suite's default shapes (`exact`). Each kind's last evaluation is then
repeated on the final weights once per attack-shape policy (harness.run.attacks.ATTACK_SHAPES), the second of
two calls timed (the first tunes the shapes), with the accuracies each found: the evidence for choosing
`--attack-shapes` on a device.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch

from ..run import attacks, train
from ..spec import config
from ..run.data import Dataset
from ..plugin.settings import OPTIONS
from .measure import best_seconds
from .workload import TRAIN_IMAGES, paper_runs


@dataclass(frozen=True)
class SuiteSize:
    epochs: int  # trained per kind; the last one is read
    train_images: int  # per epoch (scaled to TRAIN_IMAGES)
    eval_images: int  # attacked per epoch (scaled to the paper's n_eval)
    max_input_size: int | None  # cap on the resize target (ViT at 224 px is not CPU-sized)


SUITE_COMPILE = OPTIONS["compile"][3]  # the suite's default --compile (auto: transformers compiled on GPUs)
SUITE_SIZES = {"small": SuiteSize(epochs=2, train_images=128, eval_images=8, max_input_size=32),
               "full": SuiteSize(epochs=2, train_images=TRAIN_IMAGES, eval_images=1000, max_input_size=None)}


def kind(cfg: config.RunConfig) -> tuple:
    """What a run's epoch costs depends on: model, input size, batch, training attack, training images, attack
    modes, restarts, radii, steps."""
    v, a = cfg.variant, cfg.attack
    return (v.model, v.input_size, v.recipe.batch_size, v.recipe.adversarial, cfg.train_subset, a.modes, a.restarts,
            len(a.eps), a.steps)


def measure_kind(cfg: config.RunConfig, ds: Dataset, device: torch.device, size: SuiteSize) -> dict:
    """One real run of `cfg`'s kind at `size` on `ds`: its last epoch's training and evaluation seconds,
    and both scaled to the paper's per-epoch workload."""
    v = cfg.variant
    input_size = min(v.input_size, size.max_input_size) if v.input_size and size.max_input_size else v.input_size
    run = dataclasses.replace(cfg, dataset=ds.name, epochs=size.epochs, train_subset=size.train_images,
                              variant=dataclasses.replace(v, input_size=input_size),
                              attack=dataclasses.replace(cfg.attack, n_eval=size.eval_images))
    start = time.perf_counter()
    trained = train.run(run, ds, device, compile_mode=SUITE_COMPILE)
    last, final_state = trained.records[-1], trained.final_state
    train_s, eval_s = last.train_seconds, last.seconds - last.train_seconds
    n = min(size.train_images, len(ds.train_x))
    trained = n // min(v.recipe.batch_size, n) * min(v.recipe.batch_size, n)  # the last partial batch is dropped
    evaluated = min(size.eval_images, len(ds.test_x))
    by_shapes = shapes_eval(run, ds, device, final_state)
    for policy in by_shapes.values():
        policy["paper_epoch_eval_s"] = policy["eval_s"] * cfg.attack.n_eval / evaluated
    a = cfg.attack
    label = (f"{v.model} at {v.input_size or 32} px, batch {v.recipe.batch_size}, "
             f"{v.recipe.adversarial or 'standard'} training, {'+'.join(a.modes)} x{a.restarts}, {len(a.eps)} radii")
    return {"kind": label, "measured_as": run.label, "input_size": input_size, "train_images": trained,
            "eval_images": evaluated,
            "epoch_train_s": train_s, "epoch_eval_s": eval_s, "epoch_adv": last.adv,
            "paper_epoch_train_s": train_s * (cfg.train_subset or TRAIN_IMAGES) / trained,
            "paper_epoch_eval_s": eval_s * cfg.attack.n_eval / evaluated, "eval_by_shapes": by_shapes,
            "wall_s": time.perf_counter() - start}


def shapes_eval(run: config.RunConfig, ds: Dataset, device: torch.device, state: dict) -> dict:
    """`run`'s last evaluation again on its final weights `state`, once per attack-shape policy:
    {policy: {"eval_s", "adv"}}, seconds of the second of two calls and the accuracies found."""
    model = train.build(run, ds, device)
    model.load_state_dict(state)
    model.eval()
    x, y = train.eval_set(run, ds, device)
    seed = train.attack_seed(run, run.epochs)
    out = {}
    for shapes in attacks.ATTACK_SHAPES:
        def evaluate():
            out[shapes] = {"adv": attacks.evaluate(model, x, y, run.attack, model.rounds, seed,
                                                   attacks.Context(run.precision, shapes=shapes))["adv"]}
        evaluate()  # tunes and warms this policy's shapes
        out[shapes]["eval_s"] = best_seconds(evaluate, 1, device)
    return out


def suite_projection(ds: Dataset, device: torch.device, precision: str, size: SuiteSize,
                     log=print) -> dict:
    """Measure every kind of paper-profile run once; project each hypothesis's runs and the distinct
    total (a run shared between hypotheses counts once there) in seconds on this device, one process."""
    runs = paper_runs(precision=precision)
    distinct = {k: c for cfgs in runs.values() for k, c in cfgs.items()}
    kinds: dict[tuple, dict] = {}
    for cfg in distinct.values():
        if kind(cfg) not in kinds:
            kinds[kind(cfg)] = measure_kind(cfg, ds, device, size)
            m = kinds[kind(cfg)]
            log(f"suite: {m['kind']}: {m['epoch_train_s']:.2f} s train ({m['train_images']} images) + "
                f"{m['epoch_eval_s']:.2f} s eval ({m['eval_images']} images) per epoch")

    def seconds(cfgs) -> float:
        return sum(c.epochs * (kinds[kind(c)]["paper_epoch_train_s"] + kinds[kind(c)]["paper_epoch_eval_s"])
                   for c in cfgs)
    return {"size": dataclasses.asdict(size), "kinds": list(kinds.values()),
            "hypotheses": {h: {"runs": len(cfgs), "seconds": seconds(cfgs.values())} for h, cfgs in runs.items()},
            "distinct_runs": len(distinct), "total_s": seconds(distinct.values())}


def suite_table(s: dict) -> str:
    lines = ["suite, its own epochs (scaled to the paper profile's training and evaluation images):"]
    lines += [f"  {m['kind']:60} {m['paper_epoch_train_s']:9.1f} s train {m['paper_epoch_eval_s']:8.1f} s eval"
              + "".join(f" ({p} {v['paper_epoch_eval_s']:.1f} s)" for p, v in m["eval_by_shapes"].items())
              for m in s["kinds"]]
    lines.append("paper profile projected from the suite's own epochs (one process; shared runs in each row):")
    lines += [f"  {h:32} {v['runs']:3} runs {v['seconds'] / 60:8.1f} min" for h, v in s["hypotheses"].items()]
    lines.append(f"  {'total (each run once)':32} {s['distinct_runs']:3} runs {s['total_s'] / 60:8.1f} min")
    return "\n".join(lines)

"""The paper profile's workload, and its wall time projected from measured training and PGD rates.

`paper_runs()` plans the hypotheses' CLAIMs under `config.PROFILES["paper"]`; `paper_workload()` groups them:
runs = distinct runs (variants x datasets x seeds, shared runs once), epochs = the claim's epochs, eps =
the radii a run evaluates, modes = the PGD attacks per radius (restarts x gradient modes, plus the
masked `exact` mode, which stops after one step).
"""
from __future__ import annotations

import collections
import dataclasses
import importlib.util
from dataclasses import dataclass
from pathlib import Path

HYPOTHESES = Path(__file__).resolve().parents[2] / "hypotheses"


@dataclass(frozen=True)
class Work:
    """One part of the paper profile: `runs` runs of `epochs` epochs; each epoch trains on TRAIN_IMAGES and
    attacks EVAL_IMAGES with PGD-EVAL_STEPS at `eps` radii x `modes` attack modes, of which `masked` craft
    through rounding's zero gradient (`exact`) and so stop after one step (harness.run.attacks.attack)."""
    part: str
    model: str  # key in harness.bench.measure.SPECS
    runs: int
    epochs: int
    eps: int
    modes: int
    masked: int = 0


def paper_runs(folder: Path = HYPOTHESES, precision: str = "bf16") -> dict[str, dict]:
    """hypothesis module -> {run key: RunConfig} of every run it plans under the paper profile, on every
    dataset of its claim (a run two hypotheses share through the cache is in both)."""
    from ..spec import claim as claims, config, plan
    out = {}
    for path in sorted(Path(folder).glob("test_*.py")):
        spec = importlib.util.spec_from_file_location(f"paper_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        claim = getattr(module, "CLAIM", None)
        if not isinstance(claim, claims.CLAIM_TYPES):
            continue
        p = plan.Plan(claim, config.PROFILES["paper"], tuple(claim.datasets), tuple(claim.eps))
        out[path.stem] = {config.key(c, d, ""): c for d in claim.datasets
                          for cs in plan.run_configs(p, d, precision).values() for c in cs}
    return out


def paper_workload(folder: Path = HYPOTHESES) -> tuple[Work, ...]:
    """The distinct runs the hypotheses in `folder` plan under the paper profile (a run two claims share
    through the cache counts once), grouped by what they cost. Attack effort counts restarts: an arm
    without rounding gets as many as its claim's rounding arms have gradient modes (harness.spec.plan).
    Runs of models the benchmark does not measure (the controls' test_resnet, whose CPU-sized protocol CI
    runs in full) are left out; `--suite` times every run."""
    from ..spec import budget
    from .measure import SPECS
    spec_of = {(s.model, s.input_size or 32): name for name, s in SPECS.items()}
    runs: dict[str, tuple] = {}
    for module, cfgs in paper_runs(folder).items():
        for k, cfg in cfgs.items():
            a, v = cfg.attack, cfg.variant
            if (v.model, v.input_size or 32) not in spec_of:
                continue
            full = a.restarts * len(budget.gradient_modes(a.modes))
            runs[k] = (module, (spec_of[(v.model, v.input_size or 32)], cfg.epochs, len(a.eps), full,
                                a.modes.count("exact")))
    groups = collections.Counter(cost for _, cost in runs.values())
    parts = {cost: sorted({m for m, c in runs.values() if c == cost}) for cost in groups}
    return tuple(Work(", ".join(parts[c]), c[0], runs=n, epochs=c[1], eps=c[2], modes=c[3] + c[4], masked=c[4])
                 for c, n in sorted(groups.items()))


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

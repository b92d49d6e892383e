"""Device check for the quantized-input claim (issue: attacks rounding cannot fool): the paper profile's
ViT-tiny/16 at 224 on one dataset, one seed, a few epochs, all three rounding modes per epoch, then the
final-checkpoint evaluation (APGD-CE, Square, masking diagnostics) and the Baseline -> Round transfer check.

    python tools/device_h1.py --data-source cifar10=PATH.zip --epochs 5 --out h1.json [--cache DIR]

Several copies started on one cache share the work through the run cache's locks (each trains a run the
others have not taken), as pytest-xdist workers do. Outside pytest on purpose: the suite refuses fewer than
two seeds, and this is a one-seed measurement, not a verdict.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "hypotheses"))

from harness import runtime  # noqa: E402
from harness.cache import RunCache  # noqa: E402
from harness.config import PROFILES  # noqa: E402
from harness.data import Sources, parse_binding  # noqa: E402
from harness.runner import Suite  # noqa: E402
from test_quantized_input import CLAIM  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-source", required=True, help="NAME=PATH, e.g. cifar10=.data/cifar10-jpeg75.zip")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--profile", default="paper")
    p.add_argument("--out", required=True)
    p.add_argument("--cache", default=".cache/device")
    p.add_argument("--no-final", action="store_true",
                   help="skip the final-checkpoint evaluation: per-epoch train and eval times only")
    a = p.parse_args()
    name, _ = parse_binding(a.data_source)
    profile = dataclasses.replace(PROFILES[a.profile], seeds=(0,), epochs=a.epochs)
    device = runtime.pick_device()
    runtime.set_deterministic(False)
    suite = Suite(profile=profile, sources=Sources(bindings=(parse_binding(a.data_source),)),
                  cache=RunCache(Path(a.cache)), device=device, precision=runtime.resolve_precision("auto", device),
                  session="device-check", log=lambda line: print(line, flush=True),
                  compile_mode="auto")  # as pytest runs the suite: ViTs compiled on GPUs
    claim = dataclasses.replace(CLAIM, datasets=(name,))
    start = time.perf_counter()
    runs = suite.curves(claim, name)
    trained = time.perf_counter() - start
    checks = {"transfer": []} if a.no_final else suite.final_checks(claim, name, runs)
    out = {"environment": runtime.environment(device), "profile": profile.name, "epochs": a.epochs,
           "train_and_eval_seconds": trained, "total_seconds": time.perf_counter() - start,
           "runs": runs, **checks}
    Path(a.out).write_text(json.dumps(out, indent=1))
    for variant, rs in runs.items():
        for r in rs:
            f = r.get("final", {})
            print(variant, "clean", [round(e["clean"], 3) for e in r["records"]])
            print("  train s", [round(e["train_seconds"], 2) for e in r["records"]],
                  "eval s", [round(e["seconds"] - e["train_seconds"], 2) for e in r["records"]])
            for eps in r["records"][-1]["adv"]:
                print(f"  eps {eps}:", {m: [round(e['adv'][eps][m], 3) for e in r['records']]
                                        for m in r["records"][-1]["adv"][eps]})
            print("  final:", {k: f.get(k) for k in ("clean", "pgd", "apgd_ce", "square", "zero_grad",
                                                     "strongest_overall", "seconds")})
            print("  checks:", {k: c["ok"] for k, c in f.get("checks", {}).items()})
    print("transfer:", [(t["source"], t["target"], t["transfer_acc"], t["whitebox_acc"], t["ok"])
                        for t in checks["transfer"]])


if __name__ == "__main__":
    main()

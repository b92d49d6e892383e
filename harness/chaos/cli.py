"""Fault injection against a smoke-sized run: kill, corrupt and race on purpose, then check nothing was lost.

    python -m harness.chaos --data-source cifar10=PATH [--seeds 0,1,2] [--epochs 3] [--workdir DIR]

computes a few small ResNet18 runs once cleanly, then again in another cache while it SIGKILLs workers
mid-epoch, fills the disk, leaves half-written temporaries, corrupts a checkpoint, races three workers
on the same runs, and truncates, empties and hand-edits finished entries. It prints one table row per
fault (faults injected, runs finished, runs whose numbers are identical to the clean run's, finished
files lost) and exits 1 unless, at the end, every run is finished, identical, and no file was lost.

`python -m harness.chaos work --cache DIR ...` is the worker it starts (the tests start it too): it gets
the runs through the runner (harness.chaos.worker.run_small), prints `EPOCH <key> <n>` after each
checkpoint and `RESULT <json>` at the end.
"""
from __future__ import annotations

import argparse
import sys

from .. import store
from .faults import chaos
from .worker import work


def _parser(worker: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.chaos" + (" work" if worker else ""), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-source", action="append", required=True, help="NAME=PATH of a real dataset")
    p.add_argument("--seeds", default="0,1,2", help="one run per seed, e.g. 0,1,2")
    p.add_argument("--epochs", type=int, default=3)
    if not worker:
        p.add_argument("--workdir", help="where the clean and the chaos caches go (default: a new temporary folder)")
        p.add_argument("--seed", type=int, default=0, help="seeds when the kills land")
        return p
    p.add_argument("--cache", required=True, help="the cache folder")
    p.add_argument("--reverse", action="store_true", help="ask for the runs in reverse order")
    p.add_argument("--session", default="chaos", help="failures of this session are not retried in it")
    p.add_argument("--device", default="cpu")
    p.add_argument("--deterministic", action="store_true", help="runtime.set_deterministic(True)")
    p.add_argument("--disk-full-after", type=int, help="simulate a full disk after this many file writes")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["work"]:
        try:
            return work(_parser(worker=True).parse_args(argv[1:]))
        except store.StoreError as e:
            print(f"chaos worker: {e.strerror}", file=sys.stderr)
            return 2
    return chaos(_parser(worker=False).parse_args(argv))

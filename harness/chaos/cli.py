"""Fault injection against smoke-sized runs: kill, signal, starve and corrupt on purpose, then check
nothing was lost.

    python -m harness.chaos --data-source cifar10=PATH [--quick] [--seeds 0,...,7] [--epochs 3] [--workdir DIR]

exports a seeded sample of the bound data (64 training and 32 test images) as a PNG folder, computes small
ResNet18 runs on it once cleanly (one worker, one run per seed; without --quick also one pytest session of
hypotheses/test_control_seed_null.py), then again in another cache (a tmpfs of its own where it runs as
root, unmounted at the end) while it injects, in turn: SIGKILLs mid-epoch and in final writes, repeated
SIGINT/SIGTERM to racing workers and to sessions, a cache and a reports folder that are full or read-only
(at the start or in the middle), half-written temporaries, junk files in the data, train/test classes
that differ, a damaged decoded-data cache, damaged finished entries, three workers racing, and, to sessions,
a signal before the first epoch, a SIGKILLed worker and a broken --baseline. It prints
one row per step (faults injected, runs finished, runs whose numbers and final weights are identical to
the clean run's, finished files lost) and exits 1 unless every step had its promised outcome and, at the
end, every run is finished, identical, and no file was lost. --quick runs only the steps that need
neither root nor sessions.

`python -m harness.chaos work --cache DIR ...` is the worker it starts (the tests start it too): it gets
the runs through a LocalExecutor (harness.chaos.worker.run_small), prints `EPOCH <key> <n>` after each
checkpoint and `RESULT <json>` at the end.
"""
from __future__ import annotations

import argparse
import functools
import random
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from ..cache import store
from ..spec.config import ConfigError
from . import folders, session, steps
from .faults import Audit, finished_and_identical, on_disk, table
from .worker import clean_run, work


def _parser(worker: bool) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.chaos" + (" work" if worker else ""), description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-source", action="append", required=True, help="NAME=PATH of a real dataset")
    p.add_argument("--seeds", default="0,1,2,3,4,5,6,7", help="one run per seed, e.g. 0,1,2")
    p.add_argument("--epochs", type=int, default=3)
    if not worker:
        p.add_argument("--workdir", help="where the sample, the clean and the chaos caches go (default: a new "
                                         "temporary folder)")
        p.add_argument("--seed", type=int, default=0, help="seeds when the kills and signals land")
        p.add_argument("--quick", action="store_true", help="only the steps that need neither root nor sessions")
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
        except (store.StoreError, ConfigError) as e:  # a full or read-only cache, data that makes no sense
            print(f"chaos worker: {e}", file=sys.stderr)
            return 2
    return chaos(_parser(worker=False).parse_args(argv))


def steps_of(quick: bool) -> list[tuple]:
    """(fault, step) in the order they run: the faults that need runs left to train first, the kills in
    final writes once most are trained, the race and the damage of finished entries last, then sessions."""
    sig_int, sig_term = signal.SIGINT, signal.SIGTERM
    first = [("SIGKILL a worker mid-epoch", steps.kill_mid_epoch),
             ("junk files added to the data folder", steps.junk_in_data),
             ("decoded-data cache damaged", steps.damage_data_cache),
             ("train/test class folders differ", steps.mismatched_classes),
             ("SIGINT/SIGTERM x2-3 to 3 racing workers", steps.signal_racing_workers)]
    last = [("three workers race on the same runs", steps.race), ("finished entries damaged", steps.damage_finished)]
    if quick:
        return first + last
    signals = session.signal_session
    return first + [
        ("disk full (ENOSPC, simulated)", steps.disk_full_simulated),
        ("cache disk fills up while training", steps.cache_fills_up),
        ("cache disk full as a worker starts", functools.partial(steps.cache_fills_up, at_start=True)),
        ("cache turns read-only while training", steps.cache_turns_read_only),
        ("cache read-only as a worker starts", functools.partial(steps.cache_turns_read_only, at_start=True)),
        ("SIGINT/SIGTERM x2-3 to 3 racing workers", steps.signal_racing_workers),
        ("SIGKILL a worker mid-epoch", steps.kill_mid_epoch),
        ("SIGKILL a worker in a final write", steps.kill_in_final_write),
        ("half-written temporaries, garbage checkpoint", steps.leftovers),
        *last,
        ("SIGKILL a session's training worker (-n 2)", session.kill_session_worker),  # while its runs are left
        ("a signal before the first epoch (-n 2)", session.early_signal),
        ("2x SIGINT 0.3 s apart to a session (-n 2)", functools.partial(signals, sigs=(sig_int,) * 2)),
        ("3x SIGINT 0.3 s apart to a session (-n 2)", functools.partial(signals, sigs=(sig_int,) * 3)),
        ("SIGTERM, SIGINT 1.5 s later to a session", functools.partial(signals, sigs=(sig_term, sig_int), gap=1.5)),
        ("reports folder read-only as a session starts", functools.partial(session.reports_refused, read_only=True)),
        ("reports folder full as a session starts", session.reports_refused),
        ("reports folder fills up during a session", session.reports_fill_up),
        ("a --baseline with one field broken", session.broken_baseline),
        ("(none: a session after the faults)", session.final_session)]


def chaos(args) -> int:
    root = Path(args.workdir or tempfile.mkdtemp(prefix="advhyp-chaos-")).absolute()
    name = args.data_source[0].split("=", 1)[0]
    sample = folders.export_sample(args.data_source[0], root / "decoded", root / "sample" / name)
    options = (f"--seeds={args.seeds}", f"--epochs={args.epochs}")
    print(f"chaos: clean runs in {root / 'clean'} ...", flush=True)
    clean_run(root / "clean", f"--data-source={name}={sample}", *options)
    if not args.quick and not (root / "clean" / "session.done").exists():
        rc = session.Session(root / "clean-session", sample, "-n", "2", cache=root / "clean").finish()
        if rc != 0:
            raise RuntimeError(f"the clean session exited {rc}")
        (root / "clean" / "session.done").touch()
    clean = on_disk(root / "clean")
    target = steps.Target(root=root, cache=root / "chaos", name=name, data=root / "chaos-data", options=options,
                          epochs=args.epochs, runs=len(args.seeds.split(",")), rng=random.Random(args.seed),
                          no_tmpfs="--quick")
    for old in (target.cache, target.data):  # each chaos run starts from nothing
        while old.is_mount() and folders.umount(old):
            pass
        shutil.rmtree(old, ignore_errors=True)
    shutil.copytree(sample, target.data)  # the junk step damages this copy, not the clean runs' sample
    if not args.quick:
        target.no_tmpfs = _tmpfs_cache(target.cache)
    rows = []
    try:
        for fault, step in steps_of(args.quick):
            audit = Audit(target.cache)
            injected, note, ok = step(target, audit)
            rows.append((fault, injected, *finished_and_identical(target.cache, clean), audit.lost(), note, ok))
            print(f"chaos: {fault}: {note}", flush=True)
    finally:
        while target.cache.is_mount() and folders.umount(target.cache):
            pass
    return table(rows, len(clean))


def _tmpfs_cache(cache: Path) -> str | None:
    """Mount a tmpfs of its own at `cache`, so that it can be made full; returns None, or why not."""
    why = folders.cannot_mount()
    if why:
        return why
    try:
        folders.mount_tmpfs(cache, 4096)  # takes memory only for what it holds: about 1.5 GB at the most
    except OSError as e:
        return f"cannot mount a tmpfs: {e}"
    return None

"""The faults aimed at workers, the cache and the data, one function each: step(target, audit) damages,
sends or kills, waits for the outcome and returns (faults injected, a note, whether the outcome was the
promised one). cli.chaos runs them in order on one cache; the audit (faults.Audit) counts what was lost.
"""
from __future__ import annotations

import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..run import data
from ..cache import store
from . import folders
from .faults import corrupt
from .worker import Worker

SIGNAL_PATTERNS = ((signal.SIGINT, signal.SIGINT), (signal.SIGINT,) * 3, (signal.SIGTERM, signal.SIGINT))


@dataclass
class Target:
    """What the faults hit: the cache, the exported data folder bound as `name`, the worker options."""
    root: Path
    cache: Path
    name: str
    data: Path
    options: tuple[str, ...]  # --seeds, --epochs
    epochs: int
    runs: int  # how many runs the workers ask for (one per seed)
    rng: random.Random
    no_tmpfs: str | None  # why the cache is not a tmpfs of its own (None: it is one)

    def pending(self) -> bool:
        """Whether some of the workers' runs are not finished yet."""
        return len(list((self.cache / "runs").glob("*/result.json"))) < self.runs

    def worker(self, *extra: str, data: Path | None = None) -> Worker:
        return Worker(self.cache, f"--data-source={self.name}={data or self.data}", *self.options, *extra)


def _said(w: Worker, *words: str) -> str:
    """The worker's one-line message containing every word, or ''."""
    return next((line.strip() for line in w.stderr if all(x in line for x in words)), "")


# ---- killed and signalled workers ----------------------------------------------------------------------
def kill_mid_epoch(t: Target, audit) -> tuple:
    w = t.worker()
    if not w.wait_for(lambda: w.epochs):
        return 0, "nothing left to train", True
    time.sleep(t.rng.uniform(0, 0.5))  # somewhere in the next epoch (or its checkpoint write)
    w.kill()
    return 1, f"killed after {len(w.epochs)} checkpoint(s)", True


def kill_in_final_write(t: Target, audit, kills: int = 3) -> tuple:
    """SIGKILL a worker just after the last epoch's checkpoint of a run: in the final weights' or the
    result's write (or just before or after it); `kills` workers in turn."""
    before = done = 0
    for _ in range(kills):
        w = t.worker()
        if not w.wait_for(lambda: any(n == t.epochs for _, n in w.epochs)):
            break
        time.sleep(t.rng.uniform(0, 0.4))
        w.kill()
        key = next(k for k, n in w.epochs if n == t.epochs)
        done += 1
        before += not (t.cache / "runs" / key / "result.json").exists()
    return done, f"{before} of {done} before the result was published", done == kills


def signal_racing_workers(t: Target, audit) -> tuple:
    """Three workers race on the runs; once one has saved a checkpoint, each gets its pattern of SIGINT
    and SIGTERM (SIGNAL_PATTERNS) at its own random moment, 0.05-0.3 s between presses. A press that finds
    its worker gone is not sent (SIGTERM ends a worker within about 0.2 s): the promise is that every
    worker got its first, and the audit that nothing was lost."""
    workers = [t.worker(*(["--reverse"] if i == 1 else [])) for i in range(3)]
    if not workers[0].wait_for(lambda: any(w.epochs for w in workers)):
        return 0, "nothing left to train", True
    moments = sorted((t.rng.uniform(0, 1.0), w, sigs) for w, sigs in zip(workers, SIGNAL_PATTERNS))
    start, sent = time.monotonic(), []
    for moment, w, sigs in moments:
        time.sleep(max(0.0, start + moment - time.monotonic()))
        sent.append(w.send(*sigs, gap=t.rng.uniform(0.05, 0.3)))
    codes = [w.wait(60) for w in workers]
    return (sum(sent), f"{sum(sent)} of {sum(map(len, SIGNAL_PATTERNS))} signals sent; exit statuses {codes}",
            min(sent) >= 1)


# ---- full and read-only cache folders ------------------------------------------------------------------
def _refused(t: Target, w: Worker, why: str) -> tuple[bool, str]:
    rc = w.wait()
    said = _said(w, "cannot write", why)
    ok = rc == 2 and str(t.cache) in said and len([x for x in w.stderr if "Traceback" in x]) == 0
    where = said.split(": ", 1)[-1].split(" (")[0].replace(str(t.cache), "<cache>")
    return ok, (f"exit {rc}: {where} ({why})" if said else
                f"exit {rc} without a clear message")


def disk_full_simulated(t: Target, audit) -> tuple:
    """Without a file system to fill: every write after the first gets /dev/full (ENOSPC from the kernel)."""
    if not t.pending():
        return 0, "nothing left to train", True
    ok, note = _refused(t, t.worker("--disk-full-after=1"), "the disk is full")
    return 1, note, ok


def cache_fills_up(t: Target, audit, at_start: bool = False) -> tuple:
    """The cache's tmpfs becomes full (its size shrunk to what it holds, the rest filled), while a worker
    trains or before it starts; then the space is freed."""
    if t.no_tmpfs or not t.pending():
        return 0, f"not run: {t.no_tmpfs}" if t.no_tmpfs else "nothing left to train", True
    w = None if at_start else t.worker()
    if w and not w.wait_for(lambda: w.epochs):
        return 0, "nothing left to train", True
    size = folders.shrink_to_full(t.cache)
    try:
        ok, note = _refused(t, w or t.worker(), "the disk is full")
    finally:
        (t.cache / "filler").unlink()
        folders.resize(t.cache, size)
    return 1, note, ok


def cache_turns_read_only(t: Target, audit, at_start: bool = False) -> tuple:
    """The cache folder becomes read-only (a read-only bind mount over it) while a worker trains or before
    it starts; then writable again."""
    if t.no_tmpfs or not t.pending():
        return 0, f"not run: {t.no_tmpfs}" if t.no_tmpfs else "nothing left to train", True
    w = None if at_start else t.worker()
    if w and not w.wait_for(lambda: w.epochs):
        return 0, "nothing left to train", True
    folders.read_only_over(t.cache)
    try:
        ok, note = _refused(t, w or t.worker(), "the file system is read-only")
    finally:
        folders.umount(t.cache)
    return 1, note, ok


def leftovers(t: Target, audit) -> tuple:
    """What writers killed mid-write leave: a half-written temporary in every folder written, and a
    checkpoint of garbage."""
    old = time.time() - 7200
    targets = [p for p in (t.cache / "runs").iterdir() if p.is_dir()] + [t.cache / "data"]
    for folder in targets:
        tmp = folder / f"{store.TMP_PREFIX}result.json.chaos"
        tmp.write_bytes(b'{"payload": {"key": "half a fi')
        os.utime(tmp, (old, old))
    checkpoints = sorted((t.cache / "runs").glob("*/checkpoint.pt"))[:1]
    for c in checkpoints:
        corrupt(c, "garbage")
        audit.damaged.add(c.parent)
    return len(targets) + len(checkpoints), f"{len(targets)} temporaries, {len(checkpoints)} garbage checkpoint(s)", \
        True


def race(t: Target, audit) -> tuple:
    workers = [t.worker(*(["--reverse"] if i == 1 else [])) for i in range(3)]
    for w in workers:
        w.finish()
    trained = [e for w in workers for e in w.epochs]
    twice = len(trained) - len(set(trained))
    left = list(t.cache.rglob(store.TMP_PREFIX + "*"))
    return 1, f"3 workers trained {len(trained)} epochs, {twice} twice; {len(left)} temporaries left", \
        twice == 0 and not left


def damage_finished(t: Target, audit) -> tuple:
    """One damage per finished run (so each is seen): results truncated and hand-edited, weights emptied and
    bit-flipped; one worker then recomputes them and names each in its warnings."""
    runs = sorted((t.cache / "runs").glob("*/result.json"))
    hows = (("result.json", "truncate"), ("result.json", "edit"), ("final.pt", "empty"), ("final.pt", "flip"))
    damage = [(p.parent / name, how) for p, (name, how) in zip(runs, hows)]
    for path, how in damage:
        corrupt(path, how)
        audit.damaged.add(path.parent)
    summary = t.worker().finish()
    named = all(any(str(p) in w for w in summary["warnings"]) for p, _ in damage)
    return len(damage), f"{', '.join(f'{p.name} {how}' for p, how in damage)}: recomputed, " \
                        f"{'each named' if named else 'NOT all named'} in warnings", named


# ---- the data: junk, mismatched classes, a damaged decoded-data cache ----------------------------------
def _load(t: Target, folder: Path | None = None) -> data.Dataset:
    """The data as every worker loads it (data.load on the chaos cache), not from this process's memo."""
    data._LOADED.clear()
    return data.load(t.name, data.Sources(bindings=((t.name, str(folder or t.data)),), allow_download=False),
                     t.cache)


def _same(a: data.Dataset, b: data.Dataset) -> bool:
    return a.fingerprint == b.fingerprint and all(torch.equal(getattr(a, k), getattr(b, k)) for k in data.ARRAYS)


def junk_in_data(t: Target, audit) -> tuple:
    """macOS, Windows and text files added to the data folder, then the folder decoded again (its
    decoded-data cache entry removed): the same arrays, the same fingerprint (so the same runs), a count."""
    before = _load(t)
    junk = folders.add_junk(t.data)
    for entry in (t.cache / "data").glob("*.pt"):
        entry.unlink()
    after = _load(t)
    ok = _same(before, after) and after.skipped_files == before.skipped_files + len(junk)
    return len(junk), f"decoded again: {'identical arrays and fingerprint' if ok else 'DIFFERENT data'}, " \
                      f"{after.skipped_files} files skipped", ok


def damage_data_cache(t: Target, audit) -> tuple:
    """The decoded-data cache entry truncated, replaced by garbage, bit-flipped, and rewritten whole with
    nonsense (one class): each detected and decoded again from the folder, identical to before."""
    before = _load(t)
    entry, = (t.cache / "data").glob("*.pt")
    results = []
    for how in ("truncate", "garbage", "flip", "one class"):
        if how == "one class":
            arrays = store.load_tensors(entry)
            store.save_tensors(entry, {**arrays, "train_y": torch.zeros_like(arrays["train_y"])})
        else:
            corrupt(entry, how)
        again = _load(t)
        results.append(_same(before, again) and store.load_tensors(entry) is not None)
    return len(results), f"{sum(results)} of {len(results)} detected and decoded again, identical", all(results)


def mismatched_classes(t: Target, audit) -> tuple:
    """A copy of the data whose train and test class folders differ: a worker on it is refused with one
    line naming the classes, and nothing of it is cached."""
    notes, ok = [], True
    for how in ("renamed", "extra"):
        copy = t.root / f"mismatched-{how}"
        folders.mismatched_copy(t.data, copy, how)
        cached = set((t.cache / "data").iterdir()) | set((t.cache / "runs").iterdir())
        w = t.worker(data=copy)
        rc = w.wait()
        said = _said(w, "different class folders")
        new = (set((t.cache / "data").iterdir()) | set((t.cache / "runs").iterdir())) - cached
        ok &= rc == 2 and bool(said) and not new and not any("Traceback" in x for x in w.stderr)
        notes.append(f"exit {rc}, {said[said.find('('):said.find(')') + 1] if said else 'NO message'}, "
                     f"{len(new)} new cache files")
    return 2, "; ".join(notes), ok

"""The content-addressed run cache: keys, locks, checkpoints, publish, corruption handling.

Layout under the cache folder:
  runs/<key>/result.json      the finished run (checksummed); its presence means "done"
  runs/<key>/final.pt         final weights (for evaluations on the final checkpoint)
  runs/<key>/best-e<n>.pt     weights of epoch n, the best adversarial accuracy at some eps (not the last)
  runs/<key>/checkpoint.pt    the latest finished epoch while the run is in progress
  runs/<key>/failed.json      the last failure (never read as a result; the run is retried)
  runs/<key>/<name>.json      results derived from the finished run (checksummed; see derived)
  runs/<key>.lock             flock: one trainer per key; the OS releases it when its holder dies
  quarantine/                 corrupt files moved aside, named in the report's warnings
A finished run is never trained twice; a failed one is never cached. Only the holder of a key's lock
writes in runs/<key>/, so it may remove any temporary a killed writer left there.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.metadata
import os
import time
from pathlib import Path

import torch

from . import store
from ..spec.records import EpochRecord, Run

# The modules whose code computes the numbers: editing one invalidates every cached run.
NUMERIC_MODULES = ("spec/config.py", "spec/budget.py", "spec/records.py", "run/data.py", "run/formats.py",
                   "run/sources.py", "run/models.py", "run/pipelines.py", "run/attacks.py", "run/train.py",
                   "run/runtime.py")
CHECKPOINT_FIELDS = ("key", "model", "optimizer", "scheduler", "records", "best")


@functools.lru_cache(maxsize=None)
def code_version(folder: Path | None = None, modules: tuple[str, ...] = NUMERIC_MODULES) -> str:
    """A hash of `modules`' source in `folder` (default: this package) and the library versions. Read once
    per process: the code that runs is the code imported, so a file edited mid-session (a `git pull`
    beside a nightly run) must not file this process's results under the new code's key."""
    h = hashlib.sha256(f"torch {torch.__version__} timm {importlib.metadata.version('timm')}".encode())
    here = Path(folder or Path(__file__).parents[1])  # harness/
    for name in modules:
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]


class Lock:
    """An exclusive flock on `path`, released on close or when the holding process dies (even SIGKILL)."""

    def __init__(self, path: Path, blocking: bool):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise store.write_error(path, e) from None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            os.close(self.fd)
            raise

    def release(self) -> None:
        if self.fd is not None:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


class RunCache:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.warnings: list[str] = []  # corruption found and handled, for the report
        self._intact: set[tuple] = set()  # final.pt versions already verified in this process
        store.clean_temporaries(self.root)  # old leftovers anywhere (data/ has no lock: spare young ones)

    def dir(self, key: str) -> Path:
        return self.root / "runs" / key

    def lock(self, key: str, blocking: bool = True) -> Lock | None:
        """The key's lock, whose holder is the only writer in its folder; None, without blocking, while
        another process holds it."""
        try:
            lock = Lock(self.root / "runs" / f"{key}.lock", blocking)
        except BlockingIOError:
            return None
        store.clean_temporaries(self.dir(key), older_than_s=0)
        return lock

    def lookup(self, key: str) -> Run | None:
        """The finished run, or None. A corrupt entry (or one that is not a finished Run of `key`, one record
        per epoch) is moved aside, and named in warnings."""
        path = self.dir(key) / "result.json"
        if not path.exists():
            return None
        try:
            run = Run.from_dict(store.read_json(path, checksum=True), f"cached run {key}")
            if run.key != key or run.status != "done":
                raise ValueError(f"it holds run {run.key!r} ({run.status}), not the finished run {key!r}")
            _check_epochs(run.records, run.config.epochs)
            self._check_final_weights(key)
            return run
        except (ValueError, OSError) as e:
            self.quarantine(path, f"unreadable finished run ({e})")
            return None

    def _check_final_weights(self, key: str) -> None:
        """A finished run is its result and its weights: verify final.pt once per file version."""
        path = self.dir(key) / "final.pt"
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise ValueError("its final weights final.pt are missing") from None
        version = (key, stat.st_mtime_ns, stat.st_size)
        if version not in self._intact:
            if not store.tensors_intact(path):
                self.quarantine(path, "unreadable final weights")
                raise ValueError("its final weights final.pt are truncated or corrupt")
            self._intact.add(version)

    def failure(self, key: str) -> dict | None:
        path = self.dir(key) / "failed.json"
        try:
            return store.read_json(path) if path.exists() else None
        except ValueError:
            return None

    def record_failure(self, key: str, session: str, error: str) -> None:
        store.write_json(self.dir(key) / "failed.json", {"session": session, "error": error, "time": time.time()})

    def publish(self, key: str, result: dict, final_state: dict, best: dict[int, dict] | None = None) -> None:
        """Weights first, result last: result.json appearing is the commit point. best: {epoch: weights}."""
        d = self.dir(key)
        for epoch, state in (best or {}).items():
            store.save_tensors(d / f"best-e{epoch}.pt", state)
        store.save_tensors(d / "final.pt", final_state)
        store.write_json(d / "result.json", result, checksum=True)
        for leftover in ("checkpoint.pt", "failed.json"):
            (d / leftover).unlink(missing_ok=True)

    def final_state(self, key: str, epoch: int | None = None) -> dict | None:
        """The finished run's final weights, or those of a best epoch (train.best_epoch) other than the last;
        if they are missing or corrupt, the whole entry is moved aside (so the next lookup misses and the run
        is recomputed) and None is returned."""
        path = self.dir(key) / ("final.pt" if epoch is None else f"best-e{epoch}.pt")
        state = store.load_tensors(path) if path.exists() else None
        if state is None:
            if path.exists():
                self.quarantine(path, f"unreadable weights {path.name}")
            if (path.parent / "result.json").exists():
                self.quarantine(path.parent / "result.json", f"finished run without its weights {path.name}")
        return state

    def derived(self, key: str, name: str, compute, wait: bool = True) -> dict | None:
        """A result computed from finished run `key` (e.g. its final-checkpoint evaluation), stored as
        runs/<key>/<name>.json: computed once, under the run's lock, and checksummed like the run. Without
        `wait`, None while another process holds the lock (the caller can do other work meanwhile)."""
        path = self.dir(key) / f"{name}.json"
        value = self._read_derived(path)
        if value is None:
            lock = self.lock(key, blocking=wait)
            if lock is None:
                return None
            with lock:
                value = self._read_derived(path)  # another process may have computed it meanwhile
                if value is None:
                    value = compute()
                    store.write_json(path, value, checksum=True)
        return value

    def _read_derived(self, path: Path) -> dict | None:
        if not path.exists():
            return None
        try:
            return store.read_json(path, checksum=True)
        except (ValueError, OSError) as e:
            self.quarantine(path, f"unreadable {path.name} ({e})")
            return None

    def checkpointer(self, key: str) -> "Checkpoint":
        return Checkpoint(self, key)

    def quarantine(self, path: Path, why: str) -> None:
        dest = self.root / "quarantine" / f"{path.parent.name}-{path.name}-{time.time_ns()}"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            self.warnings.append(f"cache: {why}: moved {path} to {dest}; it will be recomputed")
        except FileNotFoundError:
            self.warnings.append(f"cache: {why} at {path}; another process moved it aside first")
        except OSError as e:
            self.warnings.append(f"cache: {why} at {path}, and it could not be moved aside ({e})")


def _check_epochs(records: list[EpochRecord], epochs: int | None = None) -> None:
    if [r.epoch for r in records] != list(range(1, len(records) + 1)):
        raise ValueError(f"its records are not epochs 1..{len(records)} in order")
    if epochs is not None and len(records) != epochs:
        raise ValueError(f"it has {len(records)} epoch records, its config says {epochs}")


class Checkpoint:
    """Per-epoch training state of one run (see train.run), tagged with the run's key."""

    def __init__(self, cache: RunCache, key: str):
        self.cache, self.key = cache, key
        self.path = cache.dir(key) / "checkpoint.pt"

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        state = store.load_tensors(self.path)
        try:
            if not isinstance(state, dict):
                raise ValueError("truncated, corrupt, or not a weights-only file")
            missing = [f for f in CHECKPOINT_FIELDS if f not in state]
            if missing:
                raise ValueError(f"it lacks {', '.join(missing)}")
            if state["key"] != self.key:
                raise ValueError(f"it belongs to run {state['key']!r}")
            _check_epochs([EpochRecord.from_dict(r, "its record") for r in state["records"]])
        except ValueError as e:
            self.cache.quarantine(self.path, f"unusable checkpoint ({e})")
            return None
        return state

    def save(self, state: dict) -> None:
        store.save_tensors(self.path, {**state, "key": self.key})

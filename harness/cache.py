"""The content-addressed run cache: keys, locks, checkpoints, publish, corruption handling.

Layout under the cache folder:
  runs/<key>/result.json      the finished run (checksummed); its presence means "done"
  runs/<key>/final.pt         final weights (for evaluations on the final checkpoint)
  runs/<key>/checkpoint.pt    the latest finished epoch while the run is in progress
  runs/<key>/failed.json      the last failure (never read as a result; the run is retried)
  runs/<key>.lock             flock: one trainer per key; the OS releases it when its holder dies
  quarantine/                 corrupt files moved aside, named in the report's warnings
A finished run is never trained twice; a failed one is never cached.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import time
from pathlib import Path

import torch
import timm

from . import store

# The modules whose code computes the numbers: editing one invalidates every cached run.
NUMERIC_MODULES = ("config.py", "data.py", "models.py", "pipelines.py", "attacks.py", "train.py", "runtime.py")


def code_version() -> str:
    h = hashlib.sha256(f"torch {torch.__version__} timm {timm.__version__}".encode())
    here = Path(__file__).parent
    for name in NUMERIC_MODULES:
        h.update((here / name).read_bytes())
    return h.hexdigest()[:16]


class Lock:
    """An exclusive flock on `path`, released on close or when the holding process dies (even SIGKILL)."""

    def __init__(self, path: Path, blocking: bool):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
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

    def dir(self, key: str) -> Path:
        return self.root / "runs" / key

    def try_lock(self, key: str) -> Lock | None:
        try:
            return Lock(self.root / "runs" / f"{key}.lock", blocking=False)
        except BlockingIOError:
            return None

    def lock(self, key: str) -> Lock:
        return Lock(self.root / "runs" / f"{key}.lock", blocking=True)

    def lookup(self, key: str) -> dict | None:
        """The finished run, or None. A corrupt entry is moved aside (and named in warnings)."""
        path = self.dir(key) / "result.json"
        if not path.exists():
            return None
        try:
            result = store.read_json(path, checksum=True)
            if result.get("key") != key:
                raise ValueError(f"{path} holds run {result.get('key')!r}, not {key!r}")
            return result
        except (ValueError, OSError) as e:
            self.quarantine(path, f"unreadable finished run ({e})")
            return None

    def failure(self, key: str) -> dict | None:
        path = self.dir(key) / "failed.json"
        try:
            return store.read_json(path) if path.exists() else None
        except ValueError:
            return None

    def record_failure(self, key: str, session: str, error: str) -> None:
        store.write_json(self.dir(key) / "failed.json", {"session": session, "error": error, "time": time.time()})

    def publish(self, key: str, result: dict, final_state: dict) -> None:
        """Weights first, result last: result.json appearing is the commit point."""
        d = self.dir(key)
        store.save_tensors(d / "final.pt", final_state)
        store.write_json(d / "result.json", result, checksum=True)
        for leftover in ("checkpoint.pt", "failed.json"):
            (d / leftover).unlink(missing_ok=True)

    def final_state(self, key: str) -> dict | None:
        path = self.dir(key) / "final.pt"
        state = store.load_tensors(path) if path.exists() else None
        if state is None and path.exists():
            self.quarantine(path, "unreadable final weights")
        return state

    def checkpointer(self, key: str) -> "Checkpoint":
        return Checkpoint(self, self.dir(key) / "checkpoint.pt")

    def quarantine(self, path: Path, why: str) -> None:
        dest = self.root / "quarantine" / f"{path.parent.name}-{path.name}-{int(time.time() * 1000)}"
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, dest)
            self.warnings.append(f"cache: {why}: moved {path} to {dest}; it will be recomputed")
        except OSError as e:
            self.warnings.append(f"cache: {why} at {path}, and it could not be moved aside ({e})")


class Checkpoint:
    """Per-epoch training state of one run (see train.run)."""

    def __init__(self, cache: RunCache, path: Path):
        self.cache, self.path = cache, path

    def load(self) -> dict | None:
        if not self.path.exists():
            return None
        state = store.load_tensors(self.path)
        if not isinstance(state, dict) or not {"model", "optimizer", "scheduler", "records"} <= set(state):
            self.cache.quarantine(self.path, "unreadable checkpoint")
            return None
        return state

    def save(self, state: dict) -> None:
        store.save_tensors(self.path, state)

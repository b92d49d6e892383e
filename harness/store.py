"""Files that are never half-written: atomic publish, checksummed JSON, safe tensor loading.

Every file the cache and the report write goes through `atomic_write`: a temporary file in the same
folder, flushed and fsync'd, then renamed into place. A reader sees the old file or the new one.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path

import torch

TMP_PREFIX = ".tmp-"


class StoreError(OSError):
    """A write failed (disk full, read-only folder, ...): the message names the folder and the fix."""


def atomic_write(path: Path, data: bytes) -> None:
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX + path.name + ".")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            _unlink_quietly(Path(tmp))
            raise
    except OSError as e:
        why = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
               errno.EACCES: "permission denied", errno.EDQUOT: "the disk quota is exceeded"}.get(
            e.errno, e.strerror or str(e))
        raise StoreError(e.errno, f"cannot write {path} ({why}): free space in {path.parent} or point "
                                  f"--cache-dir / --reports-dir at a writable folder; finished results "
                                  f"already there are kept") from None


def _unlink_quietly(p: Path) -> None:
    try:
        p.unlink()
    except OSError:
        pass


def clean_temporaries(folder: Path, older_than_s: float = 3600.0) -> int:
    """Remove leftover temporary files of crashed writers (old ones only: a live writer may own a new one)."""
    import time
    n = 0
    for p in Path(folder).rglob(TMP_PREFIX + "*"):
        try:
            if time.time() - p.stat().st_mtime > older_than_s:
                p.unlink()
                n += 1
        except OSError:
            pass
    return n


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def write_json(path: Path, payload: dict, checksum: bool = False) -> None:
    doc = {"payload": payload, "sha256": _digest(payload)} if checksum else payload
    atomic_write(path, json.dumps(doc, indent=1, sort_keys=True, allow_nan=True).encode())


def read_json(path: Path, checksum: bool = False) -> dict:
    """Raises ValueError when the file is not JSON or its checksum does not match."""
    doc = json.loads(Path(path).read_text())
    if not checksum:
        return doc
    if not isinstance(doc, dict) or set(doc) != {"payload", "sha256"} or _digest(doc["payload"]) != doc["sha256"]:
        raise ValueError(f"{path}: checksum mismatch or missing (truncated, edited or corrupt)")
    return doc["payload"]


def save_tensors(path: Path, obj) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue())


def load_tensors(path: Path):
    """torch.load with weights_only=True; None if the file is unreadable (the caller recomputes)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None

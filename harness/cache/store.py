"""Files that are never half-written: atomic publish, checksummed JSON, verified weights-only tensor files.

Every file the cache and the report write goes through `atomic_write`: a temporary file in the same
folder, flushed and fsync'd, then renamed into place. A reader sees the old file or the new one. A writer
killed mid-write leaves only a temporary (`.tmp-*`), which readers never open and `clean_temporaries`
removes.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import tempfile
import time
import zipfile
from pathlib import Path


TMP_PREFIX = ".tmp-"
_UMASK = os.umask(0o022)  # read once (os.umask can only be read by setting it), then put back
os.umask(_UMASK)
_WHY = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied", errno.EPERM: "permission denied",
        errno.EDQUOT: "the disk quota is exceeded"}


class StoreError(OSError):
    """A write failed (disk full, read-only folder, ...): the message names the folder and the fix."""

    def __str__(self) -> str:  # the message alone, not OSError's "[Errno 28] ..."
        return self.strerror or super().__str__()


def write_error(path: Path, e: OSError, flag: str = "--cache-dir / --reports-dir", folder: Path | None = None,
                kept: bool = True) -> StoreError:
    """The message for a failed write of `path`: why (read-only, full, ...), and the fix: free space in
    `folder` (default: the file's folder), or point `flag` elsewhere."""
    why = _WHY.get(e.errno, e.strerror or str(e))
    fix = (f"free space in {folder or Path(path).parent} or point {flag} at another folder"
           if e.errno in (errno.ENOSPC, errno.EDQUOT) else f"point {flag} at a writable folder")
    return StoreError(e.errno, f"cannot write {path} ({why}): {fix}" +
                      ("; finished results already there are kept" if kept else ""))


def check_writable(folder: Path, flag: str, min_free_mb: int = 64) -> None:
    """A StoreError naming `folder` and `flag` unless it (or, before it exists, its nearest existing parent)
    can be written and has room. Creates nothing: it runs before every session, collection included."""
    existing = Path(folder).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise StoreError(errno.ENOTDIR, f"cannot write {folder} ({existing} is a file, not a folder): point {flag} "
                                        f"at a folder")
    if os.statvfs(existing).f_blocks == 0:  # /proc, /sys: no room at all, yet not a full disk
        raise StoreError(errno.EROFS, f"cannot write {folder} ({existing} is on a virtual file system, which holds "
                                      f"no files): point {flag} at a folder on a disk")
    if not os.access(existing, os.W_OK):
        read_only = os.statvfs(existing).f_flag & os.ST_RDONLY
        e = OSError(errno.EROFS if read_only else errno.EACCES, "")
        raise write_error(Path(folder), e, flag, kept=False)
    if shutil.disk_usage(existing).free < min_free_mb * 2 ** 20:
        raise write_error(Path(folder), OSError(errno.ENOSPC, ""), flag, folder=existing, kept=False)


def atomic_write(path: Path, data: bytes, flag: str = "--cache-dir / --reports-dir") -> None:
    """Publish `data` at `path` whole or not at all; a StoreError names the folder and `flag`, the option
    that moves it."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=TMP_PREFIX + path.name + ".")
        try:
            os.fchmod(fd, 0o666 & ~_UMASK)  # as open() would create it; mkstemp's 0600 hides it from others
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_folder(path.parent)  # make the rename itself survive a power cut
    except OSError as e:
        raise write_error(path, e, flag) from None


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def clean_temporaries(folder: Path, older_than_s: float = 3600.0) -> int:
    """Remove leftover temporaries of crashed writers under `folder`, those older than `older_than_s`
    (a live writer may own a newer one; pass 0 where the caller holds the folder's lock). Returns how
    many were removed; a folder that cannot be written is left as it is."""
    n = 0
    now = time.time()
    for p in Path(folder).rglob(TMP_PREFIX + "*"):
        try:
            if now - p.stat().st_mtime >= older_than_s:
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
    import torch  # here, not at import: the report and the summary write JSON only
    torch.save(obj, buf)
    atomic_write(path, buf.getvalue())


def tensors_intact(path: Path) -> bool:
    """Whether a `save_tensors` file is whole: torch.load does not check the CRC-32 that torch.save
    stores for every record of its zip archive, so it would load flipped bits silently; this does."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is None
    except Exception:  # not a zip (truncated, empty, garbage), or unreadable
        return False


def load_tensors(path: Path):
    """The object `save_tensors` wrote, or None if the file is not intact or holds anything but tensors
    and plain containers (weights_only=True: no code runs on load). The caller recomputes."""
    if not tensors_intact(path):
        return None
    try:
        import torch
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None

"""The folders chaos damages: a small PNG export of real data (with junk added, or its classes mismatched),
and file systems the kernel says are full or read-only (tmpfs and bind mounts: root only, see cannot_mount).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
from pathlib import Path


# ---- data folders --------------------------------------------------------------------------------------
def export_subset(ds, folder: Path, n_train: int = 64, n_test: int = 32) -> Path:
    """The first images of a loaded dataset as an ImageFolder of PNGs (lossless), class folders named by
    label (000, 001, ...). Bind it with --data-source NAME=folder."""
    from PIL import Image
    for split, x, y, n in (("train", ds.train_x, ds.train_y, n_train), ("test", ds.test_x, ds.test_y, n_test)):
        for i, (image, label) in enumerate(zip(x[:n], y[:n])):
            path = Path(folder) / split / f"{int(label):03d}" / f"{i:05d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = image.permute(1, 2, 0).numpy()
            Image.fromarray(pixels[:, :, 0] if pixels.shape[2] == 1 else pixels).save(path)
    return Path(folder)


def export_sample(binding: str, cache_dir: Path, folder: Path, n_train: int = 64, n_test: int = 32) -> Path:
    """A seeded sample (not the first images: a zip sorted by class would give one class) of the dataset
    bound by `binding` (NAME=PATH), exported to `folder`; decoded once into `cache_dir`. Kept if present."""
    from ..run import data
    if (folder / "test").exists():
        return folder
    name, _ = data.parse_binding(binding)
    ds = data.load(name, data.Sources(bindings=(data.parse_binding(binding),), allow_download=False), cache_dir)
    tr, te = data.fixed_subset(len(ds.train_x), n_train, 0), data.fixed_subset(len(ds.test_x), n_test, 0)
    ds = dataclasses.replace(ds, train_x=ds.train_x[tr], train_y=ds.train_y[tr], test_x=ds.test_x[te],
                             test_y=ds.test_y[te])
    tmp = folder.with_name(folder.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    export_subset(ds, tmp, n_train, n_test)
    tmp.rename(folder)  # whole or absent: a rerun of the tool never finds half an export
    return folder


def add_junk(folder: Path) -> list[Path]:
    """Add what macOS, Windows and people leave in a data folder (none of it a training image)."""
    train_class = sorted((folder / "train").iterdir())[0].name
    test_class = sorted((folder / "test").iterdir())[-1].name
    junk = {f"__MACOSX/train/{train_class}/._00000.png": b"\x00\x05\x16\x07 resource fork",  # an image's name
            f"train/{train_class}/.DS_Store": b"\x00\x00\x00\x01Bud1", f"test/{test_class}/Thumbs.db": b"\xd0\xcf\x11\xe0",
            f"train/{train_class}/README.txt": b"these are the first class's images\n", "README.md": b"# data\n"}
    for rel, blob in junk.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(blob)
    return [folder / rel for rel in junk]


def mismatched_copy(folder: Path, dest: Path, how: str) -> str:
    """A copy of the ImageFolder `folder` at `dest` whose train and test class folders differ; returns
    what was changed. how: "renamed" (a test class folder renamed) or "extra" (a class only in train)."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(folder, dest)
    if how == "renamed":
        last = sorted((dest / "test").iterdir())[-1]
        last.rename(last.with_name("unknown"))
        return f"test/{last.name} renamed test/unknown"
    if how == "extra":
        first = sorted((dest / "train").iterdir())[0]
        shutil.copytree(first, first.with_name("extra"))
        return f"train/extra added (a copy of train/{first.name}), no test/extra"
    raise ValueError(f"unknown mismatch {how!r}: renamed or extra")


# ---- file systems that refuse writes -------------------------------------------------------------------
def cannot_mount() -> str | None:
    """Why this process cannot mount file systems, or None when it can (root with mount(8))."""
    if shutil.which("mount") is None or os.geteuid() != 0:
        return "mounting a tmpfs needs root and mount(8)"
    return None


def _mount(*args: str) -> None:
    proc = subprocess.run(["mount", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise OSError(f"mount {' '.join(args)}: {proc.stderr.strip()}")


def mount_tmpfs(where: Path, size_mb: int, read_only: bool = False, full: bool = False) -> Path:
    """A fresh tmpfs of `size_mb` at `where` (created if absent): a real file system that answers ENOSPC
    once `full`, EROFS when `read_only`. OSError where it cannot be mounted; umount(where) undoes it."""
    where.mkdir(parents=True, exist_ok=True)
    _mount("-t", "tmpfs", "-o", f"size={size_mb}m,mode=755", "tmpfs", str(where))
    try:
        if full:
            fill(where)
        if read_only:
            _mount("-o", "remount,ro", str(where))
    except OSError:
        umount(where)
        raise
    return where


def fill(where: Path) -> Path:
    """Take every free block of `where`'s file system with one file (returned), as another job would."""
    filler = where / "filler"
    with open(filler, "ab", buffering=0) as f:  # unbuffered: nothing left over for close() to fail on
        try:
            while True:
                f.write(b"\0" * 2 ** 16)  # the last one writes what fits, the next one fails
        except OSError:
            pass
    return filler


def shrink_to_full(where: Path) -> int:
    """Make the tmpfs at `where` full without writing gigabytes: its size becomes what it holds now (then
    `fill` takes the last blocks). Returns the old size in bytes, for `resize`."""
    st = os.statvfs(where)
    size = st.f_blocks * st.f_frsize
    for _ in range(20):  # a writer may add blocks between statvfs and the remount
        st = os.statvfs(where)
        try:
            _mount("-o", f"remount,size={(st.f_blocks - st.f_bfree) * st.f_frsize + 2 ** 16}", str(where))
            break
        except OSError:
            continue
    fill(where)
    return size


def resize(where: Path, size: int) -> None:
    _mount("-o", f"remount,size={size}", str(where))


def read_only_over(where: Path) -> None:
    """Make `where` read-only for every new open while files already open stay open (a live worker's locks):
    a read-only bind mount of the folder over itself. umount(where) undoes it."""
    _mount("--bind", str(where), str(where))
    _mount("-o", "remount,bind,ro", str(where))


def umount(where: Path) -> bool:
    """Unmount the file system mounted last at `where`; whether that worked."""
    return subprocess.run(["umount", str(where)], capture_output=True, check=False).returncode == 0

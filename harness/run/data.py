"""Datasets as uint8 tensors: checking, decoding once, caching, and augmenting on the device.

Where a dataset comes from, and which one a claim runs on (`resolve`), is `harness.run.sources` (its names
are re-exported here); reading each file format is `harness.run.formats`. Decoded arrays pass `validate`
(one class list, at least 2 classes, one image size of at least 8 px) before they are cached under the
cache folder, keyed by a sha256 of the source bytes (also the fingerprint that makes run results depend
on the data's content), and again when read back. A dataset whose decoded content is that of a known
original (`GENUINE` fingerprints, or `PUBLISHED` facts) is reported under the original's name, whatever the
container (the lossless PNG copy of CIFAR-10 is `cifar10`; its JPEG copy is `cifar10-jpeg75`); other data
bound under an original's name is reported as `<name>-unverified`, never as the original.
Over 300 lines by a few: the checks, decoding, caching and augmenting share one uint8 layout; sources and
formats already live apart.
"""
from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import formats
from ..cache import store
from .formats import IDX_FILES, DataError, idx_folder as _idx_folder, read_idx as _read_idx  # noqa: F401
from .sources import (DEBIAN_FASHION_MNIST, KNOWN, TORCHVISION, TORCHVISION_FOLDERS, Resolution,  # noqa: F401
                      Sources, check_name, first_reachable, layout, not_found, parse_binding, reachable, resolve)

ARRAYS = ("train_x", "train_y", "test_x", "test_y")
MIN_SIDE = 8  # px: smaller images leave nothing for a conv net's stem or a ViT's patches to see
CACHE_FORMAT = 2  # of the decoded-data cache files; files of another format are decoded again

# Content fingerprints of original datasets (see `content_fingerprints`): sha256 of train pixels, train
# labels, test pixels, test labels, in the original order. CIFAR-10: from the data README that comes with
# the lossless PNG copy (pixel-identical to the original python batches, checked there).
GENUINE = {
    "cifar10": ("47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
                "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253",
                "f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
                "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5"),
}
# Originals without a copy here, checked by published facts (`published_name`): (train, test) images of 3x32x32,
# classes (equal per split), the training pixels' per-channel sum and sum of squares (0..255). CIFAR-100's follow
# from its published mean (0.50707515923713235294, 0.48654887331495098039, 0.44091784336703431373) and sample std
# (0.26733428848992695514, 0.25643846542136995765, 0.27615047402246589731), 20 digits that fix both integers. So
# derived from CIFAR-10's (8 digits), they match its lossless copy in every digit and miss its JPEG copy at the 4th.
PUBLISHED = {
    "cifar100": ((50000, 10000), 100, (6620373279, 6352382090, 5756623363),
                 (1093977562105, 1007075543166, 901128318593)),
}
CHECKED = ("cifar10", "cifar100")  # names accepted only for their content; other data bound under them is not


@dataclass
class Dataset:
    """Images as uint8 (N, C, H, W), labels as int64 (N,)."""
    name: str  # what was actually used, e.g. "cifar10-jpeg75" for the JPEG copy of CIFAR-10
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    fingerprint: str  # sha256 of the source bytes
    source: str  # the bound path or the folder read
    skipped_files: int = 0  # files in the source that are not images (hidden, __MACOSX/, Thumbs.db, text)
    notes: tuple[str, ...] = ()  # one-line facts for the results: files skipped, content identified

    @property
    def channels(self) -> int:
        return self.train_x.shape[1]

    @property
    def size(self) -> int:
        return self.train_x.shape[-1]

    @functools.cached_property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images in [0, 1] (for the normalizing pipeline)."""
        counts = levels_histogram(self.train_x).double()
        levels = torch.arange(256, dtype=torch.float64) / 255
        n = counts.sum(1)
        mean = (counts * levels).sum(1) / n
        var = (counts * (levels - mean[:, None]) ** 2).sum(1) / (n - 1)
        return tuple(mean.tolist()), tuple(var.sqrt().tolist())


# ---- loading, checking and caching ------------------------------------------------------------------
_LOADED: dict[tuple[str, str], Dataset] = {}


def load(name: str, sources: Sources, cache_dir: Path) -> Dataset:
    """Load a dataset (decoded once per machine, then from the cache; once per process in memory).
    Raises DataError where the data cannot be found, read or used (see `validate`)."""
    files, display, where, read = _locate(name, sources)
    fingerprint = _sha256(files, where if where.is_dir() else None)
    memo = (name, fingerprint)
    if memo in _LOADED:
        return _LOADED[memo]
    cached = cache_dir / "data" / f"{fingerprint[:24]}.pt"
    entry = _read_cache(cached, fingerprint)
    if entry is None:
        arrays, facts = read()
        validate(arrays, str(where), facts.get("classes"))  # before caching: bad data is never cached
        entry = {**arrays, "meta": {"format": CACHE_FORMAT, "fingerprint": fingerprint,
                                    "skipped_files": facts.get("skipped_files", 0), "notes": facts.get("notes", []),
                                    "classes": facts.get("classes"),
                                    "content": content_fingerprints(arrays, facts.get("order"))}}
        store.save_tensors(cached, entry)
    meta = entry["meta"]
    skipped, skip_notes = meta["skipped_files"], meta["notes"]
    if where.is_dir() and (where / "train").is_dir():  # an image folder's junk is not in the fingerprint:
        skipped, skip_notes = formats.skipped_files(formats.folder_files(where))  # counted as it is now
    genuine = genuine_name(meta["content"]) or published_name(entry)
    name = genuine or (f"{display}-unverified" if display in CHECKED else display)
    notes = tuple(skip_notes) + ((f"content identical to the original {genuine}",) if genuine else
                                 (f"content is not the original {display}: reported as {name}",) * (name != display))
    ds = Dataset(name=name, fingerprint=fingerprint, source=str(where), num_classes=int(entry["train_y"].max()) + 1,
                 skipped_files=skipped, notes=notes, **{k: entry[k] for k in ARRAYS})
    _LOADED[memo] = ds
    return ds


def validate(arrays: dict, where: str, classes: list[str] | None = None) -> None:
    """Raise a DataError naming `where`, the value and the fix unless the four arrays (uint8 NCHW images,
    int64 labels) are a usable dataset: as many labels as images, images in both splits, one image size
    (and channel count) in both, at least MIN_SIDE px per side, at least 2 classes in training, and no
    test label that training lacks. `classes` (names of the labels) only make the messages clearer."""
    name = (lambda i: repr(classes[i])) if classes else str
    for split in ("train", "test"):
        x, y = arrays.get(f"{split}_x"), arrays.get(f"{split}_y")
        if not (isinstance(x, torch.Tensor) and x.dtype == torch.uint8 and x.dim() == 4
                and isinstance(y, torch.Tensor) and y.dtype == torch.int64 and y.dim() == 1):
            raise DataError(f"{where}: the {split} arrays are not uint8 images (N, C, H, W) and int64 labels "
                            f"(N,): replace the data (a decoded-data cache file is decoded again)")
        if len(x) != len(y) or not len(x):
            raise DataError(f"{where}: the {split} split has {len(x)} images and {len(y)} labels: it needs "
                            f"images, each with one label; replace the data")
        if int(y.min()) < 0:
            raise DataError(f"{where}: the {split} split has a negative label ({int(y.min())}): replace the data")
    tx, vx = arrays["train_x"], arrays["test_x"]
    if tx.shape[1:] != vx.shape[1:]:
        raise DataError(f"{where}: test images are {_size(vx.shape)} but training images are {_size(tx.shape)}: "
                        f"a dataset has one image size; convert the test images to {_size(tx.shape)}")
    if min(tx.shape[2:]) < MIN_SIDE:
        raise DataError(f"{where}: images are {_size(tx.shape)}, below {MIN_SIDE} px per side: use images of at "
                        f"least {MIN_SIDE}x{MIN_SIDE} px (upscale them, or bind another dataset)")
    train_classes = set(arrays["train_y"].unique().tolist())
    if len(train_classes) < 2:
        raise DataError(f"{where}: only one class ({name(min(train_classes))}) in the training split: a "
                        f"classifier needs at least 2 classes; add class folders train/<class>/ and "
                        f"test/<class>/ (or labels)")
    unseen = sorted(set(arrays["test_y"].unique().tolist()) - train_classes)
    if unseen:
        raise DataError(f"{where}: test labels {', '.join(map(name, unseen))} never occur in the training "
                        f"split: train and test need one class list; fix the labels or the class folders")


def _size(shape) -> str:
    return f"{shape[2]}x{shape[3]} px with {shape[1]} channel{'s' if shape[1] != 1 else ''}"


def content_fingerprints(arrays: dict, order: dict | None = None) -> list[str]:
    """sha256 of train pixels, train labels, test pixels, test labels: pixels as uint8 N x H x W x C bytes,
    labels as uint8 (int64 where a label exceeds 255), in the original order (`order`: split -> the
    permutation that restores it, where the arrays are in another; e.g. by the PNG files' index names)."""
    out = []
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        perm = (order or {}).get(split)
        if perm is not None:
            x, y = x[torch.as_tensor(perm)], y[torch.as_tensor(perm)]
        out.append(hashlib.sha256(x.permute(0, 2, 3, 1).contiguous().numpy()).hexdigest())
        out.append(hashlib.sha256(y.to(torch.uint8 if int(y.max()) < 256 else torch.int64).numpy()).hexdigest())
    return out


def genuine_name(content: list[str]) -> str | None:
    """The name of the original dataset (GENUINE) whose content fingerprints these are, or None."""
    return next((name for name, known in GENUINE.items() if tuple(known) == tuple(content)), None)


def published_name(arrays: dict) -> str | None:
    """The name of the original dataset (PUBLISHED) whose published facts these arrays match, or None."""
    tx, ty, vy = arrays["train_x"], arrays["train_y"], arrays["test_y"]
    for name, (sizes, classes, sums, squares) in PUBLISHED.items():
        balanced = all(torch.bincount(y, minlength=classes).tolist() == [n // classes] * classes
                       for y, n in zip((ty, vy), sizes))
        if (len(tx), len(vy)) == sizes and tuple(tx.shape[1:]) == (3, 32, 32) and balanced:
            counts, levels = levels_histogram(tx), torch.arange(256)
            if (counts @ levels).tolist() == list(sums) and (counts @ levels ** 2).tolist() == list(squares):
                return name
    return None


def levels_histogram(x: torch.Tensor) -> torch.Tensor:
    """Per channel, how many pixels of uint8 images x (N, C, H, W) take each of the 256 levels: (C, 256)."""
    counts = torch.zeros(x.shape[1], 256, dtype=torch.long)
    for chunk in x.split(4096):
        per_channel = chunk.transpose(0, 1).reshape(x.shape[1], -1).long()
        counts += torch.stack([torch.bincount(c, minlength=256) for c in per_channel])
    return counts


def _read_cache(path: Path, fingerprint: str) -> dict | None:
    """The cached entry, or None where the file is missing, corrupt, of another format or source, or fails
    `validate`: such a file is never trusted; the caller decodes again and replaces it (atomically, so a
    process reading it meanwhile sees the old file or the new one)."""
    if not path.exists():
        return None
    entry = store.load_tensors(path)
    try:
        meta = entry["meta"]
        if (meta["format"] == CACHE_FORMAT and meta["fingerprint"] == fingerprint and len(meta["content"]) == 4
                and isinstance(meta["skipped_files"], int) and isinstance(meta["notes"], list)):
            validate(entry, str(path), meta["classes"])
            return entry
    except (DataError, LookupError, TypeError, ValueError):
        pass
    return None


def _locate(name, sources):
    """(source files, name to report, path read, reader returning (arrays, facts)) or a DataError
    saying where to put the data."""
    path = sources.bound(name)
    if path is not None:
        kind = layout(name, path)
        if kind == "zip":
            return [path], path.stem, path, lambda: formats.read_zip(path)
        if kind == "idx":
            idx = _idx_folder(path)
            return idx, path.name, path, lambda: _read_idx(idx)  # the folder's name, as for image folders
        files = sorted(path / n for n in formats.folder_files(path) if not formats.skip_reason(n))  # junk: no
        return files, path.name, path, lambda: formats.read_folder(path)
    if name in TORCHVISION:
        return _torchvision(name, sources)
    if name == "fashion-mnist":
        for folder in (Path(sources.data_dir) / "fashion-mnist", DEBIAN_FASHION_MNIST):
            idx = _idx_folder(folder)
            if idx:
                return idx, name, folder, lambda: _read_idx(idx)
    raise DataError(not_found(check_name(name, sources), sources))


def _torchvision(name, sources):
    import torchvision
    root = Path(sources.data_dir)
    cls = getattr(torchvision.datasets, TORCHVISION[name])
    if not reachable(name, sources):
        if not sources.allow_download:
            raise DataError(not_found(name, sources))
        try:
            cls(root=str(root), train=True, download=True)
        except Exception as e:  # no network, proxy refusal, ...
            raise DataError(not_found(name, sources, f"; the download failed: {type(e).__name__}: {e}")) from None
    folder = root / TORCHVISION_FOLDERS[name]
    files = sorted(p for p in folder.iterdir() if p.is_file())

    def read():
        out = {}
        for split, train in (("train", True), ("test", False)):
            d = cls(root=str(root), train=train, download=False)
            out[f"{split}_x"] = torch.from_numpy(np.ascontiguousarray(d.data.transpose(0, 3, 1, 2)))
            out[f"{split}_y"] = torch.tensor(d.targets, dtype=torch.int64)
        return out, {}
    return files, name, folder, read


def _sha256(files: list[Path], root: Path | None = None) -> str:
    """sha256 of the files' names (paths under `root` where given: a moved image changes its label) and bytes."""
    h = hashlib.sha256()
    for f in files:
        h.update((f.relative_to(root).as_posix() if root else f.name).encode())
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 22), b""):
                h.update(chunk)
    return h.hexdigest()


def fixed_subset(n_total: int, n: int | None, seed: int) -> torch.Tensor:
    """The first n indices of a seeded shuffle: the same subset on every machine and run."""
    perm = torch.randperm(n_total, generator=torch.Generator().manual_seed(seed))
    return perm if n is None or n >= n_total else perm[:n]


def augment(x: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Random crop (zero-padded by `padding` pixels, as torchvision's RandomCrop) and horizontal flip,
    on x's device, uint8 in and out.

    x: (B, C, H, W). One gather for the whole batch; no host synchronisation.
    """
    b, _, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (padding,) * 4) if padding else x
    dy = torch.randint(0, 2 * padding + 1, (b, 1, 1), device=dev, generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (b, 1, 1), device=dev, generator=generator)
    flip = torch.rand((b, 1, 1), device=dev, generator=generator) < 0.5
    rows = torch.arange(h, device=dev).view(1, h, 1) + dy
    cols = torch.arange(w, device=dev).view(1, 1, w)
    cols = torch.where(flip, w - 1 - cols, cols) + dx
    batch = torch.arange(b, device=dev).view(b, 1, 1)
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)

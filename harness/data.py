"""Datasets as uint8 tensors: finding, decoding once, caching, and augmenting on the device.

A dataset is named by a logical name (`cifar10`, `cifar100`, `fashion-mnist`, or any name bound to a
path with `--data-source NAME=PATH`). Sources, in order: a bound path (a .zip of an ImageFolder tree
with train/ and test/, such a folder, or a folder of IDX files); torchvision's files under the data
directory (downloaded there only where the network allows); for fashion-mnist, Debian's
`dataset-fashion-mnist` folder. Decoded arrays are cached under the cache folder, keyed by a sha256 of
the source bytes, which is also the fingerprint that makes run results depend on the data's content.
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .config import ConfigError
from . import store

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
TORCHVISION = {"cifar10": "CIFAR10", "cifar100": "CIFAR100"}
KNOWN = ("cifar10", "cifar100", "fashion-mnist")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DataError(ConfigError):
    """A dataset cannot be found or read; the message says where to put it."""


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
    source: str

    @property
    def channels(self) -> int:
        return self.train_x.shape[1]

    @property
    def size(self) -> int:
        return self.train_x.shape[-1]

    @functools.cached_property
    def mean_std(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """Per-channel mean and std of the training images in [0, 1] (for the normalizing pipeline)."""
        counts = torch.zeros(self.channels, 256, dtype=torch.float64)
        for chunk in self.train_x.split(4096):  # exact, from a histogram of the 256 levels
            per_channel = chunk.transpose(0, 1).reshape(self.channels, -1).long()
            counts += torch.stack([torch.bincount(c, minlength=256) for c in per_channel]).double()
        levels = torch.arange(256, dtype=torch.float64) / 255
        n = counts.sum(1)
        mean = (counts * levels).sum(1) / n
        var = (counts * (levels - mean[:, None]) ** 2).sum(1) / (n - 1)
        return tuple(mean.tolist()), tuple(var.sqrt().tolist())


@dataclass(frozen=True)
class Sources:
    """Where datasets may come from: explicit bindings, then torchvision's folder."""
    bindings: tuple[tuple[str, str], ...] = ()  # (name, path) pairs from --data-source
    data_dir: str = ".data"  # torchvision's root for cifar10/cifar100
    allow_download: bool = True

    def bound(self, name: str) -> Path | None:
        for n, p in self.bindings:
            if n == name:
                return Path(p).expanduser()
        return None

    def names(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([n for n, _ in self.bindings] + list(KNOWN)))


def parse_binding(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path:
        raise ConfigError(f"--data-source {text!r} is not NAME=PATH, e.g. "
                          f"--data-source cifar10=/data/cifar10-jpeg75.zip")
    return name.strip(), path.strip()


def check_name(name: str, sources: Sources) -> str:
    if name not in KNOWN and sources.bound(name) is None:
        raise DataError(f"unknown dataset {name!r}: use one of {', '.join(KNOWN)}, or bind a name to a "
                        f"path with --data-source {name}=PATH")
    return name


def reachable(name: str, sources: Sources) -> bool:
    """Whether `name` can be loaded without the network (cheap: looks for files only)."""
    path = sources.bound(name)
    if path is not None:
        return path.exists()
    if name in TORCHVISION:
        folder = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[name]
        return (Path(sources.data_dir) / folder).is_dir()
    if name == "fashion-mnist":
        return _idx_folder(Path(sources.data_dir) / "fashion-mnist") is not None or \
            _idx_folder(DEBIAN_FASHION_MNIST) is not None
    return False


def first_reachable(preferred: tuple[str, ...], sources: Sources) -> str | None:
    for name in tuple(dict.fromkeys(preferred + sources.names())):
        if reachable(name, sources):
            return name
    return None


_LOADED: dict[tuple[str, str], Dataset] = {}


def load(name: str, sources: Sources, cache_dir: Path) -> Dataset:
    """Load a dataset (decoded once per machine, then from the cache; once per process in memory)."""
    files, display, reader = _locate(name, sources)
    fingerprint = _sha256(files)
    memo = (name, fingerprint)
    if memo in _LOADED:
        return _LOADED[memo]
    cached = cache_dir / "data" / f"{fingerprint[:24]}.pt"
    arrays = store.load_tensors(cached) if cached.exists() else None
    if arrays is None:
        arrays = reader()
        store.save_tensors(cached, arrays)
    ds = Dataset(name=display, fingerprint=fingerprint, source=str(files[0]),
                 num_classes=int(arrays["train_y"].max()) + 1, **arrays)
    _LOADED[memo] = ds
    return ds


def _locate(name, sources):
    """(source files, name to report, reader returning the arrays) or a DataError saying where to put data."""
    path = sources.bound(name)
    if path is not None:
        if not path.exists():
            raise DataError(f"data source {name}={path} does not exist: fix the path in --data-source "
                            f"or ADVHYP_DATA_SOURCES")
        if path.suffix == ".zip":
            return [path], path.stem, lambda: _read_image_zip(path)
        if path.is_dir() and _idx_folder(path):
            idx = _idx_folder(path)
            return idx, path.name, lambda: _read_idx(idx)  # the folder's name, as for image folders, not the bound name
        if path.is_dir() and (path / "train").is_dir() and (path / "test").is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file())
            return files, path.name, lambda: _read_image_folder(path)
        raise DataError(f"data source {name}={path} is not a .zip or folder of train/<class>/ and "
                        f"test/<class>/ images, nor a folder of IDX files ({', '.join(IDX_FILES)})")
    if name in TORCHVISION:
        return _torchvision(name, sources)
    if name == "fashion-mnist":
        for folder in (Path(sources.data_dir) / "fashion-mnist", DEBIAN_FASHION_MNIST):
            idx = _idx_folder(folder)
            if idx:
                return idx, name, lambda: _read_idx(idx)
        raise DataError(f"fashion-mnist not found in {Path(sources.data_dir) / 'fashion-mnist'} or "
                        f"{DEBIAN_FASHION_MNIST}: run `apt-get install dataset-fashion-mnist`, or pass "
                        f"--data-source fashion-mnist=FOLDER_WITH_IDX_FILES")
    check_name(name, sources)


def _torchvision(name, sources):
    import torchvision
    root = Path(sources.data_dir)
    cls = getattr(torchvision.datasets, TORCHVISION[name])
    if not reachable(name, sources):
        if not sources.allow_download:
            raise DataError(f"{name} not found under {root}: put torchvision's {name} files there "
                            f"(--data-dir), or bind a copy with --data-source {name}=PATH")
        try:
            cls(root=str(root), train=True, download=True)
        except Exception as e:  # no network, proxy refusal, ...
            raise DataError(f"{name} not found under {root} and could not be downloaded ({type(e).__name__}:"
                            f" {e}): put torchvision's {name} files there (--data-dir), or bind a copy "
                            f"with --data-source {name}=PATH") from None
    folder = root / {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}[name]
    files = sorted(p for p in folder.iterdir() if p.is_file())

    def read():
        out = {}
        for split, train in (("train", True), ("test", False)):
            d = cls(root=str(root), train=train, download=False)
            out[f"{split}_x"] = torch.from_numpy(np.ascontiguousarray(d.data.transpose(0, 3, 1, 2)))
            out[f"{split}_y"] = torch.tensor(d.targets, dtype=torch.int64)
        return out
    return files, name, read


def _idx_folder(folder: Path) -> list[Path] | None:
    found = []
    for stem in IDX_FILES:
        hit = next((folder / f for f in (stem, stem + ".gz") if (folder / f).is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found


def _read_idx(files: list[Path]) -> dict:
    def read(path: Path) -> np.ndarray:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
        ndim = raw[3]
        dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        if raw[2] != 0x08 or data.size != int(np.prod(dims)):
            raise DataError(f"{path} is not a uint8 IDX file of shape {dims}: it is truncated or "
                            f"corrupt; replace it")
        return data.reshape(dims)
    tx, ty, vx, vy = (read(f) for f in files)
    return {"train_x": torch.from_numpy(tx.copy()).unsqueeze(1), "train_y": torch.from_numpy(ty.astype(np.int64)),
            "test_x": torch.from_numpy(vx.copy()).unsqueeze(1), "test_y": torch.from_numpy(vy.astype(np.int64))}


def _decode(blob: bytes, where: str) -> np.ndarray:
    from PIL import Image
    try:
        with Image.open(io.BytesIO(blob)) as im:
            arr = np.asarray(im.convert("RGB") if im.mode not in ("L", "RGB") else im)
    except Exception as e:
        raise DataError(f"{where} is not a readable image ({e}): the data file is corrupt; "
                        f"replace it") from None
    return arr[:, :, None] if arr.ndim == 2 else arr


def _stack_splits(items: dict[str, list[tuple[str, np.ndarray]]], where: str) -> dict:
    """items: split -> [(class name, HWC image)] -> the four tensors, classes numbered in sorted order."""
    if set(items) != {"train", "test"} or not all(items.values()):
        raise DataError(f"{where} must hold train/<class>/<image> and test/<class>/<image> files")
    classes = sorted({c for split in items.values() for c, _ in split})
    index = {c: i for i, c in enumerate(classes)}
    out = {}
    for split, pairs in items.items():
        shapes = {a.shape for _, a in pairs}
        if len(shapes) != 1:
            raise DataError(f"{where}: images of the {split} split differ in shape {sorted(shapes)[:3]}; "
                            f"all must have one size")
        out[f"{split}_x"] = torch.from_numpy(np.stack([a for _, a in pairs])).permute(0, 3, 1, 2).contiguous()
        out[f"{split}_y"] = torch.tensor([index[c] for c, _ in pairs], dtype=torch.int64)
    return out


def _read_image_zip(path: Path) -> dict:
    items: dict[str, list] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            names = sorted(n for n in zf.namelist() if not n.endswith("/"))
            for n in names:
                parts = n.split("/")
                if len(parts) < 3 or parts[-3] not in ("train", "test"):
                    continue
                items.setdefault(parts[-3], []).append((parts[-2], _decode(zf.read(n), f"{path}:{n}")))
    except zipfile.BadZipFile as e:
        raise DataError(f"{path} is not a valid zip file ({e}): the download is truncated or corrupt; "
                        f"replace it") from None
    return _stack_splits(items, str(path))


def _read_image_folder(path: Path) -> dict:
    items: dict[str, list] = {}
    for split in ("train", "test"):
        for f in sorted((path / split).glob("*/*")):
            if f.is_file():
                items.setdefault(split, []).append((f.parent.name, _decode(f.read_bytes(), str(f))))
    return _stack_splits(items, str(path))


def _sha256(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
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

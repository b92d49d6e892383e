"""Reading the data formats: an ImageFolder tree (`train/<class>/<image>`, `test/<class>/<image>`) in a
.zip or a folder, and a folder of IDX files. Arrays come back as uint8 (N, C, H, W) images and int64 labels.

An ImageFolder tree: which files are images (the rest is skipped and counted, never called corrupt),
decoding, one class list for both splits, and one deterministic order: per split, class folders sorted by
name, files sorted by name within each. `harness.run.data` finds the sources, checks the arrays and caches them.
"""
from __future__ import annotations

import gzip
import io
import os
import zipfile
from collections import Counter
from pathlib import Path
from typing import Callable

import numpy as np

from ..spec.config import ConfigError

SPLITS = ("train", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pbm")
JUNK_NAMES = ("thumbs.db", "desktop.ini")  # written by Windows' file browser next to images
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
             "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class DataError(ConfigError):
    """A dataset cannot be found, read or used; the message names the value and the fix."""


def skip_reason(rel: str) -> str | None:
    """Why the file at `rel` ('/'-separated, inside the zip or folder) is not a training image, or None
    when it is one (an image file in a train/<class>/ or test/<class>/ folder)."""
    parts = rel.split("/")
    if "__MACOSX" in parts:
        return "under __MACOSX/"
    if any(p.startswith(".") for p in parts):  # .DS_Store, ._x.png (macOS resource forks), .git/...
        return "hidden"
    if parts[-1].lower() in JUNK_NAMES:
        return parts[-1]
    if Path(parts[-1]).suffix.lower() not in IMAGE_SUFFIXES:
        return "not an image"
    if len(parts) < 3 or parts[-3] not in SPLITS:
        return "outside train/<class>/ and test/<class>/"
    return None


def read_zip(path: Path) -> tuple[dict, dict]:
    """The arrays and facts (see `_read`) of an ImageFolder tree inside the zip at `path`."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
            return _read(names, zf.read, lambda n: f"{path}:{n}")
    except zipfile.BadZipFile as e:
        raise DataError(f"{path} is not a valid zip file ({e}): the download is truncated or corrupt; "
                        f"replace it") from None


def read_folder(path: Path) -> tuple[dict, dict]:
    """The arrays and facts (see `_read`) of an ImageFolder tree in the folder at `path`."""
    return _read(folder_files(path), lambda n: (path / n).read_bytes(), lambda n: str(path / n))


def folder_files(path: Path) -> list[str]:
    """Every file under `path`, '/'-separated and relative to it, following symbolic links (a class folder
    linked in from elsewhere holds images too); a link back to a folder already listed is not followed."""
    out, seen = [], set()
    for top, dirs, files in os.walk(path, followlinks=True):
        seen.add(os.path.realpath(top))
        dirs[:] = sorted(d for d in dirs if os.path.realpath(os.path.join(top, d)) not in seen)
        rel = Path(top).relative_to(path)
        out += [(rel / f).as_posix() for f in sorted(files) if os.path.isfile(os.path.join(top, f))]
    return out


def skipped_files(names: list[str]) -> tuple[int, list[str]]:
    """How many of `names` are not training images, and the note that says so (none where none is)."""
    skipped = Counter(why for why in map(skip_reason, names) if why)
    n = sum(skipped.values())
    if not n:
        return 0, []
    example = next(name for name in names if skip_reason(name))
    kinds = ", ".join(f"{count} {why}" for why, count in sorted(skipped.items()))
    what = "files that are not training images" if n > 1 else "file that is not a training image"
    return n, [f"skipped {n} {what} ({kinds}; e.g. {example})"]


def _read(names: list[str], read: Callable[[str], bytes], where: Callable[[str], str]) -> tuple[dict, dict]:
    """(arrays: train_x, train_y, test_x, test_y; facts: classes (label -> folder name), order (split ->
    permutation to the original order, or None), skipped_files, notes)."""
    import torch  # here, not at the top: the plan finds data (harness.run.sources) without torch
    images = {s: [] for s in SPLITS}
    for n in names:
        if not skip_reason(n):
            parts = n.split("/")
            images[parts[-3]].append((parts[-2], parts[-1], n))
    classes = _one_class_list(images, where("").rstrip(":/"))
    index = {c: i for i, c in enumerate(classes)}
    arrays, order = {}, {}
    for split in SPLITS:
        files = sorted(images[split])  # by class folder, then file name: the same order on every machine
        decoded = [_decode(_read_member(read, n, where(n)), where(n)) for _, _, n in files]
        _one_size(split, decoded, files, where)
        arrays[f"{split}_x"] = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).contiguous()
        arrays[f"{split}_y"] = torch.tensor([index[c] for c, _, _ in files], dtype=torch.int64)
        order[split] = original_order([f for _, f, _ in files])
    n, notes = skipped_files(names)
    return arrays, {"classes": classes, "order": order, "skipped_files": n, "notes": notes}


def _one_class_list(images: dict, root: str) -> list[str]:
    per_split = {s: {c for c, _, _ in images[s]} for s in SPLITS}
    if not per_split["train"] or not per_split["test"]:
        empty = " and ".join(s for s in SPLITS if not per_split[s])
        raise DataError(f"{root}: no images in {empty}/<class>/: the data must hold train/<class>/<image> "
                        f"and test/<class>/<image> files")
    if per_split["train"] != per_split["test"]:
        only = "; ".join(f"only in {a}: {', '.join(sorted(per_split[a] - per_split[b]))}"
                         for a, b in (("train", "test"), ("test", "train")) if per_split[a] - per_split[b])
        raise DataError(f"{root}: train/ and test/ have different class folders ({only}): both splits "
                        f"need the same class folders with images in each; add or remove the odd ones")
    return sorted(per_split["train"])


def _one_size(split: str, arrays: list[np.ndarray], files: list, where) -> None:
    first = arrays[0].shape
    odd = next((i for i, a in enumerate(arrays) if a.shape != first), None)
    if odd is not None:
        raise DataError(f"{split} images differ in size: {where(files[0][2])} is {_hwc(first)}, "
                        f"{where(files[odd][2])} is {_hwc(arrays[odd].shape)}; convert all images of "
                        f"the dataset to one size and mode")


def _hwc(shape) -> str:
    return f"{shape[0]}x{shape[1]} px with {shape[2]} channel{'s' if shape[2] != 1 else ''}"


def original_order(file_names: list[str]) -> np.ndarray | None:
    """The permutation that sorts a split by its numeric file names (`00042.png` -> 42), when every name is
    a distinct number (as in the CIFAR-10 PNG release, where it is the image's original index); else None."""
    stems = [Path(f).stem for f in file_names]
    if not all(s.isdigit() for s in stems) or len(set(map(int, stems))) < len(stems):
        return None
    return np.argsort(np.array([int(s) for s in stems]), kind="stable")


def _read_member(read, name: str, where: str) -> bytes:
    try:
        return read(name)
    except (zipfile.BadZipFile, OSError, EOFError) as e:  # a bad CRC or a cut-off member
        raise DataError(f"{where} cannot be read ({e}): the file is corrupt; replace it or delete "
                        f"it") from None


def _decode(blob: bytes, where: str) -> np.ndarray:
    """HWC uint8: grayscale stays one channel, every other mode becomes RGB. 16-bit grayscale keeps its
    high byte, as Pillow reads 16-bit colour (converted, it would clip to white); 32-bit integer and float
    images have no range to map from, and are refused."""
    from PIL import Image
    try:
        with Image.open(io.BytesIO(blob)) as im:
            mode = im.mode
            if mode in ("I", "F"):
                raise DataError(f"{where} is a {'32-bit integer' if mode == 'I' else 'floating-point'} image "
                                f"(mode {mode}), which has no 8-bit range: convert the images to 8-bit PNG")
            arr = np.asarray(im if mode in ("L", "RGB") or mode.startswith("I;16") else im.convert("RGB"))
    except DataError:
        raise
    except Exception as e:
        raise DataError(f"{where} is not a readable image ({e}): the file is corrupt; replace it or "
                        f"delete it") from None
    arr = (arr >> 8).astype(np.uint8) if arr.dtype.itemsize == 2 else arr
    return arr[:, :, None] if arr.ndim == 2 else arr


def idx_folder(folder: Path) -> list[Path] | None:
    """The four IDX files (IDX_FILES, each plain or .gz) in `folder`, or None where one is missing."""
    found = []
    for stem in IDX_FILES:
        hit = next((folder / f for f in (stem, stem + ".gz") if (folder / f).is_file()), None)
        if hit is None:
            return None
        found.append(hit)
    return found


def read_idx(files: list[Path]) -> tuple[dict, dict]:
    """The arrays of the four files `idx_folder` found, in the files' order; no facts to add."""
    import torch  # here, not at the top, as in `_read`
    def read(path: Path) -> np.ndarray:
        try:
            raw = path.read_bytes()
            raw = gzip.decompress(raw) if path.suffix == ".gz" else raw
            ndim = raw[3]
            dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
            data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        except (OSError, EOFError, IndexError, ValueError) as e:  # a cut-off gzip stream or header
            raise DataError(f"{path} is not a readable IDX file ({e}): it is truncated or corrupt; "
                            f"replace it") from None
        if raw[2] != 0x08 or data.size != int(np.prod(dims)):
            raise DataError(f"{path} is not a uint8 IDX file of shape {dims}: it is truncated or "
                            f"corrupt; replace it")
        return data.reshape(dims)
    tx, ty, vx, vy = (read(f) for f in files)
    return {"train_x": torch.from_numpy(tx.copy()).unsqueeze(1), "train_y": torch.from_numpy(ty.astype(np.int64)),
            "test_x": torch.from_numpy(vx.copy()).unsqueeze(1), "test_y": torch.from_numpy(vy.astype(np.int64))}, {}

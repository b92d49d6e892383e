"""Where datasets come from, and which one a claim runs on: cheap file-system checks, no decoding.

A dataset is named by a logical name (`cifar10`, `cifar100`, `fashion-mnist`, or any name bound to a
path with `--data-source NAME=PATH`). Sources, in order: a bound path (a .zip of an ImageFolder tree
with train/ and test/, such a folder, or a folder of IDX files); torchvision's files under the data
directory (downloaded there only where the network allows); for fashion-mnist, Debian's
`dataset-fashion-mnist` folder. A bound source that cannot be read is an error under every profile;
`resolve` replaces the wanted datasets by another only where none of them is bound or on disk, and says so.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..spec.config import ConfigError
from .formats import IDX_FILES, DataError, idx_folder

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
TORCHVISION = {"cifar10": "CIFAR10", "cifar100": "CIFAR100"}
TORCHVISION_FOLDERS = {"cifar10": "cifar-10-batches-py", "cifar100": "cifar-100-python"}
KNOWN = ("cifar10", "cifar100", "fashion-mnist")


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


def parse_bindings(texts) -> tuple[tuple[str, str], ...]:
    """NAME=PATH bindings (empty items skipped); a name bound twice is refused: one of the two would
    silently win."""
    bindings = tuple(parse_binding(t) for t in texts if t.strip())
    for i, (name, path) in enumerate(bindings):
        other = next((p for n, p in bindings[:i] if n == name), None)
        if other is not None:
            raise ConfigError(f"data source {name!r} is bound twice ({name}={other} and {name}={path}): bind "
                              f"each name once (--data-source or ADVHYP_DATA_SOURCES)")
    return bindings


def check_name(name: str, sources: Sources) -> str:
    if name not in KNOWN and sources.bound(name) is None:
        raise DataError(f"unknown dataset {name!r}: use one of {', '.join(KNOWN)}, or bind a name to a "
                        f"path with --data-source {name}=PATH")
    return name


@dataclass(frozen=True)
class Resolution:
    """The datasets a claim runs on here."""
    names: tuple[str, ...]
    substituted: bool = False  # none of the wanted datasets was at hand: `note` says what replaced what
    note: str = ""  # one line, for the results, the page and the terminal; "" unless substituted


def resolve(wanted: tuple[str, ...], sources: Sources, substitute: bool) -> Resolution:
    """Which of `wanted` to run on, or a DataError that names the value and the fix. Cheap: looks at
    files only (no decoding, no download, no cache writes).

    Under every profile each bound source must be readable. substitute=False: all of `wanted`, each
    bound, on disk or downloadable. substitute=True (profiles that run one dataset per claim): the first
    wanted one that is bound or on disk; only where none is, another dataset on disk (substituted=True,
    with a note); where nothing is on disk, the first wanted one that can be downloaded.
    """
    if not wanted:
        raise DataError("no dataset named: give at least one, e.g. --datasets cifar10")
    for n, p in sources.bindings:
        layout(n, Path(p).expanduser())
    for n in wanted:
        check_name(n, sources)
    if not substitute:
        missing = next((n for n in wanted if not reachable(n, sources) and not _downloadable(n, sources)), None)
        if missing:
            raise DataError(not_found(missing, sources))
        return Resolution(tuple(wanted))
    here = next((n for n in wanted if reachable(n, sources)), None)
    if here:
        return Resolution((here,))
    other = next((n for n in sources.names() if n not in wanted and reachable(n, sources)), None)
    if other:
        return Resolution((other,), True, f"ran on {other} in place of {', '.join(wanted)} (not bound, not "
                                          f"found under {sources.data_dir}): bind the real data with "
                                          f"--data-source {wanted[0]}=PATH")
    download = next((n for n in wanted if _downloadable(n, sources)), None)
    if download:
        return Resolution((download,))
    raise DataError(not_found(wanted[0], sources))


def reachable(name: str, sources: Sources) -> bool:
    """Whether `name` can be loaded without the network: a readable bound source, or files on disk."""
    path = sources.bound(name)
    if path is not None:
        try:
            return bool(layout(name, path))
        except DataError:
            return False
    if name in TORCHVISION:
        return (Path(sources.data_dir) / TORCHVISION_FOLDERS[name]).is_dir()
    if name == "fashion-mnist":
        return idx_folder(Path(sources.data_dir) / "fashion-mnist") is not None or \
            idx_folder(DEBIAN_FASHION_MNIST) is not None
    return False


def first_reachable(preferred: tuple[str, ...], sources: Sources) -> str | None:
    """The first of `preferred`, then of every name, that is reachable (tests' fixtures; planners call
    `resolve`, which refuses unreadable bindings and says when it substitutes)."""
    for name in tuple(dict.fromkeys(preferred + sources.names())):
        if reachable(name, sources):
            return name
    return None


def _downloadable(name: str, sources: Sources) -> bool:
    return name in TORCHVISION and sources.bound(name) is None and sources.allow_download


def layout(name: str, path: Path) -> str:
    """'zip', 'idx' or 'folder' for a bound path, or a DataError naming the path and the fix."""
    if not path.exists():
        raise DataError(f"data source {name}={path} does not exist: fix the path in --data-source "
                        f"or ADVHYP_DATA_SOURCES")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise DataError(f"data source {name}={path} cannot be read (permission denied): make it readable, "
                        f"or bind a readable copy with --data-source {name}=PATH")
    if path.is_file() and path.suffix.lower() == ".zip":
        if not zipfile.is_zipfile(path):
            raise DataError(f"data source {name}={path} is not a valid zip file: the download is truncated "
                            f"or corrupt; replace it")
        return "zip"
    if path.is_dir() and idx_folder(path):
        return "idx"
    if path.is_dir() and (path / "train").is_dir() and (path / "test").is_dir():
        return "folder"
    raise DataError(f"data source {name}={path} is not a .zip or folder of train/<class>/ and "
                    f"test/<class>/ images, nor a folder of IDX files ({', '.join(IDX_FILES)})")


def not_found(name: str, sources: Sources, why: str = "") -> str:
    """Where to put the files of a dataset that is neither bound nor on disk."""
    if name in TORCHVISION:
        root, folder = Path(sources.data_dir), TORCHVISION_FOLDERS[name]
        return (f"{name} not found under {root} (no {folder}/ there{why}): put torchvision's {name} files "
                f"({folder}/) under --data-dir, or bind a copy with --data-source {name}=PATH (a .zip or "
                f"folder of train/<class>/ and test/<class>/ images)")
    if name == "fashion-mnist":
        return (f"fashion-mnist not found in {Path(sources.data_dir) / 'fashion-mnist'} or "
                f"{DEBIAN_FASHION_MNIST}: run `apt-get install dataset-fashion-mnist`, or pass "
                f"--data-source fashion-mnist=FOLDER_WITH_IDX_FILES")
    return (f"unknown dataset {name!r}: use one of {', '.join(KNOWN)}, or bind a name to a "
            f"path with --data-source {name}=PATH")

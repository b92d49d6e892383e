"""Every bad input of issue 13 stops with one clear line naming the value and the fix: no traceback, no
INTERNALERROR, the exit status docs/bad-input.md gives. Each row runs as a real subprocess: `pytest
hypotheses/ --collect-only` where collection meets the input, `pytest hypotheses/ -n 2` where only a real
session does (stopped at its start: printed once, not per worker), a short session where the data must be
decoded, `python -m harness.report` for a bad results.json."""
from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from harness.chaos import clean_environment
from PIL import Image

from harness.spec import results

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "bad-input.md"
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}  # the same answer on a machine with GPUs


@dataclass(frozen=True)
class Bad:
    shown: str  # the input, as the first column of docs/bad-input.md shows it
    args: tuple[str, ...]  # "{tmp}" and "{data}" are filled in with the test's folder and its prepared file
    message: str  # the line's text (same placeholders)
    status: int  # the exit status
    run: str = "collect"  # collect | xdist | session | report (see the module's docstring)
    data: str = ""  # what to prepare first: a name of PREPARE
    env: dict = field(default_factory=dict)
    once: bool = True  # the message is printed exactly once (a session's failure repeats it in pytest's summary)


def _png(h: int, w: int, value: int = 0) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 3), value, np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _zip(path: Path, classes=("a", "b"), test_classes=None, size=(8, 8), test_size=None, broken="") -> Path:
    """An ImageFolder zip, 2 images per training class, 1 per test class; `broken` replaces that entry by
    the first 40 bytes of a PNG (a real image that fails to decode)."""
    with zipfile.ZipFile(path, "w") as zf:
        for split, names, (h, w), n in (("train", classes, size, 2),
                                        ("test", test_classes or classes, test_size or size, 1)):
            for k, cls in enumerate(names):
                for i in range(n):
                    rel = f"{split}/{cls}/{i}.png"
                    zf.writestr(rel, _png(h, w, 10 * k + i)[:40] if rel == broken else _png(h, w, 10 * k + i))
    return path


def _truncated_zip(path: Path) -> Path:
    blob = _zip(path).read_bytes()
    path.write_bytes(blob[:len(blob) // 2])  # the download cut short: no central directory
    return path


def _binary(path: Path) -> Path:
    path.write_bytes(bytes(range(256)) * 4)
    return path


def _results(path: Path, edit=None) -> Path:
    doc = results.new({"profile": "smoke"})
    if edit:
        edit(doc)
    path.write_text(json.dumps(doc))
    return path


PREPARE = {
    "truncated zip": lambda tmp: _truncated_zip(tmp / "cifar10.zip"),
    "mismatched classes": lambda tmp: _zip(tmp / "toy.zip", ("a", "b", "c"), test_classes=("a", "b", "d")),
    "1x1 images": lambda tmp: _zip(tmp / "toy.zip", size=(1, 1)),
    "test resolution": lambda tmp: _zip(tmp / "toy.zip", test_size=(16, 16)),
    "one class": lambda tmp: _zip(tmp / "toy.zip", ("a",)),
    "corrupt image": lambda tmp: _zip(tmp / "toy.zip", broken="train/b/1.png"),
    "binary results": lambda tmp: _binary(tmp / "results.json"),
    "edited results": lambda tmp: _results(tmp / "results.json", lambda d: d.update(warnings=[3])),
}
MOUNTS = {  # what to prepare on a tmpfs: (size in MB, read-only, filled)
    "read-only cache": (1, True, False), "read-only reports": (1, True, False),
    "full cache": (2, False, True), "full reports": (2, False, True),
}

SESSION = ("hypotheses/test_control_seed_null.py", "-p", "no:xdist", "--seeds=0,1", "--epochs=1", "--device=cpu")
CASES = [
    # options (collection checks them once, on the controller)
    Bad("--profile nope", ("--profile", "nope"), "unknown profile 'nope': choose one of smoke, paper, confirm", 4),
    Bad("--eps 0", ("--eps", "0"), "eps 0 is out of range: eps is in 1/255 units and must be in (0, 255]", 4),
    Bad("--eps 256", ("--eps", "256"), "eps 256 is out of range", 4),
    Bad("--eps one", ("--eps", "one"), "--eps 'one' is not a comma-separated list of numbers", 4),
    Bad("--eps 1,1", ("--eps", "1,1"), "--eps '1,1' repeats a radius: list each once, e.g. --eps 1,2,4,8", 4),
    Bad("--seeds 3", ("--seeds", "3"),
        "seeds [3]: a comparison across seeds needs at least 2 distinct seeds per variant, e.g. --seeds 0,1,2", 4),
    Bad("--seeds 1,1", ("--seeds", "1,1"), "seeds [1, 1] repeat a seed: list each once", 4),
    Bad("--seeds ''", ("--seeds", ""), "--seeds '' is empty: give a comma-separated list, e.g. --seeds 0,1,2", 4),
    Bad("--seeds 0,,1", ("--seeds", "0,,1"), "--seeds '0,,1' has an empty item", 4),
    Bad("--seeds 0,99999999999999999999", ("--seeds", "0,99999999999999999999"),
        "seed 99999999999999999999 is out of range: seeds are whole numbers in [0, 2147483647]", 4),
    Bad("--epochs 0", ("--epochs", "0"), "epochs 0 must be at least 1", 4),
    Bad("--epochs 1,2", ("--epochs", "1,2"),
        "--epochs '1,2' gives 2 values: it takes one epoch count, e.g. --epochs 10", 4),
    Bad("--datasets ,", ("--datasets", ","), "--datasets ',' has an empty item: give a comma-separated list", 4),
    Bad("--datasets imagenet7", ("--datasets", "imagenet7"),
        "unknown dataset 'imagenet7': use one of cifar10, cifar100, fashion-mnist", 4),
    Bad("--alpha 5", ("--alpha", "5"), "--alpha '5' must be a number in (0, 0.5), e.g. 0.05", 4),
    Bad("--alpha 0.5", ("--alpha", "0.5"), "--alpha '0.5' must be a number in (0, 0.5), e.g. 0.05", 4),
    Bad("--precision fp8", ("--precision", "fp8"), "unknown precision 'fp8': choose one of auto, bf16, fp32", 4),
    Bad("--compile maybe", ("--compile", "maybe"), "--compile 'maybe': use auto, on or off", 4),
    Bad("--executor cloud", ("--executor", "cloud"), "--executor 'cloud': use local, collect or slurm", 4),
    Bad("--attack-shapes fixed", ("--attack-shapes", "fixed"), "--attack-shapes 'fixed': use exact or buckets", 4),
    Bad("--device tpu", ("--device", "tpu"), "--device 'tpu' is not a device: use cpu, cuda or cuda:N", 4),
    Bad("--device cuda (no GPU)", ("--device", "cuda"),
        "--device 'cuda' asked for, but no CUDA GPU(s) are visible: use --device cpu", 4, env=NO_GPU),
    Bad("--device cuda (no GPU), -n 2", ("--device", "cuda"),
        "--device 'cuda' asked for, but no CUDA GPU(s) are visible", 4, run="xdist", env=NO_GPU),
    # data sources that cannot be read (checked at the start, once)
    Bad("--data-source cifar10", ("--data-source", "cifar10"), "--data-source 'cifar10' is not NAME=PATH", 4),
    Bad("--data-source cifar10=/nonexistent.zip", ("--data-source", "cifar10={tmp}/nonexistent.zip"),
        "data source cifar10={tmp}/nonexistent.zip does not exist: fix the path in --data-source", 4),
    Bad("--data-source cifar10=/nonexistent.zip, -n 2", ("--data-source", "cifar10={tmp}/nonexistent.zip"),
        "data source cifar10={tmp}/nonexistent.zip does not exist", 4, run="xdist"),
    Bad("--data-source cifar10=TRUNCATED.zip", ("--data-source", "cifar10={data}"),
        "data source cifar10={data} is not a valid zip file: the download is truncated or corrupt", 4,
        data="truncated zip"),
    # data that makes no sense (found when decoded: the session stops at its first test)
    Bad("train/ and test/ with other classes", (*SESSION, "--data-source", "cifar10={data}"),
        "{data}: train/ and test/ have different class folders (only in train: c; only in test: d)", 2,
        run="session", data="mismatched classes", once=False),
    Bad("1x1-pixel images", (*SESSION, "--data-source", "cifar10={data}"),
        "{data}: images are 1x1 px with 3 channels, below 8 px per side", 2, run="session", data="1x1 images",
        once=False),
    Bad("a test split at another resolution", (*SESSION, "--data-source", "cifar10={data}"),
        "{data}: test images are 16x16 px with 3 channels but training images are 8x8 px", 2, run="session",
        data="test resolution", once=False),
    Bad("a single class", (*SESSION, "--data-source", "cifar10={data}"),
        "{data}: only one class ('a') in the training split", 2, run="session", data="one class", once=False),
    Bad("an image that does not decode", (*SESSION, "--data-source", "cifar10={data}"),
        "{data}:train/b/1.png is not a readable image (", 2, run="session", data="corrupt image", once=False),
    # folders that cannot be written (checked at the start, before anything runs)
    Bad("--cache-dir READ_ONLY", ("--cache-dir", "{data}/cache"),
        "cannot write {data}/cache (the file system is read-only): point --cache-dir at a writable folder", 4,
        data="read-only cache"),
    Bad("--reports-dir READ_ONLY", ("--reports-dir", "{data}/reports"),
        "cannot write {data}/reports (the file system is read-only): point --reports-dir at a writable folder",
        4, data="read-only reports"),
    Bad("--cache-dir FULL", ("--cache-dir", "{data}/cache"),
        "cannot write {data}/cache (the disk is full): free space in {data} or point --cache-dir at another "
        "folder", 4, data="full cache"),
    Bad("--reports-dir FULL", ("--reports-dir", "{data}/reports"),
        "cannot write {data}/reports (the disk is full): free space in {data} or point --reports-dir at another "
        "folder", 4, data="full reports"),
    # a bad results.json
    Bad("python -m harness.report BINARY", ("{data}",),
        "harness.report: {data} is not text (a binary file): pass the results.json a pytest run wrote", 2,
        run="report", data="binary results"),
    Bad("python -m harness.report EDITED", ("{data}",), "harness.report: {data}: warnings[0] = 3 must be a str", 2,
        run="report", data="edited results"),
]


def _command(case: Bad, tmp: Path, fill: dict) -> list[str]:
    args = [a.format(**fill) for a in case.args]
    if case.run == "report":
        return [sys.executable, "-m", "harness.report", *args]
    where = [f"--cache-dir={tmp / 'cache'}", f"--reports-dir={tmp / 'reports'}"]  # an arg given later wins
    common = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *where]
    if case.run == "collect":
        return [*common, "hypotheses/", "--collect-only", *args]
    if case.run == "xdist":
        return [*common, "hypotheses/", "-n", "2", *args]
    return [*common, *args]


@pytest.mark.parametrize("case", CASES, ids=[c.shown for c in CASES])
def test_bad_input_is_one_clear_line(case, tmp_path, tmpfs):
    fill = {"tmp": tmp_path, "data": ""}
    if case.data in PREPARE:
        fill["data"] = PREPARE[case.data](tmp_path)
    elif case.data in MOUNTS:
        size, read_only, full = MOUNTS[case.data]
        fill["data"] = tmpfs(size, read_only=read_only, full=full)
    proc = subprocess.run(_command(case, tmp_path, fill), cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**clean_environment(), "OMP_NUM_THREADS": "1", **case.env})
    out = proc.stdout + proc.stderr
    message = case.message.format(**fill)
    assert proc.returncode == case.status, out[-3000:]
    assert re.search(f"^(ERROR: )?{re.escape(message)}", out, re.M), out[-3000:]  # a line of its own
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    if case.once:
        assert out.count(message) == 1, out[-3000:]
    if case.run == "session":  # the session stopped at its first test, and its results say why
        doc = results.load(next((tmp_path / "reports").iterdir()))
        assert doc.partial is True and message in doc.errors[0].message


def test_docs_list_every_bad_input_with_its_message_and_exit_status():
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        if len(cells) >= 3 and line.startswith("|"):
            rows[cells[0]] = cells
    for case in CASES:
        assert case.shown in rows, f"docs/bad-input.md has no row for {case.shown!r}"
        shown = case.message.replace("{tmp}", "").replace("{data}", "PATH")  # as the docs write the paths
        assert shown in rows[case.shown][1], (case.shown, rows[case.shown][1])
        assert rows[case.shown][2] == str(case.status), case.shown

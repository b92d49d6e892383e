"""Every bad input of issues 13 and 23 gets one clear line naming the value and the fix: no traceback, no
INTERNALERROR, the exit status docs/bad-input.md gives. Each row runs as a real subprocess: `pytest
hypotheses/ --collect-only` where collection meets the input, `pytest hypotheses/ -n 2` where only a real
session does (stopped at its start: printed once, not per worker), a short session where the data must be
decoded or the night runs on, a hypothesis module written with a bad claim, `python -m harness.report` or
`python -m harness.report.summary` for a bad results.json."""
from __future__ import annotations

import functools
import io
import json
import os
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

from harness.report import drift
from harness.spec import results
from helpers import sample_case

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "bad-input.md"
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}  # the same answer on a machine with GPUs


@dataclass(frozen=True)
class Bad:
    shown: str  # the input, as the first column of docs/bad-input.md shows it
    args: tuple[str, ...]  # "{tmp}" and "{data}" are filled in with the test's folder and its prepared file
    message: str  # the line's text (same placeholders)
    status: int  # the exit status
    run: str = "collect"  # collect | xdist | session | claim | claim-xdist | report | summary (see _command)
    data: str = ""  # what to prepare first: a name of PREPARE or MOUNTS, or "tiny" (tiny_images: good data)
    env: dict = field(default_factory=dict)  # values filled in as args are
    once: bool = True  # the message is printed exactly once (a session's failure repeats it in pytest's summary)
    recorded: str = ""  # a session's results.json: "error" (partial, the first error says it) or "warning"


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
    doc["drift"] = drift.drift(results.parse(doc), results.parse(doc))
    if edit:
        edit(doc)
    path.write_text(json.dumps(doc))
    return path


def _file(path: Path) -> Path:
    path.write_text("not a folder\n")
    return path


def _32_bit_image(path: Path) -> Path:
    _zip(path)
    buf = io.BytesIO()
    Image.fromarray(np.full((8, 8), 70000, np.int32)).save(buf, format="TIFF")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr("train/a/2.tif", buf.getvalue())
    return path


def _sbatch_refusing(folder: Path) -> Path:
    """A folder holding an `sbatch` that refuses every job as SLURM does a wrong partition."""
    folder.mkdir()
    (folder / "sbatch").write_text("#!/bin/sh\necho 'sbatch: error: invalid partition specified: nope' >&2\n"
                                   "echo 'sbatch: error: Batch job submission failed: Invalid partition name "
                                   "specified' >&2\nexit 1\n")
    (folder / "sbatch").chmod(0o755)
    return folder


CLAIM = {"statement": '"Max beats Avg"', "better": '"Max"', "worse": '"Avg"', "datasets": '("cifar10",)',
         "epochs": "10", "factor": '"model_kwargs.pooling"',
         "variants": '{"Max": Variant("resnet18", "baseline"), '
                     '"Avg": Variant("resnet18", "baseline", model_kwargs={"pooling": "avg"})}'}


def _claim(tmp: Path, **fields: str) -> Path:
    """hypotheses/test_claim.py under tmp: H2's claim with `fields` (source text) in place of its own."""
    module = tmp / "hypotheses" / "test_claim.py"
    module.parent.mkdir()
    args = ", ".join(f"{k}={v}" for k, v in {**CLAIM, **fields}.items())
    module.write_text(f"from harness import Claim, Variant\n\nCLAIM = Claim({args})\n\n\n"
                      f"def test_claim(suite, dataset, eps):\n"
                      f"    suite.conclude(suite.evaluate(CLAIM, dataset, eps))\n")
    return module


PREPARE = {
    "truncated zip": lambda tmp: _truncated_zip(tmp / "cifar10.zip"),
    "mismatched classes": lambda tmp: _zip(tmp / "toy.zip", ("a", "b", "c"), test_classes=("a", "b", "d")),
    "1x1 images": lambda tmp: _zip(tmp / "toy.zip", size=(1, 1)),
    "test resolution": lambda tmp: _zip(tmp / "toy.zip", test_size=(16, 16)),
    "one class": lambda tmp: _zip(tmp / "toy.zip", ("a",)),
    "corrupt image": lambda tmp: _zip(tmp / "toy.zip", broken="train/b/1.png"),
    "binary results": lambda tmp: _binary(tmp / "results.json"),
    "edited results": lambda tmp: _results(tmp / "results.json", lambda d: d.update(warnings=[3])),
    "edited drift": lambda tmp: _results(tmp / "results.json", lambda d: d["drift"].update(verdict_changes="none")),
    "edited claimed": lambda tmp: _results(tmp / "results.json", lambda d: d.update(
        cases=[{**sample_case().to_dict(), "claimed": {"direction": 3}}])),  # checked field by field
    "edited baseline": lambda tmp: _results(tmp / "results.json", lambda d: d.update(cases=[{"module": "x"}])),
    "a file": lambda tmp: _file(tmp / "file"),
    "32-bit image": lambda tmp: _32_bit_image(tmp / "toy.zip"),
    "refusing sbatch": lambda tmp: _sbatch_refusing(tmp / "bin"),
    **{f"claim {k}": functools.partial(_claim, **{k.split("=")[0]: k.split("=", 1)[1]}) for k in (
        "epochs=0", "eps=(0,)", "eps=(-1,)", "eps=(float('nan'),)", "deciding_eps=3", 'datasets="cifar10"',
        'worse="Max"', 'worse="Average"', 'factor="model_kwargs.poling"', 'expect="worse"', 'score="auc"',
        'variants={"Max": Variant("resnet18", "baseline", model_kwargs="max"), "Avg": Variant("resnet18", '
        '"baseline")}')},
}
MOUNTS = {  # what to prepare on a tmpfs: (size in MB, read-only, filled)
    "read-only cache": (1, True, False), "read-only reports": (1, True, False),
    "read-only tensorboard": (1, True, False),
    "full cache": (2, False, True), "full reports": (2, False, True),
}

SESSION = ("hypotheses/test_control_seed_null.py", "-p", "no:xdist", "--seeds=0,1", "--epochs=1", "--device=cpu")
CLAIMED = "hypotheses/test_claim.py: "  # how a bad claim's line starts: the module, as pytest names it
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
        run="session", data="mismatched classes", once=False, recorded="error"),
    Bad("1x1-pixel images", (*SESSION, "--data-source", "cifar10={data}"),
        "{data}: images are 1x1 px with 3 channels, below 8 px per side", 2, run="session", data="1x1 images",
        once=False, recorded="error"),
    Bad("a test split at another resolution", (*SESSION, "--data-source", "cifar10={data}"),
        "{data}: test images are 16x16 px with 3 channels but training images are 8x8 px", 2, run="session",
        data="test resolution", once=False, recorded="error"),
    Bad("a single class", (*SESSION, "--data-source", "cifar10={data}"),
        "{data}: only one class ('a') in the training split", 2, run="session", data="one class", once=False,
        recorded="error"),
    Bad("an image that does not decode", (*SESSION, "--data-source", "cifar10={data}"),
        "{data}:train/b/1.png is not a readable image (", 2, run="session", data="corrupt image", once=False,
        recorded="error"),
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
    Bad("--tensorboard READ_ONLY", ("--tensorboard", "{data}/tb"),
        "cannot write {data}/tb (the file system is read-only): point --tensorboard at a writable folder", 4,
        data="read-only tensorboard"),
    Bad("--reports-dir FULL", ("--reports-dir", "{data}/reports"),
        "cannot write {data}/reports (the disk is full): free space in {data} or point --reports-dir at another "
        "folder", 4, data="full reports"),
    # a bad results.json
    Bad("python -m harness.report BINARY", ("{data}",),
        "harness.report: {data} is not text (a binary file): pass the results.json a pytest run wrote", 2,
        run="report", data="binary results"),
    Bad("python -m harness.report EDITED", ("{data}",), "harness.report: {data}: warnings[0] = 3 must be a str", 2,
        run="report", data="edited results"),
    # issue 23: options and their environment variables
    Bad("ADVHYP_SEEDS=3", (), "seeds [3]: a comparison across seeds needs at least 2 distinct seeds", 4,
        env={"ADVHYP_SEEDS": "3"}),
    Bad("ADVHYP_EPOCHS=0", (), "epochs 0 must be at least 1", 4, env={"ADVHYP_EPOCHS": "0"}),
    Bad("ADVHYP_EPS=0", (), "eps 0 is out of range: eps is in 1/255 units", 4, env={"ADVHYP_EPS": "0"}),
    Bad("ADVHYP_DATASETS=imagenet7", (), "unknown dataset 'imagenet7'", 4, env={"ADVHYP_DATASETS": "imagenet7"}),
    Bad("ADVHYP_ALLOW_REDUCED=maybe", (), "ADVHYP_ALLOW_REDUCED='maybe': use 1 (on, as --allow-reduced) or 0 (off)",
        4, env={"ADVHYP_ALLOW_REDUCED": "maybe"}),
    Bad("--datasets cifar10,cifar10", ("--datasets", "cifar10,cifar10"),
        "--datasets 'cifar10,cifar10' repeats a dataset: list each once", 4),
    Bad("--data-source cifar10=A --data-source cifar10=B", ("--data-source", "cifar10={tmp}/a.zip", "--data-source",
                                                            "cifar10={tmp}/b.zip"),
        "data source 'cifar10' is bound twice (cifar10={tmp}/a.zip and cifar10={tmp}/b.zip): bind each name once", 4),
    *(Bad(f"{flag} ''", (flag, ""), f"{flag} '' is empty: give a path", 4)
      for flag in ("--cache-dir", "--reports-dir", "--data-dir", "--baseline")),
    Bad("--reports-dir /proc/nope", ("--reports-dir", "/proc/nope"),
        "cannot write /proc/nope (/proc is on a virtual file system, which holds no files): point --reports-dir at a "
        "folder on a disk", 4),
    Bad("--cache-dir FILE", ("--cache-dir", "{data}/cache"),
        "cannot write {data}/cache ({data} is a file, not a folder): point --cache-dir at a folder", 4, data="a file"),
    Bad("--baseline /nonexistent.json", ("--baseline", "{tmp}/nonexistent.json"),
        "--baseline {tmp}/nonexistent.json does not exist: pass the results.json of an earlier session", 4),
    # issue 23: the night runs on without drift, with the tests' status and one line about the baseline
    Bad("--baseline EDITED", (*SESSION, "--data-source", "cifar10={tiny}", "--baseline", "{data}"),
        "advhyp warning: baseline not compared: --baseline {data}: cases[0] lacks field 'nodeid'; drift is not "
        "reported this session", 0, run="session", data="edited baseline", recorded="warning"),
    # issue 23: data
    Bad("a 32-bit integer image", (*SESSION, "--data-source", "cifar10={data}"),
        "{data}:train/a/2.tif is a 32-bit integer image (mode I), which has no 8-bit range: convert the images to "
        "8-bit PNG", 2, run="session", data="32-bit image", once=False, recorded="error"),
    # issue 23: a refused SLURM submission (an sbatch that refuses, as a wrong partition gets)
    Bad("--executor slurm, submission refused", (*SESSION, "--data-source", "cifar10={tiny}", "--executor", "slurm",
                                                 "--slurm-partition", "nope", "--slurm-gpus", "0"),
        "SLURM refused the job array: sbatch: error: invalid partition specified: nope", 2, run="session",
        data="refusing sbatch", env={"PATH": "{data}:" + os.environ.get("PATH", "")}, recorded="error"),
    # issue 23: a hypothesis module whose claim is malformed (one line at collection, naming the module)
    Bad("epochs=0", (), CLAIMED + "epochs=0 must be a whole number of at least 1", 4, run="claim",
        data="claim epochs=0"),
    Bad("epochs=0, -n 2", (), CLAIMED + "epochs=0 must be a whole number of at least 1", 4, run="claim-xdist",
        data="claim epochs=0"),
    *(Bad(f"eps={e}", (), CLAIMED + f"eps {shown} is out of range: a claim's eps are L-inf radii in 1/255 units, "
          f"in (0, 255]", 4, run="claim", data=f"claim eps={e}")
      for e, shown in (("(0,)", "0"), ("(-1,)", "-1"), ("(float('nan'),)", "nan"))),
    Bad("deciding_eps=3", (), CLAIMED + "deciding_eps=3 is not one of eps=(1.0, 2.0, 4.0, 8.0): the deciding case "
        "must be one of the claim's cases", 4, run="claim", data="claim deciding_eps=3"),
    Bad('datasets="cifar10"', (), CLAIMED + "datasets='cifar10' must be a tuple (a bare string is read letter by "
        "letter), e.g. datasets=('cifar10',)", 4, run="claim", data='claim datasets="cifar10"'),
    Bad("better == worse", (), CLAIMED + "better and worse both name 'Max': name the two variants compared", 4,
        run="claim", data='claim worse="Max"'),
    Bad("worse names no variant", (), CLAIMED + "claim names variant 'Average', but the variants are ['Avg', 'Max']",
        4, run="claim", data='claim worse="Average"'),
    Bad("factor names no setting", (), CLAIMED + "factor 'model_kwargs.poling' names no setting of the arms", 4,
        run="claim", data='claim factor="model_kwargs.poling"'),
    Bad('expect="worse"', (), CLAIMED + "expect='worse': use one of 'better', 'equivalent', 'null', 'masked'", 4,
        run="claim", data='claim expect="worse"'),
    Bad('score="auc"', (), CLAIMED + "Max beats Avg: score 'auc' is not one of", 4, run="claim",
        data='claim score="auc"'),
    Bad('Variant(model_kwargs="max")', (), CLAIMED + "Variant model_kwargs='max' must be a dict", 4, run="claim",
        data=next(k for k in PREPARE if "model_kwargs=" in k)),
    # issue 23: a results.json's drift, and the summary's own options
    Bad("python -m harness.report EDITED drift", ("{data}",),
        "harness.report: {data}: drift.verdict_changes must be a list", 2, run="report", data="edited drift"),
    Bad("python -m harness.report EDITED claimed", ("{data}",),
        "harness.report: {data}: cases[0].claimed.direction = 3 must be a str", 2, run="report", data="edited claimed"),
    Bad("python -m harness.report.summary EDITED drift", ("{data}",),
        "harness.report.summary: {data}: drift.verdict_changes must be a list", 2, run="summary", data="edited drift"),
    Bad("python -m harness.report.summary --wall-seconds nan", ("{data}", "--wall-seconds", "nan"),
        "python -m harness.report.summary: error: argument --wall-seconds: 'nan' is not a number of seconds >= 0", 2,
        run="summary", data="edited results"),
]


def _command(case: Bad, tmp: Path, fill: dict) -> list[str]:
    args = [a.format(**fill) for a in case.args]
    if case.run in ("report", "summary"):
        return [sys.executable, "-m", "harness.report" + (".summary" if case.run == "summary" else ""), *args]
    where = [f"--cache-dir={tmp / 'cache'}", f"--reports-dir={tmp / 'reports'}"]  # an arg given later wins
    common = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *where]
    if case.run == "collect":
        return [*common, "hypotheses/", "--collect-only", *args]
    if case.run == "xdist":
        return [*common, "hypotheses/", "-n", "2", *args]
    if case.run.startswith("claim"):  # the module's folder is the rootdir: pytest names it hypotheses/...
        xdist = ["-n", "2"] if case.run == "claim-xdist" else ["--collect-only"]
        return [*common, "-p", "harness.plugin", "--rootdir", str(tmp), str(fill["data"]), *xdist, *args]
    return [*common, *args]


@pytest.mark.parametrize("case", CASES, ids=[c.shown for c in CASES])
def test_bad_input_is_one_clear_line(case, tmp_path, tmpfs, request):
    fill = {"tmp": tmp_path, "data": "", "tiny": ""}
    if case.data in PREPARE:
        fill["data"] = PREPARE[case.data](tmp_path)
    elif case.data in MOUNTS:
        size, read_only, full = MOUNTS[case.data]
        fill["data"] = tmpfs(size, read_only=read_only, full=full)
    if "{tiny}" in "".join(case.args):
        fill["tiny"] = request.getfixturevalue("tiny_images")
    env = {k: v.format(**fill) for k, v in case.env.items()}
    proc = subprocess.run(_command(case, tmp_path, fill), cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env={**clean_environment(), "OMP_NUM_THREADS": "1", **env})
    out = proc.stdout + proc.stderr
    message = case.message.format(**fill)
    assert proc.returncode == case.status, out[-3000:]
    # a line of its own (pytest prints a usage error after "ERROR: ", a pytest.exit's reason after "! ...Exit: ")
    assert re.search(rf"^(ERROR: |!+ _pytest\.outcomes\.Exit: advhyp: )?{re.escape(message)}", out, re.M), out[-3000:]
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-3000:]
    if case.once:
        assert out.count(message) == 1, out[-3000:]
    if case.recorded:  # the session's results.json says what happened, and the page was written
        folder = next((tmp_path / "reports").iterdir())
        doc = results.load(folder)
        assert (folder / "index.html").exists()
        if case.recorded == "error":  # stopped at its first test (or before it)
            assert doc.partial is True and message in doc.errors[0].message
        else:  # the night ran to its end
            assert doc.partial is False and doc.session["exit_status"] == case.status
            assert any(message.removeprefix("advhyp warning: ") == w for w in doc.warnings), doc.warnings


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

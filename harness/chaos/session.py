"""A real `pytest hypotheses/...` process on the smoke profile, which the chaos tool and the tests signal,
starve or watch; and FILLER, a plugin that fills the reports folder's disk in the middle of a session."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from ..spec import results
from . import folders
from .worker import ROOT, default_sigint

HYPOTHESIS = "hypotheses/test_control_seed_null.py"  # 2 variants x 2 seeds = 4 runs, one test case
HANG = 600  # seconds before a session counts as hung: a guard for a shared, loaded machine, not a speed check
EPOCH_LINE = re.compile(r"\] ([0-9a-f]{8}) \S+ epoch (\d+)/(\d+) ")  # the executor's progress line


class Session:
    """One `pytest hypotheses/...` process on the smoke profile, 2 epochs, seeds 0 and 1, with its cache and
    reports folders in `tmp` unless `cache` or `reports` say otherwise."""

    def __init__(self, tmp: Path, images: Path, *extra: str, own_group: bool = False, env: dict | None = None,
                 cache: Path | None = None, reports: Path | None = None):
        self.reports = reports or tmp / "reports"
        self.before = set(self.reports.iterdir()) if self.reports.exists() else set()
        self._folder: Path | None = None
        self.own_group = own_group
        cmd = [sys.executable, "-m", "pytest", HYPOTHESIS, "-q", "-p", "no:cacheprovider", "--epochs=2",
               "--seeds=0,1", f"--cache-dir={cache or tmp / 'cache'}", f"--reports-dir={self.reports}",
               f"--data-source=cifar10={images}", "--device=cpu", *extra]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**clean_environment(), "OMP_NUM_THREADS": "1", **(env or {})},
                                     preexec_fn=default_sigint,
                                     start_new_session=own_group)  # a group of its own, as a terminal job

    @property
    def folder(self) -> Path | None:
        """The report folder this session made (found once it exists; sessions here run one at a time)."""
        if self._folder is None and self.reports.exists():
            self._folder = next(iter(set(self.reports.iterdir()) - self.before), None)
        return self._folder

    def epochs(self) -> list[tuple[str, int]]:
        log = self.folder / "progress.log" if self.folder else None
        text = log.read_text() if log and log.exists() else ""
        return [(m[1], int(m[2])) for m in EPOCH_LINE.finditer(text)]

    def wait_until(self, condition, timeout: float = HANG) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            assert self.proc.poll() is None, f"pytest ended early:\n{self.proc.stdout.read()[-3000:]}"
            if time.monotonic() > deadline:
                self.kill()
                raise AssertionError("timed out waiting for the run to progress")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL the session (with its xdist workers when it has a group of its own): no session is left
        training after the test gave up on it."""
        os.killpg(self.proc.pid, signal.SIGKILL) if self.own_group else self.proc.kill()

    def kill_training_worker(self) -> int | None:
        """SIGKILL (what the out-of-memory killer sends) the xdist worker that holds a run's lock, that is
        trains it; returns its process id, or None where no worker holds one now."""
        for pid in _children(self.proc.pid):
            try:
                held = [os.readlink(fd) for fd in Path(f"/proc/{pid}/fd").iterdir()]
            except OSError:  # it ended meanwhile
                continue
            if any(f.endswith(".lock") and "/runs/" in f for f in held):
                os.kill(pid, signal.SIGKILL)
                return pid
        return None

    def signal(self, *sigs: int, gap: float = 0.3) -> None:
        """Send `sigs` to the whole group (a terminal's Ctrl-C reaches the xdist workers too), `gap` s apart."""
        for i, sig in enumerate(sigs):
            time.sleep(gap if i else 0)
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:  # all gone already
                return

    def finish(self) -> int:
        """Wait for the end; returns the exit status, and keeps the terminal's text in `output`."""
        try:
            self.output, _ = self.proc.communicate(timeout=HANG)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.communicate()
            raise
        return self.proc.returncode

    def end(self, sig: int | None = None, group: bool = False) -> tuple[int, results.Results]:
        if sig is not None:  # a terminal's Ctrl-C reaches the whole group: the xdist workers too
            os.killpg(self.proc.pid, sig) if group else self.proc.send_signal(sig)
        return self.finish(), results.load(self.folder)  # load validates against the schema


def _children(pid: int) -> list[int]:
    """The process ids whose parent is `pid` (from /proc: Linux)."""
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return out


def clean_environment() -> dict:
    """os.environ without what an outer `pytest -n N` set for its own workers (PYTEST_XDIST_WORKER, ...):
    a session started from a test is a controller of its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT_TEST"))}


def plugin_env(folder: Path, name: str, text: str) -> dict:
    """Write plugin module `name` (source `text`) into `folder`; returns the environment under which a
    session started with `-p name` finds it."""
    (Path(folder) / f"{name}.py").write_text(text)
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))}


# Loaded into a session with -p (see plugin_env; the folder to fill in ADVHYP_FILL): takes every
# free block of that file system just before the controller first writes results.json (the first
# hypothesis test's first report), as another job filling the disk would.
FILLER = """
import os, pathlib
import pytest
from harness.chaos.folders import fill

FILL = pathlib.Path(os.environ["ADVHYP_FILL"])
TO_FILL = []


def pytest_configure(config):
    if not hasattr(config, "workerinput"):  # the controller
        TO_FILL.append(True)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_logreport(report):
    if not TO_FILL:
        return
    TO_FILL.clear()  # once
    fill(FILL)
"""


# ---- faults aimed at sessions (target: a steps.Target; the sessions' reports go to <root>/reports) -----
def _session(t, *extra: str, reports: Path | None = None, env: dict | None = None) -> Session:
    return Session(t.root / "sessions", t.data, "-n", "2", *extra, own_group=True, env=env, cache=t.cache,
                   reports=reports or t.root / "reports")


def _kept(t, s: Session, ok: bool, note: str) -> str:
    """The note, naming the file that keeps the session's terminal output where the outcome was wrong."""
    if ok:
        return note
    log = t.root / f"session-{s.proc.pid}.log"
    log.write_text(s.output)
    return f"{note}; its output: {log}"


def _said_once(t, s: Session, rc: int, expected_rc: int, disk: Path, why: str) -> tuple:
    """One fault whose outcome is exit status `expected_rc` and exactly one line saying "cannot write ...
    (`why`)", with no traceback."""
    found = [line for line in s.output.splitlines() if "cannot write" in line and why in line]
    ok = rc == expected_rc and len(found) == 1 and "Traceback" not in s.output and "INTERNALERROR" not in s.output
    said = found[0].split(" (")[0].replace(str(disk), "<tmpfs>") if found else "no such line"
    return 1, _kept(t, s, ok, f"exit {rc}: {said} ({why}), {len(found)} line(s)"), ok


def signal_session(t, audit, sigs: tuple[int, ...] = (), gap: float = 0.3, early: bool = False) -> tuple:
    """A session under xdist (-n 2) gets `sigs` to its process group, `gap` s apart, at a random moment of
    its training, or, `early`, of its start (collection, the workers' start, the data's decoding; from the
    moment its results.json exists): it must end with exit status 2, a results.json that validates and
    says partial, and the page."""
    s = _session(t)
    started = (lambda: s.folder and (s.folder / "results.json").exists()) if early else s.epochs
    s.wait_until(lambda: started() or s.proc.poll() is not None)
    if s.proc.poll() is not None:
        s.finish()
        return 0, "nothing left to train", True
    time.sleep(t.rng.uniform(0, 1.5 if early else 0.5))
    before = len(s.epochs())
    s.signal(*sigs, gap=gap)
    rc = s.finish()
    try:
        doc = results.load(s.folder)
    except Exception as e:  # a missing or invalid report is the failure this step looks for
        return len(sigs), _kept(t, s, False, f"exit {rc}, no valid results.json ({type(e).__name__}: {e})"), False
    page = (s.folder / "index.html").exists() or f"python -m harness.report {s.folder}" in s.output
    ok = rc == 2 and doc.partial is True and doc.session["state"] == "interrupted" and page and \
        "INTERNALERROR" not in s.output
    when = f", sent after {before} epoch(s)" if early else ""
    return len(sigs), _kept(t, s, ok, f"exit {rc}, partial={doc.partial}, {len(doc.runs)} runs in the report, "
                                      f"page {'written' if page else 'MISSING'}{when}"), ok


def early_signal(t, audit) -> tuple:
    """SIGINT or SIGTERM (one, picked at random) before the first epoch: signal_session, early."""
    return signal_session(t, audit, (t.rng.choice((signal.SIGINT, signal.SIGTERM)),), early=True)


def kill_session_worker(t, audit) -> tuple:
    """The xdist worker training a run is SIGKILLed (what the out-of-memory killer sends): the session goes
    on to its end, exit status 1, and its results.json and page name the test, the signal and the run."""
    s = _session(t)
    s.wait_until(lambda: s.proc.poll() is not None or s.kill_training_worker() is not None)
    rc = s.finish()
    doc = results.load(s.folder)
    if rc == 0 and not doc.errors:
        return 0, "nothing left to train", True
    said = doc.errors[0].message if doc.errors else "NO error recorded"
    ok = rc == 1 and len(doc.errors) == 1 and "killed by SIGKILL" in said and "its last line: " in said and \
        (s.folder / "index.html").exists()
    run = said.split("its last line: ")[-1].split()[0] if ok else ""
    return 1, _kept(t, s, ok, f"exit {rc}: the error names the test, SIGKILL and run {run}" if ok else
                    f"exit {rc}: {said[:80]}"), ok


BROKEN_BASELINE = {  # one field of a results.json, broken as an edit or an older harness would
    "an older format": lambda d: d.update(schema="advhyp-results/1"),
    "partial not a bool": lambda d: d.update(partial="no"),
    "runs a list": lambda d: d.update(runs=[]),
    "a warning not text": lambda d: d["warnings"].append(3),
}


def broken_baseline(t, audit) -> tuple:
    """A session whose --baseline is the last session's results.json with one field broken (BROKEN_BASELINE,
    one picked at random): it runs to its end with its tests' status, writes its report and page, and
    says once why drift was not reported."""
    last = sorted((t.root / "reports").glob("*/results.json"))[-1]
    how = t.rng.choice(sorted(BROKEN_BASELINE))
    doc = json.loads(last.read_text())
    BROKEN_BASELINE[how](doc)
    baseline = t.root / "broken-baseline.json"
    baseline.write_text(json.dumps(doc))
    s = _session(t, f"--baseline={baseline}")
    rc = s.finish()
    doc = results.load(s.folder)
    said = [w for w in doc.warnings if w.startswith("baseline not compared:")]
    ok = rc == 0 and not doc.partial and len(said) == 1 and s.output.count("baseline not compared:") == 1 and \
        (s.folder / "index.html").exists()
    return 1, _kept(t, s, ok, f"{how}: exit {rc}, partial={doc.partial}, "
                              f"{'one line' if len(said) == 1 else f'{len(said)} lines'} about the baseline"), ok


def reports_refused(t, audit, read_only: bool = False) -> tuple:
    """The reports folder on a tmpfs that is read-only, or full, when the session starts: refused with one
    line before anything runs (exit status 4)."""
    if folders.cannot_mount():
        return 0, f"not run: {folders.cannot_mount()}", True
    disk = folders.mount_tmpfs(t.root / f"reports-{'ro' if read_only else 'full'}", 2, read_only=read_only,
                               full=not read_only)
    try:
        s = _session(t, reports=disk / "reports")
        rc = s.finish()
    finally:
        folders.umount(disk)
    return _said_once(t, s, rc, 4, disk, "the file system is read-only" if read_only else "the disk is full")


def reports_fill_up(t, audit) -> tuple:
    """The reports folder's tmpfs fills up as the first test reports (FILLER): the session stops with one
    line (exit status 2) and its runs stay in the cache."""
    if folders.cannot_mount():
        return 0, f"not run: {folders.cannot_mount()}", True
    disk = folders.mount_tmpfs(t.root / "reports-filling", 80)  # room to start: the start wants 64 MB free
    try:
        env = {**plugin_env(t.root, "fill_disk", FILLER), "ADVHYP_FILL": str(disk)}
        s = _session(t, "-p", "fill_disk", reports=disk / "reports", env=env)
        rc = s.finish()
    finally:
        folders.umount(disk)
    return _said_once(t, s, rc, 2, disk, "the disk is full")


def final_session(t, audit) -> tuple:
    """A session after the faults: it finishes what they left and writes a complete report."""
    s = _session(t)
    rc = s.finish()
    doc = results.load(s.folder)
    ok = rc == 0 and not doc.partial
    return 0, _kept(t, s, ok, f"exit {rc}, partial={doc.partial}, warnings {len(doc.warnings)}"), ok

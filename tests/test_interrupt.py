"""Promise 7: Ctrl-C (SIGINT) or SIGTERM during a pytest run of hypotheses/ leaves every finished epoch
resumable and writes a partial results.json marked as such; the next run resumes, recomputes what was
damaged (naming it in the warnings) and writes a complete report. Real pytest processes, real signals."""
from __future__ import annotations

import collections
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import chaos, results, store

ROOT = Path(__file__).resolve().parent.parent
HYPOTHESIS = "hypotheses/test_control_seed_null.py"  # 2 variants x 2 seeds = 4 runs, one test case
HANG = 600  # seconds before a session counts as hung: a guard for a shared, loaded machine, not a speed check
EPOCH_LINE = re.compile(r"\] ([0-9a-f]{8}) \S+ epoch (\d+)/(\d+) ")  # runner.Suite's progress line


class Session:
    """One `pytest hypotheses/...` process on the smoke profile, 2 epochs, seeds 0 and 1."""

    def __init__(self, tmp: Path, images: Path, *extra: str, own_group: bool = False):
        self.reports = tmp / "reports"
        self.before = set(self.reports.iterdir()) if self.reports.exists() else set()
        self._folder: Path | None = None
        self.own_group = own_group
        cmd = [sys.executable, "-m", "pytest", HYPOTHESIS, "-q", "-p", "no:cacheprovider", "--epochs=2",
               "--seeds=0,1", f"--cache-dir={tmp / 'cache'}", f"--reports-dir={self.reports}",
               f"--data-source=cifar10={images}", "--device=cpu", *extra]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "OMP_NUM_THREADS": "1"},
                                     preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
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

    def end(self, sig: int | None = None, group: bool = False) -> tuple[int, dict]:
        if sig is not None:  # a terminal's Ctrl-C reaches the whole group: the xdist workers too
            os.killpg(self.proc.pid, sig) if group else self.proc.send_signal(sig)
        try:
            self.proc.communicate(timeout=HANG)
        except subprocess.TimeoutExpired:
            self.kill()
            self.proc.communicate()
            raise
        return self.proc.returncode, results.load(self.folder)  # load validates against the schema


def _run_dir(cache: Path, prefix: str) -> Path:
    found, = [p for p in (cache / "runs").iterdir() if p.is_dir() and p.name.startswith(prefix)]
    return found


def test_interrupted_sessions_leave_finished_epochs_resumable_and_a_partial_report(tiny_images, tmp_path):
    cache = tmp_path / "cache"

    first = Session(tmp_path, tiny_images)  # Ctrl-C once the first epoch is on disk
    first.wait_until(lambda: first.epochs())
    rc, doc = first.end(signal.SIGINT)
    assert rc == 2 and doc["partial"] is True  # pytest's "interrupted" exit status
    key = first.epochs()[0][0]
    run = _run_dir(cache, key)
    checkpoint = store.load_tensors(run / "checkpoint.pt")
    saved = len(checkpoint["records"]) if checkpoint else 2  # a late signal may find the run published
    assert (run / "result.json").exists() or checkpoint["key"] == run.name

    second = Session(tmp_path, tiny_images)  # SIGTERM (a CI timeout) once that run is finished
    second.wait_until(lambda: (run / "result.json").exists())
    rc, doc = second.end(signal.SIGTERM)
    assert rc == 2 and doc["partial"] is True
    assert [e for k, e in second.epochs() if k == key] == list(range(saved + 1, 3)), "did not resume"

    # SIGTERM can land between publishing the run and deleting its checkpoint: the third session then
    # resumes from that checkpoint instead of training from epoch 1.
    leftover = store.load_tensors(run / "checkpoint.pt")
    resumed_from = len(leftover["records"]) if leftover else 0
    chaos.corrupt(run / "result.json", "truncate")  # a damaged entry, to be recomputed and named
    third = Session(tmp_path, tiny_images, "--deterministic")
    rc, doc = third.end()
    assert rc == 0 and doc["partial"] is False
    assert len(doc["runs"]) == 4 and all(r["status"] == "done" and len(r["records"]) == 2 for r in doc["runs"].values())
    assert any(str(run / "result.json") in w for w in doc["warnings"])
    assert all(env["deterministic"]["algorithms"] for env in doc["session"]["workers"].values())

    logged = collections.Counter(first.epochs() + second.epochs() + third.epochs())
    assert [(k, e) for (k, e), n in logged.items() if n > 1 and k != key] == [], "a finished epoch was retrained"
    assert [e for k, e in third.epochs() if k == key] == list(range(resumed_from + 1, 3))
    assert not list(cache.rglob(store.TMP_PREFIX + "*"))


def test_ctrl_c_under_xdist_stops_the_workers_and_writes_a_partial_report(tiny_images, tmp_path):
    session = Session(tmp_path, tiny_images, "-n", "2", own_group=True)
    session.wait_until(lambda: session.epochs())
    rc, doc = session.end(signal.SIGINT, group=True)
    assert rc == 2 and doc["partial"] is True
    key = session.epochs()[0][0]
    run = _run_dir(tmp_path / "cache", key)
    assert (run / "result.json").exists() or (run / "checkpoint.pt").exists()  # the finished epoch is kept

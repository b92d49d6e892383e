"""A real `pytest hypotheses/...` process on the smoke profile, for tests that signal, starve or watch it."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness import results

ROOT = Path(__file__).resolve().parent.parent
HYPOTHESIS = "hypotheses/test_control_seed_null.py"  # 2 variants x 2 seeds = 4 runs, one test case
HANG = 600  # seconds before a session counts as hung: a guard for a shared, loaded machine, not a speed check
EPOCH_LINE = re.compile(r"\] ([0-9a-f]{8}) \S+ epoch (\d+)/(\d+) ")  # the executor's progress line


class Session:
    """One `pytest hypotheses/...` process on the smoke profile, 2 epochs, seeds 0 and 1."""

    def __init__(self, tmp: Path, images: Path, *extra: str, own_group: bool = False, env: dict | None = None):
        self.reports = tmp / "reports"
        self.before = set(self.reports.iterdir()) if self.reports.exists() else set()
        self._folder: Path | None = None
        self.own_group = own_group
        cmd = [sys.executable, "-m", "pytest", HYPOTHESIS, "-q", "-p", "no:cacheprovider", "--epochs=2",
               "--seeds=0,1", f"--cache-dir={tmp / 'cache'}", f"--reports-dir={self.reports}",
               f"--data-source=cifar10={images}", "--device=cpu", *extra]
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**clean_environment(), "OMP_NUM_THREADS": "1", **(env or {})},
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

    def end(self, sig: int | None = None, group: bool = False) -> tuple[int, dict]:
        if sig is not None:  # a terminal's Ctrl-C reaches the whole group: the xdist workers too
            os.killpg(self.proc.pid, sig) if group else self.proc.send_signal(sig)
        return self.finish(), results.load(self.folder)  # load validates against the schema


def clean_environment() -> dict:
    """os.environ without what an outer `pytest -n N` set for its own workers (PYTEST_XDIST_WORKER, ...):
    a session started from a test is a controller of its own."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_XDIST", "PYTEST_CURRENT_TEST"))}

"""The controller's side of a session: it merges the cases the workers send, rewrites results.json as they
arrive, and renders index.html at the end, whatever happens in between.

The report folder holds a valid results.json ("running", partial) from the moment it is made; it is
removed at the end only where no hypothesis test ran, no error was recorded and no signal came (a run of
tests/ alone, --collect-only, a usage error). Interrupts: the first SIGINT or SIGTERM ends the session as
Ctrl-C does; later ones, and any once the tests are over (xdist's teardown, the last write, the page, the
exit), only mark it interrupted, so no signal can cut the last write short or change the exit status
(after the last step, while the interpreter exits, they are ignored).
Whether the session was partial is taken from that mark, not from pytest's exit status (a second signal
can skip the step that sets it); a marked session exits with 2. A session that dies before its last write
(SIGKILL, power) leaves results.json saying "running"; the next session names it in its warnings. An
xdist worker that dies (SIGKILL, the OOM killer) is an error of the test it ran, naming the signal and the
run it was training.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import pytest
import torch

from ..report import drift, tables
from ..spec import results
from ..run import runtime
from ..cache import store

PAYLOAD = "advhyp_payload"  # user_properties name: a case and its runs, as JSON, worker -> controller
HYPOTHESIS_TEST = "advhyp_hypothesis"  # user_properties name tagging tests of hypotheses/ modules
BAD_CLAIM = "advhyp: bad claim: "  # an xdist worker's collection failure that the controller makes a usage error


class Collector:
    """Controller only: one per session, registered by the plugin."""

    def __init__(self, config, session_record: dict, folder: Path, baseline: results.Results | None = None,
                 baseline_problem: str | None = None):
        self.config, self.folder, self.baseline = config, folder, baseline
        self.interrupted = False
        self.session = None
        self.started = False  # a hypothesis test reported, or an error was recorded: the report is kept
        self.finished = False  # the last write was made (pytest_sessionfinish)
        self.hypothesis_tests: set[str] = set()  # node ids, from their setup reports (a crash report has none)
        self.write_failed: str | None = None
        # Until the session starts, a signal only marks it (pytest_sessionstart then ends it): raised here, it
        # would leave the plugin unregistered and the folder without its report.
        self.held = {sig: signal.signal(sig, self.mark_only) for sig in (signal.SIGINT, signal.SIGTERM)}
        self.doc = results.new({**session_record, "args": list(config.invocation_params.args),
                                "started": time.strftime("%Y-%m-%d %H:%M:%S"), "state": "running",
                                "pid": os.getpid(), "controller": runtime.environment(torch.device("cpu"))})
        self.doc["warnings"] += cut_short_sessions(folder)
        if baseline_problem:
            self.doc["warnings"].append(f"{NO_DRIFT} {baseline_problem}")
        self.write()

    def on_signal(self, signum, frame):
        first = not self.interrupted
        self.interrupted = True
        if first:  # SIGTERM (a CI timeout, a preempted job) ends the session like Ctrl-C
            raise KeyboardInterrupt(signal.Signals(signum).name)

    @pytest.hookimpl(tryfirst=True)  # before the terminal lists it as a collection error
    def pytest_collectreport(self, report):
        text = str(report.longrepr) if report.failed else ""
        if text.startswith(BAD_CLAIM):  # a worker's (the plugin's pytest_make_collect_report)
            raise pytest.UsageError(text[len(BAD_CLAIM):])

    def pytest_runtest_logreport(self, report):
        props = dict(report.user_properties)
        if HYPOTHESIS_TEST in props:
            self.hypothesis_tests.add(report.nodeid)
            self.started = True
        elif report.nodeid not in self.hypothesis_tests:
            return
        if PAYLOAD in props and report.when == "call":
            payload = json.loads(props[PAYLOAD])
            payload["case"]["outcome"] = outcome_of(report)
            results.add(self.doc, payload)
            self.write()
        elif report.failed:  # stopped before producing a case: bad data, a crash, ...
            self.error(report.nodeid, report.when, str(report.longrepr))

    def error(self, nodeid: str, when: str, message: str) -> None:
        """A test (or the session's setup: SLURM) that stopped before producing a case, in results.json."""
        self.started = True
        self.doc["errors"].append({"nodeid": nodeid, "when": when, "message": message[-4000:]})
        self.write()

    @pytest.hookimpl(optionalhook=True)
    def pytest_handlecrashitem(self, crashitem, report, sched):
        """xdist: a worker died while running `crashitem`. Its report says which signal ended it and which
        run it was training (the worker's last line in progress.log), for the report and the terminal."""
        if crashitem not in self.hypothesis_tests:
            return
        worker = getattr(report, "node", None)
        wid = getattr(getattr(worker, "gateway", None), "id", "?")
        try:  # execnet's process handle: private, so only read, and any surprise leaves the signal unknown
            code = worker.gateway._io.popen.wait(timeout=5)
            how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exited with status {code}"
        except Exception:
            how = "ended (signal unknown)"
        oom = " (the out-of-memory killer sends SIGKILL)" if how.endswith("SIGKILL") else ""
        report.longrepr = (f"worker {wid} {how}{oom} while running {crashitem}; {last_run(self.folder, wid)}; "
                           f"its finished epochs are in the cache, and the next session resumes them")

    def write(self) -> bool:
        try:
            results.write(self.folder, self.doc)
            return True
        except store.StoreError as e:  # a full or read-only reports folder: say so once, keep the session's work
            if self.write_failed is None:
                self.write_failed = str(e)
                terminal = getattr(self.config.pluginmanager.get_plugin("terminalreporter"), "_tw", None)
                if getattr(terminal, "width_of_current_line", 0):  # after pytest's progress letters
                    terminal.line()
                sys.stderr.write(f"advhyp: {e}\n")
                stop(self.config, self.session, "advhyp: the reports folder cannot be written (see above)")
            return False

    @pytest.hookimpl(tryfirst=True)  # before xdist starts its workers
    def pytest_sessionstart(self, session):
        self.session = session
        for sig in self.held:
            signal.signal(sig, self.on_signal)
        if self.interrupted:  # a signal while the session was set up
            raise KeyboardInterrupt("a signal before the session started")

    @pytest.hookimpl(wrapper=True)
    def pytest_runtestloop(self, session):
        """Once the tests are over, or interrupted, a signal only marks the session: one raised in xdist's
        teardown of its workers would skip every later sessionfinish hook, this collector's write included."""
        try:
            return (yield)
        finally:
            for sig in self.held:
                signal.signal(sig, self.mark_only)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        for sig in self.held:  # also where the loop never started (a signal while xdist started its workers)
            signal.signal(sig, self.mark_only)
        self.finish(session, exitstatus)

    def finish(self, session, exitstatus) -> None:
        """The last write and the page; or, where no hypothesis test ran and nothing stopped the session
        early, no report at all."""
        self.finished = True
        if not (self.started or self.interrupted):
            shutil.rmtree(self.folder, ignore_errors=True)
            return
        partial = self.interrupted or exitstatus in STOPPED
        if self.interrupted and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):  # a signal
            # while shutting down: the status says so, as the report does
            exitstatus = pytest.ExitCode.INTERRUPTED
        if self.baseline is not None:
            try:
                self.doc["drift"] = drift.drift(results.parse(results.plain(self.doc)), self.baseline)
            except Exception as e:  # never costs the session its report or status: one line instead
                self.doc["warnings"].append(f"{NO_DRIFT} comparing with --baseline {self.doc['session']['baseline']}"
                                            f" failed ({type(e).__name__}: {e})")
            if self.doc.get("drift", {}).get("changed") and not partial:  # a changed verdict fails the night
                exitstatus = pytest.ExitCode.TESTS_FAILED
        if session is not None:
            session.exitstatus = exitstatus
        self.doc["partial"] = partial
        self.doc["session"].update(finished=time.strftime("%Y-%m-%d %H:%M:%S"), exit_status=int(exitstatus),
                                   state="interrupted" if partial else "finished")
        if not self.write():
            return
        tables.export(self.folder, self.doc["session"].get("tensorboard"))  # results.csv, cases.csv, TensorBoard
        try:
            from ..report import page as report  # matplotlib: loaded by the controller only, at the end
            report.render(self.folder)
        except (Exception, KeyboardInterrupt) as e:  # results.json is saved: the page can be rebuilt from it
            sys.stderr.write(f"advhyp: could not render {self.folder / 'index.html'} ({type(e).__name__}: {e}); "
                             f"rebuild it with: python -m harness.report {self.folder}\n")

    def mark_only(self, signum, frame):
        self.interrupted = True

    @pytest.hookimpl(trylast=True)  # after pytest's own unconfigure (its gc pass), where a signal could escape
    def pytest_unconfigure(self):
        if not self.finished:  # pytest_sessionfinish never ran (a signal or an error before the session began)
            self.finish(None, pytest.ExitCode.INTERRUPTED if self.interrupted else pytest.ExitCode.USAGE_ERROR)
        if _command_line():  # the process ends here: a signal from now on could only turn exit 2 into -2.
            # Ignored, not marked: the interpreter's exit puts back the default handler in place of a Python one
            # before it unloads its modules (torch: a second or so), but leaves an ignored signal ignored.
            for sig in self.held:
                signal.signal(sig, signal.SIG_IGN)
            return
        for sig, handler in self.held.items():  # pytest.main() in a process that goes on: as they were
            signal.signal(sig, handler)

    def pytest_terminal_summary(self, terminalreporter):
        for c in self.doc.get("drift", {}).get("verdict_changes", []):
            terminalreporter.write_line(f"advhyp: VERDICT CHANGED since the baseline: {c['module']} {c['dataset']} "
                                        f"eps {c['eps']:g}: {c['baseline']} -> {c['current']}", red=True)
        for w in self.doc["warnings"]:
            if w.startswith((SUBSTITUTED, CUT_SHORT, NO_DRIFT)):
                terminalreporter.write_line(f"advhyp warning: {w}", yellow=True)
        if (self.folder / "results.json").exists() and self.write_failed is None:  # else the line above says why
            terminalreporter.write_line(f"advhyp: results in {self.folder / 'results.json'}")


def stop(config, session, why: str) -> None:
    """End the session after the tests running now, under xdist too (its controller loop reads its own flag,
    not the session's): a setup error every later test would hit as well."""
    if session is not None:
        session.shouldstop = why
    dsession = config.pluginmanager.getplugin("dsession")
    if dsession is not None and not dsession.shouldstop:
        dsession.shouldstop = why


SUBSTITUTED = "data substituted:"
CUT_SHORT = "previous session cut short:"
NO_DRIFT = "baseline not compared:"
# pytest's statuses of a session stopped early (a signal, a setup error, pytest.exit); its report is partial
STOPPED = (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)


def last_run(folder: Path, worker: str) -> str:
    """What the worker's last line in progress.log says it was doing (the executor logs each run it starts
    training and each epoch it finishes)."""
    try:
        lines = [ln for ln in (folder / "progress.log").read_text().splitlines() if ln.startswith(f"[{worker} ")]
    except OSError:
        lines = []
    return f"its last line: {lines[-1].split('] ', 1)[-1]}" if lines else "it had logged no run yet"


def _command_line() -> bool:
    """Whether this pytest is the process's main program (`pytest`, `python -m pytest`: pytest's console
    entry point is on the stack), which exits once pytest returns, rather than a pytest.main() call in a
    process that goes on. Should pytest rename its entry point, the answer is False: the safe one."""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name in ("console_main", "_console_main") and \
                frame.f_globals.get("__name__") == "_pytest.config":
            return True
        frame = frame.f_back
    return False


def outcome_of(report) -> str:
    """pytest's outcome, with an expected failure (xfail) named as such."""
    return "xfailed" if hasattr(report, "wasxfail") and report.skipped else report.outcome


def cut_short_sessions(folder: Path) -> list[str]:
    """Sessions in the same reports folder whose results.json still says "running" though their process
    is gone: they died before their last write."""
    out = []
    for other in sorted(folder.parent.glob("*/results.json")):
        if other.parent == folder:
            continue
        try:
            session = json.loads(other.read_text()).get("session", {})
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(session, dict) and session.get("state") == "running" and not _alive(session.get("pid")):
            try:  # named once: the next session does not repeat it
                doc = json.loads(other.read_text())
                doc["session"]["state"] = "cut short"
                store.atomic_write(other, json.dumps(doc, indent=1).encode())
            except (OSError, ValueError):
                pass
            out.append(f"{CUT_SHORT} {other.parent.name} ended before writing its report (killed, or the machine "
                       f"stopped); its results.json holds the cases it had finished")
    return out


def _alive(pid) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True

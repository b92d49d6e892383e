"""The controller's side of a session: it merges the cases the workers send, rewrites results.json as they
arrive, and renders index.html at the end, whatever happens in between.

Interrupts: the first SIGINT or SIGTERM ends the session as Ctrl-C does; later ones, and any once the
tests are over (xdist's teardown, the last write, the page), only mark it interrupted, so no signal can
cut the last write short. Whether the session was partial is taken from that mark, not from pytest's exit
status (a second signal can skip the step that sets it); a marked session exits with 2. A session that
dies before its last write (SIGKILL, power) leaves results.json saying "running"; the next session names
it in its warnings.
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


class Collector:
    """Controller only: one per session, registered by the plugin."""

    def __init__(self, config, session_record: dict, folder: Path, baseline: results.Results | None = None):
        self.config, self.folder, self.baseline = config, folder, baseline
        self.interrupted = False
        self.session = None
        self.started = False  # results.json is written from the first hypothesis test on
        self.write_failed: str | None = None
        self.doc = results.new({**session_record, "args": list(config.invocation_params.args),
                                "started": time.strftime("%Y-%m-%d %H:%M:%S"), "state": "running",
                                "pid": os.getpid(), "controller": runtime.environment(torch.device("cpu"))})
        self.doc["warnings"] += cut_short_sessions(folder)
        self.held = {sig: signal.signal(sig, self.on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_signal(self, signum, frame):
        first = not self.interrupted
        self.interrupted = True
        if first:  # SIGTERM (a CI timeout, a preempted job) ends the session like Ctrl-C
            raise KeyboardInterrupt(signal.Signals(signum).name)

    def pytest_runtest_logreport(self, report):
        props = dict(report.user_properties)
        if HYPOTHESIS_TEST not in props:
            return
        if not self.started:  # "running" on disk: a session killed from here on is named by the next one
            self.started = True
            self.write()
        if PAYLOAD in props and report.when == "call":
            payload = json.loads(props[PAYLOAD])
            payload["case"]["outcome"] = outcome_of(report)
            results.add(self.doc, payload)
            self.write()
        elif report.failed:  # stopped before producing a case: bad data, a crash, ...
            self.doc["errors"].append({"nodeid": report.nodeid, "when": report.when,
                                       "message": str(report.longrepr)[-4000:]})
            self.write()

    def write(self) -> bool:
        try:
            results.write(self.folder, self.doc)
            return True
        except store.StoreError as e:  # a full or read-only reports folder: say so once, keep the session's work
            if self.write_failed is None:
                self.write_failed = str(e)
                sys.stderr.write(f"advhyp: {e}\n")
                stop(self.config, self.session, "advhyp: the reports folder cannot be written (see above)")
            return False

    def pytest_sessionstart(self, session):
        self.session = session

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
        if not (self.doc["cases"] or self.doc["errors"] or (self.folder / "progress.log").exists()):
            shutil.rmtree(self.folder, ignore_errors=True)  # no hypothesis ran (e.g. only tests/): no report
            return
        partial = self.interrupted or exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
        if self.interrupted and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.TESTS_FAILED):  # a signal
            # while shutting down: the status says so, as the report does
            exitstatus = session.exitstatus = pytest.ExitCode.INTERRUPTED
        if self.baseline is not None:
            self.doc["drift"] = drift.drift(results.parse(results.plain(self.doc)), self.baseline)
            if self.doc["drift"]["changed"] and not partial:  # a changed verdict fails the night
                session.exitstatus = exitstatus = pytest.ExitCode.TESTS_FAILED
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
        for sig, handler in self.held.items():  # as they were before this session (pytest run in-process)
            signal.signal(sig, handler)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()  # stopped before any hypothesis test started (its sessionfinish never ran)

    def pytest_terminal_summary(self, terminalreporter):
        for c in self.doc.get("drift", {}).get("verdict_changes", []):
            terminalreporter.write_line(f"advhyp: VERDICT CHANGED since the baseline: {c['module']} {c['dataset']} "
                                        f"eps {c['eps']:g}: {c['baseline']} -> {c['current']}", red=True)
        for w in self.doc["warnings"]:
            if w.startswith(SUBSTITUTED) or w.startswith(CUT_SHORT):
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

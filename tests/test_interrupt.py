"""Promise 7: Ctrl-C (SIGINT) or SIGTERM during a pytest run of hypotheses/ leaves every finished epoch
resumable and writes a partial results.json marked as such; the next run resumes, recomputes what was
damaged (naming it in the warnings) and writes a complete report. Real pytest processes, real signals."""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from harness.chaos import Session, plugin_env

from harness import chaos
from harness.plugin import collector
from harness.spec import results
from harness.cache import store


def _run_dir(cache: Path, prefix: str) -> Path:
    found, = [p for p in (cache / "runs").iterdir() if p.is_dir() and p.name.startswith(prefix)]
    return found


def test_interrupted_sessions_leave_finished_epochs_resumable_and_a_partial_report(tiny_images, tmp_path):
    cache = tmp_path / "cache"

    first = Session(tmp_path, tiny_images)  # Ctrl-C once the first epoch is on disk
    first.wait_until(lambda: first.epochs())
    rc, doc = first.end(signal.SIGINT)
    assert rc == 2 and doc.partial is True  # pytest's "interrupted" exit status
    key = first.epochs()[0][0]
    run = _run_dir(cache, key)
    checkpoint = store.load_tensors(run / "checkpoint.pt")
    saved = len(checkpoint["records"]) if checkpoint else 2  # a late signal may find the run published
    assert (run / "result.json").exists() or checkpoint["key"] == run.name

    second = Session(tmp_path, tiny_images)  # SIGTERM (a CI timeout) once that run is finished
    second.wait_until(lambda: (run / "result.json").exists())
    rc, doc = second.end(signal.SIGTERM)
    assert rc == 2 and doc.partial is True
    assert [e for k, e in second.epochs() if k == key] == list(range(saved + 1, 3)), "did not resume"

    # SIGTERM can land between publishing the run and deleting its checkpoint: the third session then
    # resumes from that checkpoint instead of training from epoch 1.
    leftover = store.load_tensors(run / "checkpoint.pt")
    resumed_from = len(leftover["records"]) if leftover else 0
    chaos.corrupt(run / "result.json", "truncate")  # a damaged entry, to be recomputed and named
    third = Session(tmp_path, tiny_images, "--deterministic")
    rc, doc = third.end()
    assert rc == 0 and doc.partial is False
    assert len(doc.runs) == 4 and all(r.status == "done" and len(r.records) == 2 for r in doc.runs.values())
    assert any(str(run / "result.json") in w for w in doc.warnings)
    assert all(env["deterministic"]["algorithms"] for env in doc.session["workers"].values())

    logged = collections.Counter(first.epochs() + second.epochs() + third.epochs())
    assert [(k, e) for (k, e), n in logged.items() if n > 1 and k != key] == [], "a finished epoch was retrained"
    assert [e for k, e in third.epochs() if k == key] == list(range(resumed_from + 1, 3))
    assert not list(cache.rglob(store.TMP_PREFIX + "*"))


def test_ctrl_c_under_xdist_stops_the_workers_and_writes_a_partial_report(tiny_images, tmp_path):
    session = Session(tmp_path, tiny_images, "-n", "2", own_group=True)
    session.wait_until(lambda: session.epochs())
    rc, doc = session.end(signal.SIGINT, group=True)
    assert rc == 2 and doc.partial is True
    key = session.epochs()[0][0]
    run = _run_dir(tmp_path / "cache", key)
    assert (run / "result.json").exists() or (run / "checkpoint.pt").exists()  # the finished epoch is kept


def _assert_partial_report(session: Session, rc: int, doc: results.Results) -> None:
    """What any number of signals must leave: exit status 2 (pytest's "interrupted"), a results.json that
    validates and says partial, and the page, or the command that rebuilds it."""
    assert rc == 2, session.output[-3000:]
    assert doc.partial is True and doc.session["state"] == "interrupted" and doc.session["exit_status"] == 2
    assert (session.folder / "index.html").exists() or \
        f"rebuild it with: python -m harness.report {session.folder}" in session.output
    assert "INTERNALERROR" not in session.output


@pytest.mark.parametrize("sigs, gap", [
    ((signal.SIGINT, signal.SIGINT), 0.3),  # two quick Ctrl-C presses
    ((signal.SIGINT, signal.SIGINT, signal.SIGINT), 0.3),
    ((signal.SIGTERM, signal.SIGINT), 1.5),  # a CI timeout, then an impatient Ctrl-C in xdist's shutdown
], ids=["2xSIGINT-0.3s", "3xSIGINT-0.3s", "SIGTERM+SIGINT-1.5s"])
def test_repeated_signals_under_xdist_during_training_leave_a_partial_report(sigs, gap, tiny_images, tmp_path):
    session = Session(tmp_path, tiny_images, "-n", "2", own_group=True)
    session.wait_until(lambda: session.epochs())
    session.signal(*sigs, gap=gap)
    _assert_partial_report(session, *session.end())


# Loaded into the session with -p: holds the controller at a moment of its shutdown until the test has sent
# its signals there, so that they land exactly in xdist's teardown of its workers, in the page's rendering
# and after the session's last step (where a restored default handler would turn exit 2 into -2).
PROBE = """
import os, pathlib, time
import pytest

MARKS = pathlib.Path(os.environ["ADVHYP_PROBE"])


def pause(name):
    (MARKS / name).touch()
    deadline = time.monotonic() + 120
    while not (MARKS / (name + ".go")).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    if not hasattr(session.config, "workerinput"):
        pause("teardown")  # before xdist's own sessionfinish stops the workers


class Exit:
    @pytest.hookimpl(trylast=True)  # registered after the collector: unconfigured after it, the last step
    def pytest_unconfigure(self, config):
        pause("exit")


@pytest.hookimpl(trylast=True)  # after the plugin registered its collector
def pytest_configure(config):
    if not hasattr(config, "workerinput"):
        from harness.report import page as report
        real = report.render

        def render(folder):
            pause("render")
            return real(folder)
        report.render = render
        config.pluginmanager.register(Exit(), "exit-probe")
"""


def test_signals_in_xdist_teardown_rendering_and_after_the_last_write_leave_a_partial_report_and_page(
        tiny_images, tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    (tmp_path / "shutdown_probe.py").write_text(PROBE)
    env = {"ADVHYP_PROBE": str(marks), "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path),
                                                                                  os.environ.get("PYTHONPATH")]))}
    session = Session(tmp_path, tiny_images, "-n", "2", "-p", "shutdown_probe", own_group=True, env=env)
    session.wait_until(lambda: session.epochs())
    session.signal(signal.SIGINT)
    for moment, sigs in (("teardown", (signal.SIGINT, signal.SIGTERM)), ("render", (signal.SIGINT, signal.SIGINT)),
                         ("exit", (signal.SIGINT, signal.SIGTERM))):  # after the last write, before the exit
        session.wait_until(lambda: (marks / moment).exists())
        session.signal(*sigs)
        time.sleep(0.5)  # let the handlers run before the controller moves on
        (marks / f"{moment}.go").touch()
    # Ctrl-C held down from the last hook to the process's end: the interpreter's own exit (modules unloaded)
    # included, where Python had put the default handler back and a signal ended the process with -2.
    flood = threading.Thread(target=_sigint_until_gone, args=(session,), daemon=True)
    flood.start()
    rc, doc = session.end()
    flood.join()
    _assert_partial_report(session, rc, doc)
    assert (session.folder / "index.html").exists()  # rendering ran to its end


def _sigint_until_gone(session: Session) -> None:
    while session.proc.poll() is None:
        session.signal(signal.SIGINT)
        time.sleep(0.005)


# Loaded with -p into a session without xdist: holds it at an early moment (ADVHYP_MOMENT) until the test has
# signalled it: while the plugins are configured (the session not started), while it collects, while the
# first test decodes its data.
EARLY = """
import os, pathlib, time
import pytest

MARKS, MOMENT = pathlib.Path(os.environ["ADVHYP_PROBE"]), os.environ["ADVHYP_MOMENT"]


def pause(name):
    if name == MOMENT:
        (MARKS / name).touch()
        deadline = time.monotonic() + 120
        while not (MARKS / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.05)


@pytest.hookimpl(trylast=True)  # after the plugin made the report folder and its collector
def pytest_configure(config):
    pause("configure")
    from harness.run import data
    real = data.load

    def load(*args, **kwargs):
        pause("decode")
        return real(*args, **kwargs)
    data.load = load


def pytest_collection_modifyitems(items):
    pause("collection")
"""


@pytest.mark.parametrize("moment, sig", [("configure", signal.SIGTERM), ("collection", signal.SIGINT),
                                         ("decode", signal.SIGINT), ("decode", signal.SIGTERM)])
def test_a_signal_before_the_first_epoch_keeps_the_folder_with_a_partial_report_and_its_page(moment, sig, tiny_images,
                                                                                            tmp_path):
    marks = tmp_path / "marks"
    marks.mkdir()
    env = {**plugin_env(tmp_path, "early_probe", EARLY), "ADVHYP_PROBE": str(marks), "ADVHYP_MOMENT": moment}
    session = Session(tmp_path, tiny_images, "-p", "no:xdist", "-p", "early_probe", env=env)
    session.wait_until(lambda: (marks / moment).exists())
    session.proc.send_signal(sig)
    time.sleep(0.5)  # the handler runs before the probe lets the session go on
    (marks / "go").touch()
    rc, doc = session.end()
    _assert_partial_report(session, rc, doc)
    assert (session.folder / "index.html").exists() and doc.cases == [] and doc.runs == {}


def test_a_worker_killed_by_sigkill_is_an_error_naming_the_test_the_run_and_the_signal(tiny_images, tmp_path):
    session = Session(tmp_path, tiny_images, "-n", "2", own_group=True)
    session.wait_until(lambda: session.kill_training_worker() is not None)  # the OOM killer's signal
    rc, doc = session.end()
    assert rc == 1, session.output[-3000:]  # a test failed: the one the worker ran
    (error,) = doc.errors
    (started,) = [line for line in (session.folder / "progress.log").read_text().splitlines()
                  if "training starts" in line][:1]
    worker, run = started[1:].split()[0], started.split("] ")[1].removesuffix(" training starts")
    assert error.nodeid == "hypotheses/test_control_seed_null.py::" \
        "test_same_variant_different_seeds_is_not_significant[cifar10-eps1]"
    assert f"worker {worker} killed by SIGKILL" in error.message and run in error.message
    assert doc.partial is False and doc.session["exit_status"] == 1 and doc.cases == []
    assert (session.folder / "index.html").exists() and error.message in session.output


def test_a_session_killed_before_its_last_write_is_named_by_the_next_one(tmp_path):
    gone = subprocess.Popen([sys.executable, "-c", "pass"])  # a process id that no longer runs: SIGKILL's end
    gone.wait()
    killed, alive, new = (tmp_path / name for name in ("20261201-080000", "20261201-090000", "20261201-100000"))
    for folder, pid in ((killed, gone.pid), (alive, os.getpid())):  # the second one is still running
        folder.mkdir()
        results.write(folder, results.new({"state": "running", "pid": pid}))
    new.mkdir()
    assert collector.cut_short_sessions(new) == [
        f"{collector.CUT_SHORT} 20261201-080000 ended before writing its report (killed, or the machine stopped); "
        f"its results.json holds the cases it had finished"]
    assert results.load(killed).session["state"] == "cut short"  # named once: the next session is silent
    assert results.load(alive).session["state"] == "running"
    assert collector.cut_short_sessions(new) == []

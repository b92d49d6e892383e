"""pytest glue: options, parametrization from the plan, the `suite` fixture, and the controller's collector.

The science is elsewhere: `plan` says which cases and runs a claim has, an executor (harness.executors)
gets the runs, `verdict` judges them into a `Case`; this module translates `Case.outcome` into pass, skip
or fail, also for a test body that forgets to. Collection plans only (no device, no cache), so
`pytest --collect-only` is cheap and side-effect free. Under xdist the controller checks the settings once,
picks the report folder and each worker's device; workers send each case back as JSON in the test report's
user_properties.
"""
from __future__ import annotations

import inspect
import json
import os
import sys
import time
from pathlib import Path

import pytest

from ..spec import claim as claims, config as cfg
from ..report import drift, tables
from ..spec import plan, results
from ..run import runtime
from . import settings
from ..cache import store
from ..executors import EXECUTORS, Refused
from ..judge import verdict
from ..spec.case import Case
from .collector import BAD_CLAIM, HYPOTHESIS_TEST, PAYLOAD, SUBSTITUTED, Collector, stop

SETTINGS = pytest.StashKey[settings.Settings]()
REPORT = pytest.StashKey[Path]()
PLANS = pytest.StashKey[dict]()  # id(claim) -> Plan
EXECUTOR = pytest.StashKey[object]()  # built on first use, in the process that runs tests
RECORD = pytest.StashKey[dict]()  # on a test item: the payload of the case it evaluated
UNCONCLUDED = pytest.StashKey["Case | None"]()  # on a test item: the case it evaluated and has not concluded yet
MARKER = "claim"  # marks the tests of hypothesis modules (not "hypothesis": the Hypothesis library's)


def pytest_addoption(parser):
    settings.add_options(parser)


def pytest_configure(config):
    config.addinivalue_line("markers", f"{MARKER}: a test of a hypothesis module's CLAIM (added by the plugin)")
    worker = getattr(config, "workerinput", None)
    baseline = baseline_problem = None
    try:
        s = settings.read(config)
        runtime.resolve_precision(s.precision, None)
        if worker is None:  # setup errors stop the session once, on the controller, before workers start
            runtime.check_device(s.device)
            store.check_writable(s.cache_dir, "--cache-dir")
            baseline = drift.load_baseline(s.baseline) if s.baseline else None
    except drift.BaselineError as e:  # last night's file, edited or of an older format: the night runs on
        baseline_problem = f"{e}; drift is not reported this session"
    except cfg.ConfigError as e:
        raise pytest.UsageError(str(e)) from None
    except store.StoreError as e:
        raise pytest.UsageError(str(e)) from None
    config.stash[SETTINGS] = s
    config.stash[PLANS] = {}
    if worker is None:  # the controller (or a run without xdist)
        folder = _new_report_folder(s.reports_dir)
        config.stash[REPORT] = folder
        config.pluginmanager.register(Collector(config, settings.as_record(s), folder, baseline, baseline_problem),
                                      "advhyp-collector")
    else:
        config.stash[REPORT] = Path(worker["advhyp_report"])
        runtime.share_cpu(int(worker.get("workercount", os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))))


def _new_report_folder(root: Path) -> Path:
    try:
        store.check_writable(root, "--reports-dir")
    except store.StoreError as e:
        raise pytest.UsageError(str(e)) from None
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        folder = root / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
        except OSError as e:
            raise pytest.UsageError(str(store.write_error(folder, e, "--reports-dir", kept=False))) from None
    raise pytest.UsageError(f"too many report folders named {stamp}* in {root}")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist, controller side: one report folder for all; a GPU per worker, round-robin."""
    config = node.config
    node.workerinput["advhyp_report"] = str(config.stash[REPORT])
    index = int(node.gateway.id.lstrip("gw") or 0)
    gpus = runtime.gpu_count() if not config.stash[SETTINGS].device else 0
    node.workerinput["advhyp_device"] = f"cuda:{index % gpus}" if gpus else ""


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """`-n auto` on GPUs: three workers per GPU (on an H200, three ResNet18 processes trained 2.9x one
    process's images/s, and ViT-tiny lost nothing); elsewhere xdist's default (one per CPU)."""
    gpus = runtime.gpu_count()
    return 3 * gpus if gpus else None


def plan_of(config, claim: claims.Claim) -> plan.Plan:
    """The claim's plan in this session, made once per process."""
    plans = config.stash[PLANS]
    if id(claim) not in plans:
        s = config.stash[SETTINGS]
        plans[id(claim)] = plan.plan(claim, s.profile, s.sources, s.overrides.datasets, s.overrides.eps,
                                     s.allow_reduced)
    return plans[id(claim)]


@pytest.hookimpl(wrapper=True, trylast=True)  # inside pytest's own wrappers (output capture)
def pytest_make_collect_report(collector):
    """A module's CLAIM is checked (as written, then planned) before pytest collects the module: a bad claim
    is one usage error naming the module, not a collection traceback. Raised outside the collection call,
    which would catch it; an xdist worker sends it as a collection failure that the controller raises
    (pytest_collectreport). Other import errors are pytest's to report."""
    problem = None
    if isinstance(collector, pytest.Module):
        try:
            claim = getattr(collector.obj, "CLAIM", None)
            if isinstance(claim, claims.CLAIM_TYPES) and _tests_a_claim(collector.obj):
                plan_of(collector.config, claim)
        except cfg.ConfigError as e:
            problem = f"{collector.nodeid}: {e}"
        except (Exception, pytest.skip.Exception, pytest.fail.Exception):  # a module-level skip included
            pass
    if problem and not hasattr(collector.config, "workerinput"):
        raise pytest.UsageError(problem)
    report = yield
    return pytest.CollectReport(collector.nodeid, "failed", BAD_CLAIM + problem, []) if problem else report


def _tests_a_claim(module) -> bool:
    """Whether a module is a hypothesis: a test function of it takes the `suite` fixture (a test file may
    hold a CLAIM of its own to build runs from, which the plugin does not plan)."""
    return any(name.startswith("test") and callable(f) and "suite" in inspect.signature(f).parameters
               for name, f in vars(module).items() if inspect.isfunction(f))


def pytest_generate_tests(metafunc):
    claim = getattr(metafunc.module, "CLAIM", None)
    if isinstance(claim, claims.CLAIM_TYPES) and {"dataset", "eps"} <= set(metafunc.fixturenames):
        cases = plan_of(metafunc.config, claim).cases()  # planned when the module was collected
        metafunc.parametrize(("dataset", "eps"), cases, ids=[f"{d}-eps{e:g}" for d, e in cases])


def pytest_collection_modifyitems(items):
    """Mark hypothesis tests, so the controller reports their errors and ignores other tests'."""
    for item in items:
        claim = getattr(getattr(item, "module", None), "CLAIM", None)
        if isinstance(claim, claims.CLAIM_TYPES) and "suite" in getattr(item, "fixturenames", ()):
            item.user_properties.append((HYPOTHESIS_TEST, True))
            item.add_marker(MARKER)


def executor(config):
    """This process's executor: device, cache and logger are made here, on first use, never at collection."""
    if EXECUTOR not in config.stash:
        s = config.stash[SETTINGS]
        worker = getattr(config, "workerinput", {})
        device = runtime.pick_device(s.device or worker.get("advhyp_device") or None)
        runtime.set_deterministic(s.deterministic)
        config.stash[EXECUTOR] = EXECUTORS.create("collect" if s.collect_only else s.executor, s, device,
                                                  config.stash[REPORT].name, _logger(config))
    return config.stash[EXECUTOR]


def _case(item) -> tuple[plan.Plan, str, float] | None:
    """(plan, dataset, eps) of a collected hypothesis case, or None for any other test."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    if item.get_closest_marker(MARKER) is None or not {"dataset", "eps"} <= set(params):
        return None
    return plan_of(item.config, item.module.CLAIM), params["dataset"], params["eps"]


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    """Before the first test, in each process that runs tests: the executor obtains every run the selected
    cases need (plan.needs), its way: local trains nothing yet, slurm trains them all as one job array."""
    config = session.config
    if config.option.collectonly or config.pluginmanager.has_plugin("dsession"):  # xdist's controller tests nothing
        return None
    cases = [c for c in map(_case, session.items) if c is not None]
    if not cases:
        return None
    ex = executor(config)
    try:
        ex.obtain(plan.needs(cases, runtime.resolve_precision(config.stash[SETTINGS].precision, ex.device)))
    except cfg.ConfigError as e:  # no sbatch, no submitit, bad data: one line, nothing runs
        pytest.exit(f"advhyp: {e}", returncode=pytest.ExitCode.USAGE_ERROR)
    except Refused as e:  # the scheduler's message, in the report too; the session stops (2)
        config.pluginmanager.get_plugin("advhyp-collector").error("(SLURM submission)", "setup", str(e))
        pytest.exit(f"advhyp: {e}", returncode=pytest.ExitCode.INTERRUPTED)
    return None


def _logger(config):
    """One line per call, straight to the terminal (past pytest's capture) and to progress.log."""
    capman = config.pluginmanager.getplugin("capturemanager")
    who = getattr(config, "workerinput", {}).get("workerid", "main")
    log_path = config.stash[REPORT] / "progress.log"

    def log(line: str) -> None:
        text = f"[{who} {time.strftime('%H:%M:%S')}] {line}\n"
        with capman.global_and_fixture_disabled():
            sys.stderr.write(text)
            sys.stderr.flush()
        try:
            with open(log_path, "a") as f:
                f.write(text)
        except OSError:  # a full or read-only reports folder: the terminal has the line, and the controller
            pass  # stops the session when results.json cannot be written, naming the folder
    return log


class SuiteFixture:
    """What a hypothesis test body uses: `case = suite.evaluate(CLAIM, dataset, eps)`, then
    `suite.conclude(case)`. Every evaluated case reaches the report, even when the body raises after."""

    def __init__(self, request):
        self.request = request
        self.config = request.config

    def evaluate(self, claim: claims.Claim | claims.TrendClaim, dataset: str, eps: float) -> Case:
        s, ex = self.config.stash[SETTINGS], executor(self.config)
        p = plan_of(self.config, claim)
        setup_error = None
        try:
            needed = plan.case_runs(p, dataset, eps, runtime.resolve_precision(s.precision, ex.device))
            family = {d: ex.runs(configs) for d, configs in needed.items()}
            checks = ex.final_checks(claim, needed[dataset], family[dataset])
        except (store.StoreError, cfg.ConfigError) as e:  # a full or read-only disk, bad data: every later
            setup_error = str(e)  # test would fail the same way
        if setup_error:  # one line, and the session stops (failed outside the except: no chained exception)
            stop(self.config, self.request.session, "advhyp: stopped by the setup error above")
            pytest.fail(setup_error, pytrace=False)
        case = verdict.judge(p, dataset, eps, family, checks, s.alpha, nodeid=self.request.node.nodeid,
                             module=self.request.module.__name__.split(".")[-1])
        self.request.node.user_properties += tables.junit_properties(case)  # --junitxml: <property> elements
        warnings = ex.warnings() + [f"{SUBSTITUTED} {n}" for n in p.notes]
        runs = checks.attach(family[dataset]) if checks else family[dataset]
        self.request.node.stash[RECORD] = {
            "case": case.to_dict(), "runs": {r.key: r.to_dict() for rs in runs.values() for r in rs},
            "warnings": warnings, "design": getattr(self.request.module, "DESIGN", None),  # a Factorial, or none
            "env": {f"{self.config.stash[REPORT].name}:{ex.device}": runtime.environment(ex.device)}}
        self.request.node.stash[UNCONCLUDED] = case
        return case

    def conclude(self, case: Case) -> None:
        """The test's outcome from the case's: pass, skip, xfail or fail with the verdict's message. A test
        body that returns without calling it is concluded all the same (pytest_pyfunc_call)."""
        self.request.node.stash[UNCONCLUDED] = None
        if case.outcome == "skipped":
            pytest.skip(verdict.message(case))
        if case.outcome == "xfailed":
            pytest.xfail(verdict.message(case))
        if case.outcome == "failed":
            pytest.fail(verdict.message(case), pytrace=False)


@pytest.fixture
def suite(request) -> SuiteFixture:
    return SuiteFixture(request)


@pytest.hookimpl(wrapper=True)
def pytest_pyfunc_call(pyfuncitem):
    """A test body that evaluated a case and returned without concluding it gets the case's outcome: a
    hypothesis cannot pass by forgetting `suite.conclude(case)`."""
    result = yield
    if pyfuncitem.stash.get(UNCONCLUDED, None) is not None:
        pyfuncitem.funcargs["suite"].conclude(pyfuncitem.stash[UNCONCLUDED])
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """The evaluated case travels with the call's report, whatever the test body did after evaluating."""
    report = yield
    if call.when == "call" and RECORD in item.stash:
        report.user_properties.append((PAYLOAD, json.dumps(results.plain(item.stash[RECORD]))))
    return report


def settings_of(config) -> settings.Settings:
    return config.stash[SETTINGS]

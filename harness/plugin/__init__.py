"""pytest glue: options, parametrization from the plan, the `suite` fixture, and the controller's collector.

The science is elsewhere: `plan` says which cases and runs a claim has, an executor (`execute`) gets the
runs, `verdict` judges them into a `Case`; this module translates `Case.outcome` into pass, skip or
fail. Collection plans only (no device, no cache), so `pytest --collect-only` is cheap and side-effect
free. Under xdist the controller checks the settings once, picks the report folder and each worker's
device; workers send each case back as JSON in the test report's user_properties.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from ..spec import config as cfg
from ..report import drift
from ..spec import plan, results
from ..run import runtime
from . import settings
from ..cache import store
from ..judge import verdict
from ..spec.case import Case
from .collector import HYPOTHESIS_TEST, PAYLOAD, SUBSTITUTED, Collector, stop

SETTINGS = pytest.StashKey[settings.Settings]()
REPORT = pytest.StashKey[Path]()
PLANS = pytest.StashKey[dict]()  # id(claim) -> Plan
EXECUTOR = pytest.StashKey[object]()  # built on first use, in the process that runs tests
RECORD = pytest.StashKey[dict]()  # on a test item: the payload of the case it evaluated


def pytest_addoption(parser):
    settings.add_options(parser)


def pytest_configure(config):
    config.addinivalue_line("markers", "hypothesis: a test module of hypotheses/ (added by the plugin)")
    worker = getattr(config, "workerinput", None)
    try:
        s = settings.read(config)
        runtime.resolve_precision(s.precision, None)
        baseline = None
        if worker is None:  # setup errors stop the session once, on the controller, before workers start
            runtime.check_device(s.device)
            store.check_writable(s.cache_dir, "--cache-dir")
            baseline = drift.load_baseline(s.baseline) if s.baseline else None
    except cfg.ConfigError as e:
        raise pytest.UsageError(str(e)) from None
    except store.StoreError as e:
        raise pytest.UsageError(str(e)) from None
    config.stash[SETTINGS] = s
    config.stash[PLANS] = {}
    if worker is None:  # the controller (or a run without xdist)
        folder = _new_report_folder(s.reports_dir)
        config.stash[REPORT] = folder
        config.pluginmanager.register(Collector(config, settings.as_record(s), folder, baseline), "advhyp-collector")
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


def plan_of(config, claim: cfg.Claim) -> plan.Plan:
    """The claim's plan in this session, made once per process."""
    plans = config.stash[PLANS]
    if id(claim) not in plans:
        s = config.stash[SETTINGS]
        plans[id(claim)] = plan.plan(claim, s.profile, s.sources, s.overrides.datasets, s.overrides.eps,
                                     s.allow_reduced)
    return plans[id(claim)]


def pytest_generate_tests(metafunc):
    claim = getattr(metafunc.module, "CLAIM", None)
    if isinstance(claim, cfg.CLAIM_TYPES) and {"dataset", "eps"} <= set(metafunc.fixturenames):
        try:
            cases = plan_of(metafunc.config, claim).cases()
        except cfg.ConfigError as e:
            raise pytest.UsageError(f"{metafunc.module.__name__}: {e}") from None
        metafunc.parametrize(("dataset", "eps"), cases, ids=[f"{d}-eps{e:g}" for d, e in cases])


def pytest_collection_modifyitems(items):
    """Tag hypothesis tests, so the controller reports their errors and ignores other tests'."""
    for item in items:
        claim = getattr(getattr(item, "module", None), "CLAIM", None)
        if isinstance(claim, cfg.CLAIM_TYPES) and "suite" in getattr(item, "fixturenames", ()):
            item.user_properties.append((HYPOTHESIS_TEST, True))
            item.add_marker("hypothesis")


def executor(config):
    """This process's executor: device, cache and logger are made here, on first use, never at collection."""
    if EXECUTOR not in config.stash:
        from ..cache.runs import RunCache
        from ..executors.local import CollectExecutor, LocalExecutor
        s = config.stash[SETTINGS]
        worker = getattr(config, "workerinput", {})
        device = runtime.pick_device(s.device or worker.get("advhyp_device") or None)
        runtime.set_deterministic(s.deterministic)
        # --executor slurm: the jobs trained every run before the tests (pytest_runtestloop); the tests only read
        kind = CollectExecutor if s.collect_only or s.executor == "slurm" else LocalExecutor
        config.stash[EXECUTOR] = kind(
            cache=RunCache(s.cache_dir), sources=s.sources, device=device, final_eval=s.profile.final_eval,
            compile_mode=s.compile, early_exit=s.early_exit, attack_shapes=s.attack_shapes,
            session=config.stash[REPORT].name,
            log=_logger(config))
    return config.stash[EXECUTOR]


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session):
    """--executor slurm, before the first test: every run the collected hypothesis cases need, trained as one
    SLURM job array into the cache; the tests then read them (a failed job's run reads as failed)."""
    config = session.config
    s = config.stash[SETTINGS]
    if s.executor != "slurm" or s.collect_only or config.option.collectonly or getattr(config, "workerinput", None):
        return None
    cases = []  # (plan, dataset, eps) of every selected hypothesis case
    for item in session.items:
        claim = getattr(getattr(item, "module", None), "CLAIM", None)
        params = getattr(getattr(item, "callspec", None), "params", {})
        if isinstance(claim, cfg.CLAIM_TYPES) and "suite" in getattr(item, "fixturenames", ()) \
                and {"dataset", "eps"} <= set(params):
            cases.append((plan_of(config, claim), params["dataset"], params["eps"]))
    if not cases:
        return None
    ex = executor(config)
    try:
        from ..executors import slurm
        runs = slurm.planned_runs(ex, cases, s.precision)
        ex.failures.update(slurm.train_runs(runs, ex, s, ex.log))
    except cfg.ConfigError as e:  # no sbatch, no submitit, bad data: one line, nothing runs
        pytest.exit(f"advhyp: {e}", returncode=pytest.ExitCode.USAGE_ERROR)
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

    def evaluate(self, claim: cfg.Claim | cfg.TrendClaim, dataset: str, eps: float) -> Case:
        s, ex = self.config.stash[SETTINGS], executor(self.config)
        p = plan_of(self.config, claim)
        setup_error = None
        try:
            precision = runtime.resolve_precision(s.precision, ex.device)
            family = {}
            for d in p.family(dataset, eps):
                configs = plan.run_configs(p, d, precision)
                family[d] = ex.runs(configs)
                if d == dataset:
                    checks = ex.final_checks(claim, configs, family[d])
        except (store.StoreError, cfg.ConfigError) as e:  # a full or read-only disk, bad data: every later
            setup_error = str(e)  # test would fail the same way
        if setup_error:  # one line, and the session stops (failed outside the except: no chained exception)
            stop(self.config, self.request.session, "advhyp: stopped by the setup error above")
            pytest.fail(setup_error, pytrace=False)
        case = verdict.judge(p, dataset, eps, family, checks, s.alpha, nodeid=self.request.node.nodeid,
                             module=self.request.module.__name__.split(".")[-1])
        warnings = list(ex.cache.warnings) + ex.data_notes + [f"{SUBSTITUTED} {n}" for n in p.notes]
        runs = checks.attach(family[dataset]) if checks else family[dataset]
        self.request.node.stash[RECORD] = {
            "case": case.to_dict(), "runs": {r.key: r.to_dict() for rs in runs.values() for r in rs},
            "warnings": warnings, "design": getattr(self.request.module, "DESIGN", None),  # a Factorial, or none
            "env": {f"{self.config.stash[REPORT].name}:{ex.device}": runtime.environment(ex.device)}}
        return case

    def conclude(self, case: Case) -> None:
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
def pytest_runtest_makereport(item, call):
    """The evaluated case travels with the call's report, whatever the test body did after evaluating."""
    report = yield
    if call.when == "call" and RECORD in item.stash:
        report.user_properties.append((PAYLOAD, json.dumps(results.plain(item.stash[RECORD]))))
    return report


def settings_of(config) -> settings.Settings:
    return config.stash[SETTINGS]

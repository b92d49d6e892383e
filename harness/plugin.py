"""pytest glue: options, profile resolution, parametrization, the `suite` fixture, and the controller-side
collector that writes reports/<timestamp>/results.json (and index.html) as cases finish.

Settings resolve as: command line, then environment variable, then `[tool.pytest.ini_options]` in
pyproject.toml. Under xdist the controller picks the report folder and each worker's device and hands
them to the workers; workers send each case back as JSON in the test report's user_properties.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import torch

from . import config as cfg
from . import results, runtime, store
from .cache import RunCache
from .data import Sources, check_name, parse_binding
from .runner import Suite

PAYLOAD = "advhyp_payload"  # user_properties name: a case and its runs, as JSON, worker -> controller
HYPOTHESIS_TEST = "advhyp_hypothesis"  # user_properties name tagging tests of hypotheses/ modules
OPTIONS = {  # dest: (flag, environment variable, ini name, default, help)
    "profile": ("--profile", "ADVHYP_PROFILE", "advhyp_profile", "smoke",
                f"experiment size: {', '.join(cfg.PROFILES)}"),
    "data_dir": ("--data-dir", "ADVHYP_DATA_DIR", "advhyp_data_dir", ".data",
                 "torchvision's dataset folder (cifar10, cifar100; downloaded there where the network allows)"),
    "data_sources": ("--data-source", "ADVHYP_DATA_SOURCES", "advhyp_data_sources", "",
                     "NAME=PATH binding a dataset name to a .zip/ImageFolder/IDX folder; repeatable "
                     "(environment: NAME=PATH;NAME=PATH)"),
    "cache_dir": ("--cache-dir", "ADVHYP_CACHE_DIR", "advhyp_cache_dir", ".cache/advhyp",
                  "where finished runs, checkpoints and decoded data live"),
    "reports_dir": ("--reports-dir", "ADVHYP_REPORTS_DIR", "advhyp_reports_dir", "reports",
                    "where reports/<timestamp>/ folders are written"),
    "device": ("--device", "ADVHYP_DEVICE", "advhyp_device", "", "cpu, cuda or cuda:N (default: a GPU if any)"),
    "precision": ("--precision", "ADVHYP_PRECISION", "advhyp_precision", "auto",
                  "auto (bf16 autocast on GPUs, fp32 on CPU), bf16 or fp32"),
    "compile": ("--compile", "ADVHYP_COMPILE", "advhyp_compile", "auto",
                "torch.compile the training step: auto (transformers on GPUs), on, off"),
    "alpha": ("--alpha", "ADVHYP_ALPHA", "advhyp_alpha", "0.05", "significance level of the verdicts"),
    "seeds": ("--seeds", None, None, "", "override the profile's seeds, e.g. 0,1,2"),
    "epochs": ("--epochs", None, None, "", "override every hypothesis's epoch count"),
    "datasets": ("--datasets", None, None, "", "override the hypotheses' datasets, e.g. cifar10"),
    "eps": ("--eps", None, None, "", "override the eps cases, in 1/255 units, e.g. 1,8"),
}


def pytest_addoption(parser):
    group = parser.getgroup("advhyp", "adversarial-robustness hypotheses")
    for dest, (flag, env, ini, default, help_) in OPTIONS.items():
        where = f" [env {env}]" if env else ""
        action = "append" if dest == "data_sources" else "store"
        group.addoption(flag, dest=f"advhyp_{dest}", action=action, default=None, help=help_ + where,
                        metavar=flag.lstrip("-").replace("-", "_").upper())  # not the dest, which reads as a variable
        if ini:
            parser.addini(ini, help_, default=default)
    group.addoption("--no-early-exit", dest="advhyp_no_early_exit", action="store_true",
                    help="attack every example, not only those still robust (same numbers, slower)")
    group.addoption("--deterministic", dest="advhyp_deterministic", action="store_true",
                    help="deterministic GPU kernels (slower); recorded in the results")


def setting(config, dest: str) -> str:
    flag, env, ini, default, _ = OPTIONS[dest]
    value = config.getoption(f"advhyp_{dest}")
    if value:
        return ";".join(value) if isinstance(value, list) else str(value)
    if env and os.environ.get(env):
        return os.environ[env]
    return str(config.getini(ini)) if ini else default


def _numbers(text: str, kind, flag: str) -> tuple | None:
    if not text:
        return None
    try:
        return tuple(kind(x) for x in text.replace(" ", "").split(",") if x)
    except ValueError:
        raise cfg.ConfigError(f"{flag} {text!r} is not a comma-separated list of numbers, e.g. {flag} 1,2") from None


@dataclass
class Settings:
    profile: cfg.Profile
    overrides: cfg.Overrides
    sources: Sources
    cache_dir: Path
    reports_dir: Path
    device: str
    precision: str
    compile: str
    alpha: float
    early_exit: bool
    deterministic: bool


def _settings(config) -> Settings:
    epochs = setting(config, "epochs")
    overrides = cfg.Overrides(
        seeds=_numbers(setting(config, "seeds"), int, "--seeds"),
        epochs=_numbers(epochs, int, "--epochs")[0] if epochs else None,
        datasets=tuple(d for d in setting(config, "datasets").split(",") if d) or None,
        eps=_numbers(setting(config, "eps"), float, "--eps"))
    profile = overrides.apply(cfg.get_profile(setting(config, "profile")))
    bindings = tuple(parse_binding(b) for b in setting(config, "data_sources").split(";") if b.strip())
    try:
        alpha = float(setting(config, "alpha"))
    except ValueError:
        alpha = -1
    if not 0 < alpha < 0.5:  # at 0.5 a one-sided test calls every effect in the claimed direction supported
        raise cfg.ConfigError(f"--alpha {setting(config, 'alpha')!r} must be a number in (0, 0.5), e.g. 0.05")
    compile_ = setting(config, "compile")
    if compile_ not in ("auto", "on", "off"):
        raise cfg.ConfigError(f"--compile {compile_!r}: use auto, on or off")
    root = Path(config.rootpath)
    return Settings(
        profile=profile, overrides=overrides,
        sources=Sources(bindings=bindings, data_dir=str(root / setting(config, "data_dir"))),
        cache_dir=root / setting(config, "cache_dir"), reports_dir=root / setting(config, "reports_dir"),
        device=setting(config, "device"), precision=setting(config, "precision"), compile=compile_,
        alpha=alpha, early_exit=not config.getoption("advhyp_no_early_exit"),
        deterministic=config.getoption("advhyp_deterministic"))


def pytest_configure(config):
    try:
        settings = _settings(config)
        runtime.resolve_precision(settings.precision, torch.device("cpu"))
    except cfg.ConfigError as e:
        raise pytest.UsageError(str(e)) from None
    for name in settings.overrides.datasets or ():
        try:
            check_name(name, settings.sources)
        except cfg.ConfigError as e:
            raise pytest.UsageError(str(e)) from None
    config.advhyp_settings = settings
    config.advhyp_suite = None
    worker = getattr(config, "workerinput", None)
    if worker is None:  # the controller (or a run without xdist)
        folder = _new_report_folder(settings.reports_dir)
        config.advhyp_report = folder
        config.pluginmanager.register(Collector(config, settings, folder), "advhyp-collector")
    else:
        config.advhyp_report = Path(worker["advhyp_report"])
        runtime.share_cpu(int(worker.get("workercount", os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1))))


def _new_report_folder(root: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for i in range(1000):
        folder = root / (stamp if i == 0 else f"{stamp}-{i}")
        try:
            folder.mkdir(parents=True)
            return folder
        except FileExistsError:
            continue
        except OSError as e:
            raise pytest.UsageError(f"cannot create the report folder {folder} ({e.strerror}): "
                                    f"point --reports-dir at a writable folder") from None
    raise pytest.UsageError(f"too many report folders named {stamp}* in {root}")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node):
    """xdist, controller side: one report folder for all; a GPU per worker, round-robin."""
    config = node.config
    node.workerinput["advhyp_report"] = str(config.advhyp_report)
    index = int(node.gateway.id.lstrip("gw") or 0)
    gpus = _gpu_count() if not config.advhyp_settings.device else 0
    node.workerinput["advhyp_device"] = f"cuda:{index % gpus}" if gpus else ""


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config):
    """`-n auto` on GPUs: three workers per GPU (on an H200, three ResNet18 processes trained 2.9x one
    process's images/s, and ViT-tiny lost nothing); elsewhere xdist's default (one per CPU)."""
    gpus = _gpu_count()
    return 3 * gpus if gpus else None


def _gpu_count() -> int:
    # CUDA_VISIBLE_DEVICES narrows what device_count sees; cuda:N then indexes the visible ones.
    import torch
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def _suite(config) -> Suite:
    if config.advhyp_suite is None:
        s: Settings = config.advhyp_settings
        worker = getattr(config, "workerinput", {})
        device = runtime.pick_device(s.device or worker.get("advhyp_device") or None)
        runtime.set_deterministic(s.deterministic)
        config.advhyp_suite = Suite(
            profile=s.profile, sources=s.sources, cache=RunCache(s.cache_dir), device=device,
            precision=runtime.resolve_precision(s.precision, device), alpha=s.alpha,
            datasets_override=s.overrides.datasets, eps_override=s.overrides.eps, compile_mode=s.compile,
            early_exit=s.early_exit, session=config.advhyp_report.name, log=_logger(config))
    return config.advhyp_suite


def _logger(config):
    """One line per call, straight to the terminal (past pytest's capture) and to progress.log."""
    capman = config.pluginmanager.getplugin("capturemanager")
    who = getattr(config, "workerinput", {}).get("workerid", "main")
    log_path = config.advhyp_report / "progress.log"

    def log(line: str) -> None:
        text = f"[{who} {time.strftime('%H:%M:%S')}] {line}\n"
        with capman.global_and_fixture_disabled():
            sys.stderr.write(text)
            sys.stderr.flush()
        with open(log_path, "a") as f:
            f.write(text)
    return log


def pytest_generate_tests(metafunc):
    claim = getattr(metafunc.module, "CLAIM", None)
    if isinstance(claim, cfg.Claim) and {"dataset", "eps"} <= set(metafunc.fixturenames):
        suite = _suite(metafunc.config)
        cases = [(d, e) for d in suite.datasets(claim) for e in suite.eps_cases(claim)]
        metafunc.parametrize(("dataset", "eps"), cases, ids=[f"{d}-eps{e:g}" for d, e in cases])


def pytest_collection_modifyitems(items):
    """Tag hypothesis tests, so the controller reports their errors and ignores other tests'."""
    for item in items:
        if isinstance(getattr(getattr(item, "module", None), "CLAIM", None), cfg.Claim):
            item.user_properties.append((HYPOTHESIS_TEST, True))


class SuiteFixture:
    """What a hypothesis test body uses: evaluate, record, conclude."""

    def __init__(self, request):
        self.request = request
        self.suite = _suite(request.config)

    def evaluate(self, claim: cfg.Claim, dataset: str, eps: float) -> dict:
        try:
            case = self.suite.evaluate(claim, dataset, eps, module=self.request.module.__name__.split(".")[-1])
        except store.StoreError as e:  # disk full or read-only: every later test would fail the same way
            self.request.session.shouldstop = str(e)
            raise
        case["nodeid"] = self.request.node.nodeid
        return case

    def record(self, case: dict) -> None:
        """Send the case and its runs to the controller. Call before concluding, so failures are reported."""
        runs = case.pop("_runs", {})
        payload = {"case": case, "runs": runs, "warnings": list(self.suite.cache.warnings),
                   "env": {self.request.config.advhyp_report.name + ":" + str(self.suite.device):
                           runtime.environment(self.suite.device)}}
        case["outcome"] = outcome(case)
        self.request.node.user_properties.append((PAYLOAD, json.dumps(results.plain(payload))))

    def conclude(self, case: dict) -> None:
        result, message = outcome(case), _message(case)
        if result == "skipped":
            pytest.skip(message)
        if result == "failed":
            pytest.fail(message, pytrace=False)


def outcome(case: dict) -> str:
    """The test's outcome for one case: skipped (not deciding), passed or failed."""
    if case["profile_decides"] is False or not case["decides"]:
        return "skipped"
    if case["problems"]:  # a failed run or an untestable comparison: neither a claim nor a null is shown
        return "failed"
    if case["expect"] == "null":
        return "passed" if case["verdict"] == "inconclusive" else "failed"
    # A gain the masking checks cannot vouch for is not evidence: supported + a failed check fails.
    return "passed" if case["verdict"] == "supported" and not case["masking_warnings"] else "failed"


def _message(case: dict) -> str:
    t = case["test"]
    lines = [f"{case['statement']} [{case['dataset']}, eps {case['eps']:g}/255, {case['profile']} profile, "
             f"{case['epochs']} epochs, seeds {case['seeds']}, alpha {case['alpha']:g}]",
             f"verdict: {case['verdict']}; effect {case['better']} - {case['worse']} on {case['primary']} = "
             f"{t['effect']:+.4f} (95% CI {t['ci'][0]:+.4f} .. {t['ci'][1]:+.4f}); one-sided Welch p = "
             f"{t['p_greater']:.3g} (Holm-adjusted {t['p_adj_greater']:.3g}); permutation p = {t['p_perm']:.3g} "
             f"(smallest possible {t['p_min']:.3g}); n = {t['n']}"]
    if case["verdict"] == "inconclusive" and case["expect"] == "better":
        need = t.get("seeds_needed")
        why = "no number of seeds (the effect is not in the claimed direction)" if not t["effect"] > 0 \
            else "more than 100,000"
        lines.append(f"seeds per variant a t-test would need for 80% power at this effect: {need or why}")
    for p in case["problems"]:
        lines.append(f"problem: {p}")
    for w in case["masking_warnings"]:
        lines.append(f"masking check failed: {w}")
    if case["profile_decides"] is False:
        lines.insert(0, f"not decided: the {case['profile']} profile computes everything and decides no claim")
    elif not case["decides"]:
        lines.insert(0, f"reported only: the claim is decided at eps {case['deciding_eps']:g}/255")
    return "\n".join(lines)


@pytest.fixture
def suite(request) -> SuiteFixture:
    return SuiteFixture(request)


class Collector:
    """Controller only: merges cases as they arrive, rewrites results.json, renders the report at the end."""

    def __init__(self, config, settings: Settings, folder: Path):
        self.folder = folder
        self.doc = results.new({
            "profile": settings.profile.name, "profile_settings": results.plain(asdict(settings.profile)),
            "overrides": settings.overrides.as_dict(), "alpha": settings.alpha,
            "data_sources": [f"{n}={p}" for n, p in settings.sources.bindings],
            "deterministic": settings.deterministic, "early_exit": settings.early_exit,
            "args": list(config.invocation_params.args), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
            "controller": runtime.environment(torch.device("cpu"))})
        self._install_sigterm()

    @staticmethod
    def _install_sigterm():
        # SIGTERM (a CI timeout, a preempted job) ends the session like Ctrl-C: a partial report is written.
        def interrupt(signum, frame):
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # once: the shutdown that follows must finish
            raise KeyboardInterrupt("SIGTERM")
        signal.signal(signal.SIGTERM, interrupt)

    def pytest_runtest_logreport(self, report):
        props = dict(report.user_properties)
        if HYPOTHESIS_TEST not in props:
            return
        if PAYLOAD in props and report.when == "call":
            payload = json.loads(props[PAYLOAD])
            payload["case"]["outcome"] = report.outcome
            results.add(self.doc, payload)
            self._write()
        elif report.failed:  # stopped before producing a case: bad data, a crash, ...
            self.doc["errors"].append({"nodeid": report.nodeid, "when": report.when,
                                       "message": str(report.longrepr)[-4000:]})
            self._write()

    def _write(self):
        results.write(self.folder, self.doc)

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session, exitstatus):
        interrupted = exitstatus in (pytest.ExitCode.INTERRUPTED, pytest.ExitCode.INTERNAL_ERROR)
        if not (self.doc["cases"] or self.doc["errors"] or (self.folder / "progress.log").exists()):
            shutil.rmtree(self.folder, ignore_errors=True)  # no hypothesis ran (e.g. only tests/): no report
            return
        self.doc["partial"] = bool(interrupted)
        self.doc["session"].update(finished=time.strftime("%Y-%m-%d %H:%M:%S"), exit_status=int(exitstatus))
        # An interrupted xdist session gets more signals while its workers shut down (a second Ctrl-C, the
        # workers' SIGTERM): they must not cut the last write of the results short.
        held = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            self._write()
        finally:
            for sig, handler in held.items():
                signal.signal(sig, handler)
        try:
            from . import report  # matplotlib: loaded by the controller only, at the end
            report.render(self.folder)
        except (Exception, KeyboardInterrupt) as e:  # results.json is saved: the page can be rebuilt from it
            sys.stderr.write(f"advhyp: could not render {self.folder / 'index.html'} ({type(e).__name__}: {e}); "
                             f"rebuild it with: python -m harness.report {self.folder}\n")

    def pytest_terminal_summary(self, terminalreporter):
        if self.folder.exists():
            terminalreporter.write_line(f"advhyp: results in {self.folder / 'results.json'}")

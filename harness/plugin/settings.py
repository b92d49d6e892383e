"""The suite's options: one table, read as command line, then environment variable, then pyproject.toml's
`[tool.pytest.ini_options]` (every option and switch has all three), and checked once, so that bad input is
one clear line before anything runs."""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from ..executors import EXECUTORS
from ..spec import config as cfg
from ..run.attacks import ATTACK_SHAPES
from ..run.sources import Sources, check_name, layout, parse_bindings

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
    "attack_shapes": ("--attack-shapes", "ADVHYP_ATTACK_SHAPES", "advhyp_attack_shapes", "exact",
                      "the batch sizes attacks hand the model: exact (the examples still robust; least work) or "
                      "buckets (padded to 8 sizes per chunk, autotuner on; for GPUs, see docs/performance.md)"),
    "alpha": ("--alpha", "ADVHYP_ALPHA", "advhyp_alpha", "0.05",
              "family-wise significance level of the seed procedure (above 0.05: reduced, reported only)"),
    "executor": ("--executor", "ADVHYP_EXECUTOR", "advhyp_executor", "local",
                 "where runs the cache lacks are trained: local (this process), slurm (a job array), collect (nowhere: "
                 "as --collect-only-runs), or an engine registered in harness.executors.EXECUTORS"),
    "slurm_partition": ("--slurm-partition", "ADVHYP_SLURM_PARTITION", "advhyp_slurm_partition", "",
                        "--executor slurm: the partition (default: the cluster's default)"),
    "slurm_gpus": ("--slurm-gpus", "ADVHYP_SLURM_GPUS", "advhyp_slurm_gpus", "1",
                   "--executor slurm: GPUs per job (0: CPU jobs, and --precision auto means fp32)"),
    "slurm_time": ("--slurm-time", "ADVHYP_SLURM_TIME", "advhyp_slurm_time", "60",
                   "--executor slurm: each job's time limit in minutes, at least 2 (a job that reaches it is "
                   "requeued and resumes from its last finished epoch)"),
    "slurm_parallel": ("--slurm-parallel", "ADVHYP_SLURM_PARALLEL", "advhyp_slurm_parallel", "16",
                       "--executor slurm: the most jobs of the array running at once"),
    "slurm_cpus": ("--slurm-cpus", "ADVHYP_SLURM_CPUS", "advhyp_slurm_cpus", "",
                   "--executor slurm: CPU cores per job (default: the cluster's); also the job's torch threads"),
    "slurm_mem": ("--slurm-mem", "ADVHYP_SLURM_MEM", "advhyp_slurm_mem", "",
                  "--executor slurm: memory per job in GB (default: the cluster's)"),
    "tensorboard": ("--tensorboard", "ADVHYP_TENSORBOARD", "advhyp_tensorboard", "",
                    "also write TensorBoard event files of every run and case under DIR/<session> (needs the "
                    "tensorboard package: the extra .[tensorboard])"),
    "baseline": ("--baseline", "ADVHYP_BASELINE", "advhyp_baseline", "",
                 "a previous results.json (or its folder): verdict drift is reported, and a changed verdict "
                 "fails the session"),
    "seeds": ("--seeds", "ADVHYP_SEEDS", "advhyp_seeds", "", "override the profile's seeds, e.g. 0,1,2"),
    "epochs": ("--epochs", "ADVHYP_EPOCHS", "advhyp_epochs", "", "override every hypothesis's epoch count"),
    "datasets": ("--datasets", "ADVHYP_DATASETS", "advhyp_datasets", "",
                 "override the hypotheses' datasets, e.g. cifar10"),
    "eps": ("--eps", "ADVHYP_EPS", "advhyp_eps", "", "override the eps cases, in 1/255 units, e.g. 1,8"),
}
FLAGS = {  # dest: (flag, environment variable, ini name, help): switches, off unless given
    "no_early_exit": ("--no-early-exit", "ADVHYP_NO_EARLY_EXIT", "advhyp_no_early_exit",
                      "attack every example, not only those still robust (same numbers, slower)"),
    "deterministic": ("--deterministic", "ADVHYP_DETERMINISTIC", "advhyp_deterministic",
                      "deterministic GPU kernels (slower); recorded in the results"),
    "allow_reduced": ("--allow-reduced", "ADVHYP_ALLOW_REDUCED", "advhyp_allow_reduced",
                      "let a protocol smaller than the claim's (fewer epochs, seeds, images or datasets; data "
                      "bound in place of the claim's) decide; it says so"),
    "collect_only_runs": ("--collect-only-runs", "ADVHYP_COLLECT_ONLY_RUNS", "advhyp_collect_only_runs",
                          "train nothing: every verdict and the report from the cache alone, naming each run it "
                          "lacks"),
}
PATHS = ("data_dir", "cache_dir", "reports_dir", "baseline")  # an empty one would mean the project's root
SWITCH_VALUES = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False,
                 "off": False}
MAX_SEED = 2 ** 31 - 1  # torch's generators take 64-bit seeds; derived seeds multiply by up to ~1e5


@dataclass(frozen=True)
class SlurmOptions:
    """--executor slurm's job array (harness.executors.slurm.JobArray); None: the cluster's default."""
    partition: str | None = None
    gpus: int = 1  # per job
    time_min: int = 60  # each job's time limit
    parallel: int = 16  # array tasks running at once
    cpus: int | None = None  # per job
    mem_gb: float | None = None  # per job


@dataclass(frozen=True)
class Settings:
    profile: cfg.Profile  # with --seeds and --epochs applied
    overrides: cfg.Overrides
    sources: Sources
    cache_dir: Path
    reports_dir: Path
    device: str
    precision: str
    compile: str
    alpha: float
    early_exit: bool
    attack_shapes: str
    deterministic: bool
    executor: str
    collect_only: bool
    allow_reduced: bool
    baseline: str  # path of a previous results.json, or ""
    tensorboard: str = ""  # the folder TensorBoard's files go to (harness.report.tracker), or ""
    slurm: SlurmOptions = SlurmOptions()


def add_options(parser) -> None:
    group = parser.getgroup("advhyp", "adversarial-robustness hypotheses")
    for dest, (flag, env, ini, default, help_) in OPTIONS.items():
        action = "append" if dest == "data_sources" else "store"
        group.addoption(flag, dest=f"advhyp_{dest}", action=action, default=None, help=f"{help_} [env {env}]",
                        metavar=flag.lstrip("-").replace("-", "_").upper())  # not the dest, which reads as a variable
        parser.addini(ini, help_, default=default)
    for dest, (flag, env, ini, help_) in FLAGS.items():
        group.addoption(flag, dest=f"advhyp_{dest}", action="store_true", help=f"{help_} [env {env}=1]")
        parser.addini(ini, help_, type="bool", default=False)


def given(config, dest: str) -> str | None:
    """The option as the command line, else its environment variable, else its ini key gives it; None where
    none does (a variable set to "" counts as not set)."""
    flag, env, ini, default, _ = OPTIONS[dest]
    value = config.getoption(f"advhyp_{dest}")
    if value is not None:
        return ";".join(value) if isinstance(value, list) else str(value)
    if os.environ.get(env):
        return os.environ[env]
    return str(config.getini(ini)) if str(config.getini(ini)) != default else None


def setting(config, dest: str) -> str:
    value = given(config, dest)
    if dest in PATHS and value is not None and not value.strip():  # "" would be the project's root
        flag, _, _, default, _ = OPTIONS[dest]
        raise cfg.ConfigError(f"{flag} {value!r} is empty: give a path, e.g. {flag} "
                              f"{default or 'reports/20261201-021700/results.json'}")
    return OPTIONS[dest][3] if value is None else value


def switch(config, dest: str) -> bool:
    flag, env, ini, _ = FLAGS[dest]
    if config.getoption(f"advhyp_{dest}"):
        return True
    text = os.environ.get(env, "").strip().lower()
    if text and text not in SWITCH_VALUES:
        raise cfg.ConfigError(f"{env}={os.environ[env]!r}: use 1 (on, as {flag}) or 0 (off)")
    return SWITCH_VALUES[text] if text else bool(config.getini(ini))


def numbers(text: str, kind, flag: str) -> tuple | None:
    """A comma-separated list; None when the option was not given. Empty items are refused, not dropped."""
    if text is None:
        return None
    items = [x.strip() for x in text.split(",")]
    if not text.strip():
        raise cfg.ConfigError(f"{flag} {text!r} is empty: give a comma-separated list, e.g. {flag} "
                              f"{EXAMPLES[flag]}")
    if any(not x for x in items):
        raise cfg.ConfigError(f"{flag} {text!r} has an empty item: give a comma-separated list, e.g. {flag} "
                              f"{EXAMPLES[flag]}")
    try:
        return tuple(kind(x) for x in items)
    except ValueError:
        raise cfg.ConfigError(f"{flag} {text!r} is not a comma-separated list of "
                              f"{'whole numbers' if kind is int else 'numbers'}, e.g. {flag} {EXAMPLES[flag]}") from None


EXAMPLES = {"--seeds": "0,1,2", "--eps": "1,2,4,8", "--epochs": "10", "--datasets": "cifar10"}


def read(config) -> Settings:
    """Every setting, checked: a ConfigError names the first bad value and its fix."""
    text = {dest: given(config, dest) for dest in ("seeds", "epochs", "datasets", "eps")}
    seeds = numbers(text["seeds"], int, "--seeds")
    for s in seeds or ():
        if not 0 <= s <= MAX_SEED:
            raise cfg.ConfigError(f"seed {s} is out of range: seeds are whole numbers in [0, {MAX_SEED}], "
                                  f"e.g. --seeds 0,1,2")
    epochs = numbers(text["epochs"], int, "--epochs")
    if epochs is not None and len(epochs) != 1:
        raise cfg.ConfigError(f"--epochs {text['epochs']!r} gives {len(epochs)} values: it takes one epoch "
                              f"count, e.g. --epochs 10")
    datasets = numbers(text["datasets"], str, "--datasets")
    if datasets is not None and len(set(datasets)) != len(datasets):  # one case twice, Holm-adjusted with itself
        raise cfg.ConfigError(f"--datasets {text['datasets']!r} repeats a dataset: list each once, e.g. "
                              f"--datasets cifar10,cifar100")
    eps = numbers(text["eps"], float, "--eps")
    if eps is not None and len(set(eps)) != len(eps):
        raise cfg.ConfigError(f"--eps {text['eps']!r} repeats a radius: list each once, e.g. --eps 1,2,4,8")
    overrides = cfg.Overrides(seeds=seeds, epochs=epochs[0] if epochs else None, datasets=datasets, eps=eps)
    profile = overrides.apply(cfg.get_profile(setting(config, "profile")))
    bindings = parse_bindings(setting(config, "data_sources").split(";"))
    for name, path in bindings:  # file checks only: an unreadable binding stops the session here, once
        layout(name, Path(path).expanduser())
    try:
        alpha = float(setting(config, "alpha"))
    except ValueError:
        alpha = -1
    # At 0.5 a one-sided test calls every effect in the claimed direction supported; above 0.05 the verdicts are
    # computed and reported, not decided (harness.judge.verdict.reduced), unless --allow-reduced.
    if not 0 < alpha < 0.5:
        raise cfg.ConfigError(f"--alpha {setting(config, 'alpha')!r} must be a number in (0, 0.5), e.g. 0.05")
    for dest, allowed in (("compile", ("auto", "on", "off")), ("executor", tuple(EXECUTORS)),
                          ("attack_shapes", ATTACK_SHAPES)):
        if setting(config, dest) not in allowed:
            raise cfg.ConfigError(f"{OPTIONS[dest][0]} {setting(config, dest)!r}: use {', '.join(allowed[:-1])} "
                                  f"or {allowed[-1]}")
    slurm = slurm_options(config)
    executor = setting(config, "executor")
    precision = setting(config, "precision")
    if executor == "slurm":
        if getattr(config.option, "numprocesses", None):  # xdist's -n: its workers would only wait
            raise cfg.ConfigError("--executor slurm runs the training on the cluster: drop -n (xdist), the "
                                  "session's tests then read the finished runs in one process")
        if precision == "auto":  # as the jobs' device resolves it: it is part of every run's cache key
            precision = "bf16" if slurm.gpus > 0 else "fp32"
    root = Path(config.rootpath)
    sources = Sources(bindings=bindings, data_dir=str(root / setting(config, "data_dir")))
    for name in datasets or ():
        check_name(name, sources)
    tensorboard = setting(config, "tensorboard").strip()
    if tensorboard:
        from ..report import tracker
        tensorboard = str(tracker.check(root / Path(tensorboard).expanduser()))
    return Settings(
        profile=profile, overrides=overrides, sources=sources,
        cache_dir=root / setting(config, "cache_dir"), reports_dir=root / setting(config, "reports_dir"),
        device=setting(config, "device"), precision=precision,
        compile=setting(config, "compile"), alpha=alpha,
        early_exit=not switch(config, "no_early_exit"), attack_shapes=setting(config, "attack_shapes"),
        deterministic=switch(config, "deterministic"), executor=executor,
        collect_only=switch(config, "collect_only_runs"), slurm=slurm,
        allow_reduced=switch(config, "allow_reduced"), baseline=setting(config, "baseline"),
        tensorboard=tensorboard)


def slurm_options(config) -> SlurmOptions:
    """The --slurm-* options, checked (also under --executor local: a bad value is a bad value)."""
    def number(dest: str, kind, low, example: str):
        flag, text = OPTIONS[dest][0], setting(config, dest).strip()
        if not text and not OPTIONS[dest][3]:  # optional, and not given
            return None
        try:
            value = kind(text)
        except ValueError:
            value = None
        if kind is int and (value is None or value < low):
            raise cfg.ConfigError(f"{flag} {text!r} must be a whole number >= {low}, e.g. {flag} {example}")
        if kind is float and not (value is not None and 0 < value < float("inf")):
            raise cfg.ConfigError(f"{flag} {text!r} must be a positive number of GB, e.g. {flag} {example}")
        return value
    return SlurmOptions(partition=setting(config, "slurm_partition").strip() or None,
                        gpus=number("slurm_gpus", int, 0, "1"), time_min=number("slurm_time", int, 2, "120"),
                        parallel=number("slurm_parallel", int, 1, "16"), cpus=number("slurm_cpus", int, 1, "8"),
                        mem_gb=number("slurm_mem", float, 0, "32"))


def as_record(s: Settings) -> dict:
    """The settings as results.json records them."""
    from ..spec.results import plain
    return plain({"profile": s.profile.name, "profile_settings": dataclasses.asdict(s.profile),
                  "overrides": s.overrides.as_dict(), "alpha": s.alpha,
                  "data_sources": [f"{n}={p}" for n, p in s.sources.bindings],
                  "deterministic": s.deterministic, "early_exit": s.early_exit,
                  "attack_shapes": s.attack_shapes, "executor": s.executor,
                  "collect_only_runs": s.collect_only, "allow_reduced": s.allow_reduced, "baseline": s.baseline,
                  "tensorboard": s.tensorboard,
                  **({"slurm": dataclasses.asdict(s.slurm)} if s.executor == "slurm" else {})})

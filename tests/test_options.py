"""Every option and switch is read from the command line, else its ADVHYP_* environment variable, else its
`[tool.pytest.ini_options]` key (the README promises all three), and reaches the session's settings."""
from __future__ import annotations

from pathlib import Path

import pytest

from harness.plugin import settings
from helpers import fake_config

ROOT = Path(__file__).resolve().parent.parent

# dest -> (a value that is not the default, what the settings then hold)
VALUES = {
    "profile": ("paper", lambda s: s.profile.name == "paper"),
    "data_dir": ("elsewhere", lambda s: s.sources.data_dir == str(ROOT / "elsewhere")),
    "data_sources": ("toy={data}", lambda s: s.sources.bindings == (("toy", "{data}"),)),
    "cache_dir": ("c", lambda s: s.cache_dir == ROOT / "c"),
    "reports_dir": ("r", lambda s: s.reports_dir == ROOT / "r"),
    "device": ("cpu", lambda s: s.device == "cpu"),
    "precision": ("fp32", lambda s: s.precision == "fp32"),
    "compile": ("off", lambda s: s.compile == "off"),
    "attack_shapes": ("buckets", lambda s: s.attack_shapes == "buckets"),
    "alpha": ("0.01", lambda s: s.alpha == 0.01),
    "executor": ("slurm", lambda s: s.executor == "slurm"),
    "slurm_partition": ("gpu", lambda s: s.slurm.partition == "gpu"),
    "slurm_gpus": ("2", lambda s: s.slurm.gpus == 2),
    "slurm_time": ("5", lambda s: s.slurm.time_min == 5),
    "slurm_parallel": ("3", lambda s: s.slurm.parallel == 3),
    "slurm_cpus": ("4", lambda s: s.slurm.cpus == 4),
    "slurm_mem": ("8", lambda s: s.slurm.mem_gb == 8.0),
    "baseline": ("last.json", lambda s: s.baseline == "last.json"),
    "tensorboard": ("tb", lambda s: s.tensorboard == str(ROOT / "tb")),  # made absolute; nothing is created
    "seeds": ("3,4", lambda s: s.profile.seeds == (3, 4)),
    "epochs": ("5", lambda s: s.profile.epochs == 5),
    "datasets": ("fashion-mnist", lambda s: s.overrides.datasets == ("fashion-mnist",)),
    "eps": ("2,4", lambda s: s.overrides.eps == (2.0, 4.0)),
    "no_early_exit": ("1", lambda s: s.early_exit is False),
    "deterministic": ("yes", lambda s: s.deterministic is True),
    "allow_reduced": ("on", lambda s: s.allow_reduced is True),
    "collect_only_runs": ("true", lambda s: s.collect_only is True),
}


def test_every_option_and_switch_has_a_variable_an_ini_key_and_a_check_here():
    assert set(VALUES) == set(settings.OPTIONS) | set(settings.FLAGS)
    names = [o[1] for o in settings.OPTIONS.values()] + [f[1] for f in settings.FLAGS.values()]
    assert all(n.startswith("ADVHYP_") for n in names) and len(set(names)) == len(names)


@pytest.mark.parametrize("where", ["env", "ini"])
@pytest.mark.parametrize("dest", list(VALUES))
def test_an_option_reaches_the_settings_from_its_variable_or_its_ini_key(dest, where, tmp_path, monkeypatch):
    for n in ("train", "test"):  # a folder a binding may name
        (tmp_path / n).mkdir()
    text, holds = VALUES[dest]
    is_switch = dest in settings.FLAGS
    env, ini = settings.FLAGS[dest][1:3] if is_switch else settings.OPTIONS[dest][1:3]
    for name in (*(o[1] for o in settings.OPTIONS.values()), *(f[1] for f in settings.FLAGS.values())):
        monkeypatch.delenv(name, raising=False)
    if dest == "data_sources":
        text, holds = text.format(data=tmp_path), lambda s: s.sources.bindings == (("toy", str(tmp_path)),)
    assert not holds(settings.read(fake_config()))  # the default is another value
    if where == "env":
        monkeypatch.setenv(env, text)
    assert holds(settings.read(fake_config(ini={ini: True if is_switch else text} if where == "ini" else None)))


def test_the_command_line_wins_over_the_variable_which_wins_over_the_ini_key(monkeypatch):
    monkeypatch.setenv("ADVHYP_SEEDS", "5,6")
    ini = {"advhyp_seeds": "7,8"}
    assert settings.read(fake_config(ini=ini)).profile.seeds == (5, 6)
    assert settings.read(fake_config({"advhyp_seeds": "1,2"}, ini)).profile.seeds == (1, 2)
    monkeypatch.delenv("ADVHYP_SEEDS")
    assert settings.read(fake_config(ini=ini)).profile.seeds == (7, 8)

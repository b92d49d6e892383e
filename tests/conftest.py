"""Shared fixtures for the harness's own tests: small real data and a small model, all on the CPU."""
from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
import torch
from torch import nn

from harness.run import data
from harness import plugin
from harness import chaos
from harness.run.data import Sources

# One thread, as under `pytest -n 3` on two cores: float results (and so the trained test models) then do
# not depend on how the tests are run. The sessions the tests start inherit it (harness.run.runtime.share_cpu),
# so that a session beside two busy test workers does not oversubscribe the cores.
torch.set_num_threads(1)
os.environ["OMP_NUM_THREADS"] = "1"


@pytest.fixture(scope="session")
def sources(pytestconfig) -> Sources:
    """The data sources the run was given (--data-source / ADVHYP_DATA_SOURCES), as the plugin reads them."""
    return plugin.settings_of(pytestconfig).sources


@pytest.fixture(scope="session")
def real_dataset_name(sources) -> str:
    """The name of the first real dataset reachable: cifar10 where bound (CI passes the shared zip), else
    Debian's fashion-mnist."""
    name = data.first_reachable(("cifar10",), sources)
    if name is None:
        pytest.skip("no dataset reachable: pass --data-source cifar10=PATH or install dataset-fashion-mnist")
    return name


@pytest.fixture(scope="session")
def real_dataset(real_dataset_name, sources, pytestconfig) -> data.Dataset:
    """The first real dataset reachable, cut to 512 training and 256 test images."""
    ds = data.load(real_dataset_name, sources, plugin.settings_of(pytestconfig).cache_dir)  # decoded once per machine
    # A seeded shuffle, not the first N: the CIFAR-10 zip is sorted by class (its first 256 are all class 0).
    tr, te = data.fixed_subset(len(ds.train_x), 512, 0), data.fixed_subset(len(ds.test_x), 256, 0)
    return dataclasses.replace(ds, train_x=ds.train_x[tr], train_y=ds.train_y[tr],
                               test_x=ds.test_x[te], test_y=ds.test_y[te])


# The L-inf radius each dataset is usually attacked at, in 1/255 units (8/255 on CIFAR, 0.1 on Fashion-MNIST):
# tests that need an attack to fool a trained net attack there. Fashion-MNIST's mostly black images leave a
# small net largely robust at 8/255, so one radius for both would make those tests test the data, not the code.
STANDARD_EPS_UNITS = {"fashion-mnist": 25.5}
DEFAULT_EPS_UNITS = 8.0


@pytest.fixture(scope="session")
def eps_units(real_dataset_name) -> float:
    return STANDARD_EPS_UNITS.get(real_dataset_name, DEFAULT_EPS_UNITS)


@pytest.fixture(scope="session")
def tiny_images(real_dataset, tmp_path_factory):
    """64 training and 32 test images of real_dataset as a PNG folder, for subprocesses that must start
    fast (`python -m harness.chaos work`, pytest runs of hypotheses/): bind with --data-source NAME=PATH."""
    return chaos.folders.export_subset(real_dataset, tmp_path_factory.mktemp("tiny-images"))


@pytest.fixture(scope="session")
def worker_epochs() -> int:
    """Epochs of every `python -m harness.chaos work` process the tests start (clean_runs' too)."""
    return 3


@pytest.fixture(scope="session")
def worker_options(tiny_images, worker_epochs) -> list[str]:
    """The options of a `python -m harness.chaos work` process on tiny_images, for worker_epochs epochs."""
    return [f"--data-source=cifar10={tiny_images}", f"--epochs={worker_epochs}"]


@pytest.fixture(scope="session")
def clean_runs(worker_options, tmp_path_factory) -> dict:
    """{key: summary} of ResNet18 seeds 0 and 1, 3 epochs on tiny_images, trained undisturbed by one
    `python -m harness.chaos work` process: what killed, resumed and racing workers must reproduce."""
    return chaos.clean_run(tmp_path_factory.mktemp("clean-cache"), *worker_options, "--seeds=0,1")


class SmallNet(nn.Module):
    """A small conv net that trains in seconds on the CPU; maps [0, 1] images to logits."""

    def __init__(self, in_chans: int = 3, num_classes: int = 10):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_chans, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
            nn.Linear(32 * 16, num_classes))

    def forward(self, x):
        return self.body(x)


@pytest.fixture(scope="session")
def trained_small_net(real_dataset):
    """SmallNet trained for a few hundred steps on the real subset: accurate enough that attacks matter.
    Returns (model in eval mode, test images in [0, 1], test labels)."""
    torch.manual_seed(0)
    ds = real_dataset
    net = SmallNet(ds.channels, ds.num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    x, y = ds.train_x.float() / 255, ds.train_y
    for step in range(300):
        idx = torch.randint(0, len(x), (64,), generator=torch.Generator().manual_seed(step))
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    net.eval()
    return net, ds.test_x.float() / 255, ds.test_y


@pytest.fixture(scope="session")
def slurm_cluster():
    """A real single-node SLURM cluster (tools/slurm/cluster.sh) for this session, stopped at its end;
    SLURM_CONF and PATH (with the cluster's sacct stand-in first) are set in os.environ meanwhile, and
    jobs inherit them. Yields the cluster's folder. Skips, with the reason, where it cannot start."""
    missing = [c for c in ("slurmctld", "slurmd", "munged") if shutil.which(c) is None]
    if missing:
        pytest.skip(f"no {', '.join(missing)}: apt-get install slurm-wlm munge (tools/setup.sh --test)")
    if os.geteuid() != 0:
        pytest.skip("the single-node SLURM cluster needs root (slurmd runs jobs as the user who starts it)")
    script = Path(__file__).resolve().parents[1] / "tools" / "slurm" / "cluster.sh"
    # Not under pytest's tmp folders: munged wants every folder above its socket open to all (0700 is not).
    top = Path(tempfile.mkdtemp(prefix="advhyp-slurm-"))
    top.chmod(0o755)
    prefix = top / "cluster"
    started = subprocess.run(["bash", str(script), "start", str(prefix)], capture_output=True, text=True,
                             timeout=120)
    if started.returncode != 0:
        shutil.rmtree(top, ignore_errors=True)
        pytest.skip(f"SLURM did not start: {started.stderr.strip()}")
    saved = {}
    for line in started.stdout.splitlines():  # export NAME=VALUE; VALUE may end in $PATH
        name, value = line.removeprefix("export ").split("=", 1)
        saved[name] = os.environ.get(name)
        os.environ[name] = value.replace("$PATH", os.environ.get("PATH", ""))
    try:
        yield prefix
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        subprocess.run(["bash", str(script), "stop", str(prefix)], check=True, timeout=120)
        top.rmdir()


@pytest.fixture
def tmpfs(tmp_path):
    """mount(size_mb, read_only=False, full=False) -> a fresh tmpfs folder (a real file system that answers
    EROFS or ENOSPC), unmounted at teardown. Skips, with the reason, where mounting is not allowed (it needs
    root, with CAP_SYS_ADMIN): chmod would not stop root, and a monkeypatched error would not be the kernel's."""
    mounted = []

    def mount(size_mb: int, read_only: bool = False, full: bool = False) -> Path:
        why = chaos.folders.cannot_mount()
        if why:
            pytest.skip(why)
        where = tmp_path / f"tmpfs{len(mounted)}"
        try:
            chaos.folders.mount_tmpfs(where, size_mb, read_only=read_only, full=full)
        except OSError as e:
            pytest.skip(f"cannot mount a tmpfs here: {e}")
        finally:
            if where.is_mount():
                mounted.append(where)
        return where

    yield mount
    for where in reversed(mounted):
        chaos.folders.umount(where)

"""Where runs come from: an executor, picked by name (`--executor NAME`) from EXECUTORS.

Every executor keeps one protocol (`Executor`) and meets the others in the run cache (keys, locks and
atomic publish make a shared folder safe). Before the first test the plugin hands it every run the selected
cases need (`harness.spec.plan.needs`, the one rule) to obtain its way; each test then asks it for its
runs and their final-checkpoint checks. A new engine (Ray, a Kubernetes job) is one module with a class
whose `from_settings(settings, device, session, log)` builds it, and one line below; a module that
registers one itself (a plugin, a test) needs no line here.
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Callable, Protocol

from ..spec.registry import Registry

if TYPE_CHECKING:
    import torch

    from ..spec.claim import Claim
    from ..spec.config import RunConfig
    from ..spec.plan import Need
    from ..spec.records import FinalChecks, Runs


class Refused(RuntimeError):
    """An engine could not obtain the runs (a scheduler refused them): one line, with the engine's own words;
    the session stops (exit status 2) and its report records why."""


class Executor(Protocol):
    device: torch.device  # where this process evaluates (each case records its environment)

    def obtain(self, needs: list[Need]) -> None:
        """Before the tests, the runs (and final-checkpoint evaluations) the session's cases need: local
        trains nothing yet (each test trains what it asks for), slurm submits one job array and waits."""

    def runs(self, configs: dict[str, list[RunConfig]]) -> Runs: ...  # arm -> one done, failed or missing Run each

    def final_checks(self, claim: Claim, configs: dict[str, list[RunConfig]], runs: Runs) -> FinalChecks | None: ...

    def warnings(self) -> list[str]: ...  # for the report: cache files moved aside, data files skipped


EXECUTORS = Registry("executor", "harness/executors/__init__.py")


def _engine(module: str, name: str) -> Callable:
    """The constructor of `name` in `module`, imported when chosen: planning never loads an engine (slurm's
    needs submitit, installed only where it is used)."""
    return lambda *args: getattr(importlib.import_module(module, __name__), name).from_settings(*args)


EXECUTORS.register("local")(_engine(".local", "LocalExecutor"))
EXECUTORS.register("collect")(_engine(".local", "CollectExecutor"))
EXECUTORS.register("slurm")(_engine(".slurm", "SlurmExecutor"))

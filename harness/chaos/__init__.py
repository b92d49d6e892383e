"""The fault-injection tool, beside the harness (nothing in the harness's core imports it).

  python -m harness.chaos --help

cli: the command line and the order of the faults; steps: the faults aimed at workers, the cache and the
data; session: a real pytest session (`Session`), the faults aimed at sessions and their reports folder;
worker: the worker process (`python -m harness.chaos work`, its one use of the runner is run_small) and
`Worker`, its handle; folders: the data sample, junk, mismatched copies, full and read-only file systems;
faults: `corrupt`, the audit of what a fault lost, and the table.

The instruments chaos runs itself (its worker and session processes, its faults, its data sample and file
systems, its run size) are the ones the harness's tests of crashes and faults use too: they have one home,
here, and the tests import them from this package (the names below), never from its modules.
"""
from . import folders
from .faults import corrupt
from .session import FILLER, Session, clean_environment, plugin_env
from .worker import Worker, clean_run, numbers, small_profile, weights_digest

__all__ = ["FILLER", "Session", "Worker", "clean_environment", "clean_run", "corrupt", "folders", "numbers",
           "plugin_env", "small_profile", "weights_digest"]

"""The fault-injection tool, beside the harness (nothing in the harness's core imports it).

  python -m harness.chaos --help

cli: the command line and the order of the faults; steps: the faults aimed at workers, the cache and the
data; session: a real pytest session (`Session`), the faults aimed at sessions and their reports folder;
worker: the worker process (`python -m harness.chaos work`, its one use of the runner is run_small) and
`Worker`, its handle; folders: the data sample, junk, mismatched copies, full and read-only file systems;
faults: `corrupt`, the audit of what a fault lost, and the table. What the tests use too is exported here.
"""
from .faults import corrupt
from .worker import Worker, clean_run, numbers, weights_digest

__all__ = ["Worker", "clean_run", "corrupt", "numbers", "weights_digest"]

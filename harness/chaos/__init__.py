"""The fault-injection tool, beside the harness (nothing in the harness's core imports it).

  python -m harness.chaos --help

cli: the command line; worker: the worker process (`python -m harness.chaos work`, its one use of the
runner is run_small) and `Worker`, its handle; faults: the faults, their audit and the fault-injection run.
What the tests use too is exported here.
"""
from .faults import corrupt
from .worker import Worker, clean_run, numbers, weights_digest

__all__ = ["Worker", "clean_run", "corrupt", "numbers", "weights_digest"]

"""The benchmark, a tool beside the harness (nothing in the harness's core imports it).

  python -m harness.bench --help

cli: the command line, the JSON report and the printed table; measure: per-model timings of the harness
and of the reference; reference: the pipeline users would write without the harness; concurrency: several
processes or lockstep seeds against one process; workload: the paper profile's workload and its projection.
"""

"""`python -m harness.bench`: see harness.bench.cli."""
from .cli import main

main()

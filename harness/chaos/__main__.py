"""`python -m harness.chaos`: see harness.chaos.cli."""
import sys

from .cli import main

sys.exit(main())

import sys

from . import tables
from .page import main

sys.exit(main() or tables.main())  # the page, then results.csv and cases.csv beside it

"""python -m harness.report FOLDER (harness.report.page.main). A results.json that passes validation yet
breaks the page (a free-form field, edited) gets one line and exit status 2, not a traceback."""
import sys

from . import tables
from .page import main

try:
    sys.exit(main() or tables.main())  # the page, then results.csv and cases.csv beside it
except (AttributeError, IndexError, KeyError, TypeError, ValueError) as e:
    print(f"harness.report: {' '.join(sys.argv[1:])}: a field is malformed ({type(e).__name__}: {e}); re-run the "
          f"session, or rebuild from a results.json it wrote", file=sys.stderr)
    sys.exit(2)

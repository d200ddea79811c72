"""``python -m freehold.jobs run ID``: the process one job runs in (started by the worker)."""

import sys

from freehold.jobs import main

sys.exit(main(sys.argv[1:]))

#!/usr/bin/env bash
# Quality gates in one command: ruff (lint), mypy (the package), no import cycle in the package
# (scripts/check_imports.py), pytest (the whole suite,
# slow end-to-end tests included). Pass pytest arguments through, e.g. -m "not slow".
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
echo "== ruff"; .venv/bin/ruff check freehold tests benchmarks scripts/check_imports.py || status=1
echo "== mypy"; .venv/bin/mypy freehold || status=1
echo "== imports"; .venv/bin/python scripts/check_imports.py || status=1
echo "== pytest"
.venv/bin/python -m pytest "$@"
rc=$?
# Exit code 5 means no tests were collected: that is a failure, not a pass.
if [ $rc -eq 5 ]; then echo "pytest collected no tests"; rc=1; fi
[ $rc -ne 0 ] && status=$rc
exit $status

#!/usr/bin/env bash
# Sets up .venv if needed, then runs the linter, the type checker and the whole test suite.
# Extra arguments go to pytest (for example: ./run_tests.sh -k reader).
set -euo pipefail
cd "$(dirname "$0")"
. scripts/venv.sh
. scripts/chromium.sh  # headless Chromium for the report test: installed if missing
ruff check .
mypy  # basic mode on augbeam.py, pipeline/ and transforms/ (settings in pyproject.toml)
# Two test processes (pytest-xdist): on CI's 2 cores the suite's many waits on subprocess jobs overlap.
# AUGBEAM_TEST_PROCESSES=0 runs it in one process (for -x, --pdb or output in order).
python -m pytest -n "${AUGBEAM_TEST_PROCESSES:-2}" "$@"

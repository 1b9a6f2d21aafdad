#!/usr/bin/env bash
# Set everything up (apt packages, .venv) and run the whole suite: lint, types, import rules, tests on the real rig.
# Extra arguments go to pytest, e.g. bin/run_tests.sh -k security -x
set -euo pipefail
cd "$(dirname "$0")/.."
bin/setup.sh
.venv/bin/python -m environment_creators.banner "tests"
echo "== ruff"; .venv/bin/ruff check dbupdater environment_creators bench tests ./*.py
echo "== mypy"; .venv/bin/mypy && .venv/bin/mypy --strict bench
echo "== import rules (docs/architecture.md)"; .venv/bin/lint-imports --no-cache
echo "== pytest"
set +e
# Two workers (pytest-xdist), each with its own rig (tests/conftest.py), a test file on one worker; many tests
# wait (leases, timeouts, servers), so two go faster even on 2 CPUs. DBU_TEST_WORKERS=0 runs in one process.
.venv/bin/pytest -n "${DBU_TEST_WORKERS:-2}" --dist loadfile "$@"
status=$?
set -e
# pytest's 5 means "no tests collected": a broken selection must not pass as green.
exit "$status"

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
# Where the suite's rigs write why they did not come up (tests/conftest.py); printed last if anything failed.
export DBU_RIG_FAILURES="${DBU_RIG_FAILURES:-$(mktemp -t dbupdater-rig-failures.XXXXXX)}"
set +e
# Two workers (pytest-xdist), each with its own rig (tests/conftest.py), a test file on one worker; many tests
# wait (leases, timeouts, servers), so two go faster even on 2 CPUs. DBU_TEST_WORKERS=0 runs in one process.
# The adversarial suite then runs alone, in one process: its faults, races and timing proofs must not share
# the machine with other tests (and its counts are written only so). Given test paths, one run of those.
workers=(-n "${DBU_TEST_WORKERS:-2}" --dist loadfile)
paths=0
for arg in "$@"; do
    case $arg in tests*|./tests*|*.py|*::*) paths=1 ;; esac
done
if [ "$paths" = 1 ]; then
    .venv/bin/pytest "${workers[@]}" "$@"
    status=$?
else
    .venv/bin/pytest "${workers[@]}" --ignore=tests/adversarial "$@"
    first=$?
    echo "== pytest: the adversarial suite, alone"
    .venv/bin/pytest tests/adversarial "$@"
    second=$?
    # pytest's 5 means "no tests collected": fine for one half of a selection (-k), never for both.
    if [ "$first" != 0 ] && [ "$first" != 5 ]; then status=$first
    elif [ "$second" != 0 ] && [ "$second" != 5 ]; then status=$second
    elif [ "$first" = 5 ] && [ "$second" = 5 ]; then status=5
    else status=0
    fi
fi
set -e
if [ "$status" != 0 ] && [ -s "$DBU_RIG_FAILURES" ]; then
    # A CI log shows its end: the machine and why the rigs did not come up (not every error's repetition).
    echo "== the rigs did not come up: $(uname -r), $(nproc) CPUs, $(free -m | awk '/^Mem:/ {print $2 " MB, " $7 " MB available"}'), /tmp $(df -h /tmp | awk 'NR == 2 {print $4 " free"}'), open files $(ulimit -n)"
    awk '!seen[$0]++' "$DBU_RIG_FAILURES" | head -n 120
fi
rm -f "$DBU_RIG_FAILURES"
# pytest's 5 means "no tests collected": a broken selection must not pass as green.
exit "$status"

"""The adversarial suite (issue 14): faults, fuzzing, injection, secret scans, concurrency and odd known_hosts
files, against the real rig. At the end of the session it reports what it exercised, on the terminal and in
`.pytest-adversarial.json` at the project root, for the README's reliability section."""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pytest

from ..conftest import ROOT
from . import tally

REPORT = ROOT / ".pytest-adversarial.json"
_began = time.monotonic()
_outcomes: dict[str, int] = {}


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "tests/adversarial/" not in report.nodeid.replace(os.sep, "/"):
        return
    if report.when == "call" or report.outcome != "passed":
        key = "xfailed" if hasattr(report, "wasxfail") else report.outcome
        _outcomes[key] = _outcomes.get(key, 0) + 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not tally.counts:
        return  # no adversarial test ran in this process (under pytest-xdist the counts stay in the workers;
        # bin/run_tests.sh runs the adversarial suite in one process)
    summary = {
        "counts": {kind: tally.counts.get(kind, 0) for kind in tally.KINDS},
        "faults": dict(sorted(tally.faults.items())),
        "tests": dict(sorted(_outcomes.items())),
        "mode": {"full": os.environ.get("DBU_ADVERSARIAL_FULL") == "1",
                 "fuzz_examples": os.environ.get("DBU_FUZZ_EXAMPLES") or "default (1500 reader, 600 validate)"},
        "seconds": round(time.monotonic() - _began, 1),
    }
    REPORT.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    terminalreporter.section("adversarial suite")
    for kind, value in summary["counts"].items():
        terminalreporter.write_line(f"{kind:<22} {value}")
    if summary["faults"]:
        terminalreporter.write_line("faults: " + ", ".join(f"{name} x{n}" for name, n in summary["faults"].items()))
    terminalreporter.write_line(f"written to {REPORT.name}")

"""Timing a child process: wall seconds, peak RSS (from wait4) and exit code, output kept in a log file."""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Sample:
    """One measured run of one approach on one workload."""

    seconds: float | None
    rss_kb: int | None = None
    cpu_seconds: float | None = None  # user + system time of the controller-side processes
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    log: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None and self.seconds is not None


@dataclass(frozen=True)
class Proc:
    code: int
    seconds: float
    rss_kb: int  # ru_maxrss of the child: the largest resident set in its process tree that it waited for
    cpu_seconds: float  # user + system time of the child and the descendants it waited for
    log: Path
    timed_out: bool = False


def run_timed(argv: Sequence[str], log: Path, *, timeout: float, env: Mapping[str, str] | None = None,
              cwd: Path | None = None) -> Proc:
    """Run ``argv`` with stdout+stderr into ``log``; the clock covers exec to exit, nothing else."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                env=dict(env) if env is not None else None, cwd=cwd, start_new_session=True)
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)

        timer = threading.Timer(timeout, kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here; keep Popen from waiting again
    return Proc(proc.returncode, seconds, int(usage.ru_maxrss), usage.ru_utime + usage.ru_stime, log,
                expired.is_set())


def tail(path: Path, lines: int = 12) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None

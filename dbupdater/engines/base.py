"""The engine interface: how one native client is invoked and how its output is judged.

Engines know nothing about transports or manifests beyond the database fields; the runner gives them the
remote paths it chose and feeds them the client's output line by line.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..manifest import DatabaseSpec
    from .dialect import Dialect


class Severity(Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Verdict(Enum):
    APPLIED = "applied"
    FAILED = "failed"
    UNREACHABLE = "unreachable"


@dataclass(frozen=True)
class Invocation:
    """What to run on the runner: an argv list (never a shell string) and an optional stdin file."""

    argv: list[str]
    stdin_path: str | None = None
    # A line the client prints on stdout once the ledger SQL run before the script has committed.
    started_marker: str | None = None


STARTED_MARKER = "-- dbupdater: script begins --"

# Exit status a POSIX shell reports when the command does not exist or cannot execute.
COMMAND_NOT_FOUND = {126, 127}
KEEP_LINES = 200


@dataclass
class OutputLog:
    """The judged output of one client run, bounded so a chatty script cannot exhaust memory."""

    engine: Engine
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stdout_tail: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    dropped: int = 0
    _last_stderr: Severity | None = None

    def feed(self, stream: str, line: str) -> None:
        if stream == "stdout":
            self.stdout_tail.append(line)
            severity = self.engine.classify_stdout(line)
        else:
            severity = self.engine.classify_stderr(line, self._last_stderr)
            self._last_stderr = severity
        if severity is Severity.INFO:
            return
        bucket = self.errors if severity is Severity.ERROR else self.warnings
        if len(bucket) < KEEP_LINES:
            bucket.append(line)
        else:
            self.dropped += 1


class Engine(ABC):
    name: str
    display: str
    client: str
    dialect: Dialect
    # Whether a whole script can run in one transaction (PostgreSQL's DDL is transactional; MySQL's is not).
    transactional_ddl: bool = False

    @abstractmethod
    def credentials(self, db: DatabaseSpec) -> bytes:
        """Content of the 0600 credentials file the client reads; the only place a password goes."""

    @abstractmethod
    def invocation(self, db: DatabaseSpec, script_path: str, credentials_path: str, *,
                   single_transaction: bool = False, before: str = "") -> Invocation:
        """`before` is ledger SQL to run in the same client session just ahead of the script, committed on its
        own and leaving the session as the script would find it; only given when `shares_session` says so."""

    def shares_session(self, single_transaction: bool) -> bool:
        """Whether `before` can ride in the script's session: one client call per script instead of two."""
        return False

    # Whether an error in any statement of `before` keeps the script from starting (False: only the first's).
    before_checked: bool = True

    def started(self, exit_code: int, log: OutputLog, marker_seen: bool) -> bool | None:
        """Whether `before` took effect (and the script began): True, False, or None when nobody can know."""
        if marker_seen:
            return True
        return None if killed(exit_code) else False

    @abstractmethod
    def ledger_invocation(self, db: DatabaseSpec, credentials_path: str) -> Invocation:
        """The client reading SQL on stdin and printing bare result values, one row per line."""

    @abstractmethod
    def classify_stderr(self, line: str, previous: Severity | None) -> Severity: ...

    def classify_stdout(self, line: str) -> Severity:
        return Severity.INFO

    def probe_direct(self, db: DatabaseSpec, timeout: float) -> None:
        """Connect from the controller with the Python driver and log in; raises on any failure.

        For `wait-ready --via direct`, when the controller can reach the database itself.
        """
        raise NotImplementedError(f"{self.display}: no Python driver probe")

    @abstractmethod
    def verdict(self, exit_code: int, log: OutputLog) -> tuple[Verdict, str]:
        """Exit code first, then the classified output; returns the verdict and a one-line reason."""

    def not_found(self, exit_code: int) -> tuple[Verdict, str] | None:
        if exit_code in COMMAND_NOT_FOUND:
            return Verdict.UNREACHABLE, f"the {self.client} client is not installed or not on PATH on the runner"
        if exit_code < 0:
            return Verdict.UNREACHABLE, ("the runner connection ended before the client reported an exit status; "
                                        "the script may be partially applied")
        return None


def killed(exit_code: int) -> bool:
    """The client ended by a signal (a shell reports 128 + N) or the runner connection ended first."""
    return exit_code < 0 or exit_code >= 128


def matches_any(patterns: list[re.Pattern[str]], line: str) -> bool:
    return any(p.search(line) for p in patterns)

"""The engine interface: how one native client is invoked and how its output is judged.

Engines know the model (the database fields and the `Command` / `Result` contract) and nothing else: not
the transport the command travels by, not the manifest, not the ledger's tables beyond their own dialect.

Rules every engine keeps (`tests/test_engine_rules.py` holds each registered engine to them):
- **Every session is UTF-8.** The script's and the ledger's invocations both pin the client's session
  character set to the dialect's `session_charset` (mysql `--default-character-set=utf8mb4`, psql
  `PGCLIENTENCODING=UTF8`, sqlplus `NLS_LANG=AMERICAN_AMERICA.AL32UTF8`, sqlcmd's code page 65001), whatever
  the runner's locale or the server's defaults; the ledger reads `session_charset_sql` back on opening.
- **No secret on a command line or in `Command.env`.** Credentials are the bytes of a 0600 file on the runner
  (`credentials()`); the command refers to that file: as an option file or a variable naming it, as a
  variable set from its content (`Command.env_files`), or as the first part of stdin (a `CONNECT` prelude).
- **argv lists only**; the transport's shell quotes every value.
- **Exit code first**, then the classified output; a client that exits 0 but wrote an unexpected stderr
  line has failed.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

from ..model.command import Client, Command, Ending, Result
from ..model.outcome import Status

if TYPE_CHECKING:
    from ..model.specs import DatabaseSpec
    from .dialect import Dialect


class Severity(Enum):
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


class Delivery(Enum):
    """How the credentials file reaches the client."""

    FILE = "an option or password file the client is pointed at"
    ENV_FROM_FILE = "an environment variable set from the file on the runner"
    STDIN_PRELUDE = "the first part of the client's stdin"


@dataclass(frozen=True)
class EngineOption:
    """A manifest column only this engine reads (an Oracle service name, a SQL Server instance)."""

    column: str
    help: str
    choices: tuple[str, ...] = ()


STARTED_MARKER = "-- dbupdater: script begins --"
KEEP_LINES = 200
HOST = re.compile(r"^(?!-)[A-Za-z0-9._:%\[\]-]+$")


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
        self._keep(severity, line)

    def feed_lines(self, stream: str, lines: list[str]) -> None:
        """`feed` for each line in turn, with stdout's ordinary lines not asked about one by one."""
        if stream != "stdout":
            for line in lines:
                self.feed(stream, line)
            return
        self.stdout_tail.extend(lines)
        classify = self.engine.classify_stdout
        for line in self.engine.stdout_candidates(lines):
            self._keep(classify(line), line)

    def _keep(self, severity: Severity, line: str) -> None:
        if severity is Severity.INFO:
            return
        bucket = self.errors if severity is Severity.ERROR else self.warnings
        if len(bucket) < KEEP_LINES:
            bucket.append(line)
        else:
            self.dropped += 1


def query_one(connection: Any, sql: str = "SELECT 1") -> None:
    """`probe_direct`'s question to a DB-API connection from a Python driver; the connection is closed after."""
    try:
        cursor = connection.cursor()
        cursor.execute(sql)
        cursor.fetchall()
    finally:
        connection.close()


class Engine(ABC):
    # Identity, as the manifest and messages spell it.
    name: str  # the registry key, also the history's engine field
    display: str
    display_names: tuple[str, ...] = ()  # how users write it in database_type, for messages
    aliases: tuple[str, ...] = ()  # further database_type spellings (case, spaces, '-' and '_' ignored)
    default_port: int
    options: tuple[EngineOption, ...] = ()
    client: str
    dialect: Dialect
    credentials_via: Delivery = Delivery.FILE
    # Whether a whole script can run in one transaction (PostgreSQL's DDL is transactional; MySQL's is not).
    transactional_ddl: bool = False
    # Whether an error in any statement of `before` keeps the script from starting (False: only the first's).
    before_checked: bool = True

    def check_host(self, host: str) -> str | None:
        """Why a database_host cell is not a host this engine can reach, or None."""
        return None if HOST.match(host) else f"{host!r} is not a host name or address"

    def check_option(self, column: str, value: str) -> str | None:
        """Why a cell of one of this engine's `options` columns is not a value it can use, or None."""
        return None

    @abstractmethod
    def credentials(self, db: DatabaseSpec) -> bytes:
        """Content of the 0600 credentials file; the only place a password goes."""

    def secret_forms(self, secret: str) -> tuple[str, ...]:
        """The forms `credentials()` writes a secret in (escaped for the client's file format): a script
        that prints the file echoes those, and they are masked like the secret itself."""
        return ()

    @abstractmethod
    def command(self, db: DatabaseSpec, script_path: str, credentials_path: str, *,
                single_transaction: bool = False, before: str = "") -> Command:
        """The client running the script. `before` is ledger SQL to run in the same client session just
        ahead of the script, committed on its own and leaving the session as the script would find it; only
        given when `shares_session` says so."""

    def client_probe(self, platform: str = "posix") -> Command | None:
        """An optional capability: a cheap command (no login, no secret) whose answer tells which build of the
        client a runner of `platform` ("posix", "windows") has, asked once per runner and run; None when one
        invocation suits every build there."""
        return None

    def client_build(self, result: Result, lines: list[str]) -> str:
        """The build `client_probe`'s answer names ("" when it cannot tell: the commands are then the default)."""
        return ""

    def adapt(self, command: Command, client: Client) -> Command:
        """A script or ledger command adjusted to the runner's client build and platform; as it is by default."""
        return command

    def shares_session(self, single_transaction: bool) -> bool:
        """An optional capability: whether `before` can ride in the script's session, one client call per
        script instead of two. Engines without it get the ledger's `running` row in a call of its own."""
        return False

    def started(self, result: Result, log: OutputLog, marker_seen: bool) -> bool | None:
        """Whether `before` took effect (and the script began): True, False, or None when nobody can know."""
        if marker_seen:
            return True
        return None if result.ending in (Ending.SIGNALLED, Ending.LOST) else False

    @abstractmethod
    def ledger_command(self, db: DatabaseSpec, credentials_path: str) -> Command:
        """The client reading SQL on stdin (sent after the command's own stdin parts) and printing bare
        result values, one row per line."""

    @abstractmethod
    def classify_stderr(self, line: str, previous: Severity | None) -> Severity: ...

    def classify_stdout(self, line: str) -> Severity:
        return Severity.INFO

    def stdout_candidates(self, lines: list[str]) -> Iterable[str]:
        """The lines of a chunk of stdout, in order, that `classify_stdout` might not call INFO (the others are
        INFO without asking). An engine whose ordinary stdout one search over the chunk can rule out overrides
        it: a script printing a million rows then costs no call per row."""
        return () if type(self).classify_stdout is Engine.classify_stdout else lines

    def probe_direct(self, db: DatabaseSpec, timeout: float) -> None:
        """Connect from the controller with the Python driver and log in; raises on any failure.

        For `wait-ready --via direct`, when the controller can reach the database itself.
        """
        raise NotImplementedError(f"{self.display}: no Python driver probe")

    def verdict(self, result: Result, log: OutputLog) -> tuple[Status, str]:
        """The ending the transport saw first, then the client's own exit code and output."""
        if result.ending is Ending.CLIENT_MISSING:
            return Status.UNREACHABLE, f"the {self.client} client is not installed or not on PATH on the runner"
        if result.ending is Ending.LOST:
            return Status.UNREACHABLE, ("the runner connection ended before the client reported an exit status; "
                                        "the script may be partially applied")
        return self.judge(result, log)

    @abstractmethod
    def judge(self, result: Result, log: OutputLog) -> tuple[Status, str]:
        """The verdict on a client that ran (it exited, or a signal ended it): exit code, then output.
        Engines judge their own codes and messages first, then end with `judge_exit`."""

    def judge_exit(self, result: Result, log: OutputLog) -> tuple[Status, str]:
        """The rule every engine ends with: non-zero fails, and so does exit 0 with an unexpected stderr line."""
        if result.exit_code() != 0:
            return Status.FAILED, f"{self.client} exited with {result.exit_code()}"
        if log.errors:
            return Status.FAILED, f"{self.client} exited 0 but wrote unexpected lines on stderr"
        return Status.APPLIED, "applied"


def matches_any(patterns: list[re.Pattern[str]], line: str) -> bool:
    return any(p.search(line) for p in patterns)

"""MySQL and MariaDB through the `mysql` client.

The password lives in a `--defaults-extra-file` (which must be the first option); the script is fed on
stdin in `--batch` mode, where the client stops at the first error and exits 1. `--force` is never used.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from ...model.command import Command, Ending, RemoteFile, Result
from ...model.outcome import Status
from ..base import Engine, OutputLog, Severity, matches_any, query_one
from ..capabilities import COMPRESSED_DUMP, DECOMPRESSED_RESTORE
from ..registry import register
from .dialect import MySQLDialect

if TYPE_CHECKING:
    from ...model.specs import DatabaseSpec

ERROR_LINE = re.compile(r"^ERROR \d+")
# Errors while logging in carry no "at line N": the script never started (wrong password, unknown or invalid
# database, server down). Errors inside the script name their line, and are the script's fault unless the
# server went away under it (2006, 2013).
LOGIN_ERROR = re.compile(r"^ERROR \d+ \([0-9A-Z]+\): ")
SERVER_GONE = re.compile(r"^ERROR (2006|2013) \([0-9A-Z]+\) at line \d+")
# An error in a statement of the script: the session was up, so `--init-command` had run.
AT_LINE = re.compile(r"^ERROR \d+ \([0-9A-Z]+\) at line \d+")
WARNING_PATTERNS = [
    re.compile(r"\[Warning\]"),
    re.compile(r"^(Warning|Note) \(Code \d+\)"),
    re.compile(r"Deprecated program name"),
]
SHOWN_WARNING = WARNING_PATTERNS[1]  # what --show-warnings prints on stdout
SHOWN_WARNING_MARK = " (Code "  # in every line SHOWN_WARNING matches


def option_value(value: str) -> str:
    """Quote a value for a MySQL option file: inside double quotes, backslash escapes are honoured."""
    escaped = (
        value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
        .replace("\t", "\\t")
    )
    return f'"{escaped}"'


class MySQL(Engine):
    name = "mysql"
    display = "MySQL/MariaDB"
    display_names = ("MySQL", "MariaDB")
    aliases = ("mysql", "mariadb")
    default_port = 3306
    client = "mysql"
    dialect = MySQLDialect()

    def credentials(self, db: DatabaseSpec) -> bytes:
        lines = ["[client]", f"user={option_value(db.user)}"]
        if db.password:
            lines.append(f"password={option_value(db.password.reveal())}")
        return ("\n".join(lines) + "\n").encode("utf-8")

    def secret_forms(self, secret: str) -> tuple[str, ...]:
        return (option_value(secret)[1:-1],)

    def _argv(self, db: DatabaseSpec, credentials_path: str, *options: str) -> list[str]:
        return [
            self.client,
            f"--defaults-extra-file={credentials_path}",  # must come first
            # UTF-8 whatever the runner's locale (none over SSH: the client then picks latin1) or the server's
            # defaults: UTF-8 scripts sent as latin1 would be stored double-encoded, without an error.
            f"--default-character-set={self.dialect.session_charset}",
            "--batch",
            *options,
            "--connect-timeout=15",
            f"--host={db.host}",
            f"--port={db.port}",
            f"--user={db.user}",
            f"--database={db.database}",
        ]

    def command(self, db: DatabaseSpec, script_path: str, credentials_path: str, *,
                single_transaction: bool = False, before: str = "") -> Command:
        # The client runs --init-command right after logging in; if it fails, the login fails and the script
        # never starts. Line numbers in the script's errors stay the script's own.
        options = ["--show-warnings", *([f"--init-command={before}"] if before else [])]
        return Command(tuple(self._argv(db, credentials_path, *options)), stdin=(RemoteFile(script_path),))

    def shares_session(self, single_transaction: bool) -> bool:
        return True

    # The client ignores errors of an --init-command's second and later statements.
    before_checked = False

    def started(self, result: Result, log: OutputLog, marker_seen: bool) -> bool | None:
        if (result.exited and result.code == 0) or any(AT_LINE.search(line) for line in log.errors):
            return True
        if result.ending is Ending.CLIENT_MISSING or (
                result.exited and result.code == 1 and any(LOGIN_ERROR.search(line) for line in log.errors)):
            return False  # the client is missing, or the login (with --init-command) failed
        return None

    def ledger_command(self, db: DatabaseSpec, credentials_path: str) -> Command:
        return Command(tuple(self._argv(db, credentials_path, "--raw", "--skip-column-names")))

    # --- backups (engines.capabilities.Dumps) ---------------------------------------------------------------

    dump_tool = "mysqldump"
    dump_format = "sql"

    def dump_command(self, db: DatabaseSpec, credentials_path: str, *, lock_table: str,
                     history_schema: str | None = None) -> Command:
        """mysqldump in one consistent snapshot (InnoDB), with routines, triggers and events, binary columns
        as hex (the dump stays text), compressed on the runner. No --databases: the dump names no database,
        so it restores into another one (`restore --into`, `copy-db`)."""
        dump = [self.dump_tool, f"--defaults-extra-file={credentials_path}",  # must come first
                f"--default-character-set={self.dialect.session_charset}", "--single-transaction", "--quick",
                "--routines", "--triggers", "--events", "--hex-blob",
                f"--host={db.host}", f"--port={db.port}", f"--user={db.user}",
                f"--ignore-table={db.database}.{lock_table}", db.database]
        return Command(("sh", "-c", COMPRESSED_DUMP, "dbupdater-dump", *dump))

    def restore_command(self, db: DatabaseSpec, credentials_path: str, *, compression: str, first: str = "") -> Command:
        # --binary-mode: a dump's text is the dump's, not the client's to interpret (\0, \r in data).
        client = self._argv(db, credentials_path, "--binary-mode")
        return Command(("sh", "-c", DECOMPRESSED_RESTORE, "dbupdater-restore", compression, first, *client))

    def tool_version_command(self) -> Command:
        return Command((self.dump_tool, "--version"))

    def objects_sql(self, lock_table: str, history_schema: str | None = None) -> str:
        # engines.capabilities.Cleans: a dump replaces only the tables and routines it holds.
        d = self.dialect
        kind = "CASE table_type WHEN 'VIEW' THEN 'VIEW' ELSE 'TABLE' END"
        return (f"SELECT {d.json_row({'kind': kind, 'name': 'table_name'})} FROM information_schema.tables "  # noqa: S608
                f"WHERE table_schema = DATABASE() AND table_name <> {d.literal(lock_table)}\n"
                f"UNION ALL SELECT {d.json_row({'kind': 'routine_type', 'name': 'routine_name'})} "
                "FROM information_schema.routines WHERE routine_schema = DATABASE()\n"
                f"UNION ALL SELECT {d.json_row({'kind': repr('EVENT'), 'name': 'event_name'})} "
                "FROM information_schema.events WHERE event_schema = DATABASE();")

    def drops_sql(self, objects: list[tuple[str, str]]) -> str:
        order = {"VIEW": 0, "TABLE": 1}
        kinds = ("VIEW", "TABLE", "PROCEDURE", "FUNCTION", "EVENT")
        drops = [f"DROP {kind.upper() if kind.upper() in kinds else 'TABLE'} IF EXISTS {self.dialect.ident(name)};"
                 for kind, name in sorted(objects, key=lambda item: order.get(item[0].upper(), 2))]
        return "SET FOREIGN_KEY_CHECKS = 0;\n" + "\n".join(drops) + "\n" if drops else ""

    def server_version_sql(self) -> str:
        return "VERSION()"

    # --- copies across engines (engines.capabilities.ExportsRows) ------------------------------------------

    def export_command(self, db: DatabaseSpec, credentials_path: str) -> Command:
        # --raw: values as the server wrote them (the SQL escapes them for the destination); --quick: each row
        # as it comes, never the whole result in the client; a row may be as large as the server allows.
        options = ["--skip-column-names", "--raw", "--quick", "--max-allowed-packet=1G"]
        return Command(tuple(self._argv(db, credentials_path, *options)))

    def probe_direct(self, db: DatabaseSpec, timeout: float) -> None:
        from ...extras import require

        require("mysql-driver")  # or a UsageError saying how to install it
        import mysql.connector

        connection = mysql.connector.connect(host=db.host, port=db.port, user=db.user, database=db.database,
                                             password=db.password.reveal() if db.password else "",
                                             connection_timeout=max(1, int(timeout)))
        query_one(connection)

    def classify_stderr(self, line: str, previous: Severity | None) -> Severity:
        if not line.strip():
            return Severity.INFO
        if ERROR_LINE.search(line):
            return Severity.ERROR
        if matches_any(WARNING_PATTERNS, line):
            return Severity.WARNING
        return Severity.ERROR

    def classify_stdout(self, line: str) -> Severity:
        # --show-warnings prints the server's warnings and notes after each statement on stdout. Asked of every
        # line a script prints: one anchored match, failing at the first character of an ordinary line.
        return Severity.WARNING if SHOWN_WARNING.match(line) else Severity.INFO

    def stdout_candidates(self, lines: list[str]) -> Iterable[str]:
        # One substring search over the chunk's text (fast in C, where a multi-line regular expression tries every
        # position): only a chunk holding what every shown warning holds is looked at line by line.
        if SHOWN_WARNING_MARK not in "\n".join(lines):
            return ()
        return [line for line in lines if SHOWN_WARNING.match(line)]

    def judge(self, result: Result, log: OutputLog) -> tuple[Status, str]:
        if any(LOGIN_ERROR.search(line) for line in log.errors):
            return Status.UNREACHABLE, "cannot connect to or log in to the database"
        if any(SERVER_GONE.search(line) for line in log.errors):
            return Status.UNREACHABLE, "the database connection was lost; the script may be partially applied"
        return self.judge_exit(result, log)


register(MySQL())

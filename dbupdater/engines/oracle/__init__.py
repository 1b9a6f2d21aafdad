"""Oracle through SQL*Plus: `sqlplus -S -L /nolog`, the whole session on stdin.

Why each part (the facts, with their sources, are in ../shared/clients/sqlplus.md):
- `-L` logs on once: without it a failed logon re-prompts and eats the next stdin lines as user and password
  (§1, sqlplus-ora-12541-no-L-reprompts.txt). `/nolog` and a CONNECT line on stdin keep the password out of
  argv and the environment (§2); `-S` drops banners and prompts.
- `WHENEVER SQLERROR EXIT 4 ROLLBACK`: without it sqlplus continues after an error and exits 0 (§3,
  sqlplus-ora-00942-exit0-no-whenever.txt); fixed codes, because `EXIT SQL.SQLCODE` wraps modulo 256.
- SP2- errors never trigger WHENEVER (§4), compilation errors are only a "Warning:" line (§6) and a script may
  say `WHENEVER SQLERROR CONTINUE`: so any `ORA-`, `SP2-`, `PLS-` line or compilation warning fails the row
  even with exit 0, and USER_ERRORS is checked after the script.
- `NLS_LANG=AMERICAN_AMERICA.AL32UTF8`: UTF-8 scripts sent as UTF-8, and English messages (§8, §10).
  `SQLPATH` and `ORACLE_PATH` name the private directory, which holds no login.sql (§2: Sqitch clears
  SQLPATH so no start-up script runs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ...model.command import Command, Ending, RemoteFile, Result, StdinPart
from ...model.outcome import Status
from ..base import STARTED_MARKER, Delivery, Engine, EngineOption, OutputLog, Severity
from ..registry import register
from . import session
from .dialect import OracleDialect

if TYPE_CHECKING:
    from ...model.specs import DatabaseSpec

CODE = re.compile(r"^(?P<code>ORA-\d{5}|SP2-\d{4}|PLS-\d{5})\b")
# "Warning: Procedure created with compilation errors." (Package, Package Body, Function, Trigger, Type...):
# no ORA- line, no SQL error (§6).
COMPILATION = re.compile(r"^Warning: .+ created with compilation errors\.")
# PLSQL_WARNINGS enabled: SP2-0804..0814 "... created with compilation warnings": the object is valid.
COMPILE_WARNING = re.compile(r"^SP2-08(0[4-9]|1[0-4]): .+ created with compilation warnings")
# A substitution prompt: in a pipe it takes the next stdin line as the value (§9, sqlplus-enter-value-for-
# ampersand.txt); the prompt has no newline, so it starts whatever line follows it.
# SHOW ERRORS in a script prints this header only when the object has errors
# (sqlplus-show-errors-package-body-format.txt); its table's lines start with LINE/COL, not with a code.
SHOW_ERRORS = re.compile(r"^Errors for [A-Z][A-Z ]* \S+:$")
PROMPTED = re.compile(r"^Enter value for [^:]*:")
DISCONNECTED = re.compile(r"^Warning: You are no longer connected to ORACLE\.")
# Connect-time errors come as "ERROR:" then the ORA- line, without "at line N" (§7, §8); the same codes after
# "ERROR at line N:" come from the script (a database link: sqlplus-ora-12505-in-plsql-call-stack.txt).
LOGIN_CODES = re.compile(r"^ORA-(01017|01005|01004|01045|28000|28001|28009|28011|01033|01034|01089|01090|27101|"
                         r"12\d{3}):")
# SP2-0751 "Unable to connect to Oracle.  Exiting SQL*Plus", SP2-0640 "Not connected", SP2-0306 "Invalid
# option" (a CONNECT it could not parse).
NO_SESSION = re.compile(r"^SP2-(0751|0640|0306):")
# The session was lost under a running script: end-of-file on the channel, lost contact, killed session.
LOST = re.compile(r"^ORA-(03113|03114|03135|00028|02396):")


@dataclass(frozen=True)
class _LedgerCommand(Command):
    """The ledger's call: the SQL the channel sends is followed by an explicit EXIT, so the session ends the
    same way every time (each statement already committed by AUTOCOMMIT) instead of at the end of stdin."""

    def with_stdin(self, part: StdinPart) -> Command:
        if isinstance(part, bytes):
            part = part + session.LEDGER_END
        return Command(self.argv, self.env, self.env_files, (*self.stdin, part), self.started_marker)


class Oracle(Engine):
    name = "oracle"
    display = "Oracle"
    display_names = ("Oracle",)
    aliases = ("oracle", "oracledb")
    default_port = 1521
    client = "sqlplus"
    dialect = OracleDialect()
    credentials_via = Delivery.STDIN_PRELUDE
    options = (
        EngineOption(session.SID, "Oracle: yes when the database column is a SID, not a service name",
                     session.FLAGS),
        EngineOption(session.ALIAS, "Oracle: a TNS alias or EZConnect string to connect to instead of "
                     "//database_host:port/database (host, port and database still name the target)"),
        EngineOption(session.WALLET, "Oracle: yes to log in as /@identifier with the runner's wallet "
                     "(no password anywhere)", session.FLAGS),
        EngineOption(session.DEFINE, "Oracle: substitution variables as name=value;name=value (DEFINE stays "
                     "on; without it SET DEFINE OFF)"),
    )

    def check_option(self, column: str, value: str) -> str | None:
        if column == session.ALIAS and not session.ALIAS_TEXT.match(value):
            return f"{value!r} is not a TNS alias or EZConnect string (no blanks or double quotes)"
        if column == session.DEFINE:
            return session.check_define(value)
        return None

    def credentials(self, db: DatabaseSpec) -> bytes:
        return session.prelude(db)

    def secret_forms(self, secret: str) -> tuple[str, ...]:
        return (session.quoted(secret)[1:-1],)

    def _env(self, credentials_path: str) -> tuple[tuple[str, str], ...]:
        private = credentials_path.rsplit("/", 1)[0] or "/"
        return (("NLS_LANG", f"AMERICAN_AMERICA.{self.dialect.session_charset}"), ("SQLPATH", private),
                ("ORACLE_PATH", private))

    def _argv(self) -> tuple[str, ...]:
        return (self.client, "-S", "-L", "/nolog")

    def command(self, db: DatabaseSpec, script_path: str, credentials_path: str, *,
                single_transaction: bool = False, before: str = "") -> Command:
        body = session.script_session(script_path, before, STARTED_MARKER)
        return Command(self._argv(), env=self._env(credentials_path), stdin=(RemoteFile(credentials_path), body),
                       started_marker=STARTED_MARKER)

    def shares_session(self, single_transaction: bool) -> bool:
        return True  # the session is stdin: the `running` row goes in after the CONNECT, before the marker

    def started(self, result: Result, log: OutputLog, marker_seen: bool) -> bool | None:
        if marker_seen:
            return True
        return None if result.ending in (Ending.SIGNALLED, Ending.LOST) else False

    def ledger_command(self, db: DatabaseSpec, credentials_path: str) -> Command:
        return _LedgerCommand(self._argv(), env=self._env(credentials_path), stdin=(RemoteFile(credentials_path),))

    def probe_direct(self, db: DatabaseSpec, timeout: float) -> None:
        from ...extras import require
        from ...model.errors import UsageError

        if session.flag(db, session.WALLET):
            raise UsageError("wait-ready --via direct cannot log in with a wallet (python-oracledb's thin mode has no "
                             "external authentication): use --via runner")
        require("oracle")  # or a UsageError saying how to install it
        import oracledb  # thin mode: no Oracle Client libraries on this machine

        password = db.password.reveal() if db.password else None
        where: dict[str, object]
        if db.option(session.ALIAS):
            where = {"dsn": db.option(session.ALIAS)}
        elif session.flag(db, session.SID):
            where = {"host": db.host, "port": db.port, "sid": db.database}
        else:
            where = {"host": db.host, "port": db.port, "service_name": db.database}
        with oracledb.connect(user=db.user, password=password, tcp_connect_timeout=max(1.0, timeout),
                              **where) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM DUAL")
            cursor.fetchall()

    def classify_stdout(self, line: str) -> Severity:
        # sqlplus writes its errors on stdout.
        if COMPILE_WARNING.match(line):
            return Severity.WARNING
        if any(p.match(line) for p in (CODE, COMPILATION, SHOW_ERRORS, PROMPTED, DISCONNECTED)):
            return Severity.ERROR
        return Severity.INFO

    def classify_stderr(self, line: str, previous: Severity | None) -> Severity:
        if not line.strip():
            return Severity.INFO
        return self.classify_stdout(line) if CODE.match(line) else Severity.ERROR

    def _login_failed(self, log: OutputLog) -> bool:
        if any(NO_SESSION.match(line) for line in log.errors):
            return True
        # An "ERROR:" line is INFO, so only the ORA- line is kept: look at what preceded it in the tail.
        tail = list(log.stdout_tail)
        return any(LOGIN_CODES.match(line) and index > 0 and tail[index - 1].strip() == "ERROR:"
                   for index, line in enumerate(tail))

    def judge(self, result: Result, log: OutputLog) -> tuple[Status, str]:
        if any(LOST.match(line) for line in log.errors):
            return Status.UNREACHABLE, "the database connection was lost; the script may be partially applied"
        if self._login_failed(log):
            return Status.UNREACHABLE, "cannot connect to or log in to the database"
        code = result.exit_code()
        if result.exited and code == session.CONNECT_EXIT and not log.errors:
            return Status.UNREACHABLE, "cannot connect to or log in to the database"
        if result.exited and code == session.SQLERROR_EXIT:
            return Status.FAILED, f"the script failed: {self._first(log)} (WHENEVER SQLERROR EXIT {code})"
        if result.exited and code == session.COMPILE_EXIT:
            return Status.FAILED, "the script left objects with compilation errors (USER_ERRORS)"
        if result.exited and code == session.OSERROR_EXIT:
            return Status.FAILED, f"sqlplus stopped on an operating-system error: {self._first(log)}"
        if result.exited and code == 0 and log.errors:
            return Status.FAILED, f"sqlplus exited 0 but reported an error: {self._first(log)}"
        return self.judge_exit(result, log)

    @staticmethod
    def _first(log: OutputLog) -> str:
        return log.errors[0] if log.errors else "no error line"


register(Oracle())

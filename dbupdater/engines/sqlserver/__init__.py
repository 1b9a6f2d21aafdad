"""SQL Server through `sqlcmd`: the ODBC sqlcmd of mssql-tools18 and go-sqlcmd, with one invocation.

Facts are from ../shared/clients/sqlcmd.md ("sheet s. N" below) and its samples/; the go-sqlcmd parsing
rules from microsoft/go-sqlcmd cmd/sqlcmd/sqlcmd.go (a9e3ab59).

Which sqlcmd a runner has is asked once per runner and run (`sqlcmd --version`, sheet s. 0: go-sqlcmd prints
its version, ODBC sqlcmd an error). Every flag passed everywhere is parsed the same way by both programs; what
differs is what they print and which exit code they give, and the judging rules (judging.py) read both
families of lines. One flag depends on the build and the platform: `-f 65001`. ODBC sqlcmd on **Windows**
reads a script without a byte-order mark in the ANSI code page unless told `-f 65001`, and the tool sends
UTF-8 without a BOM, so there it is passed (`adapt`); Linux ODBC sqlcmd does not have it and go-sqlcmd
rejects it (sheet s. 1), and both read BOM-less UTF-8 under the UTF-8 locale LC_ALL pins. On opening, the
ledger checks that UTF-8 arrived intact either way. Left out everywhere: `-X` (go then ignores
SQLCMDPASSWORD: `useEnvVars()` in setConnect; ODBC's -X also "prevents environment variables from being
passed on"), `-P` (insecure; go removed it), and `-y 0` (exclusive with `-W` on ODBC).
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

from ...model.command import STDIN_PATH, Client, Command, Result
from ...model.outcome import Status
from ..base import HOST, Delivery, Engine, EngineOption, OutputLog, Severity, query_one
from ..registry import register
from . import judging
from .dialect import SQLServerDialect

if TYPE_CHECKING:
    from ...model.specs import DatabaseSpec

YES = ("yes", "true", "1", "y")
BOOLEAN = ("yes", "no", "true", "false", "1", "0", "y", "n")
# SQL Server instance names: up to 16 characters, a letter, '_' or '#' first (CREATE INSTANCE rules).
INSTANCE = re.compile(r"^[A-Za-z_#][A-Za-z0-9_$#]{0,15}$")
LOGIN_TIMEOUT = "15"
# The ledger's SQL arrives on stdin and is read with -i from a file the shell makes of it (POSIX: /dev/stdin;
# PowerShell: a temporary file): fed on stdin proper, ODBC sqlcmd writes its "1> 2> " prompts in front of every
# output line (samples/sqlcmd-odbc-msg208-stdin-prompts.txt), and a JSON row would no longer start its line.
STDIN_FILE = STDIN_PATH
ODBC, GO = "odbc", "go"
VERSION_LINE = re.compile(r"\bv?\d+\.\d+(\.\d+)?\b")


def enabled(db: DatabaseSpec, column: str) -> bool:
    return db.option(column).strip().lower() in YES


class SQLServer(Engine):
    name = "sqlserver"
    display = "SQL Server"
    display_names = ("SQLServer", "MSSQL")
    aliases = ("sqlserver", "mssql", "microsoftsqlserver")
    default_port = 1433
    client = "sqlcmd"
    dialect = SQLServerDialect()
    # sqlcmd reads its password only from its own environment or argv (sheet s. 1): a variable set on the
    # runner from the 0600 file, never a value on a command line.
    credentials_via = Delivery.ENV_FROM_FILE
    options = (
        EngineOption("trust_server_certificate",
                     "SQL Server: yes = accept the server's TLS certificate unchecked (sqlcmd -C; test servers "
                     "with a self-signed certificate only); default no: encrypted and verified (-N)", BOOLEAN),
        EngineOption("sqlcmd_variables",
                     "SQL Server: yes = the scripts use sqlcmd scripting variables ($(name), :setvar); default "
                     "no: sqlcmd -x, so a '$(' in a script is text", BOOLEAN),
    )

    def check_host(self, host: str) -> str | None:
        """`host` or `host\\INSTANCE`; the port belongs in the port column (sqlcmd's `host,port` is built
        from it), so a comma here would give the client two ports."""
        if "," in host:
            return (f"{host!r}: give the port in the port column, not after a comma (the tool passes "
                    "sqlcmd -S host,port itself)")
        name, _, instance = host.partition("\\")
        if not HOST.match(name):
            return f"{host!r} is not a host name or address"
        if "\\" in host and not INSTANCE.match(instance):
            return f"{host!r}: {instance!r} is not a SQL Server instance name"
        return None

    def credentials(self, db: DatabaseSpec) -> bytes:
        # The shell sets SQLCMDPASSWORD from this file's content ("$(cat -- file)"), which drops trailing
        # newlines: the file holds the password alone.
        return (db.password.reveal() if db.password else "").encode("utf-8")

    def server(self, db: DatabaseSpec) -> str:
        """-S: `host,port`; a named instance is found by the SQL Server Browser instead of a port, because
        with both given the client would go to the port, whichever instance listens there."""
        return db.host if "\\" in db.host else f"{db.host},{db.port}"

    def _connection(self, db: DatabaseSpec) -> list[str]:
        # Separate argv entries, each flag before -i: go-sqlcmd takes every token after -i up to the next
        # flag as another input file (samples/go-sqlcmd-i-swallows-following-args.txt).
        return [
            self.client,
            "-S", self.server(db),
            "-d", db.database,
            "-U", db.user,
            "-l", LOGIN_TIMEOUT,
            # Encrypted, certificate verified: ODBC 18 does so by default, go-sqlcmd only with -N (a bare -N
            # followed by a flag reads as "true": convertOsArgs/checkDefaultValue), ODBC 17 with -N.
            "-N",
            *(["-C"] if enabled(db, "trust_server_certificate") else []),
            # Exit non-zero on an error, and only on errors (severity 11 and up): sheet s. 1 and s. 3.
            "-b", "-V", "11",
            # QUOTED_IDENTIFIER ON, as SSMS and every driver set it (ODBC sqlcmd's default is OFF; go always ON).
            "-I",
            # Errors of severity 11+ on stderr, information on stdout: so any stderr line is an error, also
            # after an exit 0 (an ":On Error ignore" in the script).
            "-r0",
        ]

    def _env(self) -> tuple[tuple[str, str], ...]:
        # No secret: ODBC sqlcmd on Linux decodes scripts and output by the locale, which an SSH session often
        # lacks (C), and aborts on an invalid one (microsoft/mssql-docker#163); C.UTF-8 is in every current
        # glibc. go-sqlcmd reads BOM-less files as UTF-8 whatever the locale (sheet s. 1, -f).
        return (("LC_ALL", "C.UTF-8"),)

    def _variables(self, db: DatabaseSpec) -> list[str]:
        # No $(name) substitution unless the manifest says the scripts use it (sheet s. 1 -x: a '$(' in text
        # is otherwise "'x' scripting variable not defined.").
        return [] if enabled(db, "sqlcmd_variables") else ["-x"]

    def command(self, db: DatabaseSpec, script_path: str, credentials_path: str, *,
                single_transaction: bool = False, before: str = "") -> Command:
        # The file is given with -i, never on stdin (ODBC's prompts, above), and passes through untouched: its
        # GO lines are the client's to split (sheet s. 2), and the last batch runs at its end without a GO.
        argv = [*self._connection(db), *self._variables(db), "-i", script_path]
        return Command(tuple(argv), env=self._env(), env_files=(("SQLCMDPASSWORD", credentials_path),))

    def ledger_command(self, db: DatabaseSpec, credentials_path: str) -> Command:
        # One bare column per row: no headers (-h -1), trailing padding trimmed (-W), no wrapping at 80 columns
        # (-w), never a substitution in the tool's own SQL (-x). Sheet s. 4 and ledger-idioms.md s. 4.
        argv = [*self._connection(db), "-h", "-1", "-W", "-w", "65535", "-x", "-i", STDIN_FILE]
        return Command(tuple(argv), env=self._env(), env_files=(("SQLCMDPASSWORD", credentials_path),))

    def client_probe(self, platform: str = "posix") -> Command:
        return Command(("sqlcmd", "--version"), env=self._env())

    def client_build(self, result: Result, lines: list[str]) -> str:
        # Sheet s. 0: go-sqlcmd answers --version with its version; ODBC sqlcmd, which has no such option, with
        # a "Sqlcmd: Error" line. Anything else (no client: the script's call says so) names no build.
        if any(line.lstrip().startswith("Sqlcmd: Error") for line in lines):
            return ODBC
        if result.exited and result.code == 0 and any(VERSION_LINE.search(line) for line in lines):
            return GO
        return ""

    def adapt(self, command: Command, client: Client) -> Command:
        if client.build != ODBC or client.platform != "windows" or "-i" not in command.argv:
            return command
        at = command.argv.index("-i")  # -f before -i: after it, go-sqlcmd would take it for a file (above)
        return dataclasses.replace(command, argv=(*command.argv[:at], "-f", "65001", *command.argv[at:]))

    def probe_direct(self, db: DatabaseSpec, timeout: float) -> None:
        from ...extras import require

        require("sqlserver")  # or a UsageError saying how to install it
        import pymssql

        seconds = max(1, int(timeout))
        # A named instance is found through the SQL Server Browser, as for sqlcmd (see server()). Encrypted,
        # as sqlcmd's sessions are (FreeTDS "require").
        password = db.password.reveal() if db.password else ""
        if "\\" in db.host:
            connection = pymssql.connect(server=db.host, user=db.user, password=password, database=db.database,
                                         login_timeout=seconds, timeout=seconds, encryption="require")
        else:
            connection = pymssql.connect(server=db.host, port=str(db.port), user=db.user, password=password,
                                         database=db.database, login_timeout=seconds, timeout=seconds,
                                         encryption="require")
        query_one(connection)

    def classify_stderr(self, line: str, previous: Severity | None) -> Severity:
        if not line.strip():
            return Severity.INFO
        if judging.CLIENT_WARNING.search(line):
            return Severity.WARNING
        return Severity.ERROR  # with -r0 only errors go here; anything else is unexpected

    def classify_stdout(self, line: str) -> Severity:
        found = judging.level(line)
        if found is not None:
            return Severity.ERROR if found > 10 else Severity.WARNING
        if judging.is_client_error(line) or judging.is_script_text_error(line):
            return Severity.ERROR
        if judging.CLIENT_WARNING.search(line):
            return Severity.WARNING
        return Severity.INFO

    def judge(self, result: Result, log: OutputLog) -> tuple[Status, str]:
        login = judging.login_failure(log.errors)
        if login:
            return Status.UNREACHABLE, login
        if judging.connection_lost(log.errors):
            return Status.UNREACHABLE, ("the database connection was lost mid-script; the script may be "
                                        "partially applied")
        first = judging.first_message(log.errors) or (log.errors[0].strip() if log.errors else "")
        if result.exit_code() != 0:
            # ODBC sqlcmd exits 1 on an error with -b; go-sqlcmd with -V exits with the error's severity; a
            # RAISERROR with state 127 gives the message number's low byte (sheet s. 3).
            return Status.FAILED, f"{self.client} exited with {result.exit_code()}" + (f": {first}" if first else "")
        if log.errors:
            return Status.FAILED, f"{self.client} exited 0 but reported an error: {first}"
        return self.judge_exit(result, log)


register(SQLServer())

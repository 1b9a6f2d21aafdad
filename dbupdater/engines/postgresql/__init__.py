"""PostgreSQL through `psql`.

`-v ON_ERROR_STOP=1` makes psql stop at the first error and exit 3; exit 2 means the connection failed.
The password is in a 0600 PGPASSFILE named through `env`, never in the environment or on the command line;
`-w` makes psql fail instead of prompting when that is not enough.
"""

from __future__ import annotations

import dataclasses
import re
from typing import TYPE_CHECKING

from ...model.command import Client, Command, Result
from ...model.outcome import Status
from ..base import STARTED_MARKER, Engine, OutputLog, Severity
from ..capabilities import COMPRESSED_DUMP
from ..registry import register
from .dialect import PostgresDialect

# POSIX sh, constant: "$1" the dump's compression (zstd, gzip, none), "$2" a file of SQL run first (drops; may
# be empty), the rest psql. One transaction, committed only when the whole dump was decompressed and converted
# by pg_restore; otherwise psql reaches the end of its input inside the transaction, and the server rolls it
# back when psql leaves. Exit 97: the dump was cut or corrupt.
PG_RESTORE = (
    'how=$1; first=$2; shift 2\n'
    'case $how in zstd) un="zstd -q -d -c";; gzip) un="gzip -d -c";; *) un=cat;; esac\n'
    "convert() {\n"
    "  exec 5>&1\n"
    '  unpacked=$( { { $un 3>&- 5>&-; echo $? >&3; } | pg_restore --clean --if-exists --no-owner -f - 3>&- >&5; } '
    "3>&1 )\n"
    '  restored=$?\n'
    '  [ "$restored" -eq 0 ] && [ "${unpacked:-1}" -eq 0 ]\n'
    "}\n"
    "exec 4>&1\n"
    'converted=$( { { echo "BEGIN;"; if [ -n "$first" ]; then cat -- "$first"; fi; '
    'if convert 3>&- 4>&-; then echo "COMMIT;"; echo 0 >&3; else echo 1 >&3; fi; } | "$@" -f - 3>&- >&4; } '
    "3>&1 )\n"
    "client=$?\n"
    '[ "$client" -eq 0 ] || exit "$client"\n'
    '[ "${converted:-1}" -eq 0 ] || exit 97\n'
    "exit 0\n"
)

if TYPE_CHECKING:
    from ...model.specs import DatabaseSpec

# Whether `psql` on the runner is Debian's pg_wrapper (postgresql-common), and if so which psql it runs when
# given --host: the newest installed, as its own library (PgCommon) names it; and whether PGSYSCONFDIR, which the
# wrapper sets when it is unset, is set. One tab-separated line, or nothing (another psql, or no Perl library).
WRAPPED = "pg_wrapper"
WRAPPER_SYSCONFDIR = "/etc/postgresql-common"
WRAPPER_PROBE = r"""p=$(command -v psql) || exit 0
case $(readlink -f -- "$p" 2>/dev/null) in
  */postgresql-common/pg_wrapper) ;;
  *) exit 0 ;;
esac
exec perl -MPgCommon -e 'my $v = get_newest_version("psql") // ""; my $p = $v eq "" ? "" : get_program_path("psql", $v);
print join("\t", "pg_wrapper", $v, $p, defined $ENV{PGSYSCONFDIR} ? "set" : "unset"), "\n"' 2>/dev/null
"""

# "psql:/path/file.sql:12: ERROR:  ..." or "ERROR:  ..." or "psql: error: connection ..."
MESSAGE = re.compile(r"^(?:psql:(?:[^:]*:\d+:)? ?)?(?P<level>[A-Z]+|error|warning|fatal|notice):")
ERRORS = {"ERROR", "FATAL", "PANIC", "error", "fatal"}
# psql's words when a session it had is gone (server stopped, backend terminated, network cut); a failed login
# says "connection to server at ... failed" instead.
CONNECTION_LOST = re.compile(r"connection to server was lost|server closed the connection unexpectedly|"
                             r"terminating connection due to")
WARNINGS = {"WARNING", "NOTICE", "INFO", "LOG", "DEBUG", "warning", "notice"}


def pattern_name(name: str) -> str:
    """A name as pg_dump's patterns read it literally: double-quoted, `"` doubled (no wildcard, no case fold)."""
    return '"' + name.replace('"', '""') + '"'


def passfile_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def conninfo_value(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class PostgreSQL(Engine):
    name = "postgresql"
    display = "PostgreSQL"
    display_names = ("PostgreSQL", "Postgres")
    aliases = ("postgresql", "postgres")
    default_port = 5432
    client = "psql"
    dialect = PostgresDialect()
    transactional_ddl = True

    def credentials(self, db: DatabaseSpec) -> bytes:
        # The file serves one invocation, so wildcards avoid host-name spelling mismatches.
        password = db.password.reveal() if db.password else ""
        return f"*:*:*:{passfile_field(db.user)}:{passfile_field(password)}\n".encode()

    def secret_forms(self, secret: str) -> tuple[str, ...]:
        return (passfile_field(secret),)

    def _env(self, credentials_path: str) -> tuple[tuple[str, str], ...]:
        # No secret here: the password file's path, and settings.
        return (("PGPASSFILE", credentials_path), ("PGCONNECT_TIMEOUT", "15"), ("PGAPPNAME", "dbupdater"),
                # UTF-8 whatever the runner's locale or the database's encoding (psql would otherwise send the
                # script's bytes as the database's encoding: a LATIN1 database stores mojibake without an error).
                ("PGCLIENTENCODING", self.dialect.session_charset))

    def _argv(self, db: DatabaseSpec, *options: str) -> list[str]:
        return [
            self.client,
            "-X",
            "-q",
            "-w",
            "-v",
            "ON_ERROR_STOP=1",
            *options,
            f"--host={db.host}",
            f"--port={db.port}",
            f"--username={db.user}",
            # A conninfo string, so a database name with '=' or a URI prefix is still just a name.
            f"--dbname=dbname={conninfo_value(db.database)}",
        ]

    def command(self, db: DatabaseSpec, script_path: str, credentials_path: str, *,
                single_transaction: bool = False, before: str = "") -> Command:
        env = self._env(credentials_path)
        if before:
            # psql runs -c and -f in order in one session; each -c string is one transaction of its own. The
            # marker tells the runner the ledger row is committed and the script is next. A single transaction
            # is the script's alone, opened after the ledger's row: --single-transaction would wrap the row in
            # it too, and a failure would roll back the row and the previous script's success with it. With
            # ON_ERROR_STOP a failure ends psql before the COMMIT, and the server rolls the script back, as
            # --single-transaction's ROLLBACK would.
            script = ["-c", "BEGIN", "-f", script_path, "-c", "COMMIT"] if single_transaction else ["-f", script_path]
            argv = [*self._argv(db), "-c", before, "-c", f"\\echo {STARTED_MARKER}", *script]
            return Command(tuple(argv), env=env, started_marker=STARTED_MARKER)
        options = ["--single-transaction"] if single_transaction else []
        return Command(tuple([*self._argv(db, *options), "-f", script_path]), env=env)

    def shares_session(self, single_transaction: bool) -> bool:
        return True

    # --- Debian's pg_wrapper ----------------------------------------------------------------------------------

    def client_probe(self, platform: str = "posix") -> Command | None:
        return Command(("sh", "-c", WRAPPER_PROBE)) if platform == "posix" else None

    def client_build(self, result: Result, lines: list[str]) -> str:
        found = [line for line in lines if line.startswith(WRAPPED + "\t")]
        if not (result.exited and result.code == 0 and found):
            return ""
        _, version, path, sysconfdir = [*found[-1].split("\t"), "", "", ""][:4]
        major = version.split(".")[0]
        # Below 13 the wrapper also preloads readline: then it stays in the path.
        if not (major.isdigit() and int(major) >= 13 and path.startswith("/") and sysconfdir in ("set", "unset")):
            return ""
        return "\t".join((WRAPPED, path, sysconfdir))

    def adapt(self, command: Command, client: Client) -> Command:
        """psql as Debian's pg_wrapper would run it, without the wrapper (a Perl start, 30 to 40 ms of CPU per
        call). With --host on the command line, which every command here has, the wrapper picks no cluster: it
        runs the newest installed psql (what the probe named, with the wrapper's own PgCommon) and sets only
        PGSYSCONFDIR when it is unset. So the same binary runs with the same environment."""
        if (not client.build.startswith(WRAPPED + "\t") or client.platform != "posix" or not command.argv
                or command.argv[0] != self.client):
            return command
        _, path, sysconfdir = client.build.split("\t")
        env = command.env if sysconfdir == "set" else (*command.env, ("PGSYSCONFDIR", WRAPPER_SYSCONFDIR))
        return dataclasses.replace(command, argv=(path, *command.argv[1:]), env=env)

    def ledger_command(self, db: DatabaseSpec, credentials_path: str) -> Command:
        return Command(tuple([*self._argv(db, "--no-align", "--tuples-only"), "-f", "-"]),
                       env=self._env(credentials_path))

    # --- backups (engines.capabilities.Dumps) ---------------------------------------------------------------

    dump_tool = "pg_dump"
    dump_format = "pg_dump custom"

    def _connection(self, db: DatabaseSpec) -> list[str]:
        return [f"--host={db.host}", f"--port={db.port}", f"--username={db.user}",
                f"--dbname=dbname={conninfo_value(db.database)}"]

    def dump_command(self, db: DatabaseSpec, credentials_path: str, *, lock_table: str,
                     history_schema: str | None = None) -> Command:
        """pg_dump's custom format (restorable object by object), one snapshot, the lock table of any schema
        left out (its pattern matches `<schema>.<name>`); uncompressed by pg_dump and compressed by zstd on the
        runner instead: pg_dump's own zlib is single-threaded and 5x slower (bench/backup.py)."""
        argv = [self.dump_tool, "-w", "--format=custom", "--compress=0", f"--exclude-table=*.{lock_table}",
                *([f"--exclude-schema={pattern_name(history_schema)}"] if history_schema else []),
                *self._connection(db)]
        return Command(("sh", "-c", COMPRESSED_DUMP, "dbupdater-dump", *argv), env=self._env(credentials_path))

    def restore_command(self, db: DatabaseSpec, credentials_path: str, *, compression: str, first: str = "") -> Command:
        """pg_restore on the runner turns the custom-format dump into SQL (--clean --if-exists: each object it
        holds dropped first; --no-owner: a dump restores into a database owned by another role), and psql runs
        it after `first` (the drops of what was made since) in one transaction, committed only when pg_restore
        read the whole dump: a restore that fails or is cut half-way leaves the database as it was."""
        return Command(("sh", "-c", PG_RESTORE, "dbupdater-restore", compression, first, *self._argv(db)),
                       env=self._env(credentials_path))

    def tool_version_command(self) -> Command:
        return Command((self.dump_tool, "--version"))

    def server_version_sql(self) -> str:
        return "current_setting('server_version')"

    # --- copies across engines (engines.capabilities.ImportsRows) ------------------------------------------

    def import_command(self, db: DatabaseSpec, credentials_path: str) -> Command:
        # The script is the stream itself (`-f -`: COPY data inline). Not -1: psql would COMMIT at the end of
        # its input however it ended, and a cut stream ends a COPY as if it were whole. The stream's own BEGIN
        # and COMMIT decide; a stream cut before its COMMIT is rolled back when psql leaves.
        return Command(tuple([*self._argv(db, "--no-align", "--tuples-only"), "-f", "-"]),
                       env=self._env(credentials_path))

    def objects_sql(self, lock_table: str, history_schema: str | None = None) -> str:
        # engines.capabilities.Cleans: what the database holds outside the system schemas, the history schema
        # and extensions.
        d = self.dialect
        member = "EXISTS (SELECT 1 FROM pg_depend e WHERE e.objid = {0}.oid AND e.deptype = 'e')"
        kept = f"'pg_catalog', 'information_schema'{', ' + d.literal(history_schema) if history_schema else ''}"
        schemas = f"n.nspname NOT IN ({kept}) AND n.nspname NOT LIKE 'pg\\_%'"
        relkind = ("CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE' "
                   "WHEN 'f' THEN 'FOREIGN TABLE' ELSE 'TABLE' END")
        prokind = "CASE p.prokind WHEN 'p' THEN 'PROCEDURE' WHEN 'a' THEN 'AGGREGATE' ELSE 'FUNCTION' END"
        typkind = "CASE t.typtype WHEN 'd' THEN 'DOMAIN' ELSE 'TYPE' END"
        relation = "format('%I.%I', n.nspname, c.relname)"
        typename = "format('%I.%I', n.nspname, t.typname)"
        return (f"SELECT {d.json_row({'kind': relkind, 'name': relation})} "  # noqa: S608
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN "
                f"('r', 'p', 'v', 'm', 'S', 'f') AND NOT c.relispartition AND {schemas} AND c.relname <> "
                f"{d.literal(lock_table)} AND NOT {member.format('c')}\n"
                f"UNION ALL SELECT {d.json_row({'kind': prokind, 'name': 'p.oid::regprocedure::text'})} FROM pg_proc "
                f"p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {schemas} AND NOT {member.format('p')}\n"
                f"UNION ALL SELECT {d.json_row({'kind': typkind, 'name': typename})} "
                "FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype IN ('d', 'e', 'r', "
                f"'m') AND {schemas} AND NOT {member.format('t')};")

    def drops_sql(self, objects: list[tuple[str, str]]) -> str:
        order = ["VIEW", "MATERIALIZED VIEW", "FOREIGN TABLE", "TABLE", "SEQUENCE", "PROCEDURE", "AGGREGATE",
                 "FUNCTION", "DOMAIN", "TYPE"]
        ranked = sorted(objects, key=lambda item: order.index(item[0]) if item[0] in order else len(order))
        # Names come from the server's own format('%I.%I') / regprocedure: already quoted identifiers.
        return "".join(f"DROP {kind} IF EXISTS {name} CASCADE;\n" for kind, name in ranked if kind in order)

    def probe_direct(self, db: DatabaseSpec, timeout: float) -> None:
        from ...extras import require

        require("postgres-driver")  # or a UsageError saying how to install it
        import psycopg

        password = db.password.reveal() if db.password else None
        with psycopg.connect(host=db.host, port=db.port, user=db.user, dbname=db.database, password=password,
                             connect_timeout=max(2, int(timeout))) as connection:
            connection.execute("SELECT 1").fetchall()

    def classify_stderr(self, line: str, previous: Severity | None) -> Severity:
        if not line.strip():
            return previous or Severity.INFO
        match = MESSAGE.match(line)
        if match and match.group("level") in ERRORS:
            return Severity.ERROR
        if match and match.group("level") in WARNINGS:
            return Severity.WARNING
        # DETAIL/HINT/CONTEXT/LINE lines and the rest of a multi-line message carry no level of their own:
        # they belong to the message above. A line with no message before it is unexpected.
        return previous or Severity.ERROR

    def judge(self, result: Result, log: OutputLog) -> tuple[Status, str]:
        if result.exit_code() == 2:  # the connection failed: at login, or under a running script
            if any(CONNECTION_LOST.search(line) for line in log.errors):
                return Status.UNREACHABLE, ("the database connection was lost mid-script; the script may be "
                                            "partially applied")
            return Status.UNREACHABLE, "cannot connect to or log in to the database"
        if result.exit_code() == 3:
            return Status.FAILED, "the script failed (psql exit 3)"
        return self.judge_exit(result, log)


register(PostgreSQL())

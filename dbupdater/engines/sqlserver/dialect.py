"""The SQL Server (T-SQL) dialect of the ledger: literals, time, JSON rows and the tables' DDL.

Values reach SQL only as `N''` strings with quotes doubled and every control character spliced in as
`NCHAR(n)`: T-SQL has no backslash escapes, and no literal ever spans a line, so neither a backslash-newline
continuation (which T-SQL removes inside strings) nor a `GO` line or a `:command` line that sqlcmd would act
on can appear inside one (../shared/clients/sqlcmd.md section 2: sqlcmd commands are recognised at the start
of a line).

Rows come back as one JSON object per line, built by string concatenation (`STRING_ESCAPE(..., 'json')`,
SQL Server 2016+) as a non-`max` nvarchar: sqlcmd truncates `(n)varchar(max)` values at 256 characters by
default (`-y`, sqlcmd.md section 4), which `FOR JSON` would return. Numbers are told from text by the value's
base type, so an id or a count is a JSON number, as the ledger reads it.
"""

from __future__ import annotations

import re

from ..dialect import Dialect

INTEGER_TYPES = "(N'int', N'bigint', N'smallint', N'tinyint')"
JSON_WIDTH = 4000  # the widest non-max nvarchar: never truncated by sqlcmd's -y, trimmed by -W
# A character whose UTF-8 form is two bytes: if the client decoded the SQL it sent as UTF-8, the server sees
# U+00E9; read as a legacy code page (cp1252, latin1) it would be U+00C3 followed by another character.
PROBE_CHARACTER = "\u00e9"


def _control(char: str) -> bool:
    return ord(char) < 0x20 or ord(char) == 0x7F or char in "\u2028\u2029\u0085"


class SQLServerDialect(Dialect):
    now = "SYSUTCDATETIME()"
    session_charset = "UTF-8"
    session_charset_sql = (f"CASE WHEN UNICODE(N'{PROBE_CHARACTER}') = 233 THEN N'UTF-8' "
                           f"ELSE CONCAT(N'a legacy code page (U+00E9 arrived as U+', "
                           f"FORMAT(UNICODE(N'{PROBE_CHARACTER}'), 'X4'), N'...)') END")
    # Row counts ("(1 rows affected)") would be output lines of their own; XACT_ABORT off keeps a statement's
    # error from dooming the transaction a ledger statement runs in, so a caught duplicate key stays caught.
    preamble = "SET NOCOUNT ON; SET XACT_ABORT OFF; SET QUOTED_IDENTIFIER ON;\n"
    # Msg 208 "Invalid object name": the ODBC client's header, or (go-sqlcmd with -r0 writes the text only,
    # samples/go-sqlcmd-r0-b-stderr-message-only.txt) the message itself.
    missing_table = re.compile(r"^(?:\d+> )*Msg 208, Level 16,|^Invalid object name '")

    def ident(self, name: str) -> str:
        return "[" + name.replace("]", "]]") + "]"

    def literal_text(self, value: str) -> str:
        parts: list[str] = []
        run: list[str] = []
        for char in value:
            if _control(char):
                if run:
                    parts.append("N'" + "".join(run).replace("'", "''") + "'")
                    run = []
                parts.append(f"NCHAR({ord(char)})")
            else:
                run.append(char)
        if run or not parts:
            parts.append("N'" + "".join(run).replace("'", "''") + "'")
        return parts[0] if len(parts) == 1 else "(" + " + ".join(parts) + ")"

    def plus_seconds(self, expression: str, seconds: int) -> str:
        return f"DATEADD(second, {int(seconds)}, {expression})"

    def duration_ms(self, since: str) -> str:
        return f"DATEDIFF_BIG(millisecond, {since}, {self.now})"

    def text_time(self, expression: str) -> str:
        # Style 120 is ODBC canonical 'yyyy-mm-dd hh:mi:ss'; the ledger stores UTC (SYSUTCDATETIME()).
        return f"CONVERT(nvarchar(19), {expression}, 120)"

    def _json_value(self, expression: str) -> str:
        variant = f"CAST({expression} AS sql_variant)"
        return (f"CASE WHEN {variant} IS NULL THEN N'null' "
                f"WHEN SQL_VARIANT_PROPERTY({variant}, 'BaseType') IN {INTEGER_TYPES} "
                f"THEN CONVERT(nvarchar(40), {variant}) "
                f"ELSE N'\"' + STRING_ESCAPE(CONVERT(nvarchar({JSON_WIDTH}), {variant}), 'json') + N'\"' END")

    def json_row(self, fields: dict[str, str]) -> str:
        comma = ", N',', "
        members = comma.join(f"N'\"{key}\":', {self._json_value(value)}" for key, value in fields.items())
        return f"CAST(CONCAT(N'{{', {members}, N'}}') AS nvarchar({JSON_WIDTH}))"

    def _insert(self, table: str, values: dict[str, str]) -> str:
        return f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join(values.values())});"

    def insert_ignore(self, table: str, values: dict[str, str]) -> str:
        # T-SQL has no INSERT IGNORE: the primary key decides (one run wins, atomically), and the loser's
        # duplicate-key error (2627, or 2601 for a unique index) is caught, so it is never sent to sqlcmd.
        return (f"BEGIN TRY {self._insert(table, values)} END TRY BEGIN CATCH "
                "IF ERROR_NUMBER() NOT IN (2627, 2601) THROW; END CATCH;")

    def insert_ignore_where(self, table: str, values: dict[str, str], condition: str) -> str:
        return f"IF {condition} BEGIN {self.insert_ignore(table, values)} END;"

    # sqlcmd runs the `running` row in a ledger call of its own (no shared session): no session is recorded,
    # only the account.
    user_sql = "SUSER_SNAME()"

    def upgrades(self, history: str, lock: str) -> dict[int, tuple[str, ...]]:
        return {3: (f"IF COL_LENGTH({self.literal(history)}, N'db_session') IS NULL "
                    f"ALTER TABLE {history} ADD db_session NVARCHAR(64) NULL, db_user NVARCHAR(255) NULL;",)}

    def table_missing(self, schema: str | None, name: str) -> str:
        return f"OBJECT_ID({self.literal(self.table(schema, name))}, N'U') IS NULL"

    def create_tables(self, schema: str | None, history: str, lock: str, versions: str,
                      before_history: str = "") -> str:
        # Concurrent first runs would both find a table missing and collide creating it: an application lock
        # held to the end of the transaction serialises them (Flyway's sp_getapplock, ledger-idioms.md s. 1).
        # CREATE SCHEMA must be alone in its batch, hence EXEC.
        create_schema = ""
        if schema:
            create_schema = (f"IF SCHEMA_ID({self.literal(schema)}) IS NULL "
                             f"EXEC({self.literal('CREATE SCHEMA ' + self.ident(schema))});\n")
        def missing(table: str) -> str:
            return f"OBJECT_ID({self.literal(table)}, N'U') IS NULL"

        return f"""BEGIN TRANSACTION;
EXEC sp_getapplock @Resource = N'dbupdater ledger', @LockMode = N'Exclusive', @LockOwner = N'Transaction',
  @LockTimeout = 60000;
{create_schema}IF {missing(versions)} CREATE TABLE {versions} (
  version INT NOT NULL PRIMARY KEY,
  applied_at DATETIME2(3) NOT NULL DEFAULT SYSUTCDATETIME(),
  tool_version NVARCHAR(32) NULL
);
{before_history}
IF {missing(history)} CREATE TABLE {history} (
  id BIGINT IDENTITY(1,1) NOT NULL PRIMARY KEY,
  script NVARCHAR(1000) NOT NULL,
  checksum CHAR(64) NOT NULL,
  checksum_version SMALLINT NOT NULL,
  status NVARCHAR(16) NOT NULL,
  started_at DATETIME2(3) NOT NULL DEFAULT SYSUTCDATETIME(),
  finished_at DATETIME2(3) NULL,
  duration_ms BIGINT NULL,
  runner_host NVARCHAR(255) NULL,
  os_user NVARCHAR(128) NULL,
  tool_version NVARCHAR(32) NULL,
  run_id NVARCHAR(64) NOT NULL,
  note NVARCHAR(1000) NULL,
  db_session NVARCHAR(64) NULL,
  db_user NVARCHAR(255) NULL
);
IF {missing(lock)} CREATE TABLE {lock} (
  name NVARCHAR(64) NOT NULL PRIMARY KEY,
  run_id NVARCHAR(64) NOT NULL,
  host NVARCHAR(255) NULL,
  pid INT NULL,
  os_user NVARCHAR(128) NULL,
  acquired_at DATETIME2(3) NOT NULL DEFAULT SYSUTCDATETIME(),
  heartbeat_at DATETIME2(3) NOT NULL DEFAULT SYSUTCDATETIME(),
  expires_at DATETIME2(3) NOT NULL DEFAULT SYSUTCDATETIME()
);
COMMIT TRANSACTION;
"""


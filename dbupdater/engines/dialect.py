"""SQL primitives that differ between engines, so the ledger's statements are written once.

Values reach SQL only through `literal()`, which cannot be escaped out of whatever the server's settings
(MySQL: hex literals, immune to NO_BACKSLASH_ESCAPES; PostgreSQL: E'' strings, immune to
standard_conforming_strings).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod


class Dialect(ABC):
    now: str
    preamble: str = ""
    # The UTF-8 character set every client session of the engine must run in (the engine's invocations ask
    # for it), and an expression giving the session's actual one, which the ledger checks on opening: a
    # server that overrides the client's choice would convert every script's text wrongly.
    session_charset: str
    session_charset_sql: str
    # The error a read of a never-created history table gives: such a database simply has no history yet.
    missing_table: re.Pattern[str]

    @abstractmethod
    def ident(self, name: str) -> str: ...

    @abstractmethod
    def literal_text(self, value: str) -> str: ...

    def literal(self, value: str | int | None) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, int):
            return str(int(value))
        return self.literal_text(value)

    def table(self, schema: str | None, name: str) -> str:
        return f"{self.ident(schema)}.{self.ident(name)}" if schema else self.ident(name)

    @abstractmethod
    def plus_seconds(self, expression: str, seconds: int) -> str: ...

    @abstractmethod
    def duration_ms(self, since: str) -> str: ...

    @abstractmethod
    def text_time(self, expression: str) -> str:
        """A timestamp as 'YYYY-MM-DD HH:MM:SS' UTC text, the same on every engine."""

    @abstractmethod
    def json_row(self, fields: dict[str, str]) -> str: ...

    @abstractmethod
    def insert_ignore(self, table: str, values: dict[str, str]) -> str:
        """An insert that silently does nothing when the primary key exists: how the lock is taken."""

    @abstractmethod
    def create_tables(self, schema: str | None, history: str, lock: str) -> str: ...

    def before_script(self, first: str, rest: str) -> str:
        """Ledger SQL made fit to run in the script's own session: committed, and the session left as it was."""
        return first + rest


class MySQLDialect(Dialect):
    now = "NOW(3)"
    session_charset = "utf8mb4"
    session_charset_sql = ("CASE WHEN @@character_set_client = @@character_set_connection AND "
                           "@@character_set_client = @@character_set_results THEN @@character_set_client ELSE "
                           "CONCAT_WS(' / ', @@character_set_client, @@character_set_connection, "
                           "IFNULL(@@character_set_results, 'binary')) END")
    # Autocommit on, whatever the server's default: a server set to autocommit=0 would roll back every
    # ledger write (and the lock row) when the client disconnects.
    preamble = "SET time_zone = '+00:00', autocommit = 1;\n"
    missing_table = re.compile(r"^ERROR (1146|1049) ")

    def ident(self, name: str) -> str:
        return "`" + name.replace("`", "``") + "`"

    def literal_text(self, value: str) -> str:
        return "_utf8mb4 X'" + value.encode("utf-8").hex() + "'"

    def plus_seconds(self, expression: str, seconds: int) -> str:
        return f"{expression} + INTERVAL {int(seconds)} SECOND"

    def duration_ms(self, since: str) -> str:
        return f"TIMESTAMPDIFF(MICROSECOND, {since}, {self.now}) DIV 1000"

    def text_time(self, expression: str) -> str:
        return f"DATE_FORMAT({expression}, '%Y-%m-%d %H:%i:%s')"

    def json_row(self, fields: dict[str, str]) -> str:
        return "JSON_OBJECT(" + ", ".join(f"'{key}', {value}" for key, value in fields.items()) + ")"

    def before_script(self, first: str, rest: str) -> str:
        # The client reports an error of the first statement only (the login then fails); later ones fail
        # silently, so `first` is the statement that must not. The ledger's times are UTC; the script must
        # still find the session's own time zone. The user variable is left NULL, which reads as never set.
        if not rest:
            return first
        return (f"{first} SET @dbupdater_tz = @@session.time_zone, time_zone = '+00:00'; {rest.strip()} COMMIT; "
                "SET time_zone = @dbupdater_tz, @dbupdater_tz = NULL;")

    def insert_ignore(self, table: str, values: dict[str, str]) -> str:
        return (f"INSERT IGNORE INTO {table} ({', '.join(values)}) VALUES ({', '.join(values.values())});")

    def create_tables(self, schema: str | None, history: str, lock: str) -> str:
        create_schema = f"CREATE DATABASE IF NOT EXISTS {self.ident(schema)};\n" if schema else ""
        return create_schema + f"""
CREATE TABLE IF NOT EXISTS {history} (
  id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
  script VARCHAR(1000) NOT NULL,
  checksum CHAR(64) NOT NULL,
  checksum_version SMALLINT NOT NULL,
  status VARCHAR(16) NOT NULL,
  started_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  finished_at TIMESTAMP(3) NULL DEFAULT NULL,
  duration_ms BIGINT NULL,
  runner_host VARCHAR(255) NULL,
  os_user VARCHAR(128) NULL,
  tool_version VARCHAR(32) NULL,
  run_id VARCHAR(64) NOT NULL,
  note VARCHAR(1000) NULL,
  KEY dbupdater_history_script (script(191))
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
CREATE TABLE IF NOT EXISTS {lock} (
  name VARCHAR(64) NOT NULL PRIMARY KEY,
  run_id VARCHAR(64) NOT NULL,
  host VARCHAR(255) NULL,
  pid INT NULL,
  os_user VARCHAR(128) NULL,
  acquired_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  heartbeat_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  expires_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
"""


class PostgresDialect(Dialect):
    now = "clock_timestamp()"
    session_charset = "UTF8"
    session_charset_sql = "current_setting('client_encoding')"
    preamble = "SET client_min_messages = warning;\n"
    missing_table = re.compile(r"ERROR:  (relation|schema) \"[^\"]*\" does not exist")

    def ident(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def literal_text(self, value: str) -> str:
        return "E'" + value.replace("\\", "\\\\").replace("'", "''") + "'"

    def plus_seconds(self, expression: str, seconds: int) -> str:
        return f"{expression} + make_interval(secs => {int(seconds)})"

    def duration_ms(self, since: str) -> str:
        return f"(extract(epoch FROM {self.now} - {since}) * 1000)::bigint"

    def text_time(self, expression: str) -> str:
        return f"to_char({expression} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')"

    def json_row(self, fields: dict[str, str]) -> str:
        return "json_build_object(" + ", ".join(f"'{key}', {value}" for key, value in fields.items()) + ")"

    def insert_ignore(self, table: str, values: dict[str, str]) -> str:
        return (f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join(values.values())}) "
                "ON CONFLICT DO NOTHING;")

    def create_tables(self, schema: str | None, history: str, lock: str) -> str:
        # Concurrent CREATE TABLE IF NOT EXISTS can collide in the catalog: serialise it.
        create_schema = f"CREATE SCHEMA IF NOT EXISTS {self.ident(schema)};\n" if schema else ""
        return f"""BEGIN;
SELECT pg_advisory_xact_lock(hashtext('dbupdater ledger'));
{create_schema}CREATE TABLE IF NOT EXISTS {history} (
  id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
  script TEXT NOT NULL,
  checksum CHAR(64) NOT NULL,
  checksum_version SMALLINT NOT NULL,
  status VARCHAR(16) NOT NULL,
  started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
  finished_at TIMESTAMPTZ NULL,
  duration_ms BIGINT NULL,
  runner_host TEXT NULL,
  os_user TEXT NULL,
  tool_version TEXT NULL,
  run_id TEXT NOT NULL,
  note TEXT NULL
);
CREATE INDEX IF NOT EXISTS dbupdater_history_script ON {history} (script);
CREATE TABLE IF NOT EXISTS {lock} (
  name VARCHAR(64) PRIMARY KEY,
  run_id TEXT NOT NULL,
  host TEXT NULL,
  pid INTEGER NULL,
  os_user TEXT NULL,
  acquired_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
  heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
  expires_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
COMMIT;
"""

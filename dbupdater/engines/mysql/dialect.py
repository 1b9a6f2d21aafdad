"""The MySQL / MariaDB dialect of the ledger: literals, time, JSON rows and the tables' DDL.

Values reach SQL only as hex literals (`_utf8mb4 X'...'`), which no server setting (NO_BACKSLASH_ESCAPES,
the session character set) can break out of.
"""

from __future__ import annotations

import re

from ..dialect import Dialect


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

    session_sql = "CONNECTION_ID()"
    user_sql = "CURRENT_USER()"
    # MariaDB has no @@server_uuid: the host name, port and data directory name one server instance.
    server_identity = "CONCAT_WS(' ', @@hostname, @@port, @@datadir, DATABASE())"

    def null_unless(self, condition: str, value: str) -> str:
        return f"IF({condition}, {value}, NULL)"

    def use_database(self, name: str) -> str | None:
        return f"USE {self.ident(name)};"

    def count_where(self, table: str, condition: str) -> str:
        # MySQL refuses a subquery on the table being inserted into (error 1093) unless it is materialised
        # first: an aggregate in a derived table is never merged into the outer statement.
        return f"(SELECT n FROM (SELECT COUNT(*) AS n FROM {table} WHERE {condition}) AS dbupdater_seen)"

    def insert_checked(self, table: str, values: dict[str, str]) -> str:
        # Only a single-row INSERT ... VALUES fails on a NULL for a NOT NULL column whatever the sql_mode;
        # INSERT ... SELECT would store '' with a warning on a server that is not in strict mode.
        return f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join(values.values())});"

    def session_alive(self, row: str) -> str | None:
        return f"EXISTS (SELECT 1 FROM information_schema.PROCESSLIST p WHERE p.ID = {row}.db_session)"

    def session_visible(self, row: str) -> str:
        # Without the PROCESS privilege an account sees only its own sessions: a session of another account
        # that is not listed may still run.
        return f"({row}.db_session IS NOT NULL AND {row}.db_user = CURRENT_USER())"

    def end_session(self, session: str) -> str | None:
        return f"KILL {int(session)};" if session.isdigit() else None

    def insert_ignore(self, table: str, values: dict[str, str]) -> str:
        return (f"INSERT IGNORE INTO {table} ({', '.join(values)}) VALUES ({', '.join(values.values())});")

    def insert_ignore_where(self, table: str, values: dict[str, str], condition: str) -> str:
        return (f"INSERT IGNORE INTO {table} ({', '.join(values)}) SELECT {', '.join(values.values())} FROM DUAL "
                f"WHERE {condition};")

    def upgrades(self, history: str, lock: str) -> dict[int, tuple[str, ...]]:
        return {3: (f"ALTER TABLE {history} ADD COLUMN db_session VARCHAR(64) NULL, "
                    "ADD COLUMN db_user VARCHAR(255) NULL;",)}

    def table_missing(self, schema: str | None, name: str) -> str:
        where = self.literal(schema) if schema else "DATABASE()"
        return (f"NOT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = {where} "
                f"AND table_name = {self.literal(name)})")

    def create_tables(self, schema: str | None, history: str, lock: str, versions: str,
                      before_history: str = "") -> str:
        create_schema = f"CREATE DATABASE IF NOT EXISTS {self.ident(schema)};\n" if schema else ""
        return create_schema + f"""
CREATE TABLE IF NOT EXISTS {versions} (
  version INT NOT NULL PRIMARY KEY,
  applied_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  tool_version VARCHAR(32) NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
{before_history}
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
  db_session VARCHAR(64) NULL,
  db_user VARCHAR(255) NULL,
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

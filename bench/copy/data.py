"""The source databases: Sakila from the shared corpus, and a generated one of about --size-mb.

The generated database mixes what a conversion has to get right (signed and unsigned integers up to bigint
unsigned above 2^63, decimals, utf8mb4 text with 2-, 3- and 4-byte characters, tabs, newlines, backslashes and
quotes, blobs of random bytes including NUL, datetime(6), date, timestamp(3), enum, set, json, a point,
tinyint(1) used as a flag, NULLs everywhere they are allowed) in three tables of different shapes: wide rows, large
blobs, many narrow rows. MariaDB generates it itself from its SEQUENCE engine (``seq_1_to_N``), a statement per
slice of rows, with the binary log off for that session: nothing crosses the client, and the log holds nothing
pg_chameleon must read.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import mysql.connector
from mysql.connector.abstracts import MySQLConnectionAbstract
from mysql.connector.pooling import PooledMySQLConnection

from environment_creators.info import RigInfo
from environment_creators.rig import Rig

log = logging.getLogger("bench")
SAKILA = "sakila"
GENERATED = "bench_copy_gen"
STATEMENT_BYTES = 32 * 1024 * 1024  # about this much data per INSERT ... SELECT: transactions stay moderate

MySqlConnection = MySQLConnectionAbstract | PooledMySQLConnection


def mysql_connect(info: RigInfo, database: str | None = None) -> MySqlConnection:
    """An admin session from this machine (setup and checks only, never timed), utf8mb4, autocommit, UTC."""
    conn = mysql.connector.connect(host=info.mysql.host, port=info.mysql.port, user=info.mysql.admin_user,
                                   password=info.mysql.admin_password, database=database, charset="utf8mb4",
                                   collation="utf8mb4_unicode_ci", autocommit=True)
    cursor = conn.cursor()
    cursor.execute("SET SESSION time_zone = '+00:00'")
    cursor.close()
    return conn


@dataclass(frozen=True)
class Source:
    """One database to copy and what it holds."""

    key: str  # sakila | generated
    database: str
    size_bytes: int  # InnoDB data_length of its base tables
    rows: int

    @property
    def size_mb(self) -> float:
        return self.size_bytes / 1048576


@dataclass(frozen=True)
class GeneratedTable:
    name: str
    share: float  # of --size-mb
    row_bytes: int  # estimated InnoDB bytes per row, to turn a size into a row count
    ddl: str
    select: str  # the SELECT list over seq (MariaDB's sequence engine), one row per seq


TABLES = (
    GeneratedTable(
        "events", 0.55, 650,
        """CREATE TABLE events (
  id BIGINT NOT NULL PRIMARY KEY,
  account INT NOT NULL,
  amount BIGINT UNSIGNED NOT NULL,
  price DECIMAL(12,2) NULL,
  title VARCHAR(120) NOT NULL,
  body TEXT NULL,
  raw BLOB NULL,
  happened DATETIME(6) NOT NULL,
  kind ENUM('click','view','buy','refund') NOT NULL,
  tags SET('red','green','blue','new','old') NOT NULL,
  attrs JSON NULL,
  flag TINYINT(1) NOT NULL,
  KEY events_account (account)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
        r"""seq,
  CAST(FLOOR(RAND() * 2000000000) AS SIGNED) - 1000000000,
  CAST(FLOOR(RAND() * 18446744073709551615) AS UNSIGNED),
  IF(seq % 11 = 0, NULL, ROUND(RAND() * 10000000, 2)),
  CONCAT(ELT(1 + seq % 4, 'Zürich ', 'naïve café ', '日本語のテキスト ', 'emoji 😀🎉 '), MD5(RAND())),
  IF(seq % 13 = 0, NULL, CONCAT(REPEAT(MD5(RAND()), 1 + seq % 6), '\ttab\nnewline\\backslash\r"quote'' ☃ ',
                                 SHA2(RAND(), 256))),
  IF(seq % 17 = 0, NULL, RANDOM_BYTES(32 + seq % 200)),
  TIMESTAMPADD(MICROSECOND, CAST(FLOOR(RAND() * 100000000000000) AS SIGNED), '2001-01-01 00:00:00'),
  ELT(1 + seq % 4, 'click', 'view', 'buy', 'refund'),
  MAKE_SET(seq % 32, 'red', 'green', 'blue', 'new', 'old'),
  IF(seq % 19 = 0, NULL, JSON_OBJECT('n', seq, 'k', MD5(RAND()), 'list', JSON_ARRAY(1, 2.5, 'x', NULL, TRUE),
                                     'text', 'é "q" \\ ☃ 😀')),
  seq % 2"""),
    GeneratedTable(
        "documents", 0.30, 3900,
        """CREATE TABLE documents (
  id INT UNSIGNED NOT NULL PRIMARY KEY,
  name VARCHAR(200) NOT NULL,
  created DATE NOT NULL,
  size_class TINYINT UNSIGNED NOT NULL,
  content MEDIUMBLOB NULL,
  place POINT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
        """seq,
  CONCAT('doc-', seq, '-', MD5(seq)),
  DATE('2010-01-01') + INTERVAL (seq % 5000) DAY,
  seq % 256,
  IF(seq % 23 = 0, NULL, CONCAT(RANDOM_BYTES(1024), RANDOM_BYTES(1024), RANDOM_BYTES(1024),
                                RANDOM_BYTES(1 + seq % 1024))),
  IF(seq % 7 = 0, NULL, POINT(RAND() * 360 - 180, RAND() * 180 - 90))"""),
    GeneratedTable(
        "ledger", 0.15, 110,
        """CREATE TABLE ledger (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  tenant SMALLINT UNSIGNED NOT NULL,
  qty MEDIUMINT NOT NULL,
  ratio DECIMAL(20,10) NOT NULL,
  code CHAR(8) NOT NULL,
  note VARCHAR(40) NULL,
  booked TIMESTAMP(3) NULL,
  KEY ledger_tenant (tenant, booked)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci""",
        """seq,
  seq % 65536,
  CAST(FLOOR(RAND() * 16777215) AS SIGNED) - 8388608,
  RAND() * 1000000000,
  LEFT(MD5(seq), 8),
  IF(seq % 5 = 0, NULL, CONCAT('n', seq, ' ½')),
  IF(seq % 29 = 0, NULL, FROM_UNIXTIME(946684800 + seq % 700000000 + (seq % 1000) / 1000))"""),
)


# dbupdater's history tables, which a run of the tool may leave in the source: not part of the data.
NOT_TOOL = "table_name NOT LIKE 'dbupdater\\\\_%%'"


def _measure(info: RigInfo, key: str, database: str) -> Source:
    conn = mysql_connect(info)
    try:
        cursor = conn.cursor()
        cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND "
                       f"table_type = 'BASE TABLE' AND {NOT_TOOL}", (database,))
        names = [str(row[0]) for row in cursor.fetchall()]  # type: ignore[index]
        rows = 0
        for name in names:
            cursor.execute(f"ANALYZE TABLE `{database}`.`{name}`")
            cursor.fetchall()
            cursor.execute(f"SELECT COUNT(*) FROM `{database}`.`{name}`")
            rows += int(cursor.fetchone()[0])  # type: ignore[index, arg-type]
        cursor.execute("SELECT COALESCE(SUM(data_length), 0) FROM information_schema.tables WHERE table_schema = %s "
                       f"AND table_type = 'BASE TABLE' AND {NOT_TOOL}", (database,))
        size = int(cursor.fetchone()[0])  # type: ignore[index, arg-type]
    finally:
        conn.close()
    return Source(key, database, size, rows)


def _present(rig: Rig, database: str, tables: int) -> bool:
    got = rig.mysql_exec(f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{database}' "
                         "AND table_type = 'BASE TABLE' AND " + NOT_TOOL.replace("%%", "%")).strip()
    return got == str(tables)


def sakila(rig: Rig, corpus: Path, *, keep: bool) -> Source | None:
    """Sakila as the corpus ships it (schema, then data); None when the corpus is absent."""
    schema, data = corpus / "sakila-schema.sql", corpus / "sakila-data.sql"
    if not (schema.is_file() and data.is_file()):
        return None
    if not (keep and _present(rig, SAKILA, 16)):
        started = time.monotonic()
        for script in (schema, data):
            rig.mysql_exec("SET SESSION sql_log_bin = 0;\n" + script.read_text(encoding="utf-8"))
        log.info("sakila: loaded in %.0fs", time.monotonic() - started)
    return _measure(rig.info(), "sakila", SAKILA)


def generated(rig: Rig, size_mb: int, *, keep: bool) -> Source:
    """The generated database, made again unless --keep-data and it is there (same tables)."""
    if not (keep and _present(rig, GENERATED, len(TABLES))):
        started = time.monotonic()
        rig.drop_mysql_database(GENERATED)
        rig.create_mysql_database(GENERATED)
        conn = mysql_connect(rig.info(), GENERATED)
        try:
            cursor = conn.cursor()
            cursor.execute("SET SESSION sql_log_bin = 0")
            for table in TABLES:
                cursor.execute(table.ddl)
                rows = max(10, int(size_mb * 1048576 * table.share) // table.row_bytes)
                step = max(1, STATEMENT_BYTES // table.row_bytes)
                for first in range(1, rows + 1, step):
                    last = min(rows, first + step - 1)
                    cursor.execute(f"INSERT INTO {table.name} SELECT {table.select} FROM seq_{first}_to_{last}")
                log.info("generated: %s, %d rows", table.name, rows)
            cursor.close()
        finally:
            conn.close()
        log.info("generated: %s in %.0fs", GENERATED, time.monotonic() - started)
    return _measure(rig.info(), "generated", GENERATED)

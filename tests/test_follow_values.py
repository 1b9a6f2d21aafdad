"""The follower and the copy agree on the rig: awkward values (zero dates, year 0, days outside the calendar,
times outside a day, bigint unsigned identities above 2^63-1, enum and set members the catalog cannot show,
latin1 and cp1250 text, NUL characters, invalid JSON, and every other family) are judged the same way by both.

First each value's decision: the awkward rows are written to MariaDB after a binary log position, read back from
the log the way the follower reads it, and what the follower decides (which rows it discards, with which key,
reasons and text; which it carries) is compared with what the copy's own SQL says on the server (its
`discarded_sql` and `source_checksum_sql`), with --zero-dates discard and null. Then the whole command:
`copy-db --follow` copies, the awkward rows (and rows made awkward, or mended, or deleted) arrive while it
follows, and its discarded rows and every table's checksum equal those of a fresh copy of the same source."""

from __future__ import annotations

import dataclasses
import json
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbupdater.conversion.catalog import catalog_sql, read_catalog
from dbupdater.conversion.follow import Discard, Forget, Statement, TableWriter
from dbupdater.conversion.model import ConversionPlan, TranslationOptions
from dbupdater.conversion.translate import translate
from dbupdater.steps.convert_load import SOURCE_SESSION
from dbupdater.steps.convert_state import LEDGER_TABLES
from dbupdater.steps.follow import SourceText
from dbupdater.steps.follow_reading import as_stored
from tests.conftest import ROOT, Target, Workspace, fresh_targets, secret_values

pytestmark = pytest.mark.usefixtures("binary_log")  # skipped, with the rig's reason, without one

SCHEMA = "copied"
WAIT = 60.0  # seconds at most for the follower (a bound on a broken test, never a speed claim)

TABLES = """
CREATE TABLE dates (id INT PRIMARY KEY, d DATE NULL, dt DATETIME(3) NULL, ts TIMESTAMP(6) NULL DEFAULT NULL,
  dnn DATE NOT NULL DEFAULT '2000-01-01');
CREATE TABLE times (id INT PRIMARY KEY, t TIME, t2 TIME(2));
CREATE TABLE big_ids (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, note VARCHAR(10));
CREATE TABLE big_refs (id INT PRIMARY KEY, big_id BIGINT UNSIGNED, CONSTRAINT big_refs_big FOREIGN KEY (big_id)
  REFERENCES big_ids (id));
CREATE TABLE choices (id INT PRIMARY KEY, e ENUM('a', 'b c', 'é'), s SET('x', 'y z', 'é'), e4 ENUM('a', '😀'),
  s4 SET('x', '😀'), el ENUM('a', 'é') CHARACTER SET latin1);
CREATE TABLE texts (id INT PRIMARY KEY, vc VARCHAR(40), lat VARCHAR(40) CHARACTER SET latin1,
  cp VARCHAR(10) CHARACTER SET cp1250, j JSON, b BLOB, bn BINARY(4));
CREATE TABLE misc (a INT, b VARCHAR(5), f FLOAT, db DOUBLE, bits BIT(5), dec2 DECIMAL(10,2), yr YEAR, u UUID,
  i6 INET6, i4 INET4, g POINT, tm TIME, PRIMARY KEY (a, b));
INSERT INTO dates VALUES (1, '2024-01-01', '2024-01-01 10:00:00', '2024-01-01 10:00:00', '2024-01-01');
INSERT INTO misc (a, b, f) VALUES (1, 'one', 1.5);
"""

# Written after the copy (or after the recorded position): what neither may carry, what both must, and rows
# that change from one to the other.
AWKWARD = r"""
SET sql_mode = 'ALLOW_INVALID_DATES', check_constraint_checks = 0, time_zone = '+00:00';
INSERT INTO dates VALUES (10, '0000-00-00', '2020-00-05 01:02:03', NULL, '2001-01-01'),
  (11, '0000-05-10', NULL, NULL, '2001-01-01'),
  (12, '2023-02-30', '2024-02-30 10:00:00.5', NULL, '2001-01-01'),
  (13, NULL, NULL, '0000-00-00 00:00:00', '0000-00-00'),
  (14, '2024-02-29', '9999-12-31 23:59:59.999', '2038-01-19 03:14:07.999999', '0099-01-01'),
  (15, '2023-02-30', NULL, NULL, '2001-01-01'),
  (16, '0000-05-10', NULL, NULL, '2001-01-01');
UPDATE dates SET d = '2023-02-30' WHERE id = 1;
UPDATE dates SET d = '2023-02-28' WHERE id = 15;
DELETE FROM dates WHERE id = 16;
INSERT INTO times VALUES (10, '-00:00:01', NULL), (11, '24:00:00', '24:00:00.01'), (12, '838:59:59', '12:34:56.78'),
  (13, '24:00:00', '24:00:00'), (14, '-838:59:59', '-00:00:00.50');
INSERT INTO big_ids VALUES (1, 'one'), (9223372036854775806, 'high'), (9223372036854775808, 'too high');
INSERT INTO big_refs VALUES (1, 1), (2, 9223372036854775806), (3, 9223372036854775808), (4, NULL);
INSERT INTO choices VALUES (10, 'é', 'x,y z,é', '😀', 'x,😀', 'é'), (11, 'nope', '', 'a', '', 'a'),
  (12, 'b c', 'é', 'a', '😀', NULL), (13, NULL, NULL, NULL, NULL, NULL);
INSERT INTO texts VALUES
  (10, 'emoji 😀 tab\there \\ back', _latin1 X'80818D8F909DE9FF', _cp1250 X'8A9A', '{"k": [1, 2.50, null]}', X'00FF',
   X'01'),
  (11, CONCAT('nul', CHAR(0), 'here'), 'ok', 'ok', '{"a": NaN}', NULL, NULL),
  (12, 'fine', 'fine', _cp1250 X'4181', '"\\ud800"', NULL, NULL),
  (13, 'fine', CONCAT('z', CHAR(0)), 'ok', '[1, "a\\nb"]', '', X'FFFFFFFF'),
  (14, '', '', '', '{bad', NULL, NULL);
INSERT INTO misc VALUES
  (10, 'a', 0.1, 1e22, b'10101', -12.50, 0, 'f47ac10b-58cc-4372-a567-0e02b2c3d479', '::ffff:1.2.3.4', '1.2.3.4',
   POINT(1, 2), '12:00:00'),
  (11, 'b', -0.0, 5e-324, b'0', 0, 2155, '6ccd780c-baba-1026-9564-5b8c656024db', '::', '0.0.0.0',
   ST_GeomFromText('POINT(-1.5 1e300)', 4326), NULL),
  (12, 'c"q', 3.4028234e38, 1.2345678901234568e17, b'11111', 99.99, 1901, '00000000-0000-0000-0000-000000000000',
   '2001:db8::1', '255.255.255.255', POINT(0, 0), '-01:00:00'),
  (13, 'd\\e', 1e-10, -2.5e-300, NULL, NULL, NULL, NULL, '::1.2.3.4', NULL, NULL, '839:00:00');
UPDATE misc SET tm = '25:00:00' WHERE a = 1;
"""


def fields(line: str) -> list[str | None]:
    """One line of COPY text as its fields (\\N: NULL)."""
    escapes = {"\\": "\\", "t": "\t", "n": "\n", "r": "\r"}
    out: list[str | None] = []
    for field in line.split("\t"):
        if field == "\\N":
            out.append(None)
            continue
        text, index = [], 0
        while index < len(field):
            if field[index] == "\\" and index + 1 < len(field):
                text.append(escapes.get(field[index + 1], field[index + 1]))
                index += 2
            else:
                text.append(field[index])
                index += 1
        out.append("".join(text))
    return out


class Source:
    """A MariaDB database of the rig, read as the copy reads it (the mysql client, --raw) and as the follower
    reads its binary log (mysql-replication, the follower's own readings)."""

    def __init__(self, rig: Any, info: Any, name: str) -> None:
        self.rig, self.info, self.name = rig, info, name

    def my(self, sql: str) -> str:
        return self.rig.mysql_exec(sql, self.name)  # type: ignore[no-any-return]

    def raw(self, sql: str) -> str:
        done = subprocess.run(["mysql", f"--defaults-extra-file={self.rig.mysql_defaults_file()}", "--batch",
                               "--skip-column-names", "--raw", "--default-character-set=utf8mb4", self.name],
                              input=(SOURCE_SESSION + "SET @dbupdater_source = 'src';\n" + sql + ";\n").encode(),
                              capture_output=True, check=True)
        return done.stdout.decode()

    def plan(self, zero_dates: str = "discard") -> ConversionPlan:
        rows = [json.loads(line) for line in self.my(catalog_sql(self.name)).splitlines() if line.startswith("{")]
        schema = read_catalog(self.name, rows)
        schema = dataclasses.replace(schema, tables=tuple(t for t in schema.tables if t.name not in LEDGER_TABLES))
        return translate(schema, TranslationOptions(schema=SCHEMA, zero_dates=zero_dates))

    def position(self) -> tuple[str, int]:
        file, pos = self.my("SHOW MASTER STATUS").split("\t")[:2]
        return file, int(pos)

    def connect(self) -> Any:
        import pymysql

        return pymysql.connect(**self.settings(), autocommit=True)

    def settings(self) -> dict[str, Any]:
        db = self.info.mysql
        return {"host": db.host, "port": db.port, "user": db.admin_user, "password": db.admin_password,
                "charset": "utf8mb4"}

    def copy_discards(self, plan: ConversionPlan) -> set[tuple[str | None, ...]]:
        """(table, row_key, reason, row_text) of every row the copy's SQL does not carry."""
        found = set()
        for table in plan.tables:
            for line in self.raw(table.discarded_sql).splitlines():
                found.add(tuple(fields(line)[1:]))
        return found

    def copy_counts(self, plan: ConversionPlan) -> dict[str, int]:
        return {t.name: int(self.raw(t.source_checksum_sql).split("\t")[0]) for t in plan.tables}


@pytest.fixture
def source(rig: Any, info: Any) -> Iterator[Source]:
    name = f"fv_{secrets.token_hex(4)}"
    rig.create_mysql_database(name)
    try:
        made = Source(rig, info, name)
        made.my(TABLES)
        yield made
    finally:
        rig.drop_mysql_database(name)


def follow_decisions(src: Source, plan: ConversionPlan, start: tuple[str, int]) -> tuple[set[tuple[str | None, ...]],
                                                                                         dict[str, int]]:
    """What the follower makes of the log from `start`: the discarded rows it keeps (each change forgets the row's
    earlier entry, as discarded_rows does) and how many rows of each table it holds."""
    from pymysqlreplication import BinLogStreamReader
    from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

    mysql = src.connect()
    text = SourceText()
    text.mysql = mysql
    writers = {t.source.name: TableWriter(t, text.convert) for t in plan.tables}
    discarded: dict[tuple[str, str | None], tuple[str | None, ...]] = {}
    held: dict[str, set[tuple[object, ...]]] = {t.name: set() for t in plan.tables}
    for t in plan.tables:  # the rows before the position (all carriable)
        for line in src.raw(t.rows_sql).splitlines():
            values = fields(line)
            held[t.name].add(tuple(values[t.columns.index(c)] for c in t.columns if c.source.name in
                                   t.source.primary_key))
    stream = BinLogStreamReader(connection_settings=src.settings(), server_id=(1 << 20) + secrets.randbelow(1 << 20),
                                log_file=start[0], log_pos=start[1], blocking=False, only_schemas=[src.name],
                                only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent])
    try:
        for event in stream:
            writer = writers[event.table]
            for row in as_stored(event).rows:
                if isinstance(event, WriteRowsEvent):
                    changes = writer.inserted(row["values"], row["none_sources"])
                elif isinstance(event, UpdateRowsEvent):
                    changes = writer.updated(row["before_values"], row["before_none_sources"], row["after_values"],
                                             row["after_none_sources"])
                else:
                    changes = writer.deleted(row["values"], row["none_sources"])
                for change in changes:
                    if isinstance(change, Forget):
                        discarded.pop((change.table, change.key), None)
                    elif isinstance(change, Discard):
                        discarded[(change.table, change.key)] = (change.table, change.key, change.reason, change.text)
                    elif isinstance(change, Statement) and change.sql.startswith("DELETE FROM \"copied\".\"" +
                                                                                 event.table + "\" WHERE"):
                        held[event.table].discard(change.params)
                    elif isinstance(change, Statement):
                        held[event.table].add(tuple(change.params[i] for i in writer.key))
    finally:
        stream.close()
        mysql.close()
    return set(discarded.values()), {name: len(keys) for name, keys in held.items()}


@pytest.mark.parametrize("zero_dates", ["discard", "null"])
def test_the_follower_discards_and_carries_exactly_what_the_copy_does(source: Source, zero_dates: str) -> None:
    plan = source.plan(zero_dates)
    start = source.position()
    source.my(AWKWARD)
    copy = source.copy_discards(plan)
    assert len(copy) >= 15 and {row[0] for row in copy} == {"dates", "times", "big_ids", "big_refs", "choices",
                                                            "texts", "misc"}
    followed, counts = follow_decisions(source, plan, start)
    assert sorted(followed - copy) == sorted(copy - followed)
    assert counts == source.copy_counts(plan)
    if zero_dates == "null":  # zero dates in nullable columns carried as NULL; year 0 and Feb 30 still not
        assert ("dates", "10") not in {row[:2] for row in copy}
        assert {row[2] for row in copy if row[:2] == ("dates", "11")} == {"d: year 0 (PostgreSQL has no year 0)"}


# --- the command ----------------------------------------------------------------------------------------------


def copy_argv(manifest: Path, info: Any, source: str, destination: str, *options: str) -> list[str]:
    return [sys.executable, str(ROOT / "remote_database_updater.py"), "copy-db", "-f", str(manifest), "--from",
            source, "--to", destination, "--schema", SCHEMA, "--zero-dates", "null", "--yes", "--color", "never",
            "--no-report", "--known-hosts", info.known_hosts, *options]


def pg_json(target: Target, sql: str) -> Any:
    return json.loads(target.rig.psql_exec(f"SELECT coalesce(json_agg(x), '[]') FROM ({sql}) x",  # type: ignore[attr-defined]
                                           target.name).strip())


def state(target: Target, src: Source) -> tuple[list[Any], dict[str, str]]:
    """The destination's discarded rows and each table's checksum there, as the copy computes it."""
    plan = src.plan("null")
    discarded = pg_json(target, "SELECT table_name, row_key, reason, row_text FROM dbupdater_copy.discarded_rows "
                                "ORDER BY 1, 2")
    sums = {t.name: target.rig.psql_exec(t.target_checksum_sql, target.name).strip()  # type: ignore[attr-defined]
            for t in plan.tables}
    return discarded, sums


def test_rows_arriving_while_following_end_as_a_fresh_copy_has_them(source: Source, workspace: Workspace, rig: Any,
                                                                  info: Any) -> None:
    with fresh_targets(rig, info, ["postgresql", "postgresql"]) as (followed, fresh):
        mine = Target(rig, "mysql", source.name, info.db_host_for_runners, info.mysql.port, info.mysql.app_user,
                      info.mysql.app_password, info.mysql.admin_user, info.mysql.admin_password)
        workspace.script("x.sql", "SELECT 1;\n")
        workspace.row(mine, "x.sql", runner=1)
        workspace.row(followed, "x.sql", runner=2)
        workspace.row(fresh, "x.sql", runner=2)
        manifest = workspace.write()
        follower = subprocess.Popen(copy_argv(manifest, info, source.name, followed.name, "--follow"),
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            def caught_up() -> bool:
                rows = pg_json(followed, "SELECT log_file, log_pos, state, lag_seconds FROM dbupdater_copy.follow") \
                    if "dbupdater_copy" in followed.rig.psql_exec(  # type: ignore[attr-defined]
                        "SELECT nspname FROM pg_namespace", followed.name) else []
                file, pos = source.position()
                return bool(rows) and rows[0]["state"] == "following" and rows[0]["log_file"] == file \
                    and rows[0]["log_pos"] >= pos and rows[0]["lag_seconds"] == 0

            def wait(what: str) -> None:
                ends = time.monotonic() + WAIT
                while not caught_up():
                    assert follower.poll() is None, f"the follower ended before {what}: {follower.stdout.read()}"  # type: ignore[union-attr]
                    assert time.monotonic() < ends, f"timed out waiting for {what}"
                    time.sleep(0.2)

            wait("the copy was followed")
            source.my(AWKWARD)
            wait("the awkward rows arrived")
            detach = subprocess.run(copy_argv(manifest, info, source.name, followed.name, "--detach"),
                                    capture_output=True, text=True, timeout=WAIT)
            assert detach.returncode == 0, detach.stdout + detach.stderr
            out, _ = follower.communicate(timeout=WAIT)
        finally:
            if follower.poll() is None:
                follower.kill()
        assert follower.returncode == 0, out
        # Progress without -v: the copy's tables as they are done, then where following stands.
        assert "dates: 1 rows, 0 discarded, checksum equal, " in out and "(7 of 7 tables)" in out
        assert f"following {mine.engine}://" in out and ", lag " in out
        for secret in secret_values(info):
            assert secret not in out
        again = subprocess.run(copy_argv(manifest, info, source.name, fresh.name), capture_output=True, text=True,
                               timeout=WAIT * 2)
        assert again.returncode == 1 and "could not be carried" in again.stdout, again.stdout + again.stderr
        discarded, sums = state(followed, source)
        assert (discarded, sums) == state(fresh, source)
        assert len(discarded) >= 15
        plan = source.plan("null")
        assert sums == {t.name: source.raw(t.source_checksum_sql).strip() for t in plan.tables}

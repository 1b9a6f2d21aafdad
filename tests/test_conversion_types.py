"""The translation against the rig's real servers: every MySQL type family with awkward values goes from the
rig's MariaDB into its PostgreSQL exactly the way copy-db moves it (the catalog through the mysql client,
`rows_sql` piped from `mysql --batch --raw --quick` into `psql -c COPY ... FROM STDIN`), and both servers'
checksums must agree; values are checked one by one where a checksum could hide a shared mistake (both
sides canonicalising the same wrong value), discarded rows are read back through COPY, and identities go on
past the copied rows. Then Sakila, whole.

Credentials stay in the rig's 0600 files (`--defaults-extra-file`, PGPASSFILE); no password on an argv.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dbupdater.conversion.catalog import catalog_sql, read_catalog
from dbupdater.conversion.model import ConversionPlan, TablePlan, TranslationOptions
from dbupdater.conversion.translate import COUNTED_SESSION_SQL, translate
from dbupdater.steps.convert_load import checksum_value

from .conftest import CORPUS

UTC = "SET time_zone = '+00:00';\n"
SOURCE = "rig-source"
DISCARDED = ("CREATE TABLE IF NOT EXISTS public.discarded_rows (source text, table_name text, row_key text, "
             "reason text, row_text text);")


@dataclass
class Servers:
    """A MariaDB database and a PostgreSQL database of the rig, each through its own client."""

    mysql_cnf: Path
    database: str
    pg_port: int
    pg_user: str
    pg_pass: Path
    pg_database: str

    def mysql_argv(self, *extra: str) -> list[str]:
        return ["mysql", f"--defaults-extra-file={self.mysql_cnf}", "--batch", "--skip-column-names", "--raw",
                "--quick", "--default-character-set=utf8mb4", *extra, self.database]

    def psql_argv(self, *extra: str) -> list[str]:
        return ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.pg_port),
                "-U", self.pg_user, "-d", self.pg_database, *extra]

    @property
    def pg_env(self) -> dict[str, str]:
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PGPASSFILE": str(self.pg_pass),
                "PGCONNECT_TIMEOUT": "10"}

    def my(self, sql: str) -> str:
        done = subprocess.run(self.mysql_argv(), input=sql.encode(), capture_output=True, timeout=600)
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        return done.stdout.decode()

    def pg(self, sql: str) -> str:
        done = subprocess.run(self.psql_argv(), input=sql.encode(), capture_output=True, env=self.pg_env,
                              timeout=600)
        assert done.returncode == 0, done.stderr.decode(errors="replace") + "\n" + sql[:2000]
        return done.stdout.decode()

    def pipe(self, mysql_sql: str, copy_sql: str) -> None:
        """mysql's stdout straight into psql's COPY, as the copy step streams it."""
        source = subprocess.Popen(self.mysql_argv("-e", mysql_sql), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert source.stdout is not None
        target = subprocess.run(self.psql_argv("-c", copy_sql), stdin=source.stdout, capture_output=True,
                                env=self.pg_env, timeout=600)
        source.stdout.close()
        error = source.stderr.read() if source.stderr else b""
        assert source.wait(timeout=600) == 0, error.decode(errors="replace")
        assert target.returncode == 0, target.stderr.decode(errors="replace")

    def plan(self, **options: Any) -> ConversionPlan:
        rows = [json.loads(line) for line in self.my(catalog_sql(self.database)).splitlines()
                if line.startswith("{")]
        return translate(read_catalog(self.database, rows), TranslationOptions(**options))

    def load(self, plan: ConversionPlan) -> None:
        """Schema, types, each table created, copied and finished, then the foreign keys and their
        validation: the order the copy step runs them in."""
        self.pg("\n".join([plan.schema_sql, *plan.types_sql]))
        for table in plan.tables:
            self.pg(table.create_sql)
            self.pipe(UTC + table.rows_sql, table.copy_sql)
            if table.after_load_sql:
                self.pg("\n".join(table.after_load_sql))
        statements = [s for t in plan.tables for s in t.foreign_keys_sql]
        statements += [s for t in plan.tables for s in t.validate_sql]
        if statements:
            self.pg("\n".join(statements))

    def checksums(self, table: TablePlan) -> tuple[str, str]:
        """Both servers' checksums; the source's also from the copy's own one pass (the rows it writes and the
        sums it carries along), which must write rows_sql's rows byte for byte and come to the same sum."""
        source = self.my(UTC + table.source_checksum_sql).strip()
        counted = self.my(UTC + COUNTED_SESSION_SQL + table.counted_rows_sql + ";\n" + table.counted_checksum_sql
                          + ";\n")
        rows, _, line = counted.rstrip("\n").rpartition("\n")
        assert (rows + "\n" if rows else "") == self.my(UTC + table.rows_sql + ";\n")
        assert checksum_value(line) == checksum_value(source)
        return source, self.pg(table.target_checksum_sql).strip()

    def discarded(self, table: TablePlan) -> list[tuple[str, ...]]:
        """discarded_sql's lines through COPY into a table shaped like dbupdater_copy.discarded_rows; the copy's
        own pass finds the same rows (after counting what its rows left out)."""
        self.pg(DISCARDED + "TRUNCATE public.discarded_rows;")
        self.pipe(UTC + f"SET @dbupdater_source = '{SOURCE}';\n" + table.discarded_sql,
                  "COPY public.discarded_rows FROM STDIN")
        skipped = (table.skipped_sql + ";\n") if table.skipped_sql else ""
        counted = self.my(UTC + f"SET @dbupdater_source = '{SOURCE}';\n" + COUNTED_SESSION_SQL
                          + table.counted_rows_sql + ";\nSELECT 'end of rows';\n"
                          + skipped + table.discarded_if_skipped_sql + ";\n")
        assert counted.partition("end of rows\n")[2].splitlines() == self.my(
            UTC + f"SET @dbupdater_source = '{SOURCE}';\n" + table.discarded_sql + ";\n").splitlines()
        out = self.pg("SELECT json_build_array(source, table_name, row_key, reason, row_text) FROM "
                      "public.discarded_rows ORDER BY row_key")
        return [tuple(json.loads(line)) for line in out.splitlines() if line]

    def value(self, sql: str) -> str:
        return self.pg(sql).rstrip("\n")


@pytest.fixture
def servers(rig, info) -> Iterator[Servers]:  # type: ignore[no-untyped-def]
    name = f"cv_{secrets.token_hex(4)}"
    rig.create_mysql_database(name)
    rig.create_postgres_database(name)
    try:
        yield Servers(rig.mysql_defaults_file(), name, info.postgres.port, info.postgres.admin_user,
                      rig.pgpass_file(), name)
    finally:
        rig.drop_mysql_database(name)
        rig.drop_postgres_database(name)


LATIN1_HIGH = bytes(range(0x80, 0x100))
ALL_BYTES = bytes(range(256))
JSON_TEXT = '{"k":  "ü 😀 \\u00e9",  "n": [1, 2.50, null], "b": true}'

FAMILIES = r"""
SET sql_mode = '';
CREATE TABLE ints (id INT AUTO_INCREMENT PRIMARY KEY, ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT,
  siu SMALLINT UNSIGNED, mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED, bi BIGINT,
  biu BIGINT UNSIGNED, yr YEAR, flag TINYINT(1) NOT NULL DEFAULT 1) COMMENT 'integers: "all" of them ☺';
INSERT INTO ints VALUES
  (1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295, -9223372036854775808,
   18446744073709551615, 2155, 1),
  (2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0, 1901, 0),
  (3, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0),
  (7, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1);
ALTER TABLE ints AUTO_INCREMENT = 1000;

CREATE TABLE nums (id INT PRIMARY KEY, d DECIMAL(65,30), du DECIMAL(5,2) UNSIGNED, d0 DECIMAL(10,0), f FLOAT,
  db DOUBLE);
INSERT INTO nums VALUES
  (1, 99999999999999999999999999999999999.999999999999999999999999999999, 999.99, 9999999999, 3.4028234e38,
   1.7976931348623157e308),
  (2, -99999999999999999999999999999999999.999999999999999999999999999999, 0, -9999999999, -1.17549435e-38,
   4.9e-324),
  (3, 0.000000000000000000000000000001, 0.01, -0, 1.401298464e-45, 2.2250738585072014e-308),
  (4, -0.000000000000000000000000000000, 12.5, 0, 0.1, 0.1e0 + 0.2e0),
  (5, 1, NULL, NULL, 16777217, 1e0 / 3e0),
  (6, NULL, NULL, NULL, -0.0, -0e0),
  (7, 123.456, 1, 1, 123.456, 123456789012345678),
  (8, NULL, NULL, NULL, 1e-10, 1e22),
  (9, NULL, NULL, NULL, NULL, -2.5e-300);

CREATE TABLE bits (id INT PRIMARY KEY, b1 BIT(1), b7 BIT(7), b64 BIT(64) DEFAULT b'101');
INSERT INTO bits VALUES (1, b'0', b'1010101', b'1111111111111111111111111111111111111111111111111111111111111111'),
  (2, b'1', b'0', b'0'), (3, NULL, NULL, b'1');

CREATE TABLE choices (id INT PRIMARY KEY,
  e ENUM('small', 'with space', 'it''s', 'a "quoted" one', 'back\\slash', 'comma,inside', 'café ☕') DEFAULT 'it''s',
  s SET('a', 'b c', 'it''s', 'dq"uote', 'back\\slash', 'é', '{brace}') DEFAULT 'a,b c', s4 SET('x', '😀'));
INSERT INTO choices VALUES (1, 'small', '', ''), (2, 'with space', 'a,b c,it''s,dq"uote,back\\slash,é,{brace}', 'x,😀'),
  (3, 'it''s', 'b c', 'x'), (4, 'a "quoted" one', 'dq"uote', '😀'), (5, 'back\\slash', 'back\\slash', NULL),
  (6, 'comma,inside', 'é', NULL), (7, 'café ☕', '{brace}', NULL), (8, NULL, NULL, NULL),
  (9, 'no such member', 'a', NULL);

CREATE TABLE texts (id INT PRIMARY KEY, c CHAR(10), vc VARCHAR(100), t TEXT, mt MEDIUMTEXT,
  lat VARCHAR(300) CHARACTER SET latin1, u3 VARCHAR(20) CHARACTER SET utf8mb3, cp VARCHAR(10) CHARACTER SET cp1250,
  j JSON, KEY vc_prefix (vc(3)), FULLTEXT KEY t_words (t));
INSERT INTO texts VALUES
  (1, 'pad   ', 'emoji 😀 𝄞 and ü', 'tab\there', 'new\nline', NULL, 'ÀÉÎõü', 'Łódź', '{}'),
  (2, '', 'cr\rhere', 'back\\slash \\N \\. end\\', '\\N', NULL, '', '', '[1,2]'),
  (3, NULL, '  spaces  ', '', '\\.', NULL, NULL, NULL, NULL),
  (4, 'x', CONCAT('nul', CHAR(0), 'here'), 'fine', 'fine', NULL, NULL, NULL, '1'),
  (5, 'y', 'ok', 'ok', 'ok', NULL, NULL, _cp1250 X'4181', '2');
UPDATE texts SET lat = _latin1 X'{latin1}' WHERE id = 1;
UPDATE texts SET lat = 'plain' WHERE id = 2;
UPDATE texts SET j = _utf8mb4 X'{json}' WHERE id = 3;
SET check_constraint_checks = 0;
INSERT INTO texts (id, j) VALUES (6, '{"not": json');
SET check_constraint_checks = 1;

CREATE TABLE blobs (id INT PRIMARY KEY, b BLOB, vb VARBINARY(300), bn BINARY(4), lb LONGBLOB,
  UNIQUE KEY b_prefix (b(4)));
INSERT INTO blobs VALUES (1, X'{all_bytes}', '', X'00', X'5C0A090D005C4E'), (2, NULL, X'FF', 'ab', ''),
  (3, X'00', NULL, NULL, NULL);

CREATE TABLE dates (id INT PRIMARY KEY, d DATE, dt DATETIME, dt3 DATETIME(3), dt6 DATETIME(6),
  ts TIMESTAMP NULL DEFAULT NULL, ts6 TIMESTAMP(6) NULL DEFAULT NULL, dnn DATE NOT NULL DEFAULT '2000-01-01');
SET time_zone = '+05:00';
INSERT INTO dates VALUES
  (1, '1000-01-01', '1000-01-01 00:00:00', '1000-01-01 00:00:00.001', '1000-01-01 00:00:00.000001',
   '2020-06-01 12:00:00', '1970-01-01 05:00:01.5', '2000-02-29'),
  (2, '9999-12-31', '9999-12-31 23:59:59', '9999-12-31 23:59:59.999', '9999-12-31 23:59:59.999999',
   '2038-01-19 08:14:07', '2038-01-19 08:14:07.999999', '0099-01-01'),
  (3, NULL, NULL, NULL, NULL, NULL, NULL, '2024-02-29'),
  (4, '0000-00-00', '2001-01-01 00:00:00', NULL, NULL, NULL, NULL, '2001-01-01'),
  (5, '2020-00-05', NULL, NULL, NULL, NULL, NULL, '2001-01-01'),
  (6, NULL, '0000-05-10 01:02:03', NULL, NULL, NULL, NULL, '2001-01-01'),
  (7, NULL, NULL, NULL, NULL, '0000-00-00 00:00:00', NULL, '2001-01-01'),
  (8, NULL, NULL, NULL, NULL, NULL, NULL, '0000-00-00');
SET time_zone = '+00:00';
SET sql_mode = 'ALLOW_INVALID_DATES';
INSERT INTO dates (id, d, dnn) VALUES (9, '2020-02-30', '2001-01-01');
SET sql_mode = '';

CREATE TABLE times (id INT PRIMARY KEY, t TIME, t2 TIME(2), t6 TIME(6));
INSERT INTO times VALUES (1, '00:00:00', '12:34:56.78', '23:59:59.999999'), (2, '24:00:00', '24:00:00', NULL),
  (3, '-838:59:59', NULL, NULL), (4, '838:59:59', NULL, NULL), (5, NULL, '24:00:00.01', NULL),
  (6, '-00:00:01', NULL, NULL), (7, NULL, NULL, NULL);

CREATE TABLE shapes (id INT PRIMARY KEY, g GEOMETRY, p POINT NOT NULL, SPATIAL INDEX p_where (p));
INSERT INTO shapes VALUES (1, ST_GeomFromText('POLYGON((0 0, 1 0, 1 1, 0 0))'), ST_GeomFromText('POINT(1 2)')),
  (2, NULL, ST_GeomFromText('POINT(-1.5 1e300)', 4326)),
  (3, ST_GeomFromText('LINESTRING(0 0, 1 1, 2 2)'), POINT(0, 0));

CREATE TABLE computed (id INT AUTO_INCREMENT PRIMARY KEY, a INT, v INT AS (a * 2) VIRTUAL,
  s VARCHAR(20) AS (CONCAT('x', a)) STORED, touched DATETIME DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP);
INSERT INTO computed (a) VALUES (1), (2), (NULL), (-5);

CREATE TABLE nets (id INT PRIMARY KEY, u UUID, i6 INET6, i4 INET4);
INSERT INTO nets VALUES (1, 'f47ac10b-58cc-4372-a567-0e02b2c3d479', '2001:db8:0:1:1:1:1:1', '1.2.3.4'),
  (2, '00000000-0000-0000-0000-000000000000', '::ffff:1.2.3.4', '255.255.255.255'), (3, NULL, '::', '0.0.0.0');

CREATE TABLE big_ids (id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY, note VARCHAR(10));
INSERT INTO big_ids VALUES (1, 'one'), (9223372036854775806, 'high'), (9223372036854775808, 'too high');
CREATE TABLE big_refs (id INT PRIMARY KEY, big_id BIGINT UNSIGNED,
  CONSTRAINT big_refs_big FOREIGN KEY (big_id) REFERENCES big_ids (id));
INSERT INTO big_refs VALUES (1, 1), (2, NULL), (3, 9223372036854775806);

CREATE TABLE no_pk (a INT, b VARCHAR(10));
INSERT INTO no_pk VALUES (1, 'same'), (1, 'same'), (NULL, NULL);

CREATE TABLE `we"ird``name` (`co"l``x` INT PRIMARY KEY COMMENT 'the "key" ☺', `select` ENUM('a''b', 'c"d'));
INSERT INTO `we"ird``name` VALUES (1, 'a''b'), (2, 'c"d');

CREATE TABLE left_out (id INT PRIMARY KEY);
INSERT INTO left_out VALUES (1);
CREATE TABLE points_out (id INT PRIMARY KEY, out_id INT, CONSTRAINT points_out_fk FOREIGN KEY (out_id)
  REFERENCES left_out (id));
INSERT INTO points_out VALUES (1, 1);
""".replace("{latin1}", LATIN1_HIGH.hex()).replace("{all_bytes}", ALL_BYTES.hex()).replace(
    "{json}", JSON_TEXT.encode().hex())

# (table, row_key, words every reason must hold) for every awkward row that cannot be carried
EXPECTED_DISCARDS = {
    ("big_ids", "9223372036854775808", "id: above 9223372036854775807"),
    ("choices", "9", "e: not a member of the enum"),
    ("texts", "4", "vc: text holding a NUL character"),
    ("texts", "5", "cp: text that does not survive the conversion from cp1250"),
    ("texts", "6", "j: not valid JSON"),
    ("dates", "4", "d: zero date"),
    ("dates", "5", "d: zero date"),
    ("dates", "6", "dt: year 0"),
    ("dates", "7", "ts: zero date"),
    ("dates", "8", "dnn: zero date"),
    ("dates", "9", "d: not a date in the calendar"),
    ("times", "3", "t: time outside 00:00:00 to 24:00:00"),
    ("times", "4", "t: time outside"),
    ("times", "5", "t2: time outside"),
    ("times", "6", "t: time outside"),
}


def _latin1_text() -> str:
    # MariaDB's latin1 is cp1252, with the five bytes cp1252 leaves undefined mapped to U+0081 and the like.
    out = []
    for byte in LATIN1_HIGH:
        try:
            out.append(bytes([byte]).decode("cp1252"))
        except UnicodeDecodeError:
            out.append(chr(byte))
    return "".join(out)


def test_every_type_family_arrives_with_equal_checksums(servers: Servers) -> None:
    servers.my(FAMILIES)
    plan = servers.plan(schema="conv", exclude=("left_out",))
    servers.load(plan)
    for table in plan.tables:
        source, target = servers.checksums(table)
        assert source == target, table.name
        assert source.split("\t")[0] != "0", table.name
    count = {t.name: int(servers.checksums(t)[0].split("\t")[0]) for t in plan.tables}
    for table in plan.tables:
        total = int(servers.my(f"SELECT COUNT(*) FROM `{table.source.name.replace('`', '``')}`").strip())
        discards = servers.discarded(table)
        assert count[table.name] + len(discards) == total, table.name
    assert count["dates"] == 3 and count["times"] == 3 and count["texts"] == 3

    v = servers.value
    assert v('SELECT ti, tiu, si, siu, mi, miu, i, iu, bi, biu, yr FROM conv.ints WHERE id = 1') == (
        "-128|255|-32768|65535|-8388608|16777215|-2147483648|4294967295|-9223372036854775808|"
        "18446744073709551615|2155")
    assert v("SELECT yr, pg_typeof(biu) FROM conv.ints WHERE id = 3") == "0|numeric"
    assert v("SELECT d, du, d0 FROM conv.nums WHERE id = 2") == (
        "-99999999999999999999999999999999999.999999999999999999999999999999|0.00|-9999999999")
    assert v("SELECT d FROM conv.nums WHERE id = 3") == "0.000000000000000000000000000001"
    assert v("SELECT f::float8, db FROM conv.nums WHERE id = 5") == "16777216|0.3333333333333333"
    assert v("SELECT f, db FROM conv.nums WHERE id = 4") == "0.1|0.30000000000000004"
    assert v("SELECT f::float8, db FROM conv.nums WHERE id = 1") == "3.4028234663852886e+38|1.7976931348623157e+308"
    assert v("SELECT db = 4.9e-324::float8, f::float8 FROM conv.nums WHERE id = 2") == "t|-1.1754943508222875e-38"
    assert v("SELECT b1, b7, b64 FROM conv.bits WHERE id = 1") == "0|1010101|" + "1" * 64
    assert v("SELECT e, s, cardinality(s) FROM conv.choices WHERE id = 1") == "small|{}|0"
    assert v("SELECT array_to_string(s, '|'), cardinality(s) FROM conv.choices WHERE id = 2") == (
        "a|b c|it's|dq\"uote|back\\slash|é|{brace}|7")
    assert v("SELECT s4, pg_typeof(s4) FROM conv.choices WHERE id IN (1, 2, 4) ORDER BY id") == (
        "{}|text[]\n{x,😀}|text[]\n{😀}|text[]")
    assert v("SELECT e FROM conv.choices WHERE id IN (4, 5, 6, 7) ORDER BY id").splitlines() == [
        'a "quoted" one', "back\\slash", "comma,inside", "café ☕"]
    assert v("SELECT pg_typeof(e), pg_typeof(s) FROM conv.choices WHERE id = 1") == "conv.choices_e|conv.choices_s[]"
    rows = json.loads(v("SELECT json_agg(json_build_array(c, vc, t, mt, lat, u3, cp, j::text) ORDER BY id) "
                        "FROM conv.texts"))
    assert rows[0] == ["pad       ", "emoji 😀 𝄞 and ü", "tab\there", "new\nline", _latin1_text(), "ÀÉÎõü", "Łódź",
                       "{}"]
    assert rows[1] == ["          ", "cr\rhere", "back\\slash \\N \\. end\\", "\\N", "plain", "", "", "[1,2]"]
    assert rows[2] == [None, "  spaces  ", "", "\\.", None, None, None, JSON_TEXT]
    assert v("SELECT encode(b, 'hex'), encode(vb, 'hex'), encode(bn, 'hex'), encode(lb, 'hex') FROM conv.blobs "
             "WHERE id = 1") == f"{ALL_BYTES.hex()}||00000000|5c0a090d005c4e"
    assert v("SELECT d, dt, dt3, dt6, ts, ts6, dnn FROM conv.dates WHERE id = 1") == (
        "1000-01-01|1000-01-01 00:00:00|1000-01-01 00:00:00.001|1000-01-01 00:00:00.000001|"
        "2020-06-01 07:00:00+00|1970-01-01 00:00:01.5+00|2000-02-29")
    assert v("SELECT dnn, ts6 FROM conv.dates WHERE id = 2") == "0099-01-01|2038-01-19 03:14:07.999999+00"
    assert v("SELECT t, t2, t6 FROM conv.times ORDER BY id") == (
        "00:00:00|12:34:56.78|23:59:59.999999\n24:00:00|24:00:00|\n||")
    for id_ in (1, 2, 3):
        wkb = servers.my(f"SELECT LOWER(HEX(ST_AsBinary(g))), LOWER(HEX(ST_AsBinary(p))) FROM shapes WHERE id = {id_}")
        assert v(f"SELECT encode(g, 'hex'), encode(p, 'hex') FROM conv.shapes WHERE id = {id_}") == (
            wkb.strip().replace("\t", "|").replace("NULL", ""))
    assert v("SELECT a, v, s FROM conv.computed ORDER BY id") == "1|2|x1\n2|4|x2\n||\n-5|-10|x-5"
    assert v("SELECT u, i6, i4 FROM conv.nets ORDER BY id") == (
        "f47ac10b-58cc-4372-a567-0e02b2c3d479|2001:db8:0:1:1:1:1:1|1.2.3.4\n"
        "00000000-0000-0000-0000-000000000000|::ffff:1.2.3.4|255.255.255.255\n|::|0.0.0.0")
    assert v('SELECT "co""l`x", "select" FROM conv."we""ird`name" ORDER BY 1') == "1|a'b\n2|c\"d"
    assert v("SELECT obj_description('conv.ints'::regclass)") == 'integers: "all" of them ☺'
    assert v("SELECT col_description('conv.\"we\"\"ird`name\"'::regclass, 1)") == 'the "key" ☺'

    # identities go on past the copied rows and past MySQL's counter
    assert v("INSERT INTO conv.ints (ti) VALUES (5) RETURNING id") == "1000"
    assert v("INSERT INTO conv.computed (a) VALUES (9) RETURNING id") == "5"
    assert v("INSERT INTO conv.big_ids (note) VALUES ('next') RETURNING id") == "9223372036854775807"
    assert v("SELECT pg_typeof(big_id) FROM conv.big_refs LIMIT 1") == "bigint"
    # constraints: keys, the unsigned CHECKs, foreign keys validated
    with pytest.raises(AssertionError, match="violates check constraint"):
        servers.pg("INSERT INTO conv.ints (tiu) VALUES (256)")
    with pytest.raises(AssertionError, match="duplicate key"):
        servers.pg("INSERT INTO conv.blobs (id, b) VALUES (9, '\\x00010203ff'::bytea)")
    with pytest.raises(AssertionError, match="violates foreign key"):
        servers.pg("INSERT INTO conv.big_refs VALUES (9, 12345)")
    assert v("SELECT count(*) FROM pg_constraint WHERE connamespace = 'conv'::regnamespace AND contype = 'f' "
             "AND NOT convalidated") == "0"
    assert v("SELECT count(*) FROM pg_indexes WHERE schemaname = 'conv' AND indexdef LIKE "
             "'%\"left\"((vc)::text, 3)%'") == "1"

    plan_notes = "\n".join(plan.not_carried())
    for words in ("FULLTEXT index t_words", "SPATIAL index p_where", "foreign key points_out_fk (out_id) to left_out "
                  "not carried: that table is excluded", "on update current_timestamp() not carried",
                  "generated column", "table left_out excluded", "no_pk: not followed"):
        assert words in plan_notes, words
    assert not plan.table("no_pk").followable and plan.table("ints").followable

    found = set()
    for table in plan.tables:
        for source, name, key, reason, row_text in servers.discarded(table):
            assert source == SOURCE and name == table.source.name
            json.loads(row_text)
            found.update((name, key, words) for n, k, words in EXPECTED_DISCARDS if n == name and k == key
                         and words in reason)
    assert found == EXPECTED_DISCARDS
    nul_row = next(row for row in servers.discarded(plan.table("texts")) if row[2] == "4")
    assert json.loads(nul_row[4])["vc"] == "0x" + b"nul\0here".hex().upper()


def test_zero_dates_null_carries_them_as_null_where_allowed(servers: Servers) -> None:
    servers.my(FAMILIES)
    plan = servers.plan(schema="nulls", tables=("dates",), zero_dates="null")
    servers.load(plan)
    (dates,) = plan.tables
    source, target = servers.checksums(dates)
    assert source == target
    assert source.split("\t")[0] == "6"  # zero dates in nullable columns carried as NULL: 4, 5 and 7
    assert servers.value("SELECT id, d, ts FROM nulls.dates WHERE id IN (4, 5, 7) ORDER BY id") == "4||\n5||\n7||"
    reasons = {row[2]: row[3] for row in servers.discarded(dates)}
    assert set(reasons) == {"6", "8", "9"}
    assert reasons["8"] == "dnn: zero date in a NOT NULL column"


def test_latin1_server_database(rig, info) -> None:  # type: ignore[no-untyped-def]
    latin1 = rig.latin1_mariadb()
    name = f"cl_{secrets.token_hex(4)}"
    latin1.create_database(name, charset="latin1")
    rig.create_postgres_database(name)
    try:
        servers = Servers(latin1.defaults_file(), name, info.postgres.port, info.postgres.admin_user,
                          rig.pgpass_file(), name)
        servers.my("CREATE TABLE legacy (id INT PRIMARY KEY, name VARCHAR(255), body TEXT);\n"
                   f"INSERT INTO legacy VALUES (1, _latin1 X'{LATIN1_HIGH.hex()}', 'Zürich € ok'), (2, NULL, '');")
        plan = servers.plan()
        assert plan.table("legacy").columns[1].source.charset == "latin1"
        servers.load(plan)
        source, target = servers.checksums(plan.table("legacy"))
        assert source == target and source.startswith("2\t")
        assert servers.value(f'SELECT name, body FROM "{name}".legacy WHERE id = 1') == f"{_latin1_text()}|Zürich € ok"
    finally:
        latin1.drop_database(name)
        rig.drop_postgres_database(name)


@pytest.mark.skipif(not (CORPUS / "mysql").is_dir(), reason=f"the shared corpus is absent ({CORPUS / 'mysql'})")
def test_sakila_whole(servers: Servers) -> None:
    db = servers.database
    schema = (CORPUS / "mysql" / "sakila-schema.sql").read_text()
    schema = schema.replace("DROP SCHEMA IF EXISTS sakila;", "").replace("CREATE SCHEMA sakila;", "")
    schema = schema.replace("USE sakila;", f"USE `{db}`;").replace("sakila.", f"`{db}`.")
    data = (CORPUS / "mysql" / "sakila-data.sql").read_text().replace("USE sakila;", f"USE `{db}`;")
    servers.my(schema + "\n" + data)
    plan = servers.plan(schema="sakila")
    assert len(plan.tables) == 16
    assert {o.kind for o in plan.not_translated} == {"view", "procedure", "function", "trigger"}
    servers.load(plan)
    for table in plan.tables:
        source, target = servers.checksums(table)
        assert source == target, table.name
        assert servers.discarded(table) == []
    assert servers.value("SELECT count(*) FROM sakila.rental") == "16044"
    assert servers.value("SELECT count(*) FROM pg_constraint WHERE connamespace = 'sakila'::regnamespace "
                         "AND contype = 'f' AND convalidated") == "22"
    assert servers.value("SELECT rating, special_features FROM sakila.film WHERE film_id = 1") == (
        'PG|{"Deleted Scenes","Behind the Scenes"}')
    assert servers.value("INSERT INTO sakila.actor (first_name, last_name) VALUES ('A', 'B') "
                         "RETURNING actor_id") == "201"
    objects = plan.objects_sql()
    assert "CREATE TRIGGER `ins_film` AFTER INSERT ON `film` FOR EACH ROW" in objects
    # mysql-objects.sql is usable as it is: the objects dropped and made again from it are the same
    count = ("SELECT (SELECT COUNT(*) FROM information_schema.VIEWS WHERE TABLE_SCHEMA = DATABASE()), "
             "(SELECT COUNT(*) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = DATABASE()), "
             "(SELECT COUNT(*) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = DATABASE()), "
             "(SELECT GROUP_CONCAT(MD5(ROUTINE_DEFINITION) ORDER BY ROUTINE_NAME) FROM information_schema.ROUTINES "
             "WHERE ROUTINE_SCHEMA = DATABASE())")
    before = servers.my(count)
    servers.my("".join(f"DROP {o.kind.upper()} `{o.name}`;\n" for o in plan.not_translated))
    assert servers.my(count).startswith("0\t0\t0\t")
    servers.my(objects)
    assert servers.my(count) == before and before.startswith("7\t6\t6\t")
    assert "CREATE PROCEDURE `film_in_stock`(IN `p_film_id` int(11)" in objects
    notes = "\n".join(plan.not_carried())
    assert "film_text: FULLTEXT index idx_title_description" in notes
    # (address.location and its SPATIAL key sit in /*!50705 ... */ comments, which MariaDB does not run)
    assert "actor: column last_update: on update current_timestamp() not carried" in notes

"""copy-db --follow without servers: binary log values as PostgreSQL input, row changes as statements, the
statements that stop following, positions. The rig test (tests/test_follow.py) runs them against MariaDB's
binary log and PostgreSQL."""

from __future__ import annotations

import datetime
import decimal

import pytest

from dbupdater.conversion.follow import Discard, Position, Statement, TableWriter, Unfit, pg_value, structural
from dbupdater.conversion.follow.position import reset_sequence_sql
from dbupdater.conversion.follow.statements import ident
from dbupdater.conversion.model import ColumnPlan, SourceColumn, SourceIndex, SourceTable, TablePlan


def column(name: str, data_type: str, column_type: str | None = None, *, nullable: bool = True,
           target: str = "text", char_length: int | None = None) -> ColumnPlan:
    source = SourceColumn(name, 1, data_type, column_type or data_type, nullable, None, char_length=char_length)
    return ColumnPlan(source, name, target, "", "", "")


def table(columns: list[ColumnPlan], key: tuple[str, ...] = ("id",), indexes: tuple[SourceIndex, ...] = (),
          name: str = "t") -> TablePlan:
    source = SourceTable(name, tuple(c.source for c in columns), key, indexes)
    return TablePlan(source, "s", name, tuple(columns), "", (), (), (), "", "", "", "", "")


# --- values ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("data_type", "column_type", "value", "expected"), [
    ("int", "int(10) unsigned", 4294967295, "4294967295"),
    ("bigint", "bigint(20) unsigned", 18446744073709551615, "18446744073709551615"),
    ("year", "year(4)", 1900, "0"),  # the reader adds 1900 to YEAR 0000's byte
    ("year", "year(4)", 2024, "2024"),
    ("decimal", "decimal(10,3)", decimal.Decimal("-12.345"), "-12.345"),
    ("decimal", "decimal(30,0)", decimal.Decimal("1E+3"), "1000"),
    ("bit", "bit(10)", "1000000001", "1000000001"),
    ("enum", "enum('a','b')", "b", "b"),
    ("set", "set('x','y','z')", {"z", "x"}, '{"x","z"}'),  # definition order, not the set's
    ("set", "set('a,b','c\"d')", {"c\"d", "a,b"}, '{"a,b","c\\"d"}'),
    ("date", "date", datetime.date(2024, 2, 29), "2024-02-29"),
    ("datetime", "datetime(3)", datetime.datetime(2024, 1, 2, 3, 4, 5, 678000), "2024-01-02 03:04:05.678000"),
    ("timestamp", "timestamp(6)", datetime.datetime(2024, 6, 1, 10, 0, 0, 123456), "2024-06-01 10:00:00.123456+00:00"),
    ("time", "time(2)", datetime.timedelta(hours=23, minutes=59, seconds=59, microseconds=500000), "23:59:59.500000"),
    ("time", "time", datetime.timedelta(hours=24), "24:00:00"),
    ("json", "longtext", '{"b": 1, "a": [1,2]}', '{"b": 1, "a": [1,2]}'),
    ("varchar", "varchar(10)", "héllo\t\\", "héllo\t\\"),
    ("float", "float", 1.100000023841858, "1.100000023841858"),
])
def test_values_are_postgresql_input_text(data_type: str, column_type: str, value: object, expected: str) -> None:
    assert pg_value(column("c", data_type, column_type), value) == expected


def test_binary_values_stay_bytes_padded_as_mysql_pads_binary_and_geometry_loses_its_srid() -> None:
    assert pg_value(column("b", "varbinary", "varbinary(10)"), b"\xff\x00") == b"\xff\x00"
    assert pg_value(column("b", "binary", "binary(4)", char_length=4), b"\xff") == b"\xff\x00\x00\x00"
    wkb = b"\x01\x01\x00\x00\x00" + b"\x00" * 16
    assert pg_value(column("g", "point"), b"\xe6\x10\x00\x00" + wkb) == wkb


def test_what_the_reader_reads_as_none_is_told_apart() -> None:
    assert pg_value(column("s", "set", "set('x')"), None, "empty set") == "{}"
    assert pg_value(column("s", "set", "set('x')"), None, "null") is None
    zero = pg_value(column("d", "date"), None, "out of date range")
    assert zero == Unfit("zero date in column d")
    assert pg_value(column("d", "date"), None, "out of date range", zero_dates="null") is None
    assert isinstance(pg_value(column("d", "date", nullable=False), None, "out of date range", zero_dates="null"),
                      Unfit)
    assert pg_value(column("ts", "timestamp"), datetime.datetime(1970, 1, 1)) == Unfit("zero date in column ts")


def test_values_the_copy_would_not_carry_make_the_row_unfit() -> None:
    assert isinstance(pg_value(column("t", "time"), datetime.timedelta(hours=-1)), Unfit)
    assert isinstance(pg_value(column("t", "time"), datetime.timedelta(hours=25)), Unfit)
    assert isinstance(pg_value(column("e", "enum", "enum('a')"), ""), Unfit)
    assert pg_value(column("e", "enum", "enum('','a')"), "") == ""
    assert pg_value(column("v", "text"), "a\0b") == Unfit("NUL byte in column v")


# --- statements --------------------------------------------------------------------------------------------


def writer() -> TableWriter:
    columns = [column("id", "int", target="integer"), column("u", "varchar", target="varchar(10)"),
               column("d", "date", target="date")]
    return TableWriter(table(columns, indexes=(SourceIndex("u", True, (("u", None),)),)))


def test_an_insert_is_an_upsert_on_the_primary_key_with_every_value_cast_to_its_column() -> None:
    [upsert] = writer().inserted({"id": 1, "u": "a", "d": datetime.date(2024, 1, 1)}, {})
    assert isinstance(upsert, Statement)
    assert upsert.sql == ('INSERT INTO "s"."t" ("id", "u", "d") OVERRIDING SYSTEM VALUE VALUES (%s::integer, '
                          '%s::varchar(10), %s::date) ON CONFLICT ("id") DO UPDATE SET "u" = EXCLUDED."u", '
                          '"d" = EXCLUDED."d"')
    assert upsert.params == ("1", "a", "2024-01-01")


def test_an_update_that_changes_the_key_deletes_the_old_row_first() -> None:
    before = {"id": 1, "u": "a", "d": None}
    same = writer().updated(before, {}, {**before, "u": "b"}, {})
    assert [type(c) for c in same] == [Statement] and "INSERT" in same[0].sql  # type: ignore[union-attr]
    moved = writer().updated(before, {}, {**before, "id": 2}, {})
    assert [c.sql.split()[0] for c in moved] == ["DELETE", "INSERT"]  # type: ignore[union-attr]
    assert moved[0].params == ("1",)  # type: ignore[union-attr]


def test_a_row_that_can_no_longer_be_carried_goes_and_is_recorded_as_discarded() -> None:
    before = {"id": 1, "u": "a", "d": datetime.date(2024, 1, 1)}
    changes = writer().updated(before, {}, {**before, "d": None}, {"d": "out of date range"})
    assert changes[0].sql.startswith("DELETE")  # type: ignore[union-attr]
    assert changes[1] == Discard("t", "1", "zero date in column d", "1\ta\t\\N")
    assert writer().inserted({**before, "d": None}, {"d": "out of date range"}) == [
        Discard("t", "1", "zero date in column d", "1\ta\t\\N")]


def test_a_delete_is_by_key_and_a_key_never_carried_deletes_nothing() -> None:
    [delete] = writer().deleted({"id": 7, "u": "x", "d": None}, {})
    assert delete == Statement('DELETE FROM "s"."t" WHERE "id" = %s::integer', ("7",))
    keyed = TableWriter(table([column("d", "date", target="date"), column("v", "int", target="integer")],
                              key=("d",)))
    assert keyed.deleted({"d": None, "v": 1}, {"d": "out of date range"}) == []


def test_while_catching_up_a_row_takes_its_unique_key_over_from_a_row_that_is_behind() -> None:
    changes = writer().inserted({"id": 1, "u": "a", "d": None}, {}, catching_up=True)
    assert changes[0] == Statement('DELETE FROM "s"."t" WHERE "u" = %s::varchar(10) AND NOT ("id" = %s::integer)',
                                   ("a", "1"))
    assert len(writer().inserted({"id": 1, "u": None, "d": None}, {}, catching_up=True)) == 1  # NULLs never clash


def test_identifiers_are_quoted_and_percent_signs_never_taken_for_placeholders() -> None:
    assert ident('we"ird%') == '"we""ird%%"'
    only_key = TableWriter(table([column("id", "int", target="integer")], name="100%"))
    assert only_key.upsert_sql.endswith('ON CONFLICT ("id") DO NOTHING') and '"100%%"' in only_key.upsert_sql
    with pytest.raises(ValueError, match="no primary key"):
        TableWriter(table([column("id", "int")], key=()))


# --- DDL -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("query", "found"), [
    ("ALTER TABLE t ADD COLUMN x int", ("t", False)),
    ("alter online table `t` drop column u", ("t", False)),
    ("ALTER TABLE src.t ADD x int", ("t", False)),
    ("ALTER TABLE other.t ADD x int", None),
    ("DROP TABLE IF EXISTS `t` /* generated by server */", ("t", False)),
    ("RENAME TABLE a TO t", ("t", False)),
    ("CREATE INDEX i ON t (u)", ("t", False)),
    ("TRUNCATE t", ("t", True)),
    ("TRUNCATE TABLE `src`.`t`", ("t", True)),
    ("DROP DATABASE src", ("t", False)),
    ("DROP DATABASE IF EXISTS other", None),
    ("ALTER TABLE unfollowed ADD x int", None),
    ("CREATE TABLE t2 (id int)", None),
    ("DROP TEMPORARY TABLE t", None),
    ("CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW SET @a = 1", None),
    ("GRANT SELECT ON src.t TO someone", None),
    ("/* a comment naming t */ ALTER TABLE u ADD x int", None),
    ("/*!40000 ALTER TABLE t DISABLE KEYS */", ("t", False)),
])
def test_statements_that_change_a_followed_table(query: str, found: tuple[str, bool] | None) -> None:
    result = structural(query, "src", "src", ["t", "u2"])
    assert (None if result is None else (result.table, result.truncate)) == found


def test_positions_order_by_file_number_then_offset() -> None:
    assert Position.of("binlog.000002", 4) > Position.of("binlog.000001", 999999)
    assert Position.of("binlog.000001", 10) < Position.of("binlog.000001", 11)
    assert str(Position.of("binlog.000003", 42)) == "binlog.000003:42"


def test_sequences_are_set_past_the_rows_and_the_counter() -> None:
    sql = reset_sequence_sql("s", "t", "id")
    assert 'max("id")' in sql and '"s"."t"' in sql and sql.count("%s") == 3

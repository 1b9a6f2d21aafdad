"""copy-db --follow without servers: binary log values judged and written as the copy judges and writes them
(the columns come from the translation, as the follower gets them), row changes as statements, the statements
that stop following, positions. The rig tests (tests/test_follow.py, tests/test_follow_values.py) run them
against MariaDB's binary log and PostgreSQL, and compare with what the copy does."""

from __future__ import annotations

import datetime
import decimal
import re

import pytest

from dbupdater.conversion.follow import (
    Choice,
    Discard,
    Forget,
    Position,
    Statement,
    Stored,
    TableWriter,
    Unfit,
    pg_value,
    structural,
)
from dbupdater.conversion.follow.position import reset_sequence_sql
from dbupdater.conversion.follow.statements import ident
from dbupdater.conversion.follow.values import display, json_object, json_valid, mariadb_double
from dbupdater.conversion.model import (
    ColumnPlan,
    SourceColumn,
    SourceIndex,
    SourceSchema,
    SourceTable,
    TablePlan,
    TranslationOptions,
)
from dbupdater.conversion.translate import translate


def source(name: str, column_type: str, *, nullable: bool = True, charset: str | None = None, extra: str = "",
           char_length: int | None = None, is_json: bool = False) -> SourceColumn:
    found = re.match(r"[a-z0-9]+", column_type)
    assert found
    kind = found.group(0)
    text = kind in ("char", "varchar", "text", "longtext", "enum", "set")
    return SourceColumn(name, 1, kind, column_type, nullable, None, extra=extra, char_length=char_length,
                        charset=charset or ("utf8mb4" if text else None), is_json=is_json)


def table(*columns: SourceColumn, key: tuple[str, ...] = ("id",), indexes: tuple[SourceIndex, ...] = (),
          name: str = "t", zero_dates: str = "discard") -> TablePlan:
    """The table as the translation plans it (the follower gets exactly this)."""
    if not any(c.name == "id" for c in columns):
        columns = (source("id", "int(11)", nullable=False), *columns)
    plan = translate(SourceSchema("db", (SourceTable(name, columns, key, indexes),)),
                     TranslationOptions(schema="s", zero_dates=zero_dates))
    return plan.tables[0]


def column(name: str, column_type: str, zero_dates: str = "discard", **options: object) -> ColumnPlan:
    planned = table(source(name, column_type, **options), zero_dates=zero_dates)  # type: ignore[arg-type]
    return next(c for c in planned.columns if c.source.name == name)


# --- values ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("column_type", "value", "expected"), [
    ("int(10) unsigned", 4294967295, "4294967295"),
    ("bigint(20) unsigned", 18446744073709551615, "18446744073709551615"),
    ("year(4)", 1900, "0"),  # the reader adds 1900 to YEAR 0000's byte
    ("year(4)", 2024, "2024"),
    ("decimal(10,3)", decimal.Decimal("-12.345"), "-12.345"),
    ("decimal(30,0)", decimal.Decimal("1E+3"), "1000"),
    ("bit(10)", "1000000001", "1000000001"),
    ("enum('a','b')", Choice(2), "b"),
    ("set('x','y','z')", Choice(0b101), '{"x","z"}'),  # definition order
    ("set('a b','c\"d')", Choice(0b11), '{"a b","c\\"d"}'),
    ("set('x','y')", Choice(0), "{}"),
    ("date", datetime.date(2024, 2, 29), "2024-02-29"),
    ("datetime(3)", datetime.datetime(2024, 1, 2, 3, 4, 5, 678000), "2024-01-02 03:04:05.678000"),
    ("timestamp(6)", datetime.datetime(2024, 6, 1, 10, 0, 0, 123456), "2024-06-01 10:00:00.123456+00"),
    ("time(2)", datetime.timedelta(hours=23, minutes=59, seconds=59, microseconds=500000), "23:59:59.500000"),
    ("time", datetime.timedelta(hours=24), "24:00:00"),
    ("varchar(10)", "héllo\t\\".encode(), "héllo\t\\"),
    ("float", 1.100000023841858, "1.100000023841858"),
    ("uuid", bytes.fromhex("f47ac10b58cc4372a5670e02b2c3d479"), "f47ac10b-58cc-4372-a567-0e02b2c3d479"),
    ("inet6", bytes(10) + b"\xff\xff\x01\x02\x03\x04", "::ffff:1.2.3.4"),
    ("inet4", b"\x01\x02\x03\x04", "1.2.3.4"),
])
def test_values_are_postgresql_input_text(column_type: str, value: object, expected: str) -> None:
    assert pg_value(column("c", column_type), value) == expected


def test_json_is_carried_as_written_when_valid() -> None:
    j = column("j", "longtext", is_json=True)
    assert pg_value(j, b'{"b": 1, "a": [1,2]}') == '{"b": 1, "a": [1,2]}'
    assert pg_value(j, b'{"a": NaN}') == Unfit(("j: not valid JSON",))


def test_binary_values_stay_bytes_padded_as_mysql_pads_binary_and_geometry_loses_its_srid() -> None:
    assert pg_value(column("b", "varbinary(10)"), b"\xff\x00") == b"\xff\x00"
    assert pg_value(column("b", "binary(4)", char_length=4), b"\xff") == b"\xff\x00\x00\x00"
    wkb = b"\x01\x01\x00\x00\x00" + b"\x00" * 16
    assert pg_value(column("g", "point"), b"\xe6\x10\x00\x00" + wkb) == wkb


def test_dates_the_copy_does_not_carry_are_unfit_with_its_words() -> None:
    d = column("d", "date")
    assert pg_value(d, Stored(0, 0, 0)) == Unfit(("d: zero date",))
    assert pg_value(d, Stored(2020, 0, 5)) == Unfit(("d: zero date",))
    assert pg_value(d, Stored(0, 5, 10)) == Unfit(("d: year 0 (PostgreSQL has no year 0)",))
    assert pg_value(d, Stored(2023, 2, 30)) == Unfit(("d: not a date in the calendar",))
    assert pg_value(column("ts", "timestamp"), datetime.datetime(1970, 1, 1)) == Unfit(("ts: zero date",))


def test_with_zero_dates_null_only_zero_dates_of_nullable_columns_become_null() -> None:
    d = column("d", "date", zero_dates="null")
    assert pg_value(d, Stored(0, 0, 0)) is None and pg_value(d, Stored(2020, 0, 5)) is None
    assert pg_value(d, Stored(0, 5, 10)) == Unfit(("d: year 0 (PostgreSQL has no year 0)",))  # not a zero date
    assert pg_value(d, Stored(2023, 2, 30)) == Unfit(("d: not a date in the calendar",))
    required = column("d", "date", zero_dates="null", nullable=False)
    assert pg_value(required, Stored(0, 0, 0)) == Unfit(("d: zero date in a NOT NULL column",))


def test_other_values_the_copy_would_not_carry_make_the_row_unfit() -> None:
    assert pg_value(column("t", "time"), datetime.timedelta(hours=-1)) == Unfit(
        ("t: time outside 00:00:00 to 24:00:00",))
    assert isinstance(pg_value(column("t", "time"), datetime.timedelta(hours=25)), Unfit)
    assert pg_value(column("e", "enum('a')"), Choice(0)) == Unfit(("e: not a member of the enum (MySQL's '' error "
                                                                   "value)",))
    assert pg_value(column("e", "enum('','a')"), Choice(1)) == ""
    assert pg_value(column("v", "text"), b"a\0b") == Unfit(("v: text holding a NUL character",))
    big = column("id", "bigint(20) unsigned", extra="auto_increment", nullable=False)
    assert pg_value(big, 9223372036854775807) == "9223372036854775807"
    assert pg_value(big, 9223372036854775808) == Unfit(("id: above 9223372036854775807 (bigint)",))


def test_members_the_catalog_cannot_show_are_the_binary_logs() -> None:
    # MariaDB's catalog writes a 4-byte character of a member as '?': the column is text, its members unknown.
    e = column("e", "enum('a','?')")
    assert e.target_type == "text" and e.members == ()
    assert pg_value(e, Choice(2, ("a", "😀"))) == "😀"
    s = column("s", "set('x','?')")
    assert pg_value(s, Choice(3, ("x", "😀"))) == '{"x","😀"}'


def test_text_in_other_character_sets_is_the_sources_conversion() -> None:
    lat = column("l", "varchar(5)", charset="latin1")
    asked: list[tuple[bytes, str]] = []

    def convert(raw: bytes, charset: str) -> tuple[str, bool]:
        asked.append((raw, charset))
        return raw.decode("cp1250", "replace"), raw != b"\x81"

    assert pg_value(lat, b"\xf8", convert=convert) == "\u0159"  # whatever the server says, as it says it
    assert pg_value(lat, b"\x81", convert=convert) == Unfit(
        ("l: text that does not survive the conversion from latin1 to UTF-8",))
    assert asked == [(b"\xf8", "latin1"), (b"\x81", "latin1")]
    with pytest.raises(ValueError, match="needs the source's conversion"):
        pg_value(lat, b"x")


def test_json_validity_as_mariadb_answers_it() -> None:
    assert json_valid('{"a": [1, 2.5e3, null, true]}') and json_valid("1") and json_valid(" [1] ")
    for text in ("", "NaN", '{"a": Infinity}', "[1,]", "01", '"a\tb"', '"\\ud800"', "\ufeff1", "tRue"):
        assert not json_valid(text), text


@pytest.mark.parametrize(("number", "text"), [
    (1e22, "1e22"), (1e15, "1e15"), (1e14, "100000000000000"), (123456789012345678.0, "1.2345678901234568e17"),
    (0.0001, "0.0001"), (1e-15, "0.000000000000001"), (1e-16, "1e-16"), (-2.5e-300, "-2.5e-300"), (5e-324, "5e-324"),
    (0.1 + 0.2, "0.30000000000000004"), (100.0, "100"), (-0.0, "0"), (123.456, "123.456"), (1.5e-7, "0.00000015"),
])
def test_doubles_are_displayed_as_mariadb_casts_them(number: float, text: str) -> None:
    assert mariadb_double(number) == text


def test_json_objects_are_written_as_mariadb_writes_them() -> None:
    assert json_object([("a", 'q"b\\s\t\n\r\b\f\x01\x1f\x7f/é😀'), ("n", None), ("e", "")]) == (
        '{"a": "q\\"b\\\\s\\t\\n\\r\\b\\f\\u0001\\u001F\x7f/é😀", "n": null, "e": ""}')


def test_values_are_displayed_as_the_copy_displays_them_in_discarded_rows() -> None:
    assert display(column("d", "datetime(3)"), Stored(0, 5, 10, 1, 2, 3, 500000)) == "0000-05-10 01:02:03.500000"
    assert display(column("d", "date"), Stored(0, 0, 0)) == "0000-00-00"
    assert display(column("t", "time"), -datetime.timedelta(hours=838, minutes=59, seconds=59)) == (
        "-838:59:59.000000")
    assert display(column("v", "text"), b"a\0b") == "0x610062"  # a value not carried: its bytes
    assert display(column("b", "blob"), b"\x00\xff") == "0x00FF"
    assert display(column("f", "double"), 1e22) == "1e22"
    assert display(column("s", "set('x','y')"), Choice(3)) == "x,y"
    assert display(column("v", "text"), None) is None


# --- statements --------------------------------------------------------------------------------------------


def writer() -> TableWriter:
    return TableWriter(table(source("id", "int(11)", nullable=False), source("u", "varchar(10)"),
                             source("d", "date"), indexes=(SourceIndex("u", True, (("u", None),)),)))


def test_an_insert_is_an_upsert_on_the_primary_key_with_every_value_cast_to_its_column() -> None:
    forget, upsert = writer().inserted({"id": 1, "u": b"a", "d": datetime.date(2024, 1, 1)}, {})
    assert forget == Forget("t", "1")
    assert isinstance(upsert, Statement)
    assert upsert.sql == ('INSERT INTO "s"."t" ("id", "u", "d") OVERRIDING SYSTEM VALUE VALUES (%s::integer, '
                          '%s::varchar(10), %s::date) ON CONFLICT ("id") DO UPDATE SET "u" = EXCLUDED."u", '
                          '"d" = EXCLUDED."d"')
    assert upsert.params == ("1", "a", "2024-01-01")


def test_an_update_that_changes_the_key_deletes_the_old_row_first() -> None:
    before = {"id": 1, "u": b"a", "d": None}
    same = writer().updated(before, {}, {**before, "u": b"b"}, {})
    assert [type(c) for c in same] == [Forget, Statement] and "INSERT" in same[1].sql  # type: ignore[union-attr]
    moved = writer().updated(before, {}, {**before, "id": 2}, {})
    assert moved[:2] == [Forget("t", "1"), Forget("t", "2")]
    assert [c.sql.split()[0] for c in moved[2:]] == ["DELETE", "INSERT"]  # type: ignore[union-attr]
    assert moved[2].params == ("1",)  # type: ignore[union-attr]


def test_a_row_that_can_no_longer_be_carried_goes_and_is_recorded_as_the_copy_records_it() -> None:
    before = {"id": 1, "u": b"a\tb", "d": datetime.date(2024, 1, 1)}
    changes = writer().updated(before, {}, {**before, "d": Stored(0, 0, 0)}, {})
    assert changes[0] == Forget("t", "1")
    assert changes[1].sql.startswith("DELETE")  # type: ignore[union-attr]
    assert changes[2] == Discard("t", "1", "d: zero date", '{"id": "1", "u": "a\\tb", "d": "0000-00-00"}')
    assert writer().inserted({**before, "d": Stored(0, 0, 0)}, {})[1] == changes[2]


def test_every_failing_column_is_named_in_the_copys_order_and_keys_of_several_columns_are_json_arrays() -> None:
    two = TableWriter(table(source("a", "int(11)", nullable=False), source("b", "varchar(5)", nullable=False),
                            source("d", "date"), source("t", "time"), key=("a", "b")))
    [forget, discard] = two.inserted({"id": 9, "a": 1, "b": b"x", "d": Stored(0, 0, 0),
                                      "t": datetime.timedelta(hours=-2)}, {})
    assert forget == Forget("t", '["1", "x"]')
    assert isinstance(discard, Discard) and discard.key == '["1", "x"]'
    assert discard.reason == "d: zero date; t: time outside 00:00:00 to 24:00:00"


def test_a_delete_is_by_key_and_a_key_never_carried_deletes_nothing() -> None:
    forget, delete = writer().deleted({"id": 7, "u": b"x", "d": None}, {})
    assert forget == Forget("t", "7")
    assert delete == Statement('DELETE FROM "s"."t" WHERE "id" = %s::integer', ("7",))
    keyed = TableWriter(table(source("d", "date"), source("v", "int(11)"), key=("d",)))
    assert keyed.deleted({"id": 1, "d": Stored(0, 0, 0), "v": 1}, {}) == [Forget("t", "0000-00-00")]


def test_while_catching_up_a_row_takes_its_unique_key_over_from_a_row_that_is_behind() -> None:
    changes = writer().inserted({"id": 1, "u": b"a", "d": None}, {}, catching_up=True)
    assert changes[1] == Statement('DELETE FROM "s"."t" WHERE "u" = %s::varchar(10) AND NOT ("id" = %s::integer)',
                                   ("a", "1"))
    assert len(writer().inserted({"id": 1, "u": None, "d": None}, {}, catching_up=True)) == 2  # NULLs never clash


def test_identifiers_are_quoted_and_percent_signs_never_taken_for_placeholders() -> None:
    assert ident('we"ird%') == '"we""ird%%"'
    only_key = TableWriter(table(source("id", "int(11)", nullable=False), name="100%"))
    assert only_key.upsert_sql.endswith('ON CONFLICT ("id") DO NOTHING') and '"100%%"' in only_key.upsert_sql
    with pytest.raises(ValueError, match="no primary key"):
        TableWriter(table(source("id", "int(11)"), key=()))


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


def test_a_plain_copy_goes_on_without_a_position_saying_why_and_follow_does_not() -> None:
    from types import SimpleNamespace

    from dbupdater.engines import registry
    from dbupdater.model.specs import DatabaseSpec
    from dbupdater.steps.convert_position import PositionError, Positions, log_refusal
    from dbupdater.transports import TransportError

    def cut(command: object, sink: object) -> None:
        raise TransportError("runner r1: connection reset")

    sides = SimpleNamespace(source=SimpleNamespace(db=DatabaseSpec("mysql", "h", 1, "app", "shop")),
                            source_engine=registry.get("mysql"), export=SimpleNamespace(with_stdin=lambda data: data),
                            source_session=SimpleNamespace(transport=SimpleNamespace(run=cut)))
    recorded, said = Positions(strict=False).start(sides, "mysql://h:1/shop", "s", fresh=False)  # type: ignore[arg-type]
    assert not recorded and said == ("no binary log position recorded for a later copy-db --follow (it would copy "
                                     "again first): the source's runner connection failed: runner r1: connection "
                                     "reset")
    with pytest.raises(PositionError, match="connection reset"):
        Positions(strict=True).start(sides, "mysql://h:1/shop", "s", fresh=False)  # type: ignore[arg-type]

    full = {"log_bin": "ON", "binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}
    assert log_refusal("src", "app", full, ("binlog.000001", 4)) is None
    assert "writes no binary log" in str(log_refusal("src", "app", {**full, "log_bin": "OFF"}, None))
    assert "binlog_format=STATEMENT" in str(log_refusal("src", "app", {**full, "binlog_format": "STATEMENT"}, None))
    assert "binlog_row_metadata is MINIMAL" in str(log_refusal("src", "app", {**full, "binlog_row_metadata":
                                                                               "MINIMAL"}, None))
    assert "unknown to this server" in str(log_refusal("src", "app", {k: v for k, v in full.items()
                                                                       if k != "binlog_row_metadata"}, None))
    assert "the user app needs BINLOG MONITOR" in str(log_refusal("src", "app", full, None))

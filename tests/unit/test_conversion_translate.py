"""The translation without a server: each type family's PostgreSQL type, CHECKs and expressions, names quoted
both ways, the options, what is listed as not carried. (That the expressions compute what they claim is
tested on the rig's servers: tests/test_conversion_types.py.)"""

from __future__ import annotations

import re

import pytest

from dbupdater.conversion.model import (
    SourceColumn,
    SourceForeignKey,
    SourceIndex,
    SourceSchema,
    SourceTable,
    TranslationOptions,
)
from dbupdater.conversion.names import my_ident, my_literal, pg_ident, pg_name
from dbupdater.conversion.translate import TranslationError, translate
from dbupdater.model.errors import ExitCode


def col(name: str, column_type: str, *, nullable: bool = True, default: str | None = None, extra: str = "",
        charset: str | None = None, json: bool = False, precision: int | None = None, position: int = 0,
        generation: str | None = None, comment: str = "") -> SourceColumn:
    data_type = re.match(r"[a-z0-9 ]+", column_type.lower())
    assert data_type
    kind = data_type.group(0).replace(" unsigned", "").strip()
    text = kind in ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set")
    return SourceColumn(name=name, position=position, data_type=kind, column_type=column_type, nullable=nullable,
                        default=default, extra=extra, generation_expression=generation,
                        charset=charset or ("utf8mb4" if text else None), datetime_precision=precision,
                        comment=comment, is_json=json)


def one(*columns: SourceColumn, name: str = "t", primary: tuple[str, ...] = ("id",), **table: object) -> SourceSchema:
    numbered = tuple(SourceColumn(**{**c.__dict__, "position": i + 1}) for i, c in enumerate(columns))
    if primary and not any(c.name == primary[0] for c in numbered):
        numbered = (col("id", "int", nullable=False, position=0), *numbered)
    return SourceSchema("db", (SourceTable(name, numbered, primary_key=primary, **table),))  # type: ignore[arg-type]


def column_plan(column: SourceColumn, **options: object):  # type: ignore[no-untyped-def]
    plan = translate(one(column), TranslationOptions(**options))  # type: ignore[arg-type]
    return next(c for c in plan.tables[0].columns if c.source.name == column.name), plan.tables[0], plan


@pytest.mark.parametrize(("column_type", "target", "check"), [
    ("tinyint(4)", "smallint", None),
    ("tinyint(3) unsigned", "smallint", '"c" BETWEEN 0 AND 255'),
    ("smallint(6)", "smallint", None),
    ("smallint(5) unsigned", "integer", '"c" BETWEEN 0 AND 65535'),
    ("mediumint(9)", "integer", None),
    ("mediumint(8) unsigned", "integer", '"c" BETWEEN 0 AND 16777215'),
    ("int(11)", "integer", None),
    ("int(10) unsigned", "bigint", '"c" BETWEEN 0 AND 4294967295'),
    ("bigint(20)", "bigint", None),
    ("bigint(20) unsigned", "numeric(20,0)", '"c" BETWEEN 0 AND 18446744073709551615'),
    ("decimal(65,30)", "numeric(65,30)", None),
    ("decimal(5,2) unsigned", "numeric(5,2)", '"c" >= 0'),
    ("float", "real", None),
    ("double", "double precision", None),
    ("bit(1)", "bit(1)", None),
    ("bit(64)", "bit(64)", None),
    ("char(10)", "char(10)", None),
    ("varchar(255)", "varchar(255)", None),
    ("tinytext", "text", None),
    ("longtext", "text", None),
    ("binary(4)", "bytea", None),
    ("varbinary(300)", "bytea", None),
    ("longblob", "bytea", None),
    ("date", "date", None),
    ("year(4)", "smallint", None),
    ("geometry", "bytea", None),
    ("point", "bytea", None),
    ("uuid", "uuid", None),
    ("inet6", "inet", None),
    ("inet4", "inet", None),
    ("json", "json", None),
])
def test_types_table(column_type: str, target: str, check: str | None) -> None:
    plan, table, _ = column_plan(col("c", column_type))
    assert plan.target_type == target
    assert (f"CHECK ({check})" in table.create_sql) is (check is not None)
    if check is None:
        assert '"c" ' + target + "," in table.create_sql or '"c" ' + target + "\n" in table.create_sql


@pytest.mark.parametrize(("column_type", "precision", "target"), [
    ("datetime", 0, "timestamp(0)"), ("datetime(6)", 6, "timestamp(6)"), ("timestamp(3)", 3, "timestamptz(3)"),
    ("time", 0, "time(0)"), ("time(2)", 2, "time(2)"),
])
def test_times_keep_their_precision(column_type: str, precision: int, target: str) -> None:
    assert column_plan(col("c", column_type, precision=precision))[0].target_type == target


def test_json_is_mariadbs_longtext_with_json_valid() -> None:
    plan, _, _ = column_plan(col("doc", "longtext", json=True))
    assert plan.target_type == "json" and plan.target_canonical == '"doc"::text'
    assert "JSON_VALID(`doc`) = 0" in (plan.invalid_sql or "") and "not valid JSON" in plan.invalid_reason


def test_enum_and_set_become_a_type_named_table_column() -> None:
    schema = one(col("size", "enum('small','with space','it''s','a \"q\"','back\\\\slash')"),
                 col("tags", "set('a','b c','x\"y')"), name='my"t')
    plan = translate(schema, TranslationOptions(schema="s"))
    assert plan.types_sql == (
        'CREATE TYPE "s"."my""t_size" AS ENUM (\'small\', \'with space\', \'it\'\'s\', \'a "q"\', \'back\\slash\');',
        'CREATE TYPE "s"."my""t_tags" AS ENUM (\'a\', \'b c\', \'x"y\');')
    table = plan.tables[0]
    size, tags = table.columns[1], table.columns[2]
    assert size.target_type == '"s"."my""t_size"' and tags.target_type == '"s"."my""t_tags"[]'
    assert "`size` + 0 = 0" in (size.invalid_sql or "") and tags.invalid_sql is None  # a set holds only members
    assert tags.target_canonical == "array_to_string(\"tags\", ',')"
    # the set as an array literal of quoted members, '{}' when empty, escaped twice (array, then COPY)
    assert tags.field_sql.startswith("IFNULL(IF(`tags` + 0 = 0, '{}', CONCAT('{\"', REPLACE(")
    assert "X'22', X'5c22'" in tags.field_sql and "X'5c', X'5c5c'" in tags.field_sql  # on the bytes
    assert size.field_sql.startswith("IFNULL(REPLACE(")  # a member holds a backslash: escaped
    plain = translate(one(col("e", "enum('a','b c')"), col("s", "set('x','y')")), TranslationOptions()).tables[0]
    assert plain.columns[1].field_sql == "IFNULL(CAST(`e` AS BINARY), _utf8mb4 X'5C4E')"  # nothing to escape
    assert plain.columns[2].field_sql == ("IFNULL(IF(`s` + 0 = 0, '{}', CONCAT('{\"', REPLACE(CAST(`s` AS BINARY), "
                                          "',', '\",\"'), '\"}')), _utf8mb4 X'5C4E')")
    assert table.types_sql == plan.types_sql
    assert table.drop_sql == ('DROP TABLE IF EXISTS "s"."my""t" CASCADE;', 'DROP TYPE IF EXISTS "s"."my""t_size";',
                              'DROP TYPE IF EXISTS "s"."my""t_tags";')


def test_enum_type_names_stay_apart_from_tables_and_each_other() -> None:
    schema = SourceSchema("db", (
        SourceTable("a", (col("b_c", "enum('x')", position=1),)),
        SourceTable("a_b", (col("c", "enum('y')", position=1),)),
        SourceTable("t_e", (col("id", "int", position=1),)),
        SourceTable("t", (col("e", "enum('z')", position=1),)),
        SourceTable("l" * 60, (col("column", "set('q')", position=1),)),
    ))
    plan = translate(schema, TranslationOptions())
    names = [re.search(r'"db"\."([^"]+)"', sql).group(1) for sql in plan.types_sql]  # type: ignore[union-attr]
    assert names[:3] == ["a_b_c", "a_b_c_2", "t_e_2"]
    assert len(names[3].encode()) <= 63 and names[3].startswith("l" * 50) and len(set(names)) == 4


def test_enum_members_the_catalog_cannot_show_become_text() -> None:
    plan, table, _ = column_plan(col("e", "enum('x','?')"))
    assert plan.target_type == "text" and "CHECK" not in table.create_sql
    assert "members are not known" in plan.notes[0]
    plan, table, _ = column_plan(col("s", "set('x','" + "é" * 40 + "')"))
    assert plan.target_type == "text[]" and "<@ ARRAY['x', '" in table.create_sql


def test_unsigned_bigint_identity_and_the_keys_that_reference_it_are_bigint() -> None:
    parent = SourceTable("parent", (col("id", "bigint(20) unsigned", nullable=False, extra="auto_increment",
                                        position=1),), primary_key=("id",), auto_increment=9223372036854775809)
    child = SourceTable("child", (col("id", "int", nullable=False, position=1),
                                  col("parent_id", "bigint(20) unsigned", position=2)), primary_key=("id",),
                        foreign_keys=(SourceForeignKey("child_parent", ("parent_id",), "parent", ("id",)),))
    plan = translate(SourceSchema("db", (parent, child)), TranslationOptions())
    identity = plan.table("parent").columns[0]
    assert identity.target_type == "bigint"
    assert '"id" bigint NOT NULL GENERATED BY DEFAULT AS IDENTITY CHECK ("id" >= 0)' in plan.table("parent").create_sql
    assert "`id` > 9223372036854775807" in (identity.invalid_sql or "")
    assert "above 9223372036854775807" in identity.invalid_reason
    assert plan.table("child").columns[1].target_type == "bigint"
    restart = plan.table("parent").after_load_sql[-1]
    assert restart.startswith("DO $dbupdater$ BEGIN PERFORM setval(pg_get_serial_sequence('\"db\".\"parent\"', 'id'), "
                              "LEAST(9223372036854775807, GREATEST(9223372036854775807,")


def test_copy_text_fields() -> None:
    null = my_literal("\\N")
    assert null == "_utf8mb4 X'5C4E'"
    text, _, _ = column_plan(col("c", "varchar(10)"))
    # the UTF-8 bytes as stored, escaped byte by byte (no conversion, no character-by-character search)
    assert text.field_sql == ("IFNULL(REPLACE(REPLACE(REPLACE(REPLACE(CAST(`c` AS BINARY), X'5c', X'5c5c'), "
                              f"X'09', X'5c74'), X'0a', X'5c6e'), X'0d', X'5c72'), {null})")
    latin1, _, _ = column_plan(col("c", "varchar(10)", charset="latin1"))
    assert latin1.field_sql.startswith("IFNULL(REPLACE(REPLACE(REPLACE(REPLACE(CAST(CONVERT(`c` USING utf8mb4) AS "
                                       "BINARY), X'5c', X'5c5c')")
    blob, _, _ = column_plan(col("c", "blob"))
    assert blob.field_sql == f"IFNULL(CONCAT(_utf8mb4 X'5C5C78', HEX(`c`)), {null})"
    assert blob.source_canonical == "MD5(`c`)" and blob.target_canonical == 'md5("c")'
    bits, _, _ = column_plan(col("c", "bit(64)"))
    assert bits.field_sql == f"IFNULL(LPAD(BIN(`c` + 0), 64, '0'), {null})"
    geometry, _, _ = column_plan(col("c", "polygon"))
    assert "HEX(ST_AsBinary(`c`))" in geometry.field_sql and "SRID" in geometry.notes[0]
    stamp, _, _ = column_plan(col("c", "timestamp(3)", precision=3))
    assert "DATE_FORMAT(`c`, '%Y-%m-%d %H:%i:%s.%f')" in stamp.field_sql and "'+00')" in stamp.field_sql
    assert "CHAR_LENGTH" in stamp.field_sql  # 3 of the 6 digits %f writes
    assert stamp.target_canonical == "to_char(\"c\" AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
    plain, _, _ = column_plan(col("c", "datetime"))
    assert plain.field_sql == f"IFNULL(DATE_FORMAT(`c`, '%Y-%m-%d %H:%i:%s'), {null})"
    assert plain.source_canonical == "DATE_FORMAT(`c`, '%Y-%m-%d %H:%i:%s.%f')"
    time, _, _ = column_plan(col("c", "time(2)", precision=2))
    assert "TIME'00:00:00'" in (time.invalid_sql or "") and "TIME'24:00:00'" in (time.invalid_sql or "")
    double, _, _ = column_plan(col("c", "float"))
    assert double.field_sql == f"IFNULL(CAST(CAST(`c` AS DOUBLE) AS CHAR), {null})"
    assert "4503599627370496" in double.source_canonical and "4503599627370496" in double.target_canonical
    assert '"c"::float8' in double.target_canonical
    year, _, _ = column_plan(col("c", "year(4)"))
    assert year.field_sql == f"IFNULL(CAST(`c` + 0 AS CHAR), {null})"


def test_no_literal_holds_a_backslash() -> None:
    """NO_BACKSLASH_ESCAPES would change what a backslash in a MySQL literal means: every MySQL string the
    plan holds writes backslashes in hex."""
    schema = one(col("a", "varchar(5)"), col("b", "set('x')"), col("c", "blob"), col("d", "date"),
                 name="t\\x", comment="back\\slash")
    table = translate(schema, TranslationOptions()).tables[0]
    for sql in (table.rows_sql, table.discarded_sql, table.source_checksum_sql):
        assert "\\" not in re.sub(r"`(?:[^`]|``)*`", "", sql)  # (inside backquotes a backslash is itself)


def test_text_outside_utf8_is_checked_for_the_round_trip() -> None:
    latin1, _, _ = column_plan(col("c", "varchar(10)", charset="latin1"))
    assert ("CAST(CONVERT(CONVERT(`c` USING utf8mb4) USING latin1) AS BINARY) <> CAST(`c` AS BINARY)"
            in (latin1.invalid_sql or ""))
    assert "does not survive the conversion from latin1" in latin1.invalid_reason
    utf8, _, _ = column_plan(col("c", "varchar(10)", charset="utf8mb4"))
    assert "USING utf8mb4) USING" not in (utf8.invalid_sql or "") and "NUL" in utf8.invalid_reason
    with pytest.raises(ValueError, match="character set"):
        column_plan(col("c", "varchar(10)", charset="latin1; DROP"))


def test_zero_dates_discarded_or_null() -> None:
    discard, table, _ = column_plan(col("d", "date"))
    assert discard.invalid_sql == "IFNULL(`d` IS NOT NULL AND (`d` + INTERVAL 0 DAY IS NULL), 1)"
    assert "IF(IFNULL(`d` IS NOT NULL AND (MONTH(`d`) = 0 OR DAYOFMONTH(`d`) = 0), 1), 'd: zero date', NULL)" in (
        table.discarded_sql)
    assert discard.invalid_reason.startswith("d: zero date; d: year 0")
    null, _, _ = column_plan(col("d", "date"), zero_dates="null")
    assert "IF(MONTH(`d`) = 0 OR DAYOFMONTH(`d`) = 0, NULL," in null.field_sql
    assert null.source_canonical.startswith("IF(MONTH(`d`) = 0 OR DAYOFMONTH(`d`) = 0, NULL,")
    assert "zero date" not in null.invalid_reason
    assert null.invalid_sql == ("IFNULL(`d` IS NOT NULL AND (`d` + INTERVAL 0 DAY IS NULL AND MONTH(`d`) <> 0 AND "
                                "DAYOFMONTH(`d`) <> 0), 1)")
    not_null, _, _ = column_plan(col("d", "date", nullable=False), zero_dates="null")
    assert "d: zero date in a NOT NULL column" in not_null.invalid_reason
    with pytest.raises(TranslationError, match="--zero-dates must be discard or null") as raised:
        column_plan(col("d", "date"), zero_dates="keep")
    assert raised.value.exit_code is ExitCode.USAGE


def test_defaults() -> None:
    table = translate(one(
        col("a", "varchar(20)", default="'it''s a\\\\b\tc'"),
        col("b", "int(11)", default="-5"),
        col("d", "datetime(3)", default="current_timestamp(3)", extra="on update current_timestamp(3)"),
        col("e", "timestamp", default="'2000-01-01 00:00:00'", nullable=False),
        col("f", "bit(8)", default="b'101'"),
        col("g", "set('p','q')", default="'p,q'"),
        col("i", "varbinary(10)", default="'ab'"),
        col("j", "date", default="curdate()"),
        col("k", "int(11)", default="(1 + 2)"),
        col("m", "int(11)", nullable=False),
        col("p", "varchar(5)", default="NULL"),
        col("q", "varchar(5)", default="'NULL'"),
        col("z", "datetime", default="'0000-00-00 00:00:00'"),
        col("v", "int(11)", extra="VIRTUAL GENERATED", generation="`b` + 1", default="NULL"),
    ), TranslationOptions()).tables[0]
    lines = table.create_sql.splitlines()

    def line(name: str) -> str:
        return next(text.strip().rstrip(",") for text in lines if text.strip().startswith(f'"{name}" '))

    assert line("a") == "\"a\" varchar(20) DEFAULT 'it''s a\\b\tc'"
    assert line("b") == '"b" integer DEFAULT -5'
    assert line("d") == '"d" timestamp(0) DEFAULT LOCALTIMESTAMP'
    assert line("e") == "\"e\" timestamptz(0) NOT NULL DEFAULT '2000-01-01 00:00:00+00'"
    assert line("f") == "\"f\" bit(8) DEFAULT B'00000101'"
    assert line("g") == "\"g\" \"db\".\"t_g\"[] DEFAULT '{\"p\",\"q\"}'"
    assert line("i") == "\"i\" bytea DEFAULT '\\x6162'::bytea"
    assert line("j") == '"j" date' and line("k") == '"k" integer' and line("m") == '"m" integer NOT NULL'
    assert line("p") == '"p" varchar(5)' and line("q") == "\"q\" varchar(5) DEFAULT 'NULL'"
    assert line("z") == '"z" timestamp(0)' and line("v") == '"v" integer'
    notes = "\n".join(table.notes)
    for words in ("column d: on update current_timestamp(3) not carried", "column j: default curdate() not carried",
                  "column k: default (1 + 2) not carried", "column z: zero date default '0000-00-00 00:00:00' not "
                  "carried", "column v: generated column (`b` + 1) carried as a plain column"):
        assert words in notes, words


def test_names_are_quoted_both_ways() -> None:
    schema = one(col('we"ird`col', "int"), name='ta"b`le', primary=('we"ird`col',),
                 indexes=(SourceIndex('i"x', False, (('we"ird`col', None),)),), comment="it's")
    plan = translate(schema, TranslationOptions(schema='sch"ema'))
    table = plan.tables[0]
    assert table.qualified == '"sch""ema"."ta""b`le"'
    assert table.create_sql.startswith('CREATE TABLE "sch""ema"."ta""b`le" (\n  "we""ird`col" integer')
    assert 'CREATE INDEX "ta""b`le_i""x" ON "sch""ema"."ta""b`le" ("we""ird`col");' in table.after_load_sql
    assert "COMMENT ON TABLE \"sch\"\"ema\".\"ta\"\"b`le\" IS 'it''s';" in table.after_load_sql
    assert "FROM `db`.`ta\"b``le`" in table.rows_sql and "`we\"ird``col`" in table.rows_sql
    assert table.copy_sql == 'COPY "sch""ema"."ta""b`le" ("we""ird`col") FROM STDIN;'
    assert plan.schema_sql == 'CREATE SCHEMA IF NOT EXISTS "sch""ema";'
    assert pg_ident('a"b') == '"a""b"' and my_ident("a`b") == "`a``b`"


def test_long_names_fit_postgresql() -> None:
    long = "é" * 40  # 80 bytes
    plan = translate(one(col(long, "int"), name=long, primary=(long,)), TranslationOptions())
    table = plan.tables[0]
    assert table.name == pg_name(long) and len(table.name.encode()) <= 63 and table.name != long
    assert table.columns[0].name == table.name
    assert any("longer than 63 bytes" in note for note in table.notes)
    assert pg_name("x" * 63) == "x" * 63 and pg_name("x" * 64) != pg_name("x" * 63 + "y")


def test_indexes_after_the_load() -> None:
    schema = one(col("t", "text"), col("b", "blob"), col("j", "longtext", json=True), col("p", "point"),
                 col("v", "varchar(10)"), indexes=(
                     SourceIndex("t_prefix", False, (("t", 10),)),
                     SourceIndex("b_prefix", True, (("b", 4),)),
                     SourceIndex("j_prefix", False, (("j", 20),)),
                     SourceIndex("words", False, (("t", None),), kind="FULLTEXT"),
                     SourceIndex("where", False, (("p", None),), kind="SPATIAL"),
                     SourceIndex("both", True, (("v", None), ("id", None))),
                     SourceIndex("whole", True, (("t", None),), kind="HASH"),
                     SourceIndex("down", False, (("v", None),), descending=("v",)),
                     SourceIndex("expr", False, (("", None),)),
                 ))
    table = translate(schema, TranslationOptions()).tables[0]
    after = table.after_load_sql
    assert after[0] == 'ALTER TABLE "db"."t" ADD CONSTRAINT "t_pkey" PRIMARY KEY ("id");'
    assert 'CREATE INDEX "t_t_prefix" ON "db"."t" ((left("t"::text, 10)));' in after
    assert 'CREATE UNIQUE INDEX "t_b_prefix" ON "db"."t" ((substring("b" from 1 for 4)));' in after
    assert 'CREATE INDEX "t_j_prefix" ON "db"."t" ((left("j"::text, 20)));' in after
    assert 'ALTER TABLE "db"."t" ADD CONSTRAINT "t_both" UNIQUE ("v", "id");' in after
    assert 'CREATE UNIQUE INDEX "t_whole" ON "db"."t" ((md5("t"::text)));' in after
    assert 'CREATE INDEX "t_down" ON "db"."t" ("v" DESC);' in after
    notes = "\n".join(table.notes)
    assert "FULLTEXT index words (t) not carried" in notes and "SPATIAL index where (p) not carried" in notes
    assert "index expr on an expression not carried" in notes and "unique key whole on long values" in notes
    assert not any("CREATE" in sql or "ADD" in sql for sql in table.create_sql.splitlines()[1:])


def test_options_choose_tables_and_foreign_keys_to_the_rest_are_listed() -> None:
    def t(name: str, *keys: SourceForeignKey, indexes: tuple[SourceIndex, ...] = ()) -> SourceTable:
        return SourceTable(name, (col("id", "int", nullable=False, position=1), col("ref", "int", position=2)),
                           primary_key=("id",), foreign_keys=keys, indexes=indexes)

    schema = SourceSchema("shop", (
        t("orders", SourceForeignKey("orders_customer", ("ref",), "customers", ("id",), on_delete="SET NULL"),
          SourceForeignKey("orders_audit", ("ref",), "audit_log", ("id",)),
          SourceForeignKey("orders_elsewhere", ("ref",), "people", ("id",), referenced_schema="crm"),
          SourceForeignKey("orders_loose", ("ref",), "customers", ("ref",))),
        t("customers"), t("audit_log"), t("audit_old"), t("tmp_x"),
    ))
    plan = translate(schema, TranslationOptions(schema="copy", tables=("orders", "cust*", "audit_*", "tmp_*"),
                                                exclude=("audit_*",)))
    assert [t.name for t in plan.tables] == ["orders", "customers", "tmp_x"]
    orders = plan.table("orders")
    assert orders.foreign_keys_sql == (
        'ALTER TABLE "copy"."orders" ADD CONSTRAINT "orders_customer" FOREIGN KEY ("ref") REFERENCES '
        '"copy"."customers" ("id") ON DELETE SET NULL ON UPDATE RESTRICT NOT VALID;',)
    assert orders.validate_sql == ('ALTER TABLE "copy"."orders" VALIDATE CONSTRAINT "orders_customer";',)
    lines = plan.not_carried()
    assert "orders: foreign key orders_audit (ref) to audit_log not carried: that table is excluded from the copy" in (
        lines)
    assert "orders: foreign key orders_elsewhere (ref) to people in database crm not carried" in lines
    assert any(line.startswith("orders: foreign key orders_loose (ref) to customers not carried: PostgreSQL needs a "
                               "primary or unique key on (ref)") for line in lines)
    assert "table audit_log excluded from the copy" in lines and "table audit_old excluded from the copy" in lines
    for option, patterns in (("--tables", ("nope*",)), ("--exclude", ("gone",))):
        with pytest.raises(TranslationError, match=f"{option} 'nope\\*'|{option} 'gone'") as raised:
            translate(schema, TranslationOptions(**{option[2:]: patterns}))  # type: ignore[arg-type]
        assert raised.value.exit_code is ExitCode.USAGE
    with pytest.raises(TranslationError, match="--schema"):
        translate(schema, TranslationOptions(schema="x" * 64))


def test_tables_without_a_primary_key_are_not_followed() -> None:
    schema = one(col("a", "int"), col("b", "varchar(3)"), primary=(), table_type="SYSTEM VERSIONED")
    table = translate(schema, TranslationOptions()).tables[0]
    assert not table.followable and "no primary key" in table.not_followed_reason
    assert "system versioned table: only its current rows are carried" in table.notes
    # the whole row identifies a discarded row when there is no key
    assert table.discarded_sql.count("JSON_OBJECT(") == 2


def test_discarded_rows_line_layout() -> None:
    table = translate(one(col("d", "date"), col("c", "varchar(3)")), TranslationOptions()).tables[0]
    sql = table.discarded_sql
    fields = sql[len("SELECT CONCAT_WS(CHAR(9 USING utf8mb4), "):sql.index(" FROM `db`.`t` WHERE ")]
    assert fields.count("IFNULL(REPLACE(REPLACE(REPLACE(REPLACE(") == 5  # every field escaped for COPY
    assert fields.index("@dbupdater_source") < fields.index(my_literal("t")) < fields.index("CAST(`id` AS CHAR)") \
        < fields.index("CONCAT_WS('; ', IF(") < fields.index("JSON_OBJECT('id', ")
    assert "'d: zero date'" in fields and "'c: text holding a NUL character'" in fields
    clean = translate(one(col("n", "int")), TranslationOptions()).tables[0]
    assert clean.discarded_sql.endswith(" FROM `db`.`t` WHERE 0") and " WHERE " not in clean.rows_sql


def test_one_pass_reads_the_rows_sums_them_and_looks_for_discarded_rows_only_when_some_were_left_out() -> None:
    table = translate(one(col("d", "date")), TranslationOptions()).tables[0]
    line, where = table.rows_sql[len("SELECT "):].split(" FROM `db`.`t`")
    assert table.counted_rows_sql.startswith(f"SELECT CONCAT({line}, IF((@dbupdater_rows := @dbupdater_rows + 1) + "
                                             "(@dbupdater_sum := @dbupdater_sum + CAST(CONV(LEFT(MD5(CONCAT_WS(")
    assert table.counted_rows_sql.endswith(f" IS NULL, NULL, '')) FROM `db`.`t`{where}")  # rows_sql's line, its rows
    assert table.skipped_sql == "SELECT COUNT(*) - @dbupdater_rows INTO @dbupdater_skipped FROM `db`.`t`"
    failing = table.discarded_sql.split(" WHERE ", 1)[1]
    assert table.discarded_if_skipped_sql.endswith(f" WHERE @dbupdater_skipped <> 0 AND ({failing})")
    assert table.counted_checksum_sql == "SELECT CONCAT(@dbupdater_rows, CHAR(9 USING utf8mb4), @dbupdater_sum)"
    clean = translate(one(col("n", "int")), TranslationOptions()).tables[0]
    assert clean.skipped_sql == "" and clean.discarded_if_skipped_sql == clean.discarded_sql  # ... WHERE 0


def test_checksums_and_many_columns() -> None:
    columns = [col(f"c{i}", "int") for i in range(250)]
    table = translate(one(*columns), TranslationOptions()).tables[0]
    assert table.source_checksum_sql.startswith("SELECT CONCAT(COUNT(*), CHAR(9 USING utf8mb4), COALESCE(SUM(CAST("
                                                "CONV(LEFT(MD5(CONCAT_WS(CHAR(31 USING utf8mb4), COALESCE(")
    assert table.target_checksum_sql.startswith("SELECT count(*)::text || chr(9) || coalesce(sum(('x' || substr(md5(")
    assert table.target_checksum_sql.endswith("), 1, 15))::bit(60)::bigint), 0)::text FROM \"db\".\"t\"")
    # PostgreSQL takes at most 100 arguments in a call: concat_ws nests
    calls = re.findall(r"concat_ws\(chr\(31\), ((?:[^()]|\((?:[^()]|\([^()]*\))*\))*)\)", table.target_checksum_sql)
    assert len(calls) >= 3
    for call in calls:
        assert call.count("coalesce(") <= 90
    assert table.target_checksum_sql.count("coalesce(") == 251 + 1


def test_ddl_sha256_follows_what_is_created_and_read() -> None:
    schema = one(col("d", "date"))
    first = translate(schema, TranslationOptions()).tables[0].ddl_sha256
    assert first == translate(schema, TranslationOptions()).tables[0].ddl_sha256 and len(first) == 64
    assert translate(schema, TranslationOptions(zero_dates="null")).tables[0].ddl_sha256 != first
    assert translate(schema, TranslationOptions(schema="other")).tables[0].ddl_sha256 != first


def test_comments_and_collation_note() -> None:
    plan = translate(one(col("c", "varchar(3)", comment="the \"c\" 😀"), comment="tab\tle"), TranslationOptions())
    after = plan.tables[0].after_load_sql
    assert "COMMENT ON TABLE \"db\".\"t\" IS 'tab\tle';" in after
    assert "COMMENT ON COLUMN \"db\".\"t\".\"c\" IS 'the \"c\" 😀';" in after
    assert any("collation" in note for note in plan.notes)


def test_foreign_keys_need_a_plain_unique_key_on_the_postgresql_side() -> None:
    parent = SourceTable("parent", (col("id", "int", nullable=False, position=1), col("code", "text", position=2),
                                    col("slug", "varchar(20)", position=3)), primary_key=("id",),
                         indexes=(SourceIndex("code_whole", True, (("code", None),), kind="HASH"),
                                  SourceIndex("slug_unique", True, (("slug", None),))))
    child = SourceTable("child", (col("id", "int", nullable=False, position=1), col("code", "text", position=2),
                                  col("slug", "varchar(20)", position=3)), primary_key=("id",), foreign_keys=(
        SourceForeignKey("child_code", ("code",), "parent", ("code",)),
        SourceForeignKey("child_slug", ("slug",), "parent", ("slug",), on_delete="CASCADE", on_update="NO ACTION")))
    plan = translate(SourceSchema("db", (child, parent)), TranslationOptions())
    keys = plan.table("child").foreign_keys_sql
    assert keys == ('ALTER TABLE "db"."child" ADD CONSTRAINT "child_slug" FOREIGN KEY ("slug") REFERENCES '
                    '"db"."parent" ("slug") ON DELETE CASCADE NOT VALID;',)
    assert any(note.startswith("foreign key child_code (code) to parent not carried: PostgreSQL needs a primary or "
                               "unique key") for note in plan.table("child").notes)


def test_ddl_sha256_ignores_mysqls_moving_counter() -> None:
    def with_counter(counter: int) -> str:
        table = SourceTable("t", (col("id", "int", nullable=False, extra="auto_increment", position=1),),
                            primary_key=("id",), auto_increment=counter)
        plan = translate(SourceSchema("db", (table,)), TranslationOptions()).tables[0]
        assert f"GREATEST({counter}," in plan.after_load_sql[-1]
        return plan.ddl_sha256

    assert with_counter(10) == with_counter(5000)

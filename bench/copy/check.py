"""Row for row: does the PostgreSQL result hold what the MySQL database holds, whatever types each tool chose?

Per base table of the source, both servers compute the same figures over the whole table, each in its own SQL,
from values rendered the same way on both sides:

- the row count, and the primary keys: md5 of their sorted list (integer keys) or an order-free hash sum;
- per column, the count of NULLs, and by the MySQL type: integers (bit, year, tinyint(1) included) and decimals
  summed exactly (a boolean counts as 0/1, so pgloader's tinyint(1) -> boolean is no difference); floats summed
  within 1e-9; text (char, varchar, text, enum, set, json) its length in characters and a hash sum of
  md5(key, value) over the rows; binary data its length in bytes and a hash sum over (key, bytes); dates and
  times as 'YYYY-MM-DD HH:MM:SS.ffffff' (both sessions in UTC) hashed with the key.

A hash sum adds the first 15 hex digits of each row's md5 as an exact number: order-free, streamed by the
server, and moved or changed value shows (the key is inside each hash). Where the hashes differ the check says
more: json compared value by value as parsed JSON (a jsonb-style reformatting is reported, not counted as a
difference), bytes tested for being the hex text of the source's bytes. Geometry is compared in Python, point by
point, whether the tool kept WKB, MySQL's internal form, hex text of either, or a PostgreSQL point.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from psycopg import sql as pgsql

from environment_creators.info import RigInfo

from .data import MySqlConnection, mysql_connect

INTEGER = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "year", "bit"}
DECIMAL = {"decimal", "numeric"}
FLOAT = {"float", "double", "real"}
TEXT = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"}
BINARY = {"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"}
WHEN = {"date", "datetime", "timestamp"}
GEOMETRY = {"geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
            "geometrycollection"}
SKIP_SCHEMAS = ("pg_catalog", "information_schema", "dbupdater_copy", "sch_chameleon", "pg_toast")
HEX_RX = re.compile(rb"\A(?:[0-9A-Fa-f]{2})*\Z")
TIME_FORMAT = "'%Y-%m-%d %H:%i:%s.%f'"
PG_TIME_FORMAT = "'YYYY-MM-DD HH24:MI:SS.US'"


PgConnection = psycopg.Connection[tuple[Any, ...]]


def pg_connect(info: RigInfo, database: str) -> PgConnection:
    return psycopg.connect(host=info.postgres.host, port=info.postgres.port, user=info.postgres.admin_user,
                           password=info.postgres.admin_password, dbname=database, autocommit=True,
                           options="-c TimeZone=UTC")


@dataclass(frozen=True)
class Column:
    name: str
    data_type: str  # MySQL's information_schema.columns.data_type
    is_json: bool

    @property
    def kind(self) -> str:
        if self.is_json:
            return "json"
        for kind, types in (("int", INTEGER), ("dec", DECIMAL), ("float", FLOAT), ("text", TEXT),
                            ("bin", BINARY), ("when", WHEN), ("geo", GEOMETRY)):
            if self.data_type in types:
                return kind
        return "clock" if self.data_type == "time" else "other"


@dataclass(frozen=True)
class PgColumn:
    name: str
    typname: str  # pg_type.typname: bool, bytea, timestamptz, _text (arrays start with _), json, ...
    category: str  # pg_type.typcategory: B boolean, A array, E enum, V bit string, ...


@dataclass(frozen=True)
class Table:
    name: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]  # primary key columns in order

    @property
    def integer_key(self) -> bool:
        kinds = {c.name: c.kind for c in self.columns}
        return bool(self.key) and all(kinds[k] == "int" for k in self.key)


@dataclass
class TableResult:
    table: str
    rows: tuple[int, int]  # source, result
    differences: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class CheckResult:
    schema: str | None
    tables: list[TableResult]
    seconds: float = 0.0

    @property
    def differences(self) -> list[str]:
        return [f"{t.table}: {d}" for t in self.tables for d in t.differences]

    @property
    def notes(self) -> list[str]:
        return [f"{t.table}: {n}" for t in self.tables for n in t.notes]

    @property
    def identical(self) -> bool:
        return bool(self.tables) and not self.differences

    def summary(self, limit: int = 3) -> str:
        """One line: 'identical' (with harmless notes), or per differing table its first difference."""
        if self.schema is None:
            return "no table found in the result"
        if self.identical:
            notes = "; ".join(dict.fromkeys(n.split(": ", 1)[1] for n in self.notes))
            return "identical" + (f" ({notes})" if notes else "")
        bad = [t for t in self.tables if t.differences]
        shown = [f"{t.table}: {t.differences[0]}" + (f" (+{len(t.differences) - 1})" if len(t.differences) > 1 else "")
                 for t in bad[:limit]]
        more = f"; {len(bad) - limit} more tables" if len(bad) > limit else ""
        return f"{len(self.differences)} differences in {len(bad)} of {len(self.tables)} tables: " + \
            "; ".join(shown) + more

    def to_json(self) -> dict[str, Any]:
        return {"schema": self.schema, "identical": self.identical, "summary": self.summary(),
                "differences": self.differences, "notes": self.notes, "seconds": round(self.seconds, 1),
                "tables": [{"table": t.table, "source_rows": t.rows[0], "result_rows": t.rows[1]} for t in self.tables]}


# --- the source's shape ------------------------------------------------------------------------------------

def source_tables(my: MySqlConnection, database: str) -> list[Table]:
    cursor = my.cursor()
    cursor.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s AND "
                   "table_type = 'BASE TABLE' ORDER BY table_name", (database,))
    # dbupdater's own history tables, should a run of the tool have left them in the source, are not data.
    names = [str(r[0]) for r in cursor.fetchall() if not str(r[0]).startswith("dbupdater_")]  # type: ignore[index]
    cursor.execute("SELECT table_name, column_name, data_type FROM information_schema.columns WHERE table_schema = %s "
                   "ORDER BY table_name, ordinal_position", (database,))
    columns = [(str(r[0]), str(r[1]), str(r[2]).lower()) for r in cursor.fetchall()]  # type: ignore[index]
    # MariaDB's JSON is LONGTEXT with a json_valid() check named after the column.
    cursor.execute("SELECT table_name, constraint_name FROM information_schema.check_constraints WHERE "
                   "constraint_schema = %s AND check_clause LIKE 'json_valid(%%'", (database,))
    json_columns = {(str(r[0]), str(r[1])) for r in cursor.fetchall()}  # type: ignore[index]
    cursor.execute("SELECT table_name, column_name FROM information_schema.statistics WHERE table_schema = %s AND "
                   "index_name = 'PRIMARY' ORDER BY table_name, seq_in_index", (database,))
    keys = [(str(r[0]), str(r[1])) for r in cursor.fetchall()]  # type: ignore[index]
    cursor.close()
    return [Table(name, tuple(Column(c, t, (name, c) in json_columns) for n, c, t in columns if n == name),
                  tuple(c for n, c in keys if n == name)) for name in names]


def result_schema(pg: PgConnection, tables: list[Table]) -> str | None:
    """The schema holding most of the source's tables (each tool picks its own: the database's name, public...)."""
    rows = pg.execute("SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                      "WHERE c.relkind IN ('r', 'p') AND n.nspname <> ALL(%s) AND n.nspname NOT LIKE 'pg\\_%%'",
                      (list(SKIP_SCHEMAS),)).fetchall()
    wanted = {t.name.lower() for t in tables}
    counts: dict[str, int] = {}
    for schema, table in rows:
        if str(table).lower() in wanted:
            counts[str(schema)] = counts.get(str(schema), 0) + 1
    return max(counts, key=lambda s: counts[s]) if counts else None


def result_table(pg: PgConnection, schema: str, name: str) -> tuple[str, dict[str, PgColumn]] | None:
    """The table's name as the tool wrote it (case may differ) and its columns by lower-cased name."""
    row = pg.execute("SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE "
                     "n.nspname = %s AND lower(c.relname) = lower(%s) AND c.relkind IN ('r', 'p')",
                     (schema, name)).fetchone()
    if row is None:
        return None
    real = str(row[0])
    columns = pg.execute("SELECT a.attname, t.typname, t.typcategory FROM pg_attribute a JOIN pg_type t ON "
                         "t.oid = a.atttypid WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
                         (pgsql.Identifier(schema, real).as_string(pg),)).fetchall()
    return real, {str(c[0]).lower(): PgColumn(str(c[0]), str(c[1]), str(c[2])) for c in columns}


# --- the figures -------------------------------------------------------------------------------------------

def my_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def my_hashsum(expr: str) -> str:
    return f"COALESCE(SUM(CAST(CONV(LEFT(MD5({expr}), 15), 16, 10) AS UNSIGNED)), 0)"


def pg_hashsum(expr: str) -> str:
    return f"COALESCE(sum(('x' || left(md5({expr}), 15))::bit(60)::bigint), 0)"


def pg_text(col: PgColumn) -> str:
    """A column's value as text the way MySQL shows it: sets as 'a,b', booleans as 0/1."""
    ident = pg_ident(col.name)
    if col.category == "A":
        return f"array_to_string({ident}, ',')"
    if col.category == "B":
        return f"({ident})::int::text"
    return f"({ident})::text"


def pg_number(col: PgColumn) -> str:
    ident = pg_ident(col.name)
    if col.category == "B":
        return f"({ident})::int::numeric"
    if col.category == "V":
        return f"({ident})::bigint::numeric"
    return f"({ident})::numeric"


def pg_bytes(col: PgColumn) -> str:
    ident = pg_ident(col.name)
    return ident if col.typname == "bytea" else f"convert_to(({ident})::text, 'UTF8')"


@dataclass(frozen=True)
class Figure:
    """One figure computed on both sides: what it is called in a difference, and its two expressions."""

    label: str
    column: str | None
    mysql: str
    postgres: str
    approximate: bool = False


def figures(table: Table, pg_columns: dict[str, PgColumn]) -> tuple[list[Figure], list[str]]:
    """The figures for one table, and the differences in shape (a column missing in the result)."""
    key_my = "CONCAT_WS(','," + ",".join(my_ident(k) for k in table.key) + ")" if table.key else "''"
    missing = [c.name for c in table.columns if c.name.lower() not in pg_columns]
    if any(k.lower() not in pg_columns for k in table.key):
        key_pg = "''"
        key_my = "''"
    else:
        key_pg = "concat_ws(','," + ",".join(pg_text(pg_columns[k.lower()]) for k in table.key) + ")" \
            if table.key else "''"
    out = [Figure("rows", None, "COUNT(*)", "count(*)")]
    if table.key and not table.integer_key:
        out.append(Figure("primary keys", None, my_hashsum(key_my), pg_hashsum(key_pg)))
    sep_my, sep_pg = "CHAR(31 USING utf8mb4)", "chr(31)"
    for column in table.columns:
        pg = pg_columns.get(column.name.lower())
        if pg is None:
            continue
        my, kind = my_ident(column.name), column.kind
        out.append(Figure("NULLs", column.name, f"COALESCE(SUM({my} IS NULL), 0)",
                          f"count(*) - count({pg_ident(pg.name)})"))
        if kind in ("int", "dec"):
            value = f"CAST({my} AS UNSIGNED)" if column.data_type == "bit" else my
            out.append(Figure("sum", column.name, f"COALESCE(SUM({value}), 0)", f"COALESCE(sum({pg_number(pg)}), 0)"))
        elif kind == "float":
            out.append(Figure("sum", column.name, f"COALESCE(SUM({my}), 0)",
                              f"COALESCE(sum(({pg_ident(pg.name)})::float8), 0)", approximate=True))
        elif kind in ("text", "json"):
            text = f"CONVERT({my} USING utf8mb4)"
            out.append(Figure("characters", column.name, f"COALESCE(SUM(CHAR_LENGTH({my})), 0)",
                              f"COALESCE(sum(char_length({pg_text(pg)})), 0)"))
            out.append(Figure("text", column.name, my_hashsum(f"CONCAT_WS({sep_my}, {key_my}, {text})"),
                              pg_hashsum(f"concat_ws({sep_pg}, {key_pg}, {pg_text(pg)})")))
        elif kind == "bin":
            out.append(Figure("bytes", column.name, f"COALESCE(SUM(LENGTH({my})), 0)",
                              f"COALESCE(sum(length({pg_bytes(pg)})), 0)"))
            out.append(Figure("content", column.name, my_hashsum(f"CONCAT({key_my}, CHAR(31), {my})"),
                              pg_hashsum(f"convert_to({key_pg} || chr(31), 'UTF8') || {pg_bytes(pg)}")))
        elif kind in ("when", "clock"):
            if kind == "when":
                my_value = f"DATE_FORMAT({my}, {TIME_FORMAT})"
                stamp = pg_ident(pg.name) if pg.typname == "timestamptz" else f"({pg_ident(pg.name)})::timestamp"
                pg_value = f"to_char({stamp}, {PG_TIME_FORMAT})"
            else:
                my_value = f"TIME_FORMAT({my}, '%H:%i:%s.%f')"
                pg_value = f"to_char(date '2000-01-01' + ({pg_ident(pg.name)})::time, 'HH24:MI:SS.US')"
            out.append(Figure("values", column.name, my_hashsum(f"CONCAT_WS({sep_my}, {key_my}, {my_value})"),
                              pg_hashsum(f"concat_ws({sep_pg}, {key_pg}, {pg_value})")))
    return out, [f"column {c} missing" for c in missing]


def _same(a: Any, b: Any, approximate: bool) -> bool:
    if a is None or b is None:
        return a is b
    if isinstance(a, str) or isinstance(b, str):
        return str(a) == str(b)
    da, db = Decimal(str(a)), Decimal(str(b))
    if approximate:
        return abs(da - db) <= Decimal("1e-9") * max(abs(da), abs(db), Decimal(1))
    return da == db


def _key_lists(my: MySqlConnection, pg: PgConnection, database: str, table: Table,
               schema: str, real: str, pg_columns: dict[str, PgColumn]) -> tuple[str, str]:
    """md5 of the sorted list of primary keys on both sides (integer keys: both servers sort them alike)."""
    order_my = ", ".join(my_ident(k) for k in table.key)
    key_my = "CONCAT_WS(','," + order_my + ")"
    cursor = my.cursor()
    cursor.execute("SET SESSION group_concat_max_len = 4294967295")
    cursor.execute(f"SELECT MD5(GROUP_CONCAT({key_my} ORDER BY {order_my} SEPARATOR '\\n')) "
                   f"FROM {my_ident(database)}.{my_ident(table.name)}")
    mine = cursor.fetchone()
    cursor.close()
    cols = [pg_columns[k.lower()] for k in table.key]
    order_pg = ", ".join(pg_number(c) for c in cols)
    key_pg = "concat_ws(','," + ",".join(pg_text(c) for c in cols) + ")"
    theirs = pg.execute(f"SELECT md5(string_agg({key_pg}, E'\\n' ORDER BY {order_pg})) "
                        f"FROM {pg_ident(schema)}.{pg_ident(real)}").fetchone()
    return str(mine[0] if mine else None), str(theirs[0] if theirs else None)  # type: ignore[index]


# --- value by value, where hashes cannot say enough --------------------------------------------------------

def _stream_mysql(info: RigInfo, query: str) -> Iterator[tuple[Any, ...]]:
    conn = mysql_connect(info)
    try:
        cursor = conn.cursor(buffered=False, raw=False)
        cursor.execute(query)
        while rows := cursor.fetchmany(5000):
            yield from (tuple(r) for r in rows)
        cursor.close()
    finally:
        conn.close()


def _stream_pg(info: RigInfo, database: str, query: str) -> Iterator[tuple[Any, ...]]:
    with pg_connect(info, database) as conn, conn.transaction(), conn.cursor(name="check") as cursor:
        cursor.itersize = 5000
        cursor.execute(query)
        yield from cursor


def _pairwise(info: RigInfo, dest: str, database: str, table: Table, schema: str, real: str,
              pg_columns: dict[str, PgColumn], column: Column, mysql_value: str,
              same: Callable[[Any, Any], bool]) -> tuple[int, str | None]:
    """Rows whose values differ by ``same``, walking both tables in key order; the first differing key."""
    order_my = ", ".join(my_ident(k) for k in table.key)
    key_my = "CONCAT_WS(','," + order_my + ")"
    cols = [pg_columns[k.lower()] for k in table.key]
    order_pg = ", ".join(pg_number(c) for c in cols) if table.integer_key else ", ".join(pg_text(c) for c in cols)
    key_pg = "concat_ws(','," + ",".join(pg_text(c) for c in cols) + ")"
    pg = pg_columns[column.name.lower()]
    mine = _stream_mysql(info, f"SELECT {key_my}, {mysql_value} FROM {my_ident(database)}.{my_ident(table.name)} "
                               f"ORDER BY {order_my}")
    theirs = _stream_pg(info, dest, f"SELECT {key_pg}, {pg_ident(pg.name)} FROM {pg_ident(schema)}.{pg_ident(real)} "
                                    f"ORDER BY {order_pg}")
    differ, first = 0, None
    for a, b in zip(mine, theirs, strict=False):
        if str(a[0]) != str(b[0]) or not same(a[1], b[1]):
            differ += 1
            first = first or str(a[0])
    return differ, first


def same_json(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    try:
        return bool(json.loads(a if isinstance(a, str) else json.dumps(a)) ==
                    json.loads(b if isinstance(b, str) else json.dumps(b)))
    except (TypeError, ValueError):
        return False


def _point(value: Any) -> tuple[float, ...] | bytes | None:
    """A point's coordinates from WKB, MySQL's internal form (SRID + WKB), hex text of either, or a PostgreSQL
    point '(x,y)' / 'POINT(x y)'; other geometries as their WKB bytes."""
    if value is None:
        return None
    if isinstance(value, memoryview):
        value = bytes(value)
    if isinstance(value, str):
        numbers = re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", value, re.IGNORECASE)
        if value.lstrip().startswith(("(", "POINT", "point")) and len(numbers) == 2:
            return tuple(float(n) for n in numbers)
        value = value.encode()
    if isinstance(value, bytes | bytearray):
        raw = bytes(value)
        if raw and HEX_RX.match(raw):
            raw = bytes.fromhex(raw.decode())
        if len(raw) in (21, 25) and raw[-21] in (0, 1):  # a point, in WKB or with MySQL's 4-byte SRID before it
            wkb = raw[-21:]
            order = "<" if wkb[0] == 1 else ">"
            if struct.unpack(order + "I", wkb[1:5])[0] == 1:
                return tuple(struct.unpack(order + "dd", wkb[5:21]))
        return raw
    return None


def same_geometry(a: Any, b: Any) -> bool:
    pa, pb = _point(a), _point(b)
    if isinstance(pa, tuple) and isinstance(pb, tuple):
        return len(pa) == len(pb) and all(abs(x - y) <= 1e-9 * max(1.0, abs(x)) for x, y in zip(pa, pb, strict=True))
    return pa == pb


# --- one table, one result ---------------------------------------------------------------------------------

def check_table(info: RigInfo, my: MySqlConnection, pg: PgConnection, database: str,
                dest: str, schema: str, table: Table) -> TableResult:
    found = result_table(pg, schema, table.name)
    cursor = my.cursor()
    cursor.execute(f"SELECT COUNT(*) FROM {my_ident(database)}.{my_ident(table.name)}")
    source_rows = int(cursor.fetchone()[0])  # type: ignore[index, arg-type]
    cursor.close()
    if found is None:
        return TableResult(table.name, (source_rows, 0), ["table missing"])
    real, pg_columns = found
    wanted, shape = figures(table, pg_columns)
    cursor = my.cursor()
    cursor.execute(f"SELECT {', '.join(f.mysql for f in wanted)} FROM {my_ident(database)}.{my_ident(table.name)}")
    mine = cursor.fetchone() or ()
    cursor.close()
    theirs = pg.execute(f"SELECT {', '.join(f.postgres for f in wanted)} "
                        f"FROM {pg_ident(schema)}.{pg_ident(real)}").fetchone() or ()
    result = TableResult(table.name, (source_rows, int(theirs[0]) if theirs else 0))
    failed = [(f, a, b) for f, a, b in zip(wanted, mine, theirs, strict=True) if not _same(a, b, f.approximate)]
    failed = _explain(info, pg, dest, database, schema, real, table, pg_columns, failed, result)
    for figure, a, b in failed:
        where = f"{figure.column} " if figure.column else ""
        if figure.label in ("rows", "NULLs", "sum", "characters", "bytes"):
            result.differences.append(f"{where}{figure.label} {a} vs {b}")
        else:
            result.differences.append(f"{where}{figure.label} differ")
    if table.integer_key and all(k.lower() in pg_columns for k in table.key):
        a, b = _key_lists(my, pg, database, table, schema, real, pg_columns)
        if a != b:
            result.differences.append("sorted primary keys differ")
    result.differences.extend(shape)
    # Most telling first: lost rows, then wrong keys, then the columns.
    result.differences.sort(key=lambda d: 0 if d.startswith("rows ") else 1 if d.startswith("sorted") else 2)
    return result


Failed = list[tuple[Figure, Any, Any]]


def _explain(info: RigInfo, pg: PgConnection, dest: str, database: str, schema: str,
             real: str, table: Table, pg_columns: dict[str, PgColumn], failed: Failed, result: TableResult) -> Failed:
    """Look closer where figures differ: a harmless reformatting becomes a note (its figures dropped), a known
    loss gets its name; geometry is compared here, value by value. The figures still to report."""
    keyed = bool(table.key) and all(k.lower() in pg_columns for k in table.key)
    for column in table.columns:
        pg_column = pg_columns.get(column.name.lower())
        mine = [item for item in failed if item[0].column == column.name]
        if pg_column is None or not keyed:
            continue
        if column.kind == "json" and mine and all(f.label in ("characters", "text") for f, _, _ in mine):
            differ, first = _pairwise(info, dest, database, table, schema, real, pg_columns, column,
                                      my_ident(column.name), same_json)
            if differ == 0:
                failed = [item for item in failed if item not in mine]
                result.notes.append(f"{column.name}: json text reformatted, same values")
            else:
                result.differences.append(f"{column.name}: {differ} json values differ (first key {first})")
        elif column.kind == "bin" and any(f.label == "content" for f, _, _ in mine):
            ident = pg_ident(pg_column.name)
            hexed = pg.execute(f"SELECT count(*) FILTER (WHERE encode({ident}, 'escape') ~ '^([0-9A-Fa-f]{{2}})+$'), "
                               f"count({ident}) FROM {pg_ident(schema)}.{pg_ident(real)}").fetchone()
            if hexed and hexed[0] and hexed[0] == hexed[1]:
                result.differences.append(f"{column.name}: holds the hex text of the bytes, not the bytes")
        elif column.kind == "geo":
            differ, first = _pairwise(info, dest, database, table, schema, real, pg_columns, column,
                                      f"ST_AsBinary({my_ident(column.name)})", same_geometry)
            if differ:
                result.differences.append(f"{column.name}: {differ} geometries differ (first key {first})")
    return failed


def check(info: RigInfo, database: str, dest: str) -> CheckResult:
    """Every base table of MySQL's ``database`` against the schema of PostgreSQL's ``dest`` that holds them."""
    my = mysql_connect(info)
    try:
        with pg_connect(info, dest) as pg:
            tables = source_tables(my, database)
            schema = result_schema(pg, tables)
            if schema is None:
                return CheckResult(None, [])
            return CheckResult(schema, [check_table(info, my, pg, database, dest, schema, t) for t in tables])
    finally:
        my.close()

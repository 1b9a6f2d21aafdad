"""The translation of a MySQL (MariaDB) catalog into a PostgreSQL plan: `translate(schema, options)`.

Text in, text out: every statement the copy runs on either server is made here, so the plan can be reviewed
before anything runs and tested without a server. What each TablePlan string holds:

- `create_sql`: `CREATE TABLE "schema"."table" (...);` with types, NOT NULL, defaults, identity and CHECKs; no
  keys or indexes (they come after the load, faster and checked once).
- `types_sql`: `CREATE TYPE "schema"."<table>_<column>" AS ENUM (...);` for the table's enum and set columns
  (also in `ConversionPlan.types_sql`, all tables together); `drop_sql`: `DROP TABLE IF EXISTS ... CASCADE;`
  then `DROP TYPE IF EXISTS` of those types (CASCADE also drops foreign keys of other tables that point at
  it: they are added again after the load).
- `after_load_sql`: primary key, unique keys and indexes, the identity restart (a DO block, printing nothing),
  `COMMENT ON` the table and its columns. `foreign_keys_sql`: `ADD CONSTRAINT ... NOT VALID` (once every table
  is loaded), `validate_sql`: `VALIDATE CONSTRAINT`. Each statement ends with `;`.
- `copy_sql`: `COPY "schema"."table" ("c1", ...) FROM STDIN;` (text format, the columns in `columns` order).
- `rows_sql` (MySQL, no trailing `;`): `SELECT CONCAT_WS(CHAR(9 USING utf8mb4), <field_sql>...) FROM
  `db`.`table` [WHERE NOT (<invalid>)]`: one line of COPY text per carried row, read with `mysql --batch
  --skip-column-names --raw --quick --default-character-set=utf8mb4` in a session with time_zone '+00:00'.
- `discarded_sql` (MySQL, no `;`): one COPY text line for `dbupdater_copy.discarded_rows (source, table_name,
  row_key, reason, row_text)` per row not carried: source is the session's `@dbupdater_source` user variable
  (`\\N` when unset), table_name the MySQL table's name, row_key the primary key's value (a JSON array of the
  values when the key has several columns; the whole row_text when there is no primary key), reason every
  failing column's reason joined by `; `, row_text a JSON object of the row's values (binaries and text that
  is not carried as `0x` + hex). A table whose values can all be carried gets `... WHERE 0` (no rows).
- `source_checksum_sql` (MySQL, no `;`) and `target_checksum_sql` (PostgreSQL, no `;`): one row, one value,
  `<count>\\t<sum>`, the sum of the first 15 hex digits of md5(canonical row) over the carried rows as an exact
  integer. The MySQL one needs the session's time_zone '+00:00' (as rows_sql does).
- The same reads in one pass over the source table instead of three (rows, checksum, discarded rows), for the
  copy's own session: `counted_rows_sql` writes what rows_sql writes and adds each row it writes into the
  session variables `@dbupdater_rows` and `@dbupdater_sum` (set to 0 and a DECIMAL 0 first:
  `COUNTED_SESSION_SQL`), `counted_checksum_sql` then gives what source_checksum_sql would; `skipped_sql` puts
  the table's row count less the rows written into `@dbupdater_skipped` (a count, far cheaper than testing
  every row again), and `discarded_if_skipped_sql` is discarded_sql, which scans only when that is not 0. A
  table whose values can all be carried has no skipped_sql and `... WHERE 0` there. Should the server ever
  count differently from what it wrote, the destination's own count differs from the checksum's, and the
  copy fails: never a silent loss.
- `ddl_sha256`: of types_sql, create_sql, after_load_sql and rows_sql, so a loaded table is skipped on a rerun
  only when neither its DDL nor the way it is read changed (MySQL's AUTO_INCREMENT counter, which moves with
  every insert, is left out of it).
- `followable` False with `not_followed_reason` for a table without a primary key; `notes`: everything of the
  table not carried, in words, its columns' notes included (`column <name>: ...`).

Per column (ColumnPlan): `name` and `target_type` as in CREATE TABLE; `field_sql` the MySQL expression of the
value as one COPY text field (`\\N` for NULL); `source_canonical` (MySQL) and `target_canonical` (PostgreSQL)
the value's canonical text, NULL for NULL (expressions.py says what it is per family); `invalid_sql` one
NULL-safe MySQL predicate, true when the value cannot be carried (None when every value can), and
`invalid_reason` every reason it may stand for, joined by `; `.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase

from ..model.errors import UsageError
from .ddl import (
    HASHED,
    column_sql,
    comment_sql,
    foreign_key_sql,
    identity_restart_sql,
    index_sql,
    primary_key_sql,
)
from .expressions import NULL_FIELD, Expressions, copy_escaped, expressions
from .model import (
    ColumnPlan,
    ConversionPlan,
    Family,
    SourceColumn,
    SourceSchema,
    SourceTable,
    TablePlan,
    TranslationOptions,
)
from .names import PG_NAME_BYTES, my_ident, my_literal, pg_ident, pg_literal, pg_name
from .types import Mapping, family, map_column

TAB = "CHAR(9 USING utf8mb4)"
UNIT = "CHAR(31 USING utf8mb4)"
RECORD = "CHAR(30 USING utf8mb4)"
PG_ARGUMENTS = 90  # PostgreSQL takes at most 100 arguments in a call, concat_ws's included
ZERO_DATES = ("discard", "null")
COLLATION_NOTE = ("text compares by PostgreSQL's collation (case-sensitive, no PAD SPACE), not by MySQL's "
                  "column collations")


class TranslationError(UsageError):
    """Options that cannot be applied to this catalog (exit 2, nothing runs)."""


def _check_options(schema: SourceSchema, options: TranslationOptions) -> str:
    if options.zero_dates not in ZERO_DATES:
        raise TranslationError(f"--zero-dates must be discard or null, not {options.zero_dates!r}")
    target = options.schema or schema.database
    if not target or len(target.encode("utf-8")) > PG_NAME_BYTES:
        raise TranslationError(f"--schema {target!r}: a PostgreSQL schema name is 1 to {PG_NAME_BYTES} bytes")
    names = [table.name for table in schema.tables]
    for option, patterns in (("--tables", options.tables), ("--exclude", options.exclude)):
        for pattern in patterns:
            if not any(fnmatchcase(name, pattern) for name in names):
                raise TranslationError(f"{option} {pattern!r} matches no table of {schema.database}")
    return target


def _selected(schema: SourceSchema, options: TranslationOptions) -> list[SourceTable]:
    return [table for table in schema.tables
            if (not options.tables or any(fnmatchcase(table.name, p) for p in options.tables))
            and not any(fnmatchcase(table.name, p) for p in options.exclude)]


def _enum_names(tables: list[SourceTable]) -> dict[tuple[str, str], str]:
    """`<table>_<column>` for every enum and set column, kept apart from each other and from the tables'
    own row types (a table is a type in PostgreSQL too)."""
    taken = {pg_name(table.name) for table in tables}
    names: dict[tuple[str, str], str] = {}
    for table in tables:
        for column in table.columns:
            if family(column) not in (Family.ENUM, Family.SET):
                continue
            base = pg_name(f"{table.name}_{column.name}")
            name, number = base, 1
            while name in taken:
                number += 1
                name = pg_name(f"{table.name}_{column.name}_{number}")
            taken.add(name)
            names[(table.name, column.name)] = name
    return names


def _bigint_columns(tables: list[SourceTable]) -> set[tuple[str, str]]:
    """bigint unsigned columns carried as bigint: auto_increment ones (an identity must be an integer type)
    and the columns whose foreign keys point at them (numeric cannot reference bigint)."""
    chosen = {(table.name, column.name) for table in tables for column in table.columns
              if column.data_type.lower() == "bigint" and column.unsigned and column.auto_increment}
    changed = True
    while changed:
        changed = False
        for table in tables:
            for key in table.foreign_keys:
                if key.referenced_schema is not None:
                    continue
                for column, referenced in zip(key.columns, key.referenced_columns, strict=False):
                    if (key.referenced_table, referenced) in chosen and (table.name, column) not in chosen:
                        chosen.add((table.name, column))
                        changed = True
    return chosen


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _pg_row(canonicals: list[str]) -> str:
    parts = [f"coalesce({item}, chr(30))" for item in canonicals]
    while len(parts) > PG_ARGUMENTS:
        parts = [f"concat_ws(chr(31), {', '.join(chunk)})" for chunk in _chunks(parts, PG_ARGUMENTS)]
    return f"concat_ws(chr(31), {', '.join(parts)})"


COUNTED_SESSION_SQL = "SET @dbupdater_rows = 0, @dbupdater_sum = CAST(0 AS DECIMAL(65, 0));"


def _md5_number(text: str) -> str:
    """The first 15 hex digits of md5(text) as an unsigned integer, as the destination computes it too."""
    return f"CAST(CONV(LEFT(MD5({text}), 15), 16, 10) AS UNSIGNED)"


def _my_row(canonicals: list[str]) -> str:
    return f"CONCAT_WS({UNIT}, {', '.join(f'COALESCE({item}, {RECORD})' for item in canonicals)})"


def _unique_keys(table: SourceTable) -> list[tuple[str, ...]]:
    """The column lists PostgreSQL will hold a plain unique index on (what a foreign key may reference):
    not prefix keys, nor MariaDB's hash keys on long values (both become expression indexes)."""
    families = {column.name: family(column) for column in table.columns}
    keys = [table.primary_key] if table.primary_key else []
    keys += [tuple(column for column, _ in index.columns) for index in table.indexes
             if index.unique and all(prefix is None and column in families for column, prefix in index.columns)
             and index.kind.upper() not in ("FULLTEXT", "SPATIAL")
             and not (index.kind.upper() == "HASH" and any(families[c] in HASHED for c, _ in index.columns))]
    return keys


@dataclass(frozen=True)
class _Reads:
    line: str  # the COPY text line of a row
    failing: str  # true for a row not carried ("" when every row is)
    discarded_select: str  # discarded_sql without its WHERE


class _Table:
    """One table's plan in the making."""

    def __init__(self, plan: _Plan, table: SourceTable) -> None:
        self.plan = plan
        self.table = table
        self.name = pg_name(table.name)
        self.qualified = f"{pg_ident(plan.schema)}.{pg_ident(self.name)}"
        self.source = f"{my_ident(plan.database)}.{my_ident(table.name)}"
        self.notes: list[str] = []
        self.mappings: dict[str, Mapping] = {}
        self.expressions: dict[str, Expressions] = {}
        self.columns: list[ColumnPlan] = []
        self.definitions: list[str] = []
        self.types: list[str] = []

    def build(self) -> TablePlan:
        table = self.table
        if self.name != table.name:
            self.notes.append(f"table name longer than {PG_NAME_BYTES} bytes: created as {self.name}")
        if table.table_type.upper() != "BASE TABLE":
            self.notes.append(f"{table.table_type.lower()} table: only its current rows are carried")
        for column in table.columns:
            self._column(column)
        self.notes += [f"check constraint {name} not carried: {clause}" for name, clause in table.checks]
        create = (f"CREATE TABLE {self.qualified} (\n  " + ",\n  ".join(self.definitions) + "\n);")
        after = self._after_load()
        foreign_keys, validates = self._foreign_keys()
        rows_sql, discarded_sql, reads = self._reads()
        where = f" WHERE NOT ({reads.failing})" if reads.failing else ""
        number = _md5_number(_my_row([e.source_canonical for e in self.expressions.values()]))
        source_checksum = f"SELECT CONCAT(COUNT(*), {TAB}, COALESCE(SUM({number}), 0)) FROM {self.source}{where}"
        # The sums ride on the line: '' when they are not NULL (never), so the line is rows_sql's, byte for byte.
        counted_rows = (f"SELECT CONCAT({reads.line}, IF((@dbupdater_rows := @dbupdater_rows + 1) + "
                        f"(@dbupdater_sum := @dbupdater_sum + {number}) IS NULL, NULL, '')) FROM {self.source}{where}")
        skipped = (f"SELECT COUNT(*) - @dbupdater_rows INTO @dbupdater_skipped FROM {self.source}"
                   if where else "")
        discarded_if_skipped = (f"{reads.discarded_select} WHERE @dbupdater_skipped <> 0 AND ({reads.failing})"
                                if where else discarded_sql)
        target_checksum = (f"SELECT count(*)::text || chr(9) || coalesce(sum(('x' || substr(md5("
                           f"{_pg_row([e.target_canonical for e in self.expressions.values()])}), 1, 15))::bit(60)"
                           f"::bigint), 0)::text FROM {self.qualified}")
        columns = ", ".join(pg_ident(column.name) for column in self.columns)
        # MySQL's AUTO_INCREMENT counter moves with every insert: it is left out, or a loaded table would
        # count as changed on the next run.
        restarts = {self._restart(column): self._restart(column, with_counter=False) for column in self.columns}
        stable = [restarts.get(sql, sql) for sql in after]
        digest = hashlib.sha256("\n".join([*self.types, create, *stable, rows_sql]).encode("utf-8")).hexdigest()
        drops = [f"DROP TABLE IF EXISTS {self.qualified} CASCADE;"]
        drops += [f"DROP TYPE IF EXISTS {pg_ident(self.plan.schema)}.{pg_ident(m.enum_name)};"
                  for m in self.mappings.values() if m.enum_name]
        return TablePlan(
            source=table, schema=self.plan.schema, name=self.name, columns=tuple(self.columns), create_sql=create,
            after_load_sql=tuple(after), foreign_keys_sql=tuple(foreign_keys), validate_sql=tuple(validates),
            rows_sql=rows_sql, discarded_sql=discarded_sql, source_checksum_sql=source_checksum,
            target_checksum_sql=target_checksum, copy_sql=f"COPY {self.qualified} ({columns}) FROM STDIN;",
            followable=bool(table.primary_key),
            not_followed_reason="" if table.primary_key else
            "no primary key: changes in the binary log cannot be matched to one row",
            notes=tuple(self.notes), ddl_sha256=digest, types_sql=tuple(self.types), drop_sql=tuple(drops),
            counted_rows_sql=counted_rows, skipped_sql=skipped, discarded_if_skipped_sql=discarded_if_skipped,
            counted_checksum_sql=f"SELECT CONCAT(@dbupdater_rows, {TAB}, @dbupdater_sum)")

    def _column(self, column: SourceColumn) -> None:
        plan = self.plan
        key = (self.table.name, column.name)
        mapping = map_column(column, enum_name=plan.enum_names.get(key, ""), schema=plan.schema,
                             as_bigint=key in plan.bigint_columns)
        exprs = expressions(column, mapping, zero_dates=plan.options.zero_dates)
        name = pg_name(column.name)
        definition, notes = column_sql(column, mapping, name)
        if name != column.name:
            notes.insert(0, f"column name longer than {PG_NAME_BYTES} bytes: created as {name}")
        if mapping.enum_name:
            labels = ", ".join(pg_literal(label) for label in mapping.members)
            self.types.append(f"CREATE TYPE {pg_ident(plan.schema)}.{pg_ident(mapping.enum_name)} AS ENUM ({labels});")
        self.mappings[column.name] = mapping
        self.expressions[column.name] = exprs
        self.definitions.append(definition)
        self.notes += [f"column {column.name}: {note}" for note in notes]
        self.columns.append(ColumnPlan(
            source=column, name=name, target_type=mapping.target_type, field_sql=exprs.field,
            source_canonical=exprs.source_canonical, target_canonical=exprs.target_canonical,
            invalid_sql=exprs.check,
            invalid_reason="; ".join(reason for _, reason in exprs.invalid), notes=tuple(notes), family=mapping.family,
            members=mapping.members, checks=exprs.checks,
            zero_as_null=exprs.zero_as_null))

    def _after_load(self) -> list[str]:
        table = self.table
        statements = [primary_key_sql(table, self.qualified)] if table.primary_key else []
        for index in table.indexes:
            statement, note = index_sql(table.name, self.qualified, index, self.mappings)
            if statement:
                statements.append(statement)
            if note:
                self.notes.append(note)
        statements += [sql for column in self.columns if (sql := self._restart(column))]
        if table.comment:
            statements.append(comment_sql(self.qualified, table.comment))
        statements += [comment_sql(f"{self.qualified}.{pg_ident(column.name)}", column.source.comment, "COLUMN")
                       for column in self.columns if column.source.comment]
        return statements

    def _restart(self, column: ColumnPlan, with_counter: bool = True) -> str:
        if not self.mappings[column.source.name].identity:
            return ""
        return identity_restart_sql(self.qualified, column.name, column.target_type,
                                    self.table.auto_increment if with_counter else None)

    def _foreign_keys(self) -> tuple[list[str], list[str]]:
        adds: list[str] = []
        validates: list[str] = []
        for key in self.table.foreign_keys:
            where = f"foreign key {key.name} ({', '.join(key.columns)}) to {key.referenced_table}"
            referenced = self.plan.tables.get(key.referenced_table)
            if key.referenced_schema is not None:
                self.notes.append(f"{where} in database {key.referenced_schema} not carried")
            elif key.referenced_table not in self.plan.source_names:
                self.notes.append(f"{where} not carried: the table is not in the catalog")
            elif referenced is None:
                self.notes.append(f"{where} not carried: that table is excluded from the copy")
            elif tuple(key.referenced_columns) not in _unique_keys(referenced) and \
                    sorted(key.referenced_columns) not in [sorted(k) for k in _unique_keys(referenced)]:
                self.notes.append(f"{where} not carried: PostgreSQL needs a primary or unique key on "
                                  f"({', '.join(key.referenced_columns)})")
            else:
                target = f"{pg_ident(self.plan.schema)}.{pg_ident(pg_name(key.referenced_table))}"
                add, validate = foreign_key_sql(self.qualified, key, target)
                adds.append(add)
                validates.append(validate)
        return adds, validates

    def _reads(self) -> tuple[str, str, _Reads]:
        """rows_sql, discarded_sql and their parts."""
        failing = [(predicate, reason) for e in self.expressions.values() for predicate, reason in e.invalid]
        any_failing = " OR ".join(f"({e.check})" for e in self.expressions.values() if e.check)
        where = f" WHERE NOT ({any_failing})" if failing else ""
        fields = ", ".join(e.field for e in self.expressions.values())
        line = f"CONCAT_WS({TAB}, {fields})"
        rows_sql = f"SELECT {line} FROM {self.source}{where}"
        displays = {name: e.display for name, e in self.expressions.items()}
        row_text = "JSON_OBJECT(" + ", ".join(f"{my_literal(name)}, {value}" for name, value in displays.items()) + ")"
        key = self.table.primary_key
        if not key:
            row_key = row_text
        elif len(key) == 1:
            row_key = displays[key[0]]
        else:
            row_key = "JSON_ARRAY(" + ", ".join(displays[column] for column in key) + ")"
        reason = (f"CONCAT_WS('; ', {', '.join(f'IF({p}, {my_literal(r)}, NULL)' for p, r in failing)})"
                  if failing else "''")
        fields_out = [f"IFNULL({copy_escaped(text)}, {NULL_FIELD})" for text in
                      ("@dbupdater_source", my_literal(self.table.name), row_key, reason, row_text)]
        select = f"SELECT CONCAT_WS({TAB}, {', '.join(fields_out)}) FROM {self.source}"
        discarded_sql = f"{select} WHERE {any_failing if failing else '0'}"
        return rows_sql, discarded_sql, _Reads(line, any_failing if failing else "", select)


class _Plan:
    def __init__(self, schema: SourceSchema, options: TranslationOptions, target: str) -> None:
        self.database = schema.database
        self.options = options
        self.schema = target
        selected = _selected(schema, options)
        self.tables = {table.name: table for table in selected}
        self.source_names = {table.name for table in schema.tables}
        self.enum_names = _enum_names(selected)
        self.bigint_columns = _bigint_columns(selected)


def translate(schema: SourceSchema, options: TranslationOptions) -> ConversionPlan:
    """The plan for copying `schema` into PostgreSQL under `options` (TranslationError: exit 2)."""
    target = _check_options(schema, options)
    plan = _Plan(schema, options, target)
    tables = tuple(_Table(plan, table).build() for table in plan.tables.values())
    excluded = sorted(plan.source_names - set(plan.tables))
    notes = [f"table {name} excluded from the copy" for name in excluded]
    if any(family(column) in (Family.TEXT, Family.ENUM, Family.SET) for t in plan.tables.values()
           for column in t.columns):
        notes.append(COLLATION_NOTE)
    return ConversionPlan(source=schema, schema=target, types_sql=tuple(s for t in tables for s in t.types_sql),
                          tables=tables, not_translated=schema.objects, notes=tuple(notes))

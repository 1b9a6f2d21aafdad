"""What a cross-engine copy knows: the source's catalog as read, and the plan the translation makes of it.

Plain frozen values (text in, text out), so the translation can be reviewed in a file, tested without a server,
and handed to the step that streams, the follower and the report alike. See docs/mysql-to-postgresql.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class Family(enum.Enum):
    """What a MySQL column is, for the copy (conversion/types.py's table): it decides how a value is written,
    what cannot be carried, its canonical text, and how the follower reads it from the binary log."""

    INTEGER = "integer"
    DECIMAL = "decimal"
    FLOAT = "float"
    BIT = "bit"
    ENUM = "enum"
    SET = "set"
    TEXT = "text"
    JSON = "json"
    BINARY = "binary"
    DATE = "date"
    DATETIME = "datetime"
    TIMESTAMP = "timestamp"
    TIME = "time"
    YEAR = "year"
    GEOMETRY = "geometry"
    UUID = "uuid"
    INET = "inet"
    OTHER = "other"


class Check(enum.Enum):
    """One reason the copy does not carry a value. The copy tests it with a MySQL predicate (expressions.py);
    the follower makes the same test on the value the binary log holds (follow/values.py), so both discard the
    same rows with the same words."""

    ABOVE_BIGINT = "above bigint"  # bigint unsigned carried as bigint
    NOT_A_MEMBER = "not a member"  # MySQL's '' error value of an enum (its number 0)
    JSON = "json"  # not valid JSON (JSON_VALID)
    CHARSET = "charset"  # text that does not survive the conversion from its character set to UTF-8
    NUL = "nul"  # text holding a NUL character
    ZERO_DATE = "zero date"  # a zero month or day (0000-00-00 included)
    YEAR_ZERO = "year zero"  # year 0 with a month and a day: PostgreSQL has no year 0
    NOT_IN_CALENDAR = "not in calendar"  # 2023-02-30 (ALLOW_INVALID_DATES)
    TIME_RANGE = "time range"  # a time outside 00:00:00 to 24:00:00


@dataclass(frozen=True)
class SourceColumn:
    name: str
    position: int
    data_type: str  # information_schema DATA_TYPE, lower case: "int", "varchar", "enum", "geometry"
    column_type: str  # COLUMN_TYPE, whole: "int(10) unsigned", "enum('a','b')", "decimal(5,2)"
    nullable: bool
    default: str | None  # COLUMN_DEFAULT as MariaDB reports it (quoted literals, NULL, current_timestamp())
    extra: str = ""  # EXTRA: "auto_increment", "on update current_timestamp()", "VIRTUAL GENERATED", ...
    generation_expression: str | None = None
    charset: str | None = None
    collation: str | None = None
    char_length: int | None = None
    numeric_precision: int | None = None
    numeric_scale: int | None = None
    datetime_precision: int | None = None
    comment: str = ""
    is_json: bool = False  # MariaDB's JSON is LONGTEXT with a json_valid CHECK: read from the checks

    @property
    def unsigned(self) -> bool:
        return "unsigned" in self.column_type.lower()

    @property
    def auto_increment(self) -> bool:
        return "auto_increment" in self.extra.lower()

    @property
    def generated(self) -> bool:
        return "generated" in self.extra.lower() and bool(self.generation_expression)


@dataclass(frozen=True)
class SourceIndex:
    name: str
    unique: bool
    columns: tuple[tuple[str, int | None], ...]  # (column, prefix length or None), in order
    kind: str = "BTREE"  # INDEX_TYPE: BTREE, HASH, FULLTEXT, SPATIAL
    descending: tuple[str, ...] = ()  # the columns whose key part is DESC (MariaDB 10.8+)


@dataclass(frozen=True)
class SourceForeignKey:
    name: str
    columns: tuple[str, ...]
    referenced_table: str
    referenced_columns: tuple[str, ...]
    on_update: str = "RESTRICT"
    on_delete: str = "RESTRICT"
    referenced_schema: str | None = None  # None: the same database


@dataclass(frozen=True)
class SourceTable:
    name: str
    columns: tuple[SourceColumn, ...]
    primary_key: tuple[str, ...] = ()
    indexes: tuple[SourceIndex, ...] = ()  # the primary key excluded
    foreign_keys: tuple[SourceForeignKey, ...] = ()
    comment: str = ""
    engine: str = ""
    charset: str | None = None
    rows_estimate: int = 0
    auto_increment: int | None = None  # the table's AUTO_INCREMENT counter
    checks: tuple[tuple[str, str], ...] = ()  # (name, clause) of CHECK constraints other than JSON's json_valid
    table_type: str = "BASE TABLE"  # or "SYSTEM VERSIONED" (MariaDB): its history is not carried


@dataclass(frozen=True)
class SourceObject:
    """A view, routine, trigger or event: listed as not translated, its MySQL DDL saved for a person."""

    kind: str  # "view", "procedure", "function", "trigger", "event"
    name: str
    ddl: str
    table: str | None = None  # a trigger's table


@dataclass(frozen=True)
class SourceSchema:
    database: str
    tables: tuple[SourceTable, ...]
    objects: tuple[SourceObject, ...] = ()
    server_version: str = ""

    def table(self, name: str) -> SourceTable:
        for table in self.tables:
            if table.name == name:
                return table
        raise KeyError(name)


@dataclass(frozen=True)
class ColumnPlan:
    source: SourceColumn
    name: str  # the PostgreSQL column name (unquoted)
    target_type: str  # PostgreSQL DDL type: "integer", "numeric(20,0)", "\"film_rating\"", "\"film_sf\"[]"
    field_sql: str  # MySQL expression: the value as one field of COPY text (escaped; '\N' for NULL)
    source_canonical: str  # MySQL expression: the canonical text of the value (NULL stays NULL)
    target_canonical: str  # PostgreSQL expression: the same canonical text from the copied value
    invalid_sql: str | None = None  # MySQL predicate: true when the value cannot be carried
    invalid_reason: str = ""  # words for the discarded-rows table ("zero date in column x")
    notes: tuple[str, ...] = ()  # what is not carried of this column, in words
    family: Family = Family.OTHER
    members: tuple[str, ...] = ()  # enum and set: the members in definition order (empty: the catalog cannot say)
    checks: tuple[tuple[Check, str], ...] = ()  # what the copy tests, in its order, with each reason's words
    zero_as_null: bool = False  # --zero-dates null on a nullable date column: a zero date is carried as NULL


@dataclass(frozen=True)
class TablePlan:
    source: SourceTable
    schema: str  # the PostgreSQL schema (unquoted)
    name: str
    columns: tuple[ColumnPlan, ...]
    create_sql: str  # CREATE TABLE (no keys, no indexes: they come after the load), CHECKs included
    after_load_sql: tuple[str, ...]  # primary key, unique keys, indexes, identity restart, comments
    foreign_keys_sql: tuple[str, ...]  # ALTER TABLE ... ADD CONSTRAINT ... NOT VALID (after every table loads)
    validate_sql: tuple[str, ...]  # ALTER TABLE ... VALIDATE CONSTRAINT
    rows_sql: str  # MySQL SELECT: one COPY text line per carried row
    discarded_sql: str  # MySQL SELECT: one COPY text line of dbupdater_copy.discarded_rows per row not carried
    source_checksum_sql: str  # MySQL SELECT: "<count>\t<sum>" over the carried rows
    target_checksum_sql: str  # PostgreSQL SELECT: "<count>\t<sum>" over the table
    copy_sql: str  # PostgreSQL: COPY "schema"."table" ("c1", ...) FROM STDIN
    followable: bool = True
    not_followed_reason: str = ""
    notes: tuple[str, ...] = ()  # what is not carried of this table, in words
    ddl_sha256: str = ""  # of types_sql, create_sql, after_load_sql and rows_sql: a rerun skips a loaded table
    #                       only when neither its DDL nor what is read for it changed
    types_sql: tuple[str, ...] = ()  # the CREATE TYPE statements of this table's enum and set columns
    drop_sql: tuple[str, ...] = ()  # DROP TABLE IF EXISTS ... CASCADE, then DROP TYPE IF EXISTS of its types
    # One pass instead of three on the source (translate.py's docstring): rows_sql that also adds each row into
    # the checksum's session variables; how many rows it left out; discarded_sql run only when it left some out;
    # and the checksum line from those variables (what source_checksum_sql computes in a pass of its own).
    counted_rows_sql: str = ""
    skipped_sql: str = ""  # empty: a table whose every value can be carried leaves nothing out
    discarded_if_skipped_sql: str = ""
    counted_checksum_sql: str = ""

    @property
    def qualified(self) -> str:
        return f"{_pg_ident(self.schema)}.{_pg_ident(self.name)}"


OBJECTS_FILE = "mysql-objects.sql"  # where `copy-db --plan DIR` writes objects_sql(), named by not_carried()


@dataclass(frozen=True)
class ConversionPlan:
    source: SourceSchema
    schema: str
    types_sql: tuple[str, ...]  # CREATE TYPE ... AS ENUM
    tables: tuple[TablePlan, ...]
    not_translated: tuple[SourceObject, ...] = ()
    notes: tuple[str, ...] = field(default_factory=tuple)

    def table(self, name: str) -> TablePlan:
        for table in self.tables:
            if table.source.name == name:
                return table
        raise KeyError(name)

    @property
    def schema_sql(self) -> str:
        return "CREATE SCHEMA IF NOT EXISTS " + _pg_ident(self.schema) + ";"

    def ddl(self) -> str:
        """The whole PostgreSQL script in run order, for review: schema, types, tables, what follows each
        table's load, foreign keys, their validation."""
        sections = [
            ("schema", (self.schema_sql,)),
            ("enum types", self.types_sql),
            ("tables (loaded right after each is created)", tuple(t.create_sql for t in self.tables)),
            ("after each table's load: keys, indexes, identity restarts, comments",
             tuple(s for t in self.tables for s in t.after_load_sql)),
            ("foreign keys, once every table is loaded", tuple(s for t in self.tables for s in t.foreign_keys_sql)),
            ("validation of the foreign keys", tuple(s for t in self.tables for s in t.validate_sql)),
        ]
        out = [f"-- copy of MySQL database {self.source.database} into PostgreSQL schema {self.schema}"]
        for title, statements in sections:
            if statements:
                out += ["", f"-- {title}", *statements]
        return "\n".join(out) + "\n"

    def not_carried(self) -> list[str]:
        """Everything the copy does not carry, in words: the plan's notes, each table's, the objects."""
        lines = list(self.notes)
        for table in self.tables:
            lines += [f"{table.source.name}: {note}" for note in table.notes]
            if not table.followable:
                lines.append(f"{table.source.name}: not followed by --follow: {table.not_followed_reason}")
        lines += [f"{obj.kind} {obj.name}" + (f" (on {obj.table})" if obj.table else "") +
                  f": not translated; its MySQL DDL is in {OBJECTS_FILE}" for obj in self.not_translated]
        return lines

    def objects_sql(self) -> str:
        """The MySQL DDL of the views, routines, triggers and events, for a person to translate by hand."""
        out = [f"-- objects of MySQL database {self.source.database} that copy-db does not translate"]
        for obj in self.not_translated:
            out += ["", f"-- {obj.kind} {obj.name}" + (f" on table {obj.table}" if obj.table else "")]
            if obj.kind == "view" or obj.kind == "sequence":
                out.append(obj.ddl + ";")
            else:
                out += ["DELIMITER ;;", obj.ddl + ";;", "DELIMITER ;"]
        return "\n".join(out) + "\n"


def _pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class TranslationOptions:
    schema: str | None = None  # None: the source database's name
    tables: tuple[str, ...] = ()  # only these (empty: all); names or fnmatch patterns
    exclude: tuple[str, ...] = ()
    zero_dates: str = "discard"  # or "null"

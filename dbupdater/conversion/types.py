"""The types table of docs/mysql-to-postgresql.md: which family a MySQL column belongs to, and the PostgreSQL
type, CHECKs and enum type it becomes.

A family decides everything else about a column (how it is written as COPY text, what cannot be carried, its
canonical text), so `expressions` works from the family and never reads a type name again.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .model import Family, SourceColumn
from .names import pg_column, pg_ident, pg_literal

BIGINT_MAX = 9223372036854775807
PG_LABEL_BYTES = 63  # enum labels are names


FAMILIES = {
    **dict.fromkeys(("tinyint", "smallint", "mediumint", "int", "integer", "bigint"), Family.INTEGER),
    **dict.fromkeys(("decimal", "numeric", "dec", "fixed"), Family.DECIMAL),
    **dict.fromkeys(("float", "double", "real", "double precision"), Family.FLOAT),
    "bit": Family.BIT, "enum": Family.ENUM, "set": Family.SET,
    **dict.fromkeys(("char", "varchar", "tinytext", "text", "mediumtext", "longtext"), Family.TEXT),
    "json": Family.JSON,
    **dict.fromkeys(("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"), Family.BINARY),
    "date": Family.DATE, "datetime": Family.DATETIME, "timestamp": Family.TIMESTAMP, "time": Family.TIME,
    "year": Family.YEAR,
    **dict.fromkeys(("geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
                     "geometrycollection", "geomcollection"), Family.GEOMETRY),
    "uuid": Family.UUID, "inet4": Family.INET, "inet6": Family.INET,
}

# (PostgreSQL type, range of the MySQL type) by MySQL type; unsigned ones move one size up.
SIGNED = {"tinyint": "smallint", "smallint": "smallint", "mediumint": "integer", "int": "integer",
          "integer": "integer", "bigint": "bigint"}
UNSIGNED = {"tinyint": ("smallint", 255), "smallint": ("integer", 65535), "mediumint": ("integer", 16777215),
            "int": ("bigint", 4294967295), "integer": ("bigint", 4294967295),
            "bigint": ("numeric(20,0)", 18446744073709551615)}

LITERAL = re.compile(r"'((?:[^'\\]|''|\\.)*)'", re.DOTALL)
ESCAPES = {"0": "\0", "b": "\b", "n": "\n", "r": "\r", "t": "\t", "Z": "\x1a"}


def unquote(literal: str) -> str:
    """The value of one MySQL string literal's inside (quotes doubled, backslash escapes)."""
    out: list[str] = []
    index = 0
    while index < len(literal):
        char = literal[index]
        if char == "\\" and index + 1 < len(literal):
            out.append(ESCAPES.get(literal[index + 1], literal[index + 1]))
            index += 2
        elif char == "'" and literal[index:index + 2] == "''":
            out.append("'")
            index += 2
        else:
            out.append(char)
            index += 1
    return "".join(out)


def members(column_type: str) -> tuple[str, ...]:
    """The members of enum('a','b') or set('a','b') in definition order."""
    inside = column_type[column_type.index("(") + 1:column_type.rindex(")")]
    return tuple(unquote(match.group(1)) for match in LITERAL.finditer(inside))


def family(column: SourceColumn) -> Family:
    if column.is_json:
        return Family.JSON
    return FAMILIES.get(column.data_type.lower(), Family.OTHER)


@dataclass(frozen=True)
class Mapping:
    family: Family
    target_type: str  # as written in CREATE TABLE
    checks: tuple[str, ...] = ()  # CHECK expressions on the column
    enum_name: str | None = None  # the enum type this column uses (unquoted), made by types_sql
    members: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    identity: bool = False
    bigint_identity: bool = False  # bigint unsigned carried as bigint: values above 2^63-1 are discarded


def _precision(column: SourceColumn) -> str:
    precision = column.datetime_precision
    return f"({precision})" if precision else "(0)"


def _length(column: SourceColumn) -> int | None:
    match = re.search(r"\((\d+)\)", column.column_type)
    return int(match.group(1)) if match else column.char_length


def map_column(column: SourceColumn, *, enum_name: str, schema: str, as_bigint: bool = False) -> Mapping:
    """The PostgreSQL side of one column. `enum_name` is the free type name for an enum or set column;
    `as_bigint` carries a bigint unsigned as bigint (identity columns and the columns that reference them)."""
    kind = family(column)
    name = pg_column(column.name)
    data_type = column.data_type.lower()
    identity = column.auto_increment and kind is Family.INTEGER
    if kind is Family.INTEGER:
        if not column.unsigned:
            return Mapping(kind, SIGNED[data_type], identity=identity)
        target, maximum = UNSIGNED[data_type]
        if data_type == "bigint" and (identity or as_bigint):
            return Mapping(kind, "bigint", (f"{name} >= 0",), identity=identity, bigint_identity=True,
                           notes=("bigint unsigned carried as bigint: values above 9223372036854775807 are "
                                  "discarded",))
        return Mapping(kind, target, (f"{name} BETWEEN 0 AND {maximum}",), identity=identity)
    if kind is Family.DECIMAL:
        declared = re.search(r"\((\d+)(?:,(\d+))?\)", column.column_type)
        precision = int(declared.group(1)) if declared else column.numeric_precision or 10
        scale = int(declared.group(2) or 0) if declared else column.numeric_scale or 0
        return Mapping(kind, f"numeric({precision},{scale})", (f"{name} >= 0",) if column.unsigned else ())
    if kind is Family.FLOAT:
        target = "real" if data_type == "float" else "double precision"
        return Mapping(kind, target, (f"{name} >= 0",) if column.unsigned else ())
    if kind is Family.BIT:
        return Mapping(kind, f"bit({_length(column) or 1})")
    if kind in (Family.ENUM, Family.SET):
        labels = members(column.column_type)
        array = "[]" if kind is Family.SET else ""
        if any("?" in label for label in labels):
            # MariaDB keeps table definitions in utf8mb3: a 4-byte character of a member (an emoji) reads back
            # as '?' from the catalog, so the members are not known for sure.
            return Mapping(kind, "text" + array, notes=(
                f"{kind.value} carried as text{array} without a CHECK: the catalog shows a member with '?' "
                "(MariaDB writes 4-byte characters of a definition as '?'), so the members are not known",))
        if not labels or any(len(label.encode("utf-8")) > PG_LABEL_BYTES for label in labels):
            allowed = ", ".join(pg_literal(label) for label in labels)
            check = (f"{name} <@ ARRAY[{allowed}]::text[]" if kind is Family.SET else f"{name} IN ({allowed})")
            return Mapping(kind, "text" + array, (check,) if labels else (), members=labels,
                           notes=(f"{kind.value} carried as text{array} with a CHECK: a member is longer than "
                                  f"{PG_LABEL_BYTES} bytes, PostgreSQL's limit for enum labels",))
        return Mapping(kind, f"{pg_ident(schema)}.{pg_ident(enum_name)}{array}", enum_name=enum_name,
                       members=labels)
    if kind is Family.TEXT:
        length = _length(column)
        if data_type in ("char", "varchar") and length:
            return Mapping(kind, f"{data_type}({length})")
        return Mapping(kind, "text")
    if kind is Family.JSON:
        return Mapping(kind, "json")
    if kind is Family.BINARY:
        return Mapping(kind, "bytea")
    if kind is Family.DATE:
        return Mapping(kind, "date")
    if kind is Family.DATETIME:
        return Mapping(kind, f"timestamp{_precision(column)}")
    if kind is Family.TIMESTAMP:
        return Mapping(kind, f"timestamptz{_precision(column)}")
    if kind is Family.TIME:
        return Mapping(kind, f"time{_precision(column)}")
    if kind is Family.YEAR:
        return Mapping(kind, "smallint")
    if kind is Family.GEOMETRY:
        return Mapping(kind, "bytea", notes=(f"{data_type} carried as WKB in bytea (ST_AsBinary): the SRID is not "
                                             "carried and PostGIS is not assumed",))
    if kind is Family.UUID:
        return Mapping(kind, "uuid")
    if kind is Family.INET:
        return Mapping(kind, "inet")
    return Mapping(kind, "text", notes=(f"type {column.column_type} carried as its text (CAST AS CHAR)",))

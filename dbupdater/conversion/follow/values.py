"""A value as the binary log reader (mysql-replication) gives it, as PostgreSQL's input text for the column's
type: what the copy writes as a COPY field, written here as a statement parameter that the statement casts to
the column's type (`%s::<type>`). bytea values stay bytes.

The reader's own readings are corrected where they lose what MySQL had: an empty SET arrives as None (told apart
by its `none_sources` entry "empty set"), a zero date as None ("out of date range"), a zero TIMESTAMP as the
epoch, YEAR 0000 as 1900, BINARY(n) without its trailing zero bytes, geometry with MySQL's 4-byte SRID before
the WKB. A value the copy would not carry (a zero date without `--zero-dates null`, a time outside a day, an
invalid ENUM value, a NUL in text) makes the row unfit: it is recorded as discarded, never changed.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
from dataclasses import dataclass

from ..model import ColumnPlan

ZERO_DATE_SOURCES = ("out of date range", "out of datetime range", "out of datetime2 range")
EMPTY_SET = "empty set"
INTEGERS = ("tinyint", "smallint", "mediumint", "int", "integer", "bigint")
TEXTS = ("char", "varchar", "tinytext", "text", "mediumtext", "longtext", "json")
BINARIES = ("binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob")
GEOMETRIES = ("geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon",
              "geometrycollection", "geomcollection")
DAY = datetime.timedelta(hours=24)
EPOCH = datetime.datetime(1970, 1, 1)
_MEMBER = re.compile(r"'((?:[^']|'')*)'")


@dataclass(frozen=True)
class Unfit:
    """The row cannot be carried, and why (words for `dbupdater_copy.discarded_rows`)."""

    reason: str


Value = str | bytes | None


def members(column_type: str) -> tuple[str, ...]:
    """The members of `enum('a','b')` / `set('x','y')`, in definition order (quotes doubled inside)."""
    inner = column_type[column_type.index("(") + 1:column_type.rindex(")")]
    return tuple(match.group(1).replace("''", "'") for match in _MEMBER.finditer(inner))


def array_literal(items: list[str]) -> str:
    """A PostgreSQL array's input text: every element quoted, so commas, braces and spaces in members survive."""
    return "{" + ",".join('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items) + "}"


def interval_text(value: datetime.timedelta) -> str:
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    text = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{text}.{value.microseconds:06d}" if value.microseconds else text


def pg_value(column: ColumnPlan, value: object, none_source: str = "", zero_dates: str = "discard") -> Value | Unfit:
    """The parameter for one column of a row image, or why the row cannot be carried."""
    source = column.source
    kind = source.data_type.lower()
    if value is None:
        if none_source in ZERO_DATE_SOURCES:
            return _zero_date(column, zero_dates)
        if none_source == EMPTY_SET:
            return "{}"
        if none_source and none_source not in ("null", "cols bitmap"):
            return Unfit(f"{none_source} in column {source.name}")
        return None
    if kind in INTEGERS:
        return str(value)
    if kind == "year":
        return "0" if value == 1900 else str(value)  # the reader adds 1900 to YEAR's byte, 0 included
    if kind in ("decimal", "numeric"):
        return format(value, "f") if isinstance(value, decimal.Decimal) else str(value)
    if kind in ("float", "double", "real"):
        return repr(value)
    if kind == "bit":
        return str(value)
    if kind == "enum":
        if value == "" and "" not in members(source.column_type):
            return Unfit(f"invalid ENUM value (the empty string) in column {source.name}")
        return str(value)
    if kind == "set":
        chosen = set(value) if isinstance(value, (set, frozenset, list, tuple)) else set(str(value).split(","))
        return array_literal([member for member in members(source.column_type) if member in chosen])
    if kind in BINARIES:
        data = _bytes(value)
        if kind == "binary" and source.char_length and len(data) < source.char_length:
            data += b"\0" * (source.char_length - len(data))  # MySQL pads BINARY(n); the log does not
        return data
    if kind in GEOMETRIES:
        return _bytes(value)[4:]  # MySQL's internal form is a 4-byte SRID followed by the WKB
    if kind == "date":
        return value.isoformat() if isinstance(value, datetime.date) else str(value)
    if kind == "datetime":
        return value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else str(value)
    if kind == "timestamp":
        if value == EPOCH:
            return _zero_date(column, zero_dates)  # TIMESTAMP's zero is stored as 0 and read as the epoch
        if isinstance(value, datetime.datetime):
            return value.replace(tzinfo=datetime.timezone.utc).isoformat(sep=" ")
        return str(value)
    if kind == "time":
        if isinstance(value, datetime.timedelta):
            if value < datetime.timedelta(0) or value > DAY:
                return Unfit(f"time outside 00:00:00 to 24:00:00 in column {source.name}")
            return interval_text(value)
        return str(value)
    if kind in TEXTS or isinstance(value, str):
        text = _text(value)
        if text is None:
            return Unfit(f"text that is not valid in its character set in column {source.name}")
        if "\0" in text:
            return Unfit(f"NUL byte in column {source.name}")
        return text
    if isinstance(value, (dict, list)):
        return json.dumps(value)  # MySQL's binary JSON (MariaDB's JSON is text and arrives as it was written)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value)


def _zero_date(column: ColumnPlan, zero_dates: str) -> Value | Unfit:
    if zero_dates == "null" and column.source.nullable:
        return None
    return Unfit(f"zero date in column {column.source.name}")


def _bytes(value: object) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    return str(value).encode("utf-8")


def _text(value: object) -> str | None:
    if isinstance(value, (bytes, bytearray)):
        try:
            return bytes(value).decode("utf-8")
        except UnicodeDecodeError:
            return None
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)

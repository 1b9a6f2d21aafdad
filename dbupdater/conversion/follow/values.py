"""A value of a binary log row image, judged and written as the copy judges and writes it.

The copy decides in MySQL (conversion/expressions.py): per column, a list of checks (`ColumnPlan.checks`: what
is tested, with the reason's words), the value as COPY text, and its display for the discarded rows. The
follower gets the same ColumnPlan and makes the same tests, in the same order, with the same words, on the value
as MySQL stored it; nothing here reads a MySQL type name again: the family, the members, the checks and whether
zero dates become NULL are the translation's. steps/follow_reading.py has the log read so that nothing the tests
need is lost: dates that Python's datetime cannot hold come as `Stored`, enum and set values as the number MySQL
stored (`Choice`), strings as their bytes.

What a value becomes: PostgreSQL's input text for the column's type (a statement parameter cast to the type,
`%s::<type>`; bytes for bytea), or `Unfit` with the reasons of every check it fails. A row with an unfit value
goes to `dbupdater_copy.discarded_rows` as the copy writes it: `display` is each column's display expression of
the copy computed here, `json_object` and `json_array` write them as MariaDB's JSON_OBJECT and JSON_ARRAY do.

Text in a character set other than UTF-8 is converted by the source server (`Convert`, given by the step), as the
copy has it converted: Python's codecs and MySQL's tables differ on some bytes.
"""

from __future__ import annotations

import datetime
import decimal
import json
import socket
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ..model import Check, ColumnPlan, Family
from ..types import BIGINT_MAX

UTF8 = ("utf8mb4", "utf8mb3", "utf8")
DAY = datetime.timedelta(hours=24)
EPOCH = datetime.datetime(1970, 1, 1)
YEAR_OFFSET = 1900  # the reader adds it to YEAR's stored byte, 0 (YEAR 0000) included
FIXED = range(-15, 15)  # powers of ten MariaDB writes a double in without an exponent
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True)
class Stored:
    """A DATE, DATETIME or TIMESTAMP as MySQL stored it, when Python's datetime cannot hold it: a zero month or
    day (0000-00-00 included), year 0, a day not in the calendar (ALLOW_INVALID_DATES)."""

    year: int
    month: int
    day: int
    hour: int = 0
    minute: int = 0
    second: int = 0
    microsecond: int = 0


@dataclass(frozen=True)
class Choice:
    """An ENUM value (its member's number; 0 is MySQL's '' error value) or a SET value (a bit per member) as
    MySQL stored it, with the members the binary log lists for the column in definition order (the follower's
    where the catalog cannot show them: it writes a 4-byte character of a member as '?')."""

    number: int
    listed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Unfit:
    """The row cannot be carried: the reasons of every check its values fail, in the copy's order and words."""

    reasons: tuple[str, ...]

    @property
    def reason(self) -> str:
        return "; ".join(self.reasons)


Value = str | bytes | None
Convert = Callable[[bytes, str], tuple[str, bool]]
"""(bytes, MySQL character set) -> (the text as the source server converts it to UTF-8, whether it converts back
to the same bytes): what the copy's conversion and its CHARSET check say."""


def array_literal(items: Iterable[str]) -> str:
    """A PostgreSQL array's input text: every element quoted, so commas, braces and spaces in members survive."""
    return "{" + ",".join('"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"' for item in items) + "}"


def interval_text(value: datetime.timedelta) -> str:
    seconds = int(value.total_seconds())
    hours, rest = divmod(seconds, 3600)
    text = f"{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
    return f"{text}.{value.microseconds:06d}" if value.microseconds else text


def mariadb_double(x: float) -> str:
    """CAST(<double> AS CHAR) as MariaDB writes it: the shortest digits that read back as the same double (Python's
    repr finds the same ones), without an exponent from 1e-15 to below 1e15, else `<d.ddd>e<exponent>`."""
    if x == 0:
        return "0"
    digits = decimal.Decimal(repr(abs(x))).normalize()
    sign = "-" if x < 0 else ""
    shown = digits.as_tuple()
    exponent = len(shown.digits) - 1 + int(shown.exponent)
    if exponent in FIXED:
        return sign + format(digits, "f")
    text = "".join(str(d) for d in shown.digits)
    return f"{sign}{text[0]}{'.' + text[1:] if len(text) > 1 else ''}e{exponent}"


def json_string(text: str) -> str:
    """A JSON string as MariaDB's JSON functions write it: `"` `\\` and the control characters escaped (\\u00XX
    upper case where JSON has no short escape), everything else as it is."""
    out = []
    for char in text:
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif char < " ":
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def _json_value(value: str | None) -> str:
    return "null" if value is None else json_string(value)


def json_object(pairs: Iterable[tuple[str, str | None]]) -> str:
    """MariaDB's JSON_OBJECT(k1, v1, ...) of texts (None: null)."""
    return "{" + ", ".join(f"{json_string(key)}: {_json_value(value)}" for key, value in pairs) + "}"


def json_array(values: Iterable[str | None]) -> str:
    """MariaDB's JSON_ARRAY(v1, ...) of texts (None: null)."""
    return "[" + ", ".join(_json_value(value) for value in values) + "]"


def json_valid(text: str) -> bool:
    """JSON_VALID as MariaDB answers it: a JSON text (a scalar too), without NaN or Infinity, raw control
    characters in strings or an unpaired surrogate escape."""

    def refuse(constant: str) -> Any:
        raise ValueError(constant)

    try:
        parsed = json.loads(text, parse_constant=refuse)
        json.dumps(parsed, ensure_ascii=False).encode("utf-8")  # an unpaired surrogate cannot be encoded
    except (ValueError, UnicodeEncodeError, RecursionError):
        return False
    return True


# --- reading -----------------------------------------------------------------------------------------------


def _raw(value: object) -> bytes:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    return str(value).encode("utf-8")


def _text(column: ColumnPlan, raw: bytes, convert: Convert | None) -> tuple[str, bool]:
    """The text the copy reads (the column's character set converted to UTF-8) and whether it survives."""
    charset = (column.source.charset or "utf8mb4").lower()
    if charset in UTF8:
        try:
            return raw.decode("utf-8"), True
        except UnicodeDecodeError:
            raise ValueError(f"column {column.source.name}: bytes that are not {charset}, its character set, in "
                             "the binary log") from None
    if convert is None:
        raise ValueError(f"column {column.source.name}: {charset} text needs the source's conversion")
    return convert(raw, charset)


def _members(column: ColumnPlan, choice: Choice) -> tuple[str, ...]:
    return column.members or choice.listed


def _chosen(column: ColumnPlan, value: object) -> tuple[Choice, list[str]]:
    """The members an ENUM or SET value stands for (an enum's error value: none)."""
    choice = value if isinstance(value, Choice) else Choice(0)
    members = _members(column, choice)
    if column.family is Family.ENUM:
        if choice.number > len(members):
            raise ValueError(f"column {column.source.name}: enum value number {choice.number} beyond its "
                             f"{len(members)} members (the table changed since it was copied?)")
        return choice, [members[choice.number - 1]] if choice.number else []
    if choice.number >> len(members):
        raise ValueError(f"column {column.source.name}: set value {choice.number:#x} beyond its {len(members)} "
                         "members (the table changed since it was copied?)")
    return choice, [member for bit, member in enumerate(members) if choice.number >> bit & 1]


def _parts(column: ColumnPlan, value: object) -> tuple[int, int, int, int, int, int, int]:
    """A date's parts as MySQL stored them (year, month, day, hour, minute, second, microsecond)."""
    if isinstance(value, Stored):
        return (value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond)
    if isinstance(value, datetime.datetime):
        if column.family is Family.TIMESTAMP and value == EPOCH:
            return (0, 0, 0, 0, 0, 0, 0)  # TIMESTAMP's zero is stored as 0 seconds: the reader's epoch
        return (value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond)
    if isinstance(value, datetime.date):
        return (value.year, value.month, value.day, 0, 0, 0, 0)
    raise ValueError(f"column {column.source.name}: {value!r} is not a date")


def _in_calendar(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def _date_text(column: ColumnPlan, parts: tuple[int, ...], fraction: bool) -> str:
    """DATE_FORMAT's text of the parts: '%Y-%m-%d' for a date, with ' %H:%i:%s' and '.%f' (always six digits
    when `fraction`, else only when there is one) for the others."""
    year, month, day, hour, minute, second, micro = parts
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if column.family is Family.DATE:
        return text
    text += f" {hour:02d}:{minute:02d}:{second:02d}"
    return text + f".{micro:06d}" if fraction or micro else text


def _time_text(value: datetime.timedelta) -> str:
    """TIME_FORMAT(c, '%H:%i:%s.%f')."""
    sign = "-" if value < datetime.timedelta(0) else ""
    whole = abs(value)
    hours, rest = divmod(whole.days * 86400 + whole.seconds, 3600)
    return f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}.{whole.microseconds:06d}"


def _binary(column: ColumnPlan, value: object) -> bytes:
    data = _raw(value)
    if column.family is Family.GEOMETRY:
        return data[4:]  # MySQL's internal form is a 4-byte SRID followed by the WKB (what ST_AsBinary gives)
    length = column.source.char_length
    if column.source.data_type.lower() == "binary" and length and len(data) < length:
        data += b"\0" * (length - len(data))  # MySQL pads BINARY(n); the log does not
    return data


def _special(column: ColumnPlan, value: object) -> str:
    """A UUID or INET4/INET6 value as CAST(c AS CHAR) writes it (the log holds their bytes)."""
    if not isinstance(value, (bytes, bytearray)):
        return str(value)
    four = column.source.data_type.lower() == "inet4"
    data = bytes(value).ljust(4 if four else 16, b"\0")  # the log leaves out trailing zero bytes, as for BINARY(n)
    if column.family is Family.UUID:
        return str(uuid.UUID(bytes=data))
    return socket.inet_ntop(socket.AF_INET if four else socket.AF_INET6, data)


@dataclass(frozen=True)
class _Judged:
    """One value: what PostgreSQL gets, which checks fail (the facts), and the text the copy displays."""

    param: Value
    failing: frozenset[Check] = frozenset()
    display: str | None = None


def _judge(column: ColumnPlan, value: object, convert: Convert | None) -> _Judged:
    family = column.family
    if family is Family.INTEGER:
        number = int(value)  # type: ignore[call-overload]
        return _Judged(str(number), frozenset({Check.ABOVE_BIGINT} if number > BIGINT_MAX else ()), str(number))
    if family is Family.DECIMAL:
        text = format(value, "f") if isinstance(value, decimal.Decimal) else str(value)
        return _Judged(text, display=text)
    if family is Family.YEAR:
        year = int(value)  # type: ignore[call-overload]
        text = "0" if year == YEAR_OFFSET else str(year)
        return _Judged(text, display=text)
    if family is Family.FLOAT:
        number = float(value)  # type: ignore[arg-type]
        return _Judged(repr(number), display=mariadb_double(number))
    if family is Family.BIT:
        return _Judged(str(value), display=str(value))
    if family in (Family.ENUM, Family.SET):
        choice, chosen = _chosen(column, value)
        if family is Family.ENUM:
            text = chosen[0] if chosen else ""
            return _Judged(text, frozenset({Check.NOT_A_MEMBER} if choice.number == 0 else ()), text)
        return _Judged(array_literal(chosen), display=",".join(chosen))
    if family in (Family.TEXT, Family.JSON):
        raw = _raw(value)
        text, survives = _text(column, raw, convert)
        facts = {Check.CHARSET: not survives, Check.NUL: "\0" in text}
        if family is Family.JSON:
            facts[Check.JSON] = not json_valid(text)
        failing = frozenset(check for check, fails in facts.items() if fails)
        shown = "0x" + raw.hex().upper() if failing & {check for check, _ in column.checks} else text
        return _Judged(text, failing, shown)
    if family in (Family.BINARY, Family.GEOMETRY):
        data = _binary(column, value)
        return _Judged(data, display="0x" + data.hex().upper())
    if family in (Family.DATE, Family.DATETIME, Family.TIMESTAMP):
        return _judge_date(column, value)
    if family is Family.TIME:
        if not isinstance(value, datetime.timedelta):
            return _Judged(str(value), display=str(value))
        outside = value < datetime.timedelta(0) or value > DAY
        return _Judged(interval_text(value), frozenset({Check.TIME_RANGE} if outside else ()), _time_text(value))
    if family in (Family.UUID, Family.INET):
        text = _special(column, value)
        return _Judged(text, display=text)
    text = _raw(value).decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)
    return _Judged(text, display=text)


def _judge_date(column: ColumnPlan, value: object) -> _Judged:
    parts = _parts(column, value)
    year, month, day = parts[:3]
    zero = month == 0 or day == 0
    facts = {Check.ZERO_DATE: zero, Check.YEAR_ZERO: year == 0 and not zero,
             Check.NOT_IN_CALENDAR: not zero and year != 0 and not _in_calendar(year, month, day)}
    failing = frozenset(check for check, fails in facts.items() if fails)
    display = _date_text(column, parts, fraction=True)
    if zero and column.zero_as_null:
        return _Judged(None, display=display)
    text = _date_text(column, parts, fraction=False)
    return _Judged(text + ("+00" if column.family is Family.TIMESTAMP else ""), failing, display)


def _judged(column: ColumnPlan, value: object, none_source: str, convert: Convert | None) -> _Judged | Unfit:
    if value is None:
        if none_source in ("", "null"):
            return _Judged(None)
        return Unfit((f"{column.source.name}: {none_source} in the binary log",))
    return _judge(column, value, convert)


def pg_value(column: ColumnPlan, value: object, none_source: str = "", convert: Convert | None = None) -> Value | Unfit:
    """The parameter for one column of a row image, or the reasons the copy would give for not carrying it."""
    judged = _judged(column, value, none_source, convert)
    if isinstance(judged, Unfit):
        return judged
    failing = tuple(reason for check, reason in column.checks if check in judged.failing)
    return Unfit(failing) if failing else judged.param


def display(column: ColumnPlan, value: object, none_source: str = "", convert: Convert | None = None) -> str | None:
    """The value as the copy shows it in a discarded row (its display expression): None for NULL."""
    judged = _judged(column, value, none_source, convert)
    return None if isinstance(judged, Unfit) else judged.display

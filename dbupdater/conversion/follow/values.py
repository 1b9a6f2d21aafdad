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


def _refuse(constant: str) -> Any:
    raise ValueError(constant)


_JSON = json.JSONDecoder(parse_constant=_refuse)  # NaN and Infinity are not JSON


def json_valid(text: str) -> bool:
    """JSON_VALID as MariaDB answers it: a JSON text (a scalar too), without NaN or Infinity, raw control
    characters in strings or an unpaired surrogate escape."""
    try:
        parsed = _JSON.decode(text)
        if "\\u" in text:  # only an escape can make an unpaired surrogate, which UTF-8 cannot encode
            json.dumps(parsed, ensure_ascii=False).encode("utf-8")
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


# --- per family: (the parameter, the checks it fails) and the copy's display --------------------------------

NONE: frozenset[Check] = frozenset()
Judged = tuple[Value, frozenset[Check]]
Judge = Callable[[ColumnPlan, object, "Convert | None"], Judged]
Display = Callable[[ColumnPlan, object, "Convert | None"], str]


def _integer(column: ColumnPlan, value: object, convert: Convert | None) -> Judged:
    number = int(value)  # type: ignore[call-overload]
    return str(number), NONE if number <= BIGINT_MAX else frozenset({Check.ABOVE_BIGINT})


def _decimal(column: ColumnPlan, value: object, convert: Convert | None) -> Judged:
    return (format(value, "f") if isinstance(value, decimal.Decimal) else str(value)), NONE


def _year(column: ColumnPlan, value: object, convert: Convert | None) -> Judged:
    year = int(value)  # type: ignore[call-overload]
    return ("0" if year == YEAR_OFFSET else str(year)), NONE


def _float(column: ColumnPlan, value: object, convert: Convert | None) -> Judged:
    return repr(float(value)), NONE  # type: ignore[arg-type]


def _plain(column: ColumnPlan, value: object, convert: Convert | None) -> Judged:
    return str(value), NONE


def _enum(column: ColumnPlan, value: object, convert: Convert | None) -> Judged:
    choice, chosen = _chosen(column, value)
    return (chosen[0] if chosen else ""), NONE if choice.number else frozenset({Check.NOT_A_MEMBER})


def _set(column: ColumnPlan, value: object, convert: Convert | None) -> Judged:
    return array_literal(_chosen(column, value)[1]), NONE


def _judge_text(column: ColumnPlan, value: object, convert: Convert | None) -> tuple[bytes, str, frozenset[Check]]:
    raw = _raw(value)
    text, survives = _text(column, raw, convert)
    failing = set()
    if not survives:
        failing.add(Check.CHARSET)
    if "\0" in text:
        failing.add(Check.NUL)
    if column.family is Family.JSON and not json_valid(text):
        failing.add(Check.JSON)
    return raw, text, frozenset(failing) if failing else NONE


def _text_value(column: ColumnPlan, value: object, convert: Convert | None) -> Judged:
    _, text, failing = _judge_text(column, value, convert)
    return text, failing


def _binary_value(column: ColumnPlan, value: object, convert: Convert | None) -> Judged:
    return _binary(column, value), NONE


def _date(column: ColumnPlan, value: object, convert: Convert | None) -> Judged:
    if type(value) is datetime.datetime and not (column.family is Family.TIMESTAMP and value == EPOCH):
        text = value.isoformat(sep=" ")  # the common case: a date Python holds
        return (text + "+00" if column.family is Family.TIMESTAMP else text), NONE
    if type(value) is datetime.date:
        return value.isoformat(), NONE
    parts = _parts(column, value)
    year, month, day = parts[:3]
    zero = month == 0 or day == 0
    if zero and column.zero_as_null:
        return None, NONE
    failing = {Check.ZERO_DATE} if zero else {Check.YEAR_ZERO} if year == 0 else \
        set() if _in_calendar(year, month, day) else {Check.NOT_IN_CALENDAR}
    text = _date_text(column, parts, fraction=False)
    return text + ("+00" if column.family is Family.TIMESTAMP else ""), frozenset(failing)


def _time(column: ColumnPlan, value: object, convert: Convert | None) -> Judged:
    if not isinstance(value, datetime.timedelta):
        return str(value), NONE
    outside = value < datetime.timedelta(0) or value > DAY
    return interval_text(value), frozenset({Check.TIME_RANGE}) if outside else NONE


def _special_value(column: ColumnPlan, value: object, convert: Convert | None) -> Judged:
    return _special(column, value), NONE


def _other(column: ColumnPlan, value: object, convert: Convert | None) -> Judged:
    return (_raw(value).decode("utf-8", "replace") if isinstance(value, (bytes, bytearray)) else str(value)), NONE


JUDGES: dict[Family, Judge] = {
    Family.INTEGER: _integer, Family.DECIMAL: _decimal, Family.YEAR: _year, Family.FLOAT: _float, Family.BIT: _plain,
    Family.ENUM: _enum, Family.SET: _set, Family.TEXT: _text_value, Family.JSON: _text_value,
    Family.BINARY: _binary_value, Family.GEOMETRY: _binary_value, Family.DATE: _date, Family.DATETIME: _date,
    Family.TIMESTAMP: _date, Family.TIME: _time, Family.UUID: _special_value, Family.INET: _special_value,
    Family.OTHER: _other,
}


def _shown_text(column: ColumnPlan, value: object, convert: Convert | None) -> str:
    raw, text, failing = _judge_text(column, value, convert)
    return "0x" + raw.hex().upper() if failing & {check for check, _ in column.checks} else text


def _shown_date(column: ColumnPlan, value: object, convert: Convert | None) -> str:
    return _date_text(column, _parts(column, value), fraction=True)


def _shown_time(column: ColumnPlan, value: object, convert: Convert | None) -> str:
    return _time_text(value) if isinstance(value, datetime.timedelta) else str(value)


def _shown_judged(column: ColumnPlan, value: object, convert: Convert | None) -> str:
    return str(JUDGES[column.family](column, value, convert)[0])


DISPLAYS: dict[Family, Display] = {
    **dict.fromkeys(Family, _shown_judged),
    Family.FLOAT: lambda column, value, convert: mariadb_double(float(value)),  # type: ignore[arg-type]
    Family.ENUM: lambda column, value, convert: "".join(_chosen(column, value)[1]),
    Family.SET: lambda column, value, convert: ",".join(_chosen(column, value)[1]),
    Family.TEXT: _shown_text, Family.JSON: _shown_text,
    Family.BINARY: lambda column, value, convert: "0x" + _binary(column, value).hex().upper(),
    Family.GEOMETRY: lambda column, value, convert: "0x" + _binary(column, value).hex().upper(),
    Family.DATE: _shown_date, Family.DATETIME: _shown_date, Family.TIMESTAMP: _shown_date, Family.TIME: _shown_time,
}


class Reader:
    """One column's judging, chosen once from its family (a row image is read column by column, often)."""

    __slots__ = ("column", "judge", "shown")

    def __init__(self, column: ColumnPlan) -> None:
        self.column = column
        self.judge = JUDGES[column.family]
        self.shown = DISPLAYS[column.family]

    def value(self, value: object, none_source: str = "", convert: Convert | None = None) -> Value | Unfit:
        """The parameter for the column's value, or the reasons the copy would give for not carrying it."""
        column = self.column
        if value is None:
            if none_source in ("", "null"):
                return None
            return Unfit((f"{column.source.name}: {none_source} in the binary log",))
        param, failing = self.judge(column, value, convert)
        if failing:
            reasons = tuple(reason for check, reason in column.checks if check in failing)
            if reasons:
                return Unfit(reasons)
        return param

    def display(self, value: object, convert: Convert | None = None) -> str | None:
        """The value as the copy shows it in a discarded row (its display expression): None for NULL."""
        return None if value is None else self.shown(self.column, value, convert)


def pg_value(column: ColumnPlan, value: object, none_source: str = "", convert: Convert | None = None) -> Value | Unfit:
    """The parameter for one column of a row image, or the reasons the copy would give for not carrying it."""
    return Reader(column).value(value, none_source, convert)


def display(column: ColumnPlan, value: object, none_source: str = "", convert: Convert | None = None) -> str | None:
    """The value as the copy shows it in a discarded row (its display expression): None for NULL."""
    return Reader(column).display(value, convert)

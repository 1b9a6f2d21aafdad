"""Per column, the expressions both servers compute: the MySQL expression that writes a value as one field of
PostgreSQL's COPY text format, the MySQL predicates that say a value cannot be carried, and the canonical text
of the value on either side for the checksum.

COPY text (https://www.postgresql.org/docs/current/sql-copy.html): fields separated by a tab, `\\N` for NULL,
and inside a field a backslash, tab, newline and carriage return written as `\\\\`, `\\t`, `\\n`, `\\r`; every
other byte stands for itself. The source session is utf8mb4 with time_zone '+00:00' (the reading of
TIMESTAMP columns and their canonical text depend on it). Literals never hold a backslash: NO_BACKSLASH_ESCAPES
would change their meaning, so `names.my_literal` writes those in hex.

Canonical texts, identical on both servers for a carried value:
- integers, decimals, year: the decimal text (MySQL's and PostgreSQL's agree, trailing zeros of the scale too);
- floats: `<sign><m>p<e>`, the exact binary value (m the 53-bit significand as an integer, e the binary
  exponent), computed with exact arithmetic on both sides (division by powers of two), `0` for zero; no
  decimal printing is involved, so extra_float_digits and the servers' float formatting do not matter;
- bit: the 0/1 digits; text, enum, json: the text; set: the members joined by `,`; binaries and geometry
  (WKB): the MD5 of their bytes (lower-case hex; hashing the bytes costs both servers a fraction of formatting
  and hashing hex text twice their size); inet: lower-case hex; uuid: its text;
- date `YYYY-MM-DD`, datetime and timestamp `YYYY-MM-DD HH:MM:SS.ffffff` (timestamps in UTC), time
  `HH:MM:SS.ffffff`.

Verified on MariaDB 10.11 (tests/test_conversion_types.py; its CAST(double AS CHAR) writes the shortest text
that reads back as the same double, checked on 5,000 random bit patterns). Where MySQL 8 differs, untested:
`CAST(.. AS DOUBLE)` needs 8.0.17; its JSON type is binary, so `CONVERT(json USING utf8mb4)` is its normalised
text (keys sorted), not the text as written; ST_AsBinary writes geographic SRSs latitude first unless asked
for `'axis-order=long-lat'`; UUID, INET4 and INET6 are MariaDB's types only.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import Check, Family, SourceColumn
from .names import charset_name, my_ident, my_literal, pg_column
from .types import BIGINT_MAX, Mapping

NULL_FIELD = my_literal("\\N")
UTF8 = ("utf8mb4", "utf8mb3", "utf8")
DATE_FORMAT = "%Y-%m-%d"
DATETIME_FORMAT = "%Y-%m-%d %H:%i:%s"
TIME_FORMAT = "%H:%i:%s"


COPY_ESCAPES = (("\\", "\\\\"), ("\t", "\\t"), ("\n", "\\n"), ("\r", "\\r"))
ARRAY_ESCAPES = (("\\", "\\\\"), ('"', '\\"'))


def _bytes(text: str) -> str:
    return f"X'{text.encode().hex()}'"


def _replaced(text: str, escapes: tuple[tuple[str, str], ...]) -> str:
    """`text`'s UTF-8 bytes with each of `escapes` replaced, in order. On bytes: the characters replaced are
    ASCII, which no other UTF-8 character's bytes contain, so replacing bytes is replacing characters; and
    MariaDB's REPLACE on bytes is a plain search, where on utf8mb4 text it steps through every character
    (measured: the four of a 900k-row table's `text` column took 2.3 of the 7 CPU-seconds of its export)."""
    text = f"CAST({text} AS BINARY)"
    for raw, escaped in escapes:
        text = f"REPLACE({text}, {_bytes(raw)}, {_bytes(escaped)})"
    return text


def copy_escaped(text: str) -> str:
    """A utf8mb4 text expression escaped for COPY text (backslash first), as bytes."""
    return _replaced(text, COPY_ESCAPES)


def array_escaped(text: str) -> str:
    """Text escaped for a double-quoted element of a PostgreSQL array literal, as bytes."""
    return _replaced(text, ARRAY_ESCAPES)


def _plain(members: tuple[str, ...], escapes: tuple[tuple[str, str], ...]) -> bool:
    """Enum or set members none of which holds a character that `escapes` would change."""
    return bool(members) and not any(raw in member for member in members for raw, _ in escapes)


def hex_field(binary: str) -> str:
    """bytea in COPY text: `\\x` + hex, the backslash itself escaped for COPY (MariaDB's upper-case hex, which
    PostgreSQL reads as well as lower: one pass less over text twice the size of the bytes)."""
    return f"CONCAT({my_literal(chr(92) * 2 + 'x')}, HEX({binary}))"


def float_canonical_mysql(x: str) -> str:
    exponent0 = f"LEAST(GREATEST(FLOOR(LOG2(ABS({x}))), -1074), 1023)"
    ratio = f"ABS({x}) / POW(2, {exponent0})"
    exponent = f"({exponent0} - ({ratio} < 1) + ({ratio} >= 2))"
    return (f"IF({x} = 0, '0', CONCAT(IF({x} < 0, '-', ''), "
            f"CAST(ABS({x}) / POW(2, {exponent}) * 4503599627370496 AS SIGNED), 'p', {exponent}))")


def float_canonical_pg(x: str) -> str:
    exponent0 = f"least(greatest(floor(ln(abs({x})) / ln(2::float8)), -1074), 1023)"
    ratio = f"abs({x}) / power(2::float8, {exponent0})"
    exponent = f"({exponent0} - ({ratio} < 1)::int + ({ratio} >= 2)::int)"
    return (f"CASE WHEN {x} = 0 THEN '0' ELSE (CASE WHEN {x} < 0 THEN '-' ELSE '' END) || "
            f"(abs({x}) / power(2::float8, {exponent}) * 4503599627370496)::bigint::text || 'p' || "
            f"{exponent}::int::text END")


@dataclass(frozen=True)
class Expressions:
    field: str  # MySQL: the COPY text field, NULL included
    source_canonical: str  # MySQL: canonical text, NULL for NULL
    target_canonical: str  # PostgreSQL: the same from the copied value
    invalid: tuple[tuple[str, str], ...]  # (MySQL predicate, reason): each NULL-safe, true when not carried
    checks: tuple[tuple[Check, str], ...]  # what each of `invalid` tests, with its reason (the follower's tests)
    check: str | None  # MySQL: one NULL-safe predicate, true exactly when one of `invalid` is (cheaper to scan)
    display: str  # MySQL: the value as a person reads it in a discarded row (hex for bytes)
    zero_as_null: bool = False  # a zero date is carried as NULL (--zero-dates null, a nullable column)


def _guarded(column: str, predicate: str, nullable: bool = True) -> str:
    # False for NULL; a predicate that comes out NULL for a value counts as failing (never silently lost).
    return f"IFNULL({column} IS NOT NULL AND ({predicate}), 1)" if nullable else f"IFNULL({predicate}, 1)"


def _fraction(precision: int | None, fmt: str) -> str:
    return f"{fmt}.%f" if precision else fmt


def _formatted(function: str, column: str, fmt: str, precision: int | None) -> str:
    """DATE_FORMAT / TIME_FORMAT with as many fractional digits as the column has."""
    full = f"{function}({column}, '{_fraction(precision, fmt)}')"
    if precision and precision < 6:
        return f"LEFT({full}, CHAR_LENGTH({full}) - {6 - precision})"
    return full


def expressions(column: SourceColumn, mapping: Mapping, *, zero_dates: str) -> Expressions:
    c = my_ident(column.name)
    p = pg_column(column.name)
    name = column.name
    kind = mapping.family
    invalid: list[tuple[str, str, Check]] = []
    value: str  # the field before NULL handling
    source: str
    target = f"{p}::text"
    display: str | None = None
    zero_as_null = False
    if kind in (Family.INTEGER, Family.DECIMAL):
        value = source = f"CAST({c} AS CHAR)"
        if mapping.bigint_identity:
            invalid.append((f"{c} > {BIGINT_MAX}", f"{name}: above 9223372036854775807 (bigint)", Check.ABOVE_BIGINT))
    elif kind is Family.YEAR:
        value = source = f"CAST({c} + 0 AS CHAR)"
    elif kind is Family.FLOAT:
        double = f"CAST({c} AS DOUBLE)"
        value = f"CAST({double} AS CHAR)"
        display = value
        source = float_canonical_mysql(double)
        target = float_canonical_pg(f"{p}::float8")
    elif kind is Family.BIT:
        width = int(mapping.target_type[4:-1])
        value = source = f"LPAD(BIN({c} + 0), {width}, '0')"
    elif kind in (Family.TEXT, Family.JSON, Family.ENUM, Family.SET, Family.OTHER):
        text = f"CONVERT({c} USING utf8mb4)" if kind is not Family.OTHER else f"CAST({c} AS CHAR)"
        source = text
        # The field is the value's UTF-8 bytes: a column stored in UTF-8 is taken as it is, without a conversion.
        stored_utf8 = kind is not Family.OTHER and (column.charset or "").lower() in UTF8
        as_utf8 = c if stored_utf8 else text
        value = copy_escaped(as_utf8)
        if kind is Family.ENUM and _plain(mapping.members, COPY_ESCAPES):
            value = f"CAST({as_utf8} AS BINARY)"
        if kind is Family.SET:
            escaped = (f"CAST({as_utf8} AS BINARY)" if _plain(mapping.members, (*ARRAY_ESCAPES, *COPY_ESCAPES))
                       else copy_escaped(array_escaped(as_utf8)))
            elements = f"REPLACE({escaped}, ',', '\",\"')"
            value = f"IF({c} + 0 = 0, '{{}}', CONCAT('{{\"', {elements}, '\"}}'))"
            target = f"array_to_string({p}, ',')"
        if kind is Family.ENUM:
            invalid.append((f"{c} + 0 = 0", f"{name}: not a member of the enum (MySQL's '' error value)",
                            Check.NOT_A_MEMBER))
        checked = kind in (Family.TEXT, Family.JSON)  # enum and set values are their (UTF-8 defined) members
        if checked and column.charset and column.charset.lower() not in UTF8:
            charset = charset_name(column.charset)
            invalid.append((f"CAST(CONVERT({text} USING {charset}) AS BINARY) <> CAST({c} AS BINARY)",
                            f"{name}: text that does not survive the conversion from {charset} to UTF-8",
                            Check.CHARSET))
        utf8 = not column.charset or column.charset.lower() in UTF8  # a zero byte there is only U+0000
        if checked:
            invalid.append((f"LOCATE(X'00', CAST({c if utf8 else text} AS BINARY)) > 0",
                            f"{name}: text holding a NUL character", Check.NUL))
        if kind is Family.JSON:
            invalid.insert(0, (f"JSON_VALID({c}) = 0", f"{name}: not valid JSON", Check.JSON))
        if checked:
            display = f"IF({' OR '.join(predicate for predicate, _, _ in invalid)}, CONCAT('0x', HEX({c})), {text})"
    elif kind in (Family.BINARY, Family.GEOMETRY):
        binary = f"ST_AsBinary({c})" if kind is Family.GEOMETRY else c
        value = hex_field(binary)
        source = f"MD5({binary})"  # of the bytes: hex text twice the size would be formatted, then hashed
        target = f"md5({p})"
        display = f"CONCAT('0x', HEX({binary}))"
    elif kind is Family.UUID:
        value = source = f"CAST({c} AS CHAR)"
    elif kind is Family.INET:
        value = f"CAST({c} AS CHAR)"
        source = f"LOWER(HEX({c}))"
        target = f"encode(substr(inet_send({p}), 5), 'hex')"
        display = value
    elif kind is Family.TIME:
        value = _formatted("TIME_FORMAT", c, TIME_FORMAT, column.datetime_precision)
        source = f"TIME_FORMAT({c}, '{TIME_FORMAT}.%f')"
        target = f"to_char({p}, 'HH24:MI:SS.US')"
        invalid.append((f"{c} < TIME'00:00:00' OR {c} > TIME'24:00:00'",
                        f"{name}: time outside 00:00:00 to 24:00:00", Check.TIME_RANGE))
    else:  # DATE, DATETIME, TIMESTAMP
        # MariaDB's date arithmetic gives NULL for a zero date, a zero month or day, year 0 and a day that is
        # not in the calendar (ALLOW_INVALID_DATES): one call tells them all apart from good dates.
        uncarried = f"{c} + INTERVAL 0 DAY IS NULL"
        date_only = kind is Family.DATE
        fmt = DATE_FORMAT if date_only else DATETIME_FORMAT
        value = _formatted("DATE_FORMAT", c, fmt, None if date_only else column.datetime_precision)
        source = f"DATE_FORMAT({c}, '{fmt if date_only else DATETIME_FORMAT + '.%f'}')"
        if kind is Family.TIMESTAMP:
            value = f"CONCAT({value}, '+00')"
            target = f"to_char({p} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US')"
        else:
            target = f"to_char({p}, '{'YYYY-MM-DD' if date_only else 'YYYY-MM-DD HH24:MI:SS.US'}')"
        display = source
        zero = f"MONTH({c}) = 0 OR DAYOFMONTH({c}) = 0"
        zero_as_null = zero_dates == "null" and column.nullable
        if zero_as_null:
            value = f"IF({zero}, NULL, {value})"
            source = f"IF({zero}, NULL, {source})"
            uncarried += f" AND MONTH({c}) <> 0 AND DAYOFMONTH({c}) <> 0"
        else:
            invalid.append((zero, f"{name}: zero date" + (" in a NOT NULL column" if zero_dates == "null" else ""),
                            Check.ZERO_DATE))
        invalid.append((f"YEAR({c}) = 0 AND MONTH({c}) <> 0 AND DAYOFMONTH({c}) <> 0",
                        f"{name}: year 0 (PostgreSQL has no year 0)", Check.YEAR_ZERO))
        invalid.append((f"YEAR({c}) <> 0 AND MONTH({c}) <> 0 AND DAYOFMONTH({c}) <> 0 AND {c} + INTERVAL 0 DAY IS NULL",
                        f"{name}: not a date in the calendar", Check.NOT_IN_CALENDAR))
    nullable = column.nullable
    guarded = tuple((_guarded(c, predicate, nullable), reason) for predicate, reason, _ in invalid)
    if kind in (Family.DATE, Family.DATETIME, Family.TIMESTAMP):
        check: str | None = _guarded(c, uncarried, nullable)
    else:
        check = _guarded(c, " OR ".join(f"({p})" if len(invalid) > 1 else p for p, _, _ in invalid), nullable) \
            if invalid else None
    return Expressions(field=f"IFNULL({value}, {NULL_FIELD})", source_canonical=source, target_canonical=target,
                       invalid=guarded, checks=tuple((what, reason) for _, reason, what in invalid), check=check,
                       display=display or source, zero_as_null=zero_as_null)

"""The binary log's row values as MySQL stored them, for the follower's decisions (conversion/follow/values.py).

mysql-replication reads a row image into Python values and, on the way, loses what the copy's decisions need:
a DATE or DATETIME that Python's datetime cannot hold (a zero month or day, year 0, a day not in the calendar
stored with ALLOW_INVALID_DATES) comes back as None, or, for a DATE not in the calendar, raises and loses the
whole event; an ENUM or SET value comes back as its member's text from the log's metadata decoded as UTF-8 ('' for
a member in another character set); text comes back decoded by Python's codec for its character set (which
differs from MySQL's on some bytes, and raises on others). Here those readings are replaced: such dates come as
`Stored`, ENUM and SET values as the number MySQL stored (`Choice`, with the log's own list of members), strings
as the bytes MySQL stored. Every other value is the library's reading.

The replacement is a subclass of each rows event class whose reading methods override the library's (private,
name-mangled: `_RowsEvent__read_date` and so on); an event is given that class before its rows are read (the
library reads them on first use). `check()` refuses, naming the version, a library without those methods.
"""

from __future__ import annotations

import datetime
from typing import Any

from ..conversion.follow import Choice, Stored

READERS = ("_RowsEvent__read_values_name", "_RowsEvent__read_string", "_RowsEvent__read_date",
           "_RowsEvent__read_datetime", "_RowsEvent__read_datetime2", "_RowsEvent__read_fsp",
           "_RowsEvent__read_binary_slice", "_is_null")


def check() -> str | None:
    """Why the installed mysql-replication cannot be read this way (None: it can)."""
    from pymysqlreplication.row_event import RowsEvent

    missing = [name for name in READERS if not hasattr(RowsEvent, name)]
    if not missing:
        return None
    try:
        from importlib.metadata import version

        installed = version("mysql-replication")
    except Exception:  # the package's metadata may be absent: the names are enough
        installed = "this version"
    return (f"mysql-replication {installed} reads row values differently from what the follower knows "
            f"({', '.join(missing)} missing; 1.0.x is): install mysql-replication>=1.0.9,<2")


def _date(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0,
          microsecond: int = 0, *, time: bool) -> datetime.date | Stored:
    try:
        if time:
            return datetime.datetime(year, month, day, hour, minute, second, microsecond)
        return datetime.date(year, month, day)
    except ValueError:
        return Stored(year, month, day, hour, minute, second, microsecond)


class _AsStored:
    """The readings that replace the library's (mixed in before a rows event class)."""

    packet: Any
    _is_null: Any

    def _RowsEvent__read_values_name(self, column: Any, null_bitmap: Any, null_bitmap_index: int, is_partial: bool,
                                     cols_bitmap: Any, unsigned: bool, i: int) -> Any:
        from pymysqlreplication.bitmap import BitGet
        from pymysqlreplication.constants import FIELD_TYPE
        from pymysqlreplication.row_event import RowsEvent

        if (column.type in (FIELD_TYPE.ENUM, FIELD_TYPE.SET) and BitGet(cols_bitmap, i) != 0
                and not self._is_null(null_bitmap, null_bitmap_index)):
            number = self.packet.read_uint_by_size(column.size)
            listed = (column.enum_values or [""])[1:] if column.type == FIELD_TYPE.ENUM else column.set_values
            return Choice(number, tuple(listed or ()))
        return RowsEvent._RowsEvent__read_values_name(
            self, column, null_bitmap, null_bitmap_index, is_partial, cols_bitmap, unsigned, i)

    def _RowsEvent__read_string(self, size: int, column: Any) -> bytes:
        return bytes(self.packet.read_length_coded_pascal_string(size))

    def _RowsEvent__read_date(self) -> datetime.date | Stored:
        stored = self.packet.read_uint24()
        return _date(stored >> 9, (stored >> 5) & 0xF, stored & 0x1F, time=False)

    def _RowsEvent__read_datetime(self) -> datetime.date | Stored:
        stored = self.packet.read_uint64()  # YYYYMMDDhhmmss as a number (tables from before MySQL 5.6)
        date, time = divmod(stored, 1000000)
        return _date(date // 10000, date // 100 % 100, date % 100, time // 10000, time // 100 % 100, time % 100,
                     time=True)

    def _RowsEvent__read_datetime2(self, column: Any) -> datetime.date | Stored:
        data = self.packet.read_int_be_by_size(5)
        part = self._RowsEvent__read_binary_slice  # type: ignore[attr-defined]
        year_month = part(data, 1, 17, 40)
        microsecond = self._RowsEvent__read_fsp(column)  # type: ignore[attr-defined]
        return _date(year_month // 13, year_month % 13, part(data, 18, 5, 40), part(data, 23, 5, 40),
                     part(data, 28, 6, 40), part(data, 34, 6, 40), microsecond, time=True)


_CLASSES: dict[type, type] = {}


def as_stored(event: Any) -> Any:
    """The rows event, its values to be read as MySQL stored them (before its rows are first read)."""
    kind = type(event)
    if kind not in _CLASSES:
        _CLASSES[kind] = type(f"AsStored{kind.__name__}", (_AsStored, kind), {})
    event.__class__ = _CLASSES[kind]
    return event

"""Row changes of one followed table as PostgreSQL statements with their parameters.

Every write is idempotent, because following starts from the binary log position recorded before the copy
began and so meets again changes the copy already holds: an insert is an upsert on the primary key, an update
is an upsert (after deleting the old row when its key changed), a delete is by key and finds nothing the second
time. While catching up (the changes made while the copy ran), a row whose unique key another row still holds
takes it over: that other row is behind and is written again by a later change in the log.

A row the copy would not carry is recorded in `dbupdater_copy.discarded_rows` as the copy records it (`Discard`:
its key, reasons and text in the copy's words), and every change of a row first forgets what was recorded of it
(`Forget`), so that the discarded rows are always those a fresh copy would have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..model import TablePlan
from .values import Convert, Reader, Unfit, Value, json_array, json_object


@dataclass(frozen=True)
class Statement:
    sql: str  # psycopg's %s placeholders; every other % doubled
    params: tuple[Value, ...]


@dataclass(frozen=True)
class Discard:
    """A row the follower cannot carry, for `dbupdater_copy.discarded_rows` (row_key, reason and row_text as
    the copy writes them)."""

    table: str
    key: str | None
    reason: str
    text: str


@dataclass(frozen=True)
class Forget:
    """What `dbupdater_copy.discarded_rows` holds of one row (by its key as the copy writes it) is out of date:
    the row changed."""

    table: str
    key: str | None


Change = Statement | Discard | Forget
Row = Mapping[str, object]


def ident(name: str) -> str:
    """A double-quoted PostgreSQL identifier, ready to sit in a psycopg statement."""
    return ('"' + name.replace('"', '""') + '"').replace("%", "%%")


class TableWriter:
    """The statements of one table plan: built once, filled per row. `convert`: the source's conversion of text
    in character sets other than UTF-8 (values.Convert)."""

    def __init__(self, table: TablePlan, convert: Convert | None = None) -> None:
        self.table = table
        self.convert = convert
        columns = table.columns
        self.readers = [(column.source.name, Reader(column)) for column in columns]
        position = self.position = {column.source.name: index for index, column in enumerate(columns)}
        if not table.source.primary_key:
            raise ValueError(f"table {table.source.name} has no primary key: it cannot be followed")
        self.key = tuple(position[name] for name in table.source.primary_key)
        qualified = table.qualified.replace("%", "%%")

        def cast(index: int) -> str:
            return "%s::" + columns[index].target_type.replace("%", "%%")

        def matches(indexes: tuple[int, ...]) -> str:
            return " AND ".join(f"{ident(columns[i].name)} = {cast(i)}" for i in indexes)

        names = ", ".join(ident(column.name) for column in columns)
        others = [ident(column.name) for index, column in enumerate(columns) if index not in self.key]
        action = ("DO UPDATE SET " + ", ".join(f"{name} = EXCLUDED.{name}" for name in others)) if others \
            else "DO NOTHING"
        self.upsert_sql = (f"INSERT INTO {qualified} ({names}) OVERRIDING SYSTEM VALUE VALUES "
                           f"({', '.join(cast(i) for i in range(len(columns)))}) "
                           f"ON CONFLICT ({', '.join(ident(columns[i].name) for i in self.key)}) {action}")
        self.delete_sql = f"DELETE FROM {qualified} WHERE {matches(self.key)}"
        self.truncate_sql = f"TRUNCATE {qualified} RESTART IDENTITY"
        self.unique: list[tuple[tuple[int, ...], str]] = []
        for index in table.source.indexes:
            if not index.unique or any(prefix is not None for _, prefix in index.columns):
                continue  # a prefix index's uniqueness is over an expression: left to the constraint itself
            indexes = tuple(position[name] for name, _ in index.columns)
            self.unique.append((indexes, f"DELETE FROM {qualified} WHERE {matches(indexes)} "
                                         f"AND NOT ({matches(self.key)})"))

    def image(self, values: Row, none_sources: Mapping[str, str]) -> list[Value] | Unfit:
        """A row image from the log as the statement's parameters, in the plan's column order; or every reason
        the copy would give for not carrying the row."""
        params: list[Value] = []
        reasons: list[str] = []
        for name, reader in self.readers:
            if name not in values:
                raise KeyError(f"column {name} of {self.table.source.name} is not in the binary log's row image "
                               "(the table changed since it was copied, or binlog_row_image is not FULL)")
            value = reader.value(values[name], none_sources.get(name, ""), self.convert)
            if isinstance(value, Unfit):
                reasons += value.reasons
            else:
                params.append(value)
        return Unfit(tuple(reasons)) if reasons else params

    def _key(self, values: Row, none_sources: Mapping[str, str]) -> tuple[Value, ...] | None:
        """The key's parameters; None when the key itself cannot be carried (the row never was)."""
        params: list[Value] = []
        for index in self.key:
            name, reader = self.readers[index]
            value = reader.value(values.get(name), none_sources.get(name, ""), self.convert)
            if isinstance(value, Unfit):
                return None
            params.append(value)
        return tuple(params)

    def _shown(self, values: Row, none_sources: Mapping[str, str], name: str) -> str | None:
        return self.readers[self.position[name]][1].display(values.get(name), self.convert)

    def row_key(self, values: Row, none_sources: Mapping[str, str]) -> str | None:
        """The row's key as the copy writes it in discarded_rows: the key's value, or a JSON array of them."""
        shown = [self._shown(values, none_sources, name) for name in self.table.source.primary_key]
        return shown[0] if len(shown) == 1 else json_array(shown)

    def forget(self, values: Row, none_sources: Mapping[str, str]) -> Forget:
        return Forget(self.table.source.name, self.row_key(values, none_sources))

    def _discard(self, values: Row, none_sources: Mapping[str, str], why: Unfit) -> Discard:
        text = json_object((column.source.name, self._shown(values, none_sources, column.source.name))
                           for column in self.table.columns)
        return Discard(self.table.source.name, self.row_key(values, none_sources), why.reason, text)

    def _upsert(self, params: list[Value], catching_up: bool) -> list[Change]:
        changes: list[Change] = []
        if catching_up:
            key = [params[i] for i in self.key]
            for indexes, sql in self.unique:
                taken = [params[i] for i in indexes]
                if all(value is not None for value in taken):
                    changes.append(Statement(sql, (*taken, *key)))
        changes.append(Statement(self.upsert_sql, tuple(params)))
        return changes

    def inserted(self, values: Row, none_sources: Mapping[str, str], catching_up: bool = False) -> list[Change]:
        params = self.image(values, none_sources)
        forget: list[Change] = [self.forget(values, none_sources)]
        if isinstance(params, Unfit):
            return [*forget, self._discard(values, none_sources, params)]
        return forget + self._upsert(params, catching_up)

    def updated(self, before: Row, before_none: Mapping[str, str], after: Row, after_none: Mapping[str, str],
                catching_up: bool = False) -> list[Change]:
        old = self._key(before, before_none)
        params = self.image(after, after_none)
        changes: list[Change] = [self.forget(before, before_none)]
        moved = self.forget(after, after_none)
        if moved != changes[0]:
            changes.append(moved)
        if isinstance(params, Unfit):
            if old is not None:  # the row as it is now cannot be carried: what was carried of it goes
                changes.append(Statement(self.delete_sql, old))
            return [*changes, self._discard(after, after_none, params)]
        if old is not None and old != tuple(params[i] for i in self.key):
            changes.append(Statement(self.delete_sql, old))
        return changes + self._upsert(params, catching_up)

    def deleted(self, values: Row, none_sources: Mapping[str, str]) -> list[Change]:
        key = self._key(values, none_sources)
        forget: list[Change] = [self.forget(values, none_sources)]
        return forget if key is None else [*forget, Statement(self.delete_sql, key)]

"""The ledger's own schema version, and the steps that bring an older ledger up to this release's.

Version 1 is the history and lock tables as the first releases made them (no version table: an existing
ledger without one is version 1). Each later version is a step, generic SQL built from the dialect plus any
engine-specific SQL the dialect adds (`Dialect.upgrades`), applied on opening while the run holds the
database's lock, and recorded in the version table. A ledger written by a newer release is refused: this
release could misread it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .. import __version__
from ..engines.dialect import Dialect
from .records import LEGACY_RERUN, RERUN, Refused


@dataclass(frozen=True)
class Tables:
    history: str
    lock: str
    versions: str


# Version N -> the generic SQL that takes a version N-1 ledger to N.
STEPS: dict[int, Callable[[Dialect, Tables], str]] = {
    # "reverted" meant "resolved by a person: run it again", which real revert scripts would collide with.
    2: lambda d, t: f"UPDATE {t.history} SET status = {d.literal(RERUN)} WHERE status = {d.literal(LEGACY_RERUN)};",
    # The session a `running` row's script runs in, and its account (columns db_session and db_user, added by
    # each dialect's own DDL): a lock is taken over early only when those sessions are provably gone.
    3: lambda d, t: "",
}
CURRENT = max(STEPS)


def record(dialect: Dialect, tables: Tables, version: int) -> str:
    """Mark a version as applied (a no-op when it is: concurrent openers of a fresh ledger both try)."""
    return dialect.insert_ignore(tables.versions, {"version": str(int(version)),
                                                   "tool_version": dialect.literal(__version__)})


def created_sql(dialect: Dialect, tables: Tables, schema_name: str | None, history_name: str) -> str:
    """Run before the history table is created: a ledger created now is of the current version. A ledger
    whose history table existed without a version table is version 1 (`record(..., 1)` after creating)."""
    values = {"tool_version": dialect.literal(__version__)}
    missing = dialect.table_missing(schema_name, history_name)
    return "\n".join(dialect.insert_ignore_where(tables.versions, {"version": str(version), **values}, missing)
                     for version in range(1, CURRENT + 1))


def version_sql(dialect: Dialect, tables: Tables) -> str:
    return f"SELECT {dialect.json_row({'ledger_version': 'MAX(version)'})} FROM {tables.versions};"


def upgrade_sql(dialect: Dialect, tables: Tables, found: int) -> str:
    """Every step from `found` to CURRENT, each recorded after it ran, as one script."""
    parts = []
    for version in range(found + 1, CURRENT + 1):
        parts.append(STEPS[version](dialect, tables))
        parts.extend(dialect.upgrades(tables.history, tables.lock).get(version, ()))
        parts.append(record(dialect, tables, version))
    return "\n".join(parts)


def check(found: int, label: str) -> None:
    if found > CURRENT:
        raise Refused(f"{label}: its ledger has schema version {found}, written by a newer dbupdater (this one "
                      f"knows up to {CURRENT}); upgrade dbupdater to run against it")

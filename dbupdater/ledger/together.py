"""Several ledgers of one server opened, or released, in one client call.

A fan-out over the databases of one server (a database per tenant) paid a client call per database to open its
ledger and another to release it: two calls beside a target's few scripts, each as dear as a script's. Where a
session can move between the databases of its server (`Dialect.use_database`: MySQL's USE), the ledgers that one
runner reaches on one server with one login share those calls. Each ledger's part is the very SQL of its own
call, after a USE, and ends with a row naming it. The client stops at the first error, so a part without that
row did not complete: that ledger is then opened (or released) in a call of its own, exactly as before, which
gives its own answer or error. Nothing is decided from a shared call that a call of its own would not decide.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

from ..model.errors import DbUpdaterError
from .book import Ledger

PART = "ledger_part"  # the key of the row that ends each ledger's part


def share_key(ledger: Ledger) -> Hashable | None:
    """Ledgers with one key may share a call (one runner connection, server, login and credentials file);
    None: this ledger's engine serves one database per session."""
    channel, db = ledger.channel, ledger.channel.db
    if channel.dialect.use_database(db.database) is None:
        return None
    return (id(channel.transport), channel.engine.name, channel.credentials_path, db.host, db.port, db.user)


def _parts(ledgers: list[Ledger], sql: Callable[[Ledger], str]) -> dict[Ledger, list[dict[str, Any]]]:
    """Each ledger's SQL in one call of the first ledger's channel: the rows of every part that completed."""
    d = ledgers[0].d
    text = "\n".join(f"{d.use_database(ledger.db.database)}\n{sql(ledger)}\n"
                     f"SELECT {d.json_row({PART: str(number)})}{d.from_dual};"
                     for number, ledger in enumerate(ledgers))
    try:
        rows = ledgers[0].channel.rows_before_error(text)
    except DbUpdaterError:
        return {}  # the runner or the login failed: each ledger's own call says how
    done: dict[Ledger, list[dict[str, Any]]] = {}
    part: list[dict[str, Any]] = []
    for row in rows:
        if set(row) == {PART}:
            done[ledgers[int(row[PART])]] = part
            part = []
        else:
            part.append(row)
    return done


def open_together(ledgers: list[Ledger], lease: int) -> dict[Ledger, list[dict[str, Any]]]:
    """The first call of each ledger's `open_locked` (tables, lock, version, history), shared: the rows of each
    ledger whose part completed, for `open_locked(opened=...)`. Any lock taken is taken whatever happens next:
    the caller counts every one of these ledgers as possibly holding its lock."""
    return _parts(ledgers, lambda ledger: ledger.opening_sql(lease))


def release_together(ledgers: list[Ledger]) -> list[Ledger]:
    """`release` of each ledger, shared: the ledgers released (the others still need a call of their own)."""
    done = list(_parts(ledgers, Ledger.release_sql))
    for ledger in done:
        ledger.released()
    return done

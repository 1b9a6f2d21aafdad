"""The script ledger of one database: a history table and a lease lock in it, reached through its channel.

History is append-only per attempt: a row is inserted as `running` before a script starts and set to
`success` / `failed` after it ends (the dirty flag of golang-migrate, kept per script). The latest row per
script decides its state. A success is not written at once but rides with the next ledger call for the
database (the next script's `running` row, or the lock release): one client call less per script.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from .. import __version__
from . import schema
from .channel import SqlChannel
from .records import (
    HISTORY_TABLE,
    LOCK_NAME,
    LOCK_TABLE,
    RUNNING,
    SUCCESS,
    VERSION_TABLE,
    Entry,
    Holder,
    LedgerError,
    Refused,
    RunIdentity,
)

log = logging.getLogger("dbupdater")


class Ledger:
    """The ledger of one database, reached through one runner."""

    def __init__(self, channel: SqlChannel, schema_name: str | None, identity: RunIdentity,
                 runner_label: str, dead: Callable[[Holder], bool] | None = None) -> None:
        self.channel = channel
        # Whether a lock's holder is provably gone (a run of this machine that died): then its lock is taken
        # over at once instead of waiting for its lease (see execution/liveness.py).
        self._dead = dead
        self.held = False  # this ledger holds its database's lock (taken, and not yet released)
        self.db = channel.db
        self.identity = identity
        self.runner_label = runner_label
        self.d = channel.dialect
        self.history = self.d.table(schema_name, HISTORY_TABLE)
        self.lock = self.d.table(schema_name, LOCK_TABLE)
        self.tables = schema.Tables(self.history, self.lock, self.d.table(schema_name, VERSION_TABLE))
        self.schema = schema_name
        # A success not yet written: it rides along with the next ledger call (the next script's `running`
        # mark, or the lock release) to save a round trip per script. Until then the history says
        # `running`, which is what a crash in between must leave anyway.
        self._pending: str = ""
        # Successes sent in a script's session by a client that does not report their errors (see
        # Engine.before_checked): sent again with the next checked call, where a repeat changes nothing.
        self._unconfirmed: str = ""

    # --- plumbing -------------------------------------------------------------------------------------------

    def _exec(self, sql: str, *, missing_ok: bool = False) -> list[dict[str, Any]]:
        return self.channel.rows(sql, missing_ok=missing_ok)

    def _lit(self, value: str | int | None) -> str:
        return self.d.literal(value)

    # --- history --------------------------------------------------------------------------------------------

    def _history_sql(self) -> str:
        t = self.d.text_time
        fields = {"id": "id", "script": "script", "checksum": "checksum", "checksum_version": "checksum_version",
                  "status": "status", "started_at": t("started_at"), "finished_at": t("finished_at"),
                  "run_id": "run_id", "runner_host": "runner_host", "os_user": "os_user", "note": "note"}
        return f"SELECT {self.d.json_row(fields)} FROM {self.history} ORDER BY id;"

    def _latest(self, rows: list[dict[str, Any]]) -> dict[str, Entry]:
        latest: dict[str, Entry] = {}
        for row in rows:
            if "script" in row:
                latest[row["script"]] = Entry(**row)
            elif "ledger_version" in row:
                schema.check(row["ledger_version"] or 1, self.db.label)
            elif "session_charset" in row and row["session_charset"] != self.d.session_charset:
                raise LedgerError(
                    f"{self.db.label}: the client session runs in {row['session_charset']!r}, not "
                    f"{self.d.session_charset!r} as the client asked: the server overrides the client's character "
                    "set (MySQL: skip-character-set-client-handshake, or SET NAMES in init_connect), so every "
                    "script's text would be converted wrongly. Nothing was run on it")
        return latest

    def _charset_sql(self) -> str:
        return f"SELECT {self.d.json_row({'session_charset': self.d.session_charset_sql})}{self.d.from_dual};"

    def read(self, *, missing_ok: bool = False) -> dict[str, Entry]:
        """The latest entry per script (the session's character set checked). With missing_ok, a database
        never touched by us reads as empty. Never writes: an older ledger is read as it is (both spellings of
        a status); a newer one is refused."""
        # The version last: a version-1 ledger has no version table, and what came before its error counts.
        return self._latest(self._exec("\n".join((self._charset_sql(), self._history_sql(),
                                                  schema.version_sql(self.d, self.tables))), missing_ok=missing_ok))

    def _versioned_read(self) -> str:
        return "\n".join((schema.version_sql(self.d, self.tables), self._charset_sql(), self._history_sql()))

    def open_locked(self, lease: int, timeout: float, on_wait: Callable[[Holder], None] | None = None, *,
                    wait: bool = True, deadline: float | None = None) -> dict[str, Entry] | None:
        """Create the tables, take the lock, read the ledger's version and the history: one client call when
        the lock is free and the ledger current. Without `wait`, a lock held by another run returns None at
        once instead of waiting (until `deadline`, a monotonic time, or `timeout` from now)."""
        fresh = schema.created_sql(self.d, self.tables, self.schema, HISTORY_TABLE)
        create = (self.d.create_tables(self.schema, self.history, self.lock, self.tables.versions, fresh) + "\n"
                  + schema.record(self.d, self.tables, 1))  # tables without a version row are version 1
        rows = self._exec(create + "\n" + self._lock_sql(lease) + "\n" + self._versioned_read())
        holders = [Holder(**row) for row in rows if "since" in row]
        if holders and holders[0].run_id == self.identity.run_id:
            self.held = True
        else:
            if not wait:
                return None
            self.acquire(lease, timeout, on_wait, deadline)
            rows = self._exec(self._versioned_read())
        found = next((row["ledger_version"] for row in rows if "ledger_version" in row), None) or 1
        history = self._latest(rows)  # refuses a newer ledger before anything is changed
        if found < schema.CURRENT:  # an older ledger, upgraded while the lock is ours
            self._exec(schema.upgrade_sql(self.d, self.tables, found))
            history = self._latest(self._exec(self._versioned_read()))
        return history

    def _insert_running(self, script: str, checksum: str, checksum_version: int) -> str:
        # started_at takes its column default: the current instant whatever the session's time zone.
        values = {"script": self._lit(script), "checksum": self._lit(checksum),
                  "checksum_version": self._lit(checksum_version), "status": self._lit(RUNNING),
                  "runner_host": self._lit(self.runner_label), "os_user": self._lit(self.identity.os_user),
                  "tool_version": self._lit(__version__), "run_id": self._lit(self.identity.run_id)}
        return f"INSERT INTO {self.history} ({', '.join(values)}) VALUES ({', '.join(values.values())});"

    def _flush(self) -> str:
        """Successes to send with a call whose every statement is checked."""
        return self._unconfirmed + self._pending

    def _flushed(self) -> None:
        self._pending = self._unconfirmed = ""

    def mark_running(self, script: str, checksum: str, checksum_version: int) -> None:
        """Insert the `running` row (after any pending success of the previous script, in the same call)."""
        self._exec(self._flush() + self._insert_running(script, checksum, checksum_version))
        self._flushed()

    def running_before_script(self, script: str, checksum: str, checksum_version: int) -> str:
        """What `mark_running` does, as SQL for the script's own client session (see Engine.shares_session):
        the `running` row first, then the previous script's success. Call `running_recorded` once the engine
        says it took effect; until then the success stays pending, and sending it again is harmless (it only
        updates a row still `running`)."""
        return self.d.before_script(self._insert_running(script, checksum, checksum_version), self._pending)

    def running_recorded(self, *, all_checked: bool) -> None:
        if all_checked:
            self._flushed()
        else:
            self._unconfirmed += self._pending
            self._pending = ""

    def _finish_sql(self, script: str, status: str, note: str | None) -> str:
        d = self.d
        return (f"UPDATE {self.history} SET status = {self._lit(status)}, finished_at = {d.now}, "
                f"duration_ms = {d.duration_ms('started_at')}, note = {self._lit(note)} "
                f"WHERE run_id = {self._lit(self.identity.run_id)} AND script = {self._lit(script)} "
                f"AND status = {self._lit(RUNNING)};\n")

    def mark_finished(self, script: str, status: str, note: str | None = None) -> None:
        self._exec(self._flush() + self._finish_sql(script, status, note))
        self._flushed()

    def finish_later(self, script: str, status: str, note: str | None = None) -> None:
        """Record the end of a script with the next ledger call (see `_pending`)."""
        self._pending += self._finish_sql(script, status, note)

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)


    def set_status(self, entry: Entry, status: str, checksum: str, note: str) -> None:
        self._exec(f"UPDATE {self.history} SET status = {self._lit(status)}, checksum = {self._lit(checksum)}, "
                   f"note = {self._lit(note)} WHERE id = {self._lit(entry.id)} AND status = {self._lit(entry.status)};")

    def baseline(self, script: str, checksum: str, checksum_version: int, note: str) -> None:
        d = self.d
        values = {"script": self._lit(script), "checksum": self._lit(checksum),
                  "checksum_version": self._lit(checksum_version), "status": self._lit(SUCCESS),
                  "started_at": d.now, "finished_at": d.now, "duration_ms": "0",
                  "runner_host": self._lit(self.runner_label), "os_user": self._lit(self.identity.os_user),
                  "tool_version": self._lit(__version__), "run_id": self._lit(self.identity.run_id),
                  "note": self._lit(note)}
        self._exec(f"INSERT INTO {self.history} ({', '.join(values)}) VALUES ({', '.join(values.values())});")

    # --- lock -----------------------------------------------------------------------------------------------

    def _holder_sql(self) -> str:
        t = self.d.text_time
        fields = {"run_id": "run_id", "host": "host", "pid": "pid", "os_user": "os_user",
                  "since": t("acquired_at"), "expires": t("expires_at")}
        return f"SELECT {self.d.json_row(fields)} FROM {self.lock} WHERE name = {self._lit(LOCK_NAME)};"

    def holder(self) -> Holder | None:
        rows = self._exec(self._holder_sql(), missing_ok=True)
        return Holder(**rows[0]) if rows else None

    def _lock_sql(self, lease: int) -> str:
        """One atomic attempt: expired leases are cleared, the primary key lets exactly one run in."""
        d, me = self.d, self.identity
        values = {"name": self._lit(LOCK_NAME), "run_id": self._lit(me.run_id), "host": self._lit(me.host),
                  "pid": self._lit(me.pid), "os_user": self._lit(me.os_user), "acquired_at": d.now,
                  "heartbeat_at": d.now, "expires_at": d.plus_seconds(d.now, lease)}
        return (f"DELETE FROM {self.lock} WHERE name = {self._lit(LOCK_NAME)} AND expires_at < {d.now};\n"
                + d.insert_ignore(self.lock, values) + "\n" + self._holder_sql())

    def try_lock(self, lease: int) -> Holder:
        rows = self._exec(self._lock_sql(lease))
        if not rows:
            raise LedgerError(f"{self.db.label}: the lock row vanished while being taken")
        return Holder(**rows[0])

    def acquire(self, lease: int, timeout: float, on_wait: Callable[[Holder], None] | None = None,
                deadline: float | None = None) -> None:
        deadline = time.monotonic() + timeout if deadline is None else deadline
        announced = False
        taken_over: set[str] = set()
        while True:
            holder = self.try_lock(lease)
            if holder.run_id == self.identity.run_id:
                self.held = True
                return
            if self._dead is not None and holder.run_id not in taken_over and self._dead(holder):
                taken_over.add(holder.run_id)
                log.warning("%s: taking over the lock of %s: that run ended on this machine without releasing it",
                            self.db.label, holder.describe())
                self._exec(f"DELETE FROM {self.lock} WHERE name = {self._lit(LOCK_NAME)} "
                           f"AND run_id = {self._lit(holder.run_id)};")
                continue  # only that run's row goes: if another run took the lock meanwhile, it stays theirs
            if time.monotonic() >= deadline:
                raise Refused(f"{self.db.label} is locked by {holder.describe()}; gave up after {timeout:g}s "
                              "(--lock-timeout). A holder that was killed loses the lock when its lease ends.")
            if on_wait and not announced:
                on_wait(holder)
                announced = True
            time.sleep(min(2.0, max(0.2, deadline - time.monotonic())))

    def heartbeat(self, lease: int) -> bool:
        """Extend our lease; False when the lock is no longer ours (it expired and someone took it)."""
        d, run_id = self.d, self._lit(self.identity.run_id)
        rows = self._exec(f"UPDATE {self.lock} SET heartbeat_at = {d.now}, expires_at = {d.plus_seconds(d.now, lease)} "
                          f"WHERE name = {self._lit(LOCK_NAME)} AND run_id = {run_id};\n"
                          f"SELECT {d.json_row({'held': 'COUNT(*)'})} FROM {self.lock} "
                          f"WHERE name = {self._lit(LOCK_NAME)} AND run_id = {run_id};")
        return bool(rows and rows[0]["held"])

    def release(self) -> None:
        """Write any pending success, then free the lock: one client call."""
        self._exec(self._flush() + f"DELETE FROM {self.lock} WHERE name = {self._lit(LOCK_NAME)} "
                   f"AND run_id = {self._lit(self.identity.run_id)};")
        self._flushed()
        self.held = False

"""The script ledger of one database: a history table and a lease lock in it, reached through its channel.

History is append-only per attempt: a row is inserted as `running` before a script starts and set to
`success` / `failed` after it ends (the dirty flag of golang-migrate, kept per script). The latest row per
script decides its state. A success is not written at once but rides with the next ledger call for the
database (the next script's `running` row, or the lock release): one client call less per script.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from typing import Any

from .. import __version__
from ..model.identity import RunIdentity
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
    Refusal,
    Refused,
    ScriptSession,
    SharedLedger,
)

log = logging.getLogger("dbupdater")
# Beside the lock row, each target of a run that opens this ledger leaves a row of its own, named by a token:
# two such rows of one run mean two targets of its manifest are one database (see `_lock_sql`, `_holder`).
TARGET_ROW = "target "
NOTE_CHARACTERS = 1000  # the note column's size on MySQL, Oracle and SQL Server


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
        self.token = secrets.token_hex(8)
        self.version = schema.CURRENT  # the ledger's schema version, as read on opening
        self.server: str | None = None  # the server instance and database, as `read` found them
        # The approval of the plan this run applies (`Approval.note()`), kept in the note column of every
        # history row the run writes, before any reason a script failed: so `note LIKE 'approved %'` finds who
        # approved what reached this database, in every ledger version, and `status` shows it.
        self.approval: str | None = None

    # --- plumbing -------------------------------------------------------------------------------------------

    def _exec(self, sql: str, *, missing_ok: bool = False) -> list[dict[str, Any]]:
        return self.channel.rows(sql, missing_ok=missing_ok)

    def _lit(self, value: str | int | None) -> str:
        return self.d.literal(value)

    # --- history --------------------------------------------------------------------------------------------

    def _history_sql(self, where: str = "") -> str:
        t = self.d.text_time
        fields = {"id": "id", "script": "script", "checksum": "checksum", "checksum_version": "checksum_version",
                  "status": "status", "started_at": t("started_at"), "finished_at": t("finished_at"),
                  "run_id": "run_id", "runner_host": "runner_host", "os_user": "os_user", "note": "note"}
        return f"SELECT {self.d.json_row(fields)} FROM {self.history}{where} ORDER BY id;"

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
        identity = self.d.server_identity
        where = f"SELECT {self.d.json_row({'server_identity': identity})}{self.d.from_dual};" if identity else ""
        rows = self._exec("\n".join((self._charset_sql(), where, self._history_sql(),
                                     schema.version_sql(self.d, self.tables))), missing_ok=missing_ok)
        self.server = next((row["server_identity"] for row in rows if "server_identity" in row), None)
        return self._latest(rows)

    def _versioned_read(self) -> str:
        return "\n".join((schema.version_sql(self.d, self.tables), self._charset_sql(), self._history_sql()))

    def opening_sql(self, lease: int) -> str:
        """The first call of `open_locked`: create the tables, take the lock, read the version and history."""
        fresh = schema.created_sql(self.d, self.tables, self.schema, HISTORY_TABLE)
        create = (self.d.create_tables(self.schema, self.history, self.lock, self.tables.versions, fresh) + "\n"
                  + schema.record(self.d, self.tables, 1))  # tables without a version row are version 1
        return create + "\n" + self._lock_sql(lease, clear_expired=False) + "\n" + self._versioned_read()

    def open_locked(self, lease: int, timeout: float, on_wait: Callable[[Holder], None] | None = None, *,
                    wait: bool = True, deadline: float | None = None,
                    opened: list[dict[str, Any]] | None = None) -> dict[str, Entry] | None:
        """Create the tables, take the lock, read the ledger's version and the history: one client call when
        the lock is free and the ledger current. Without `wait`, a lock held by another run returns None at
        once instead of waiting (until `deadline`, a monotonic time, or `timeout` from now). An expired lease
        is never cleared in this first call: whether its run's scripts still run can be asked only once the
        ledger's version is known (`acquire`). `opened`: the rows `opening_sql` gave in a call shared with
        other ledgers (ledger/together.py), which then stands for that first call."""
        rows = self._exec(self.opening_sql(lease)) if opened is None else opened
        self.version = next((row["ledger_version"] for row in rows if "ledger_version" in row), None) or 1
        holder = self._holder(rows)
        if holder is not None and holder.run_id == self.identity.run_id:
            self.held = True
        else:
            if not wait:
                return None
            self.acquire(lease, timeout, on_wait, deadline)
            rows = self._exec(self._versioned_read())
        found = self.version
        history = self._latest(rows)  # refuses a newer ledger before anything is changed
        if found < schema.CURRENT:  # an older ledger, upgraded while the lock is ours
            self._exec(schema.upgrade_sql(self.d, self.tables, found))
            self.version = schema.CURRENT
            history = self._latest(self._exec(self._versioned_read()))
        return history

    def _insert_running(self, script: str, checksum: str, checksum_version: int, seen: Entry | None, *,
                        in_session: bool) -> str:
        """The `running` row, in one statement that fails unless this run holds the lock with its lease running
        and the script's history is still what the plan saw (`seen`: its latest entry then, or None). So a run
        that lost its lock, a plan gone stale, or a second name of one database never starts the script: the
        database decides, in the session that would run it. In that session, it also records the session."""
        d, lit = self.d, self._lit
        me = lit(self.identity.run_id)
        held = self._held()
        changed = f"id > {seen.id if seen else 0}"
        if seen is not None:
            changed = f"({changed} OR (id = {seen.id} AND status <> {lit(seen.status)}))"
        unchanged = f"{d.count_where(self.history, f'script = {lit(script)} AND {changed}')} = 0"
        # started_at takes its column default: the current instant whatever the session's time zone.
        values = {"script": d.null_unless(unchanged, lit(script)), "checksum": lit(checksum),
                  "checksum_version": lit(checksum_version), "status": lit(RUNNING),
                  "runner_host": lit(self.runner_label), "os_user": lit(self.identity.os_user),
                  "tool_version": lit(__version__), "run_id": d.null_unless(held, me),
                  "db_session": d.session_sql if in_session and d.session_sql else "NULL", "db_user": d.user_sql}
        if self.approval:
            values["note"] = lit(self._note(None))
        return d.insert_checked(self.history, values)

    def _note(self, note: str | None) -> str | None:
        """A history row's note: the approval first (when there is one), then what the run has to say."""
        if not self.approval:
            return note
        text = self.approval if not note else f"{self.approval} | {note}"
        return text[:NOTE_CHARACTERS]

    def _flush(self) -> str:
        """Successes to send with a call whose every statement is checked."""
        return self._unconfirmed + self._pending

    def _flushed(self) -> None:
        self._pending = self._unconfirmed = ""

    def mark_running(self, script: str, checksum: str, checksum_version: int, seen: Entry | None) -> None:
        """Insert the `running` row (after any pending success of the previous script, in the same call)."""
        self._exec(self._flush() + self._insert_running(script, checksum, checksum_version, seen, in_session=False))
        self._flushed()

    def running_before_script(self, script: str, checksum: str, checksum_version: int, seen: Entry | None) -> str:
        """What `mark_running` does, as SQL for the script's own client session (see Engine.shares_session):
        the `running` row first, then the previous script's success. Call `running_recorded` once the engine
        says it took effect; until then the success stays pending, and sending it again is harmless (it only
        updates a row still `running`)."""
        return self.d.before_script(self._insert_running(script, checksum, checksum_version, seen, in_session=True),
                                    self._pending)

    def running_recorded(self, *, all_checked: bool) -> None:
        if all_checked:
            self._flushed()
        else:
            self._unconfirmed += self._pending
            self._pending = ""

    def _finish_sql(self, script: str, status: str, note: str | None) -> str:
        d = self.d
        return (f"UPDATE {self.history} SET status = {self._lit(status)}, finished_at = {d.now}, "
                f"duration_ms = {d.duration_ms('started_at')}, note = {self._lit(self._note(note))} "
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

    def refusal(self, script: str) -> Refusal:
        """What the ledger says after a `running` row did not go in (any pending success is written with it):
        who holds the lock, whether our lease ended, and the script's latest entry."""
        d, lit = self.d, self._lit
        fields = self._holder_fields() | {"ended": f"CASE WHEN expires_at <= {d.now} THEN 1 ELSE 0 END"}
        where = f"script = {lit(script)}"
        latest = f" WHERE {where} AND id = (SELECT MAX(id) FROM {self.history} WHERE {where})"
        rows = self._exec(self._flush() + self._history_sql(latest) + "\n"
                          + f"SELECT {d.json_row(fields)} FROM {self.lock} WHERE name = {lit(LOCK_NAME)};")
        self._flushed()
        entry = next((Entry(**row) for row in rows if "script" in row), None)
        lock = next((row for row in rows if "ended" in row), None)
        if lock is None or lock["run_id"] != self.identity.run_id:
            holder = Holder(**{key: value for key, value in lock.items() if key != "ended"}) if lock else None
            self.held = False
            return Refusal(lock_lost=holder, lease_ended=holder is None, latest=entry)
        return Refusal(lock_lost=None, lease_ended=bool(lock["ended"]), latest=entry)

    def script_session(self, script: str) -> ScriptSession | None:
        """The session this run's `running` row of `script` recorded, and whether the server still has it
        (None: there is no such row)."""
        d, lit = self.d, self._lit
        alive = d.session_alive("h") or "1 = 0"
        fields = {"db_session": "h.db_session", "visible": f"CASE WHEN {d.session_visible('h')} THEN 1 ELSE 0 END",
                  "alive": f"CASE WHEN {alive} THEN 1 ELSE 0 END"}
        rows = self._exec(f"SELECT {d.json_row(fields)} FROM {self.history} h WHERE h.run_id = "
                          f"{lit(self.identity.run_id)} AND h.script = {lit(script)} AND h.status = {lit(RUNNING)};")
        if not rows:
            return None
        return ScriptSession(rows[-1]["db_session"], bool(rows[-1]["visible"]), bool(rows[-1]["alive"]))

    @property
    def ends_sessions(self) -> bool:
        """Whether `end_session` can end a script's session on the server (whatever session it is given)."""
        return self.d.end_session("0") is not None

    def end_session(self, session: str) -> bool:
        """Ask the server to end a script's session (its client is gone, its statement may still run); False
        when the engine has no way to."""
        sql = self.d.end_session(session)
        if sql is None:
            return False
        self._exec(sql)
        return True

    def _held(self) -> str:
        """An SQL boolean: this run holds the lock with its lease running."""
        return (f"EXISTS (SELECT 1 FROM {self.lock} WHERE name = {self._lit(LOCK_NAME)} "
                f"AND run_id = {self._lit(self.identity.run_id)} AND expires_at > {self.d.now})")

    def _fenced(self, sql: str) -> None:
        """Run a person's change to the history (`resolve`, `baseline`), written only while the lock is this
        run's: the statement checks it on the server, and the call says whether it was."""
        rows = self._exec(sql + f"\nSELECT {self.d.json_row({'held': f'CASE WHEN {self._held()} THEN 1 ELSE 0 END'})}"
                          f"{self.d.from_dual};")
        if not (rows and rows[-1].get("held")):
            self.held = False
            raise Refused(f"{self.db.label}: LOCK LOST: this run no longer holds its lock (its lease ended: the run "
                          "was paused or cut off); nothing more was changed")

    def set_status(self, entry: Entry, status: str, checksum: str, note: str) -> None:
        self._fenced(f"UPDATE {self.history} SET status = {self._lit(status)}, checksum = {self._lit(checksum)}, "
                     f"note = {self._lit(note)} WHERE id = {self._lit(entry.id)} AND status = "
                     f"{self._lit(entry.status)} AND {self._held()};")

    def baseline(self, script: str, checksum: str, checksum_version: int, note: str) -> None:
        d = self.d
        values = {"script": self._lit(script), "checksum": self._lit(checksum),
                  "checksum_version": self._lit(checksum_version), "status": self._lit(SUCCESS),
                  "started_at": d.now, "finished_at": d.now, "duration_ms": "0",
                  "runner_host": self._lit(self.runner_label), "os_user": self._lit(self.identity.os_user),
                  "tool_version": self._lit(__version__), "run_id": self._lit(self.identity.run_id),
                  "note": self._lit(note)}
        self._fenced(d.insert_ignore_where(self.history, values, self._held()))

    # --- lock -----------------------------------------------------------------------------------------------

    def _holder_fields(self) -> dict[str, str]:
        t = self.d.text_time
        return {"run_id": "run_id", "host": "host", "pid": "pid", "os_user": "os_user",
                "since": t("acquired_at"), "expires": t("expires_at")}

    def _holder_sql(self) -> str:
        return (f"SELECT {self.d.json_row(self._holder_fields())} FROM {self.lock} "
                f"WHERE name = {self._lit(LOCK_NAME)};")

    def holder(self) -> Holder | None:
        rows = self._exec(self._holder_sql(), missing_ok=True)
        return Holder(**rows[0]) if rows else None

    def _holder(self, rows: list[dict[str, Any]]) -> Holder | None:
        """The lock's holder from a lock attempt's rows; refuses when another target of this run reached the
        same ledger (its target row is there beside ours)."""
        others = [row["ledger_target"] for row in rows
                  if "ledger_target" in row and row["ledger_target"] != TARGET_ROW + self.token]
        if others:
            raise SharedLedger(self.db.label, [name.removeprefix(TARGET_ROW) for name in others])
        return next((Holder(**row) for row in rows if "since" in row), None)

    def _running_sessions(self, run: str, *, provably_gone: bool) -> str:
        """An SQL boolean: `run` (an SQL expression for a run id) has a `running` row whose session is alive,
        or, with provably_gone, one whose session is not provably gone (unrecorded, or not visible to us)."""
        d, lit = self.d, self._lit
        alive = d.session_alive("h") if self.version >= 3 else None
        if provably_gone:
            blocking = f"NOT ({d.session_visible('h')} AND NOT {alive})" if alive else "1 = 1"
        elif alive:
            blocking = alive
        else:
            return "1 = 0"
        return (f"EXISTS (SELECT 1 FROM {self.history} h WHERE h.run_id = {run} AND h.status = {lit(RUNNING)} "
                f"AND {blocking})")

    def _lock_sql(self, lease: int, *, clear_expired: bool = True) -> str:
        """One atomic attempt: an expired lease is cleared (unless a script of its run is still running in a
        session the server shows), the primary key lets exactly one run in. The target row beside it tells
        two targets that are one database apart (`_holder`)."""
        d, me = self.d, self.identity
        values = {"name": self._lit(LOCK_NAME), "run_id": self._lit(me.run_id), "host": self._lit(me.host),
                  "pid": self._lit(me.pid), "os_user": self._lit(me.os_user), "acquired_at": d.now,
                  "heartbeat_at": d.now, "expires_at": d.plus_seconds(d.now, lease)}
        mine = {**values, "name": self._lit(TARGET_ROW + self.token)}
        clear = ""
        if clear_expired:
            busy = self._running_sessions(f"{self.lock}.run_id", provably_gone=False)
            clear = (f"DELETE FROM {self.lock} WHERE name = {self._lit(LOCK_NAME)} AND expires_at < {d.now} "
                     f"AND NOT ({busy});\n")
        targets = (f"SELECT {d.json_row({'ledger_target': 'name'})} FROM {self.lock} WHERE run_id = "
                   f"{self._lit(me.run_id)} AND name <> {self._lit(LOCK_NAME)};")
        return (clear + f"DELETE FROM {self.lock} WHERE name <> {self._lit(LOCK_NAME)} AND expires_at < {d.now};\n"
                + d.insert_ignore(self.lock, values) + "\n" + d.insert_ignore(self.lock, mine) + "\n"
                + self._holder_sql() + "\n" + targets)

    def try_lock(self, lease: int) -> Holder | None:
        """One attempt; None when the holder let go between this attempt's insert and its read (the lock is
        free now: the caller tries again at once)."""
        return self._holder(self._exec(self._lock_sql(lease)))

    def _take_over(self, holder: Holder) -> None:
        """Remove a dead run's lock row (and its target rows) before its lease ends, only if none of its scripts
        may still run: every `running` row of that run has a recorded session the server shows is gone."""
        run = self._lit(holder.run_id)  # its lock row and its target rows
        self._exec(f"DELETE FROM {self.lock} WHERE run_id = {run} "
                   f"AND NOT ({self._running_sessions(run, provably_gone=True)});")

    def _still_running(self, holder: Holder) -> str:
        """For a message: the holder's scripts whose sessions the server still shows."""
        alive = self.d.session_alive("h") if self.version >= 3 else None
        if not alive:
            return ""
        fields = {"script": "h.script", "db_session": "h.db_session"}
        rows = self._exec(f"SELECT {self.d.json_row(fields)} FROM {self.history} h WHERE h.run_id = "
                          f"{self._lit(holder.run_id)} AND h.status = {self._lit(RUNNING)} AND {alive};")
        return "; ".join(f"its script {row['script']} is still running in database session {row['db_session']}"
                         for row in rows)

    def acquire(self, lease: int, timeout: float, on_wait: Callable[[Holder], None] | None = None,
                deadline: float | None = None) -> None:
        deadline = time.monotonic() + timeout if deadline is None else deadline
        announced = False
        while True:
            holder = self.try_lock(lease)
            if holder is None:  # freed while we looked: the next attempt takes it, or sees who did
                if time.monotonic() >= deadline:
                    raise LedgerError(f"{self.db.label}: the lock row vanished at every attempt until "
                                      f"--lock-timeout ({timeout:g}s)")
                continue
            if holder.run_id == self.identity.run_id:
                self.held = True
                return
            if self._dead is not None and self._dead(holder):
                self._take_over(holder)
                again = self.try_lock(lease)
                if again is not None and again.run_id == self.identity.run_id:
                    log.warning("%s: took over the lock of %s: that run ended on this machine without releasing "
                                "it, and none of its scripts still runs", self.db.label, holder.describe())
                    self.held = True
                    return
            if time.monotonic() >= deadline:
                running = self._still_running(holder)
                raise Refused(f"{self.db.label} is locked by {holder.describe()}; gave up after {timeout:g}s "
                              "(--lock-timeout). " + (f"The lease has no effect while {running}: a lock is never "
                                                      "taken over while a script of its run still runs."
                                                      if running else
                                                      "A holder that was killed loses the lock when its lease "
                                                      "ends, once none of its scripts still runs."))
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

    def release_sql(self) -> str:
        """Any pending success, then the lock (and this run's target rows) freed."""
        return self._flush() + f"DELETE FROM {self.lock} WHERE run_id = {self._lit(self.identity.run_id)};"

    def released(self) -> None:
        """`release_sql` ran to its end."""
        self._flushed()
        self.held = False

    def release(self) -> None:
        """Write any pending success, then free the lock (and this run's target rows): one client call."""
        self._exec(self.release_sql())
        self.released()

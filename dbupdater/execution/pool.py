"""The connections and ledgers one command uses: a session per runner, a ledger per (runner, database), the
locks held; closing releases the locks and removes the runners' private directories."""

from __future__ import annotations

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

from ..engines import registry as engines
from ..ledger import Entry, Holder, Ledger, SharedLedger, SqlChannel
from ..ledger.together import open_together, share_key
from ..model.errors import DbUpdaterError, ManifestError, Problem
from ..model.identity import RunIdentity
from ..model.specs import DatabaseSpec, DbKey, Manifest, ManifestRow, RunnerSpec, first_row_per_database
from ..plan import PlannedRow
from ..transports import open_transport
from .liveness import Liveness
from .options import RunOptions
from .scheduler import parallel_map, runner_cap
from .sessions import RunnerSession

# Ledgers opened in one shared call: a group is cut into up to SHARED_CALLS calls that run side by side (the
# opening of a new ledger is mostly its CREATE TABLEs, which a single call would make one after another:
# measured on 40 new databases through one runner, 4 calls opened them in 0.24 to 0.31 s, one call in 0.36 to
# 0.42 s, a call each in 0.47 to 0.50 s), of SHARED_AT_LEAST ledgers or more (5 databases: one call) and at
# most SHARED_AT_MOST (a call's rows hold every history it read).
SHARED_CALLS = 4
SHARED_AT_LEAST = 4
SHARED_AT_MOST = 32


def one_database(source: str, row: ManifestRow, others: list[ManifestRow]) -> ManifestError:
    """Two targets that reached one ledger: the manifest names one database twice (exit 2, nothing runs)."""
    names = ", ".join(f"{other.db.target_label} (line {other.line})" for other in others) or "another target"
    return ManifestError(source, [Problem(
        f"{row.db.target_label} and {names} are one database: they reach the same history and lock tables (two "
        "names for one server, such as an alias, a VIP and a node name, or 127.0.0.1 and localhost; or one "
        "--history-schema shared by two databases). Name each database one way", row.line, "database_host")])


class Deployment:
    """Sessions and ledgers for one command; closing releases locks and removes the private directories."""

    def __init__(self, manifest: Manifest, options: RunOptions, identity: RunIdentity | None = None) -> None:
        self.manifest = manifest
        self.options = options
        self.identity = identity or RunIdentity()
        self._sessions: dict[RunnerSpec, RunnerSession] = {}
        self._ledgers: dict[tuple[RunnerSpec, DatabaseSpec], Ledger] = {}
        self.locked: dict[DbKey, Ledger] = {}
        self._lock = threading.Lock()
        self._connecting: dict[RunnerSpec, threading.Lock] = {}
        self._locking: list[Ledger] = []  # every ledger that tried to take a lock: released at the end, or not
        self.liveness = Liveness(self.identity)
        self.cancelled = False
        # Set at the first Ctrl-C: steps that run until told to stop (`copy-db --follow`) stop there, cleanly.
        self.interrupted = threading.Event()

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def session(self, spec: RunnerSpec) -> RunnerSession:
        with self._lock:
            session = self._sessions.get(spec)
            if session is not None:
                return session
            connecting = self._connecting.setdefault(spec, threading.Lock())
        with connecting:  # one connection per runner, while other runners connect in parallel
            with self._lock:
                session = self._sessions.get(spec)
            if session is None:
                transport = open_transport(spec, self.options.transports)
                try:
                    session = RunnerSession(transport, transport.make_private_dir())
                except BaseException:
                    transport.close()
                    raise
                with self._lock:
                    self._sessions[spec] = session
        return session

    def forget(self, spec: RunnerSpec) -> None:
        """Drop a runner's connection (it failed), so the next use connects afresh."""
        with self._lock:
            session = self._sessions.pop(spec, None)
            for key in [key for key in self._ledgers if key[0] == spec]:
                del self._ledgers[key]
        if session is not None:
            session.close()

    def channel(self, row: ManifestRow) -> SqlChannel:
        """SQL through the row's database's own client on the row's runner."""
        session = self.session(row.runner)
        engine = engines.get(row.db.engine)
        return SqlChannel(session.transport, engine, row.db, session.credentials(row.db), session.client(engine))

    def ledger(self, row: ManifestRow) -> Ledger:
        key = (row.runner, row.db)
        with self._lock:
            ledger = self._ledgers.get(key)
        if ledger is None:
            ledger = Ledger(self.channel(row), self.options.history_schema, self.identity, row.runner.label,
                            dead=self.liveness.dead)
            with self._lock:
                ledger = self._ledgers.setdefault(key, ledger)
        return ledger

    def connect(self) -> None:
        """Connect to every runner of the manifest (in parallel), for commands that use no ledger (`exec`); the
        first error ends the phase after the others finished."""
        runners = list(dict.fromkeys(row.runner for row in self.manifest.rows))
        parallel_map(self.session, runners, max(1, self.options.parallel))

    def open(self, *, lock: bool, on_wait: Callable[[DatabaseSpec, Holder], None] | None = None,
             ) -> dict[DbKey, dict[str, Entry]]:
        """Read every database's history; with lock, create the ledger first and hold each database's lock.

        Runners connect in parallel, then databases are opened in parallel, each lock taken only if it is
        free. When another run holds one, this run lets go of every lock it took and then takes them one by
        one in a fixed order (by database), waiting where needed: a run never waits while holding a lock out
        of order, so overlapping runs cannot lock each other out. The first error ends the phase (and the
        command) after the others finished, and closing releases whatever was locked.
        """
        histories: dict[DbKey, dict[str, Entry] | None] = {}
        first_rows = first_row_per_database(self.manifest.rows)
        workers = max(1, self.options.parallel)
        deadline = time.monotonic() + self.options.lock_timeout
        parallel_map(self.session, list(dict.fromkeys(row.runner for row in first_rows)), workers)
        if lock:
            self.liveness.start()  # before the first lock: a lock this run leaves behind is then provably its

        targets: dict[str, ManifestRow] = {}
        shared: dict[DbKey, list[dict[str, Any]]] = {}  # first calls made together (ledger/together.py)

        def open_shared(rows: list[ManifestRow]) -> None:
            ledgers = [self.ledger(row) for row in rows]
            with self._lock:
                for row, ledger in zip(rows, ledgers, strict=True):
                    targets[ledger.token] = row
                    self.locked[row.db.key] = ledger  # its lock may be taken from here on: close releases it
                    self._locking.append(ledger)
            found = open_together(ledgers, self.options.lock_lease)
            with self._lock:
                shared.update((row.db.key, found[ledger]) for row, ledger in zip(rows, ledgers, strict=True)
                              if ledger in found)

        def open_one(row: ManifestRow, wait: bool = False) -> None:
            ledger = self.ledger(row)
            if lock:
                notify = functools.partial(on_wait, row.db) if on_wait and wait else None
                with self._lock:
                    targets[ledger.token] = row
                    opened = None if wait else shared.pop(row.db.key, None)
                try:
                    history = ledger.open_locked(self.options.lock_lease, self.options.lock_timeout, notify,
                                                 wait=wait, deadline=deadline, opened=opened)
                except SharedLedger as exc:
                    raise one_database(self.manifest.source, row, [targets[t] for t in exc.tokens if t in targets]
                                       ) from None
                finally:  # whether or not this thread saw the answer, the lock may be ours: close releases it
                    with self._lock:
                        self.locked[row.db.key] = ledger
                        self._locking.append(ledger)
            else:
                history = ledger.read(missing_ok=True)
            with self._lock:
                histories[row.db.key] = history

        cap = runner_cap(self.options.parallel, self.options.per_runner)
        if lock:
            groups = self._sharing(first_rows)
            parallel_map(open_shared, groups, workers, group=lambda rows: rows[0].runner, per_group=cap)
        parallel_map(open_one, first_rows, workers, group=lambda row: row.runner, per_group=cap)
        if not lock:
            self._one_database_twice(first_rows)
        if any(history is None for history in histories.values()):
            for row in first_rows:  # hold nothing while waiting for what another run holds
                taken = self.unlock(row.db.key)
                if taken is not None:
                    taken.release()
            for row in sorted(first_rows, key=lambda row: row.db.key):
                open_one(row, wait=True)
        opened: dict[DbKey, dict[str, Entry]] = {}
        for row in first_rows:
            history = histories[row.db.key]
            assert history is not None  # waited for, or Refused
            opened[row.db.key] = history
        return opened

    def _sharing(self, first_rows: list[ManifestRow]) -> list[list[ManifestRow]]:
        """The databases whose ledgers open in shared calls (two or more per runner, server and login; see
        SHARED_CALLS): their runners connect and their logins are written first, in parallel."""
        def ready(runner: RunnerSpec) -> None:
            for row in first_rows:
                if row.runner == runner:
                    self.ledger(row)

        if not any(engines.get(row.db.engine).dialect.use_database(row.db.database) for row in first_rows):
            return []
        parallel_map(ready, list(dict.fromkeys(row.runner for row in first_rows)), max(1, self.options.parallel))
        by_key: dict[Hashable, list[ManifestRow]] = {}
        for row in first_rows:
            key = share_key(self.ledger(row))
            if key is not None:
                by_key.setdefault(key, []).append(row)
        calls: list[list[ManifestRow]] = []
        for rows in by_key.values():
            if len(rows) < 2:
                continue
            count = max(min(SHARED_CALLS, len(rows) // SHARED_AT_LEAST), -(-len(rows) // SHARED_AT_MOST), 1)
            calls += [rows[number::count] for number in range(count)]  # sizes differ by one at most
        return calls

    def _one_database_twice(self, first_rows: list[ManifestRow]) -> None:
        """Commands that write nothing cannot leave target rows beside the lock: the servers' own identity
        (`Dialect.server_identity`) tells them that two targets are one database."""
        seen: dict[tuple[str, str], ManifestRow] = {}
        for row in first_rows:
            server = self.ledger(row).server
            if server is None:
                continue
            first = seen.setdefault((row.db.engine, server), row)
            if first is not row:
                raise one_database(self.manifest.source, row, [first])

    def holds_lock(self, ledger: Ledger, key: DbKey) -> bool:
        """Whether this ledger is the one holding its database's lock. A database reached through two runners
        has a ledger per runner; only the lock's ledger is called again at the end (the release), so a success
        may wait for a later call only there: through the other runner it is written at once."""
        with self._lock:
            return self.locked.get(key) is ledger

    def unlock(self, key: DbKey) -> Ledger | None:
        """Take a database out of the locked set (its caller releases it)."""
        with self._lock:
            return self.locked.pop(key, None)

    def close(self, within: float | None = None) -> None:
        """Release the locks, remove the private directories, disconnect. With `within`, give up after that
        many seconds (leaving after an interrupt: a frozen runner must not hold the exit; its locks end with
        their leases). Then the releases get half of it and the removals start regardless: a release stuck on
        a frozen database must not leave credentials files behind on a runner that is fine."""
        with self._lock:
            locked, self.locked = list(self.locked.values()), {}
            sessions, self._sessions = list(self._sessions.values()), {}
        workers = max(1, self.options.parallel)

        def release(ledger: Ledger) -> None:
            with contextlib.suppress(DbUpdaterError):
                ledger.release()  # if this fails, the lease expires by itself

        def releases() -> None:
            parallel_map(release, locked, workers)

        def removals() -> None:
            parallel_map(RunnerSession.close, sessions, workers)

        if within is None:
            releases()
            removals()
        else:
            ends = time.monotonic() + within
            for work, until in ((releases, time.monotonic() + within / 2), (removals, ends)):
                thread = threading.Thread(target=work, name="dbupdater-close", daemon=True)
                thread.start()
                thread.join(max(0.0, until - time.monotonic()))
        with self._lock:
            left_behind = any(ledger.held for ledger in self._locking)
        self.liveness.finish(all_released=not left_behind)

    def cancel(self) -> None:
        """Interrupt every client still running on any runner (they cancel their statement on the server)."""
        self.cancelled = True
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.transport.interrupt()

    def stop_copies(self) -> None:
        """The run stops early: copy nothing more ahead (a copy under way ends by itself)."""
        with self._lock:
            sessions = list(self._sessions.values())
        for session in sessions:
            session.stop_prefetch()

    def prefetch(self, planned: list[PlannedRow]) -> None:
        """Start copying, per connected runner, the scripts that will run, in the order they will."""
        wanted: dict[RunnerSpec, dict[tuple[Path, str], None]] = {}
        for p in planned:
            if p.state.runs:
                wanted.setdefault(p.row.runner, {})[(p.row.script, p.row.encoding)] = None
        with self._lock:
            sessions = {spec: self._sessions[spec] for spec in wanted if spec in self._sessions}
        for spec, session in sessions.items():
            session.prefetch(list(wanted[spec]))

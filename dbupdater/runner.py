"""Walk a manifest: open every runner and ledger, plan, then run pending scripts in order.

Phase 1 connects to every runner, and for each database creates the ledger tables, takes its lock and reads
its history. Phase 2 plans every row. Only when no row is drifted or in doubt anywhere does phase 3 run
anything, recording `running` before each script and its result after. The first failure halts the run.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import scriptfile
from .checksum import VERSION
from .engines import OutputLog, Verdict
from .engines import registry as engines
from .fanout import Scheduler, parallel_map
from .interrupts import Escalation, Step
from .ledger import FAILED, ROLLED_BACK, SUCCESS, Entry, Holder, Ledger, RunIdentity, SqlChannel
from .model.errors import DbUpdaterError, UnreachableError
from .model.outcome import Outcome, RunResult, Status
from .model.secret import redact
from .model.specs import DatabaseSpec, Manifest, ManifestRow, RunnerSpec, first_row_per_database, targets
from .plan import DbKey, PlannedRow, plan_rows
from .transports import Transport, TransportError, open_transport

log = logging.getLogger("dbupdater")
SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class RunOptions:
    transports: dict[str, Any] = field(default_factory=dict)  # each transport kind's options, by kind
    history_schema: str | None = None
    lock_timeout: float = 60.0
    lock_lease: int = 60
    single_transaction: bool = False
    parallel: int = 8
    per_runner: int = 4
    keep_going: bool = False


class Hooks(Protocol):
    """What a run reports to, and asks, outside the databases (environment state in Vault)."""

    def executing(self, planned: list[PlannedRow]) -> None:
        """Scripts are about to run. Raising an UnreachableError stops the run before anything executes."""

    def before_script(self) -> None:
        """Raising an UnreachableError stops the run before the next script (e.g. Vault went away)."""


class Reporter(Protocol):
    def step_started(self, outcome: Outcome, total: int) -> None: ...
    def step_finished(self, outcome: Outcome, total: int) -> None: ...
    def waiting_for_lock(self, db: DatabaseSpec, holder: Holder) -> None: ...
    def interrupted(self, step: Step, running: int) -> None: ...


@dataclass
class _Upload:
    remote: str
    done: threading.Event = field(default_factory=threading.Event)
    error: TransportError | None = None


@dataclass
class Session:
    """One runner for the whole run: its connection, its private directory, one credentials file per login,
    and each distinct script uploaded once however many targets run it. Shared by worker threads."""

    transport: Transport
    workdir: str
    _credentials: dict[tuple[DatabaseSpec, str], str] = field(default_factory=dict)
    _uploads: dict[tuple[Path, str], _Upload] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _prefetching: threading.Thread | None = None
    _stop_prefetch: threading.Event = field(default_factory=threading.Event)

    def credentials(self, db: DatabaseSpec) -> str:
        # DatabaseSpec equality ignores the password; two rows may log in as one user with different ones.
        key = (db, db.password.reveal() if db.password else "")
        with self._lock:
            path = self._credentials.get(key)
            if path is None:
                path = f"{self.workdir}/login{len(self._credentials) + 1}.cred"
                self.transport.put_bytes(engines.get(db.engine).credentials(db), path)
                self._credentials[key] = path
        return path

    def upload(self, script: Path, encoding: str) -> str:
        """The script's path on the runner, copying it (streamed, as UTF-8) the first time any target needs it."""
        with self._lock:
            upload = self._uploads.get((script, encoding))
            owner = upload is None
            if upload is None:
                name = f"{len(self._uploads) + 1:05d}-{SAFE_NAME.sub('_', script.name)}"
                upload = self._uploads[(script, encoding)] = _Upload(f"{self.workdir}/{name}")
        if owner:
            log.debug("uploading %s (%s) to %s", script.name, encoding, self.transport.label)
            try:
                with scriptfile.utf8(script, encoding) as (source, size):
                    self.transport.put_stream(source, size, upload.remote, script.name)
            except (OSError, ValueError) as exc:  # the file changed since it was validated
                upload.error = TransportError(f"{script.name} cannot be read as {encoding}: {exc}")
            except TransportError as exc:
                upload.error = exc
            finally:
                upload.done.set()
        else:
            upload.done.wait()
        if upload.error is not None:
            raise upload.error
        return upload.remote

    def prefetch(self, scripts: list[tuple[Path, str]]) -> None:
        """Copy the scripts the run will need, in order, in the background: each later copy overlaps the
        scripts running before it (one connection carries both)."""
        def work() -> None:
            for script, encoding in scripts:
                if self._stop_prefetch.is_set():
                    return
                try:
                    self.upload(script, encoding)
                except TransportError:
                    return  # the step that needs the script reports it
        self._prefetching = threading.Thread(target=work, name=f"dbupdater-copy {self.transport.label}", daemon=True)
        self._prefetching.start()

    def stop_prefetch(self) -> None:
        self._stop_prefetch.set()

    def close(self) -> None:
        """Stop copying, remove the private directory and disconnect."""
        self._stop_prefetch.set()
        if self._prefetching is not None:  # a copy under way: let a small one end; a big one fails at the rm
            self._prefetching.join(timeout=5)
        try:
            self.transport.remove(self.workdir)
        except TransportError:
            pass  # the runner is gone; its private directory goes with its /tmp policy
        finally:
            self.transport.close()


class Deployment:
    """Sessions and ledgers for one command; closing releases locks and removes the private directories."""

    def __init__(self, manifest: Manifest, options: RunOptions, identity: RunIdentity | None = None) -> None:
        self.manifest = manifest
        self.options = options
        self.identity = identity or RunIdentity()
        self._sessions: dict[RunnerSpec, Session] = {}
        self._ledgers: dict[tuple[RunnerSpec, DatabaseSpec], Ledger] = {}
        self.locked: dict[DbKey, Ledger] = {}
        self._lock = threading.Lock()
        self._connecting: dict[RunnerSpec, threading.Lock] = {}
        self.cancelled = False

    def __enter__(self) -> Deployment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def session(self, spec: RunnerSpec) -> Session:
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
                    session = Session(transport, transport.make_private_dir())
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
        return SqlChannel(session.transport, engines.get(row.db.engine), row.db, session.credentials(row.db))

    def ledger(self, row: ManifestRow) -> Ledger:
        key = (row.runner, row.db)
        with self._lock:
            ledger = self._ledgers.get(key)
        if ledger is None:
            ledger = Ledger(self.channel(row), self.options.history_schema, self.identity, row.runner.label)
            with self._lock:
                ledger = self._ledgers.setdefault(key, ledger)
        return ledger

    def open(self, *, lock: bool, on_wait: Reporter | None = None) -> dict[DbKey, dict[str, Entry]]:
        """Read every database's history; with lock, create the ledger first and hold each database's lock.

        Runners connect in parallel, then databases are opened in parallel; the first error ends the phase
        (and the command) after the others finished, and closing releases whatever was locked.
        """
        histories: dict[DbKey, dict[str, Entry]] = {}
        first_rows = first_row_per_database(self.manifest.rows)
        workers = max(1, self.options.parallel)
        parallel_map(self.session, list(dict.fromkeys(row.runner for row in first_rows)), workers)

        def open_one(row: ManifestRow) -> None:
            ledger = self.ledger(row)
            if lock:
                notify = functools.partial(on_wait.waiting_for_lock, row.db) if on_wait else None
                try:
                    history = ledger.open_locked(self.options.lock_lease, self.options.lock_timeout, notify)
                finally:  # whether or not this thread saw the answer, the lock may be ours: close releases it
                    with self._lock:
                        self.locked[row.db.key] = ledger
            else:
                history = ledger.read(missing_ok=True)
            with self._lock:
                histories[row.db.key] = history

        parallel_map(open_one, first_rows, workers)
        return {row.db.key: histories[row.db.key] for row in first_rows}

    def unlock(self, key: DbKey) -> Ledger | None:
        """Take a database out of the locked set (its caller releases it)."""
        with self._lock:
            return self.locked.pop(key, None)

    def close(self) -> None:
        for ledger in self.locked.values():
            with contextlib.suppress(DbUpdaterError):
                ledger.release()  # if this fails, the lease expires by itself
        self.locked.clear()
        sessions = list(self._sessions.values())
        self._sessions.clear()
        parallel_map(Session.close, sessions, max(1, self.options.parallel))

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


class Heartbeat(threading.Thread):
    """Renews the lease of every held lock while scripts run; notices when a lock is lost."""

    def __init__(self, ledgers: list[Ledger], lease: int) -> None:
        super().__init__(name="dbupdater-heartbeat", daemon=True)
        self.ledgers = list(ledgers)
        self._guard = threading.Lock()
        self.lease = lease
        self.lost: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        last_ok = {id(ledger): time.monotonic() for ledger in self.ledgers}
        while not self._stop_event.wait(max(1.0, self.lease / 3)):
            with self._guard:
                ledgers = list(self.ledgers)
            for ledger in ledgers:
                try:
                    held = ledger.heartbeat(self.lease)
                except DbUpdaterError:
                    held = time.monotonic() - last_ok[id(ledger)] < self.lease * 2 / 3  # transient, if brief
                else:
                    last_ok[id(ledger)] = time.monotonic()
                if not held and ledger.db.target_label not in self.lost:
                    self.lost.append(ledger.db.target_label)

    def discard(self, ledger: Ledger) -> None:
        """A target is done and its lock released: stop renewing it."""
        with self._guard:
            if ledger in self.ledgers:
                self.ledgers.remove(ledger)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=30)


def apply(manifest: Manifest, options: RunOptions, reporter: Reporter, hooks: Hooks | None = None,
          identity: RunIdentity | None = None) -> tuple[list[PlannedRow], RunResult]:
    started = time.monotonic()
    with Deployment(manifest, options, identity) as deployment:
        histories = deployment.open(lock=True, on_wait=reporter)
        planned = plan_rows(manifest.rows, histories)
        outcomes = [Outcome(p.index, p.row) for p in planned]
        if any(p.state.blocks for p in planned):
            for p, outcome in zip(planned, outcomes, strict=True):
                if p.state.blocks:
                    outcome.status, outcome.reason = Status.REFUSED, f"{p.state.value}: {p.detail}"
            return planned, RunResult(outcomes, time.monotonic() - started)
        if hooks is not None and any(p.state.runs for p in planned):
            hooks.executing(planned)
        deployment.prefetch(planned)
        heartbeat = Heartbeat(list(deployment.locked.values()), options.lock_lease)
        heartbeat.start()
        running: set[int] = set()

        def leave() -> None:
            for position in list(running):  # abandoned: the runner may still be executing them
                outcomes[position].status = Status.INTERRUPTED
                outcomes[position].reason = ("interrupted: the script may be partially applied, and may still run "
                                             "on the runner")

        escalation = Escalation(deployment.cancel, reporter.interrupted, leave)
        try:
            execute = _execute_parallel if options.parallel > 1 else _execute
            execute(deployment, planned, outcomes, heartbeat, options, reporter, hooks, escalation, running)
            for key in list(deployment.locked):
                _release(deployment, heartbeat, key, planned, outcomes)
        finally:
            heartbeat.stop()
    return planned, RunResult(outcomes, time.monotonic() - started, interrupted=escalation.interrupted)


def _execute(deployment: Deployment, planned: list[PlannedRow], outcomes: list[Outcome], heartbeat: Heartbeat,
             options: RunOptions, reporter: Reporter, hooks: Hooks | None, escalation: Escalation,
             running: set[int]) -> None:
    """--parallel 1: the whole manifest strictly in order, stopping at the first failure. It runs on a worker
    thread like the parallel walk, so Ctrl-C is handled the same way."""
    total = len(planned)
    last = {p.row.db.key: position for position, p in enumerate(planned)}
    scheduler = Scheduler(1, 1)

    def walk() -> None:
        for position, (p, outcome) in enumerate(zip(planned, outcomes, strict=True)):
            if scheduler.stopped:
                return
            running.add(position)
            try:
                ok = _step(deployment, p, outcome, heartbeat, options, reporter, hooks, total)
            finally:
                running.discard(position)
            if not ok:
                deployment.stop_copies()
                return
            if last[p.row.db.key] == position:
                _release(deployment, heartbeat, p.row.db.key, planned, outcomes)

    scheduler.run([("manifest", walk)], escalation)


def _release(deployment: Deployment, heartbeat: Heartbeat, key: DbKey, planned: list[PlannedRow],
             outcomes: list[Outcome]) -> None:
    """A target is done: record its last success and free its lock in one call, so other runs can start on
    it while the rest of this run goes on."""
    ledger = deployment.unlock(key)
    if ledger is None:
        return
    heartbeat.discard(ledger)
    pending = ledger.has_pending
    try:
        ledger.release()
    except DbUpdaterError as exc:
        if pending:
            applied = [o for p, o in zip(planned, outcomes, strict=True)
                       if p.row.db.key == key and o.status is Status.APPLIED]
            if applied:
                applied[-1].status = Status.UNREACHABLE
                applied[-1].reason = (f"applied, but recording it failed ({exc}): the history shows it as running, "
                                      "and the next run will ask you to resolve it")


def _step(deployment: Deployment, p: PlannedRow, outcome: Outcome, heartbeat: Heartbeat, options: RunOptions,
          reporter: Reporter, hooks: Hooks | None, total: int) -> bool:
    """Run or skip one row; False when its target (or, by the caller's rule, the run) must stop here."""
    if not p.state.runs:
        outcome.status, outcome.reason = Status.SKIPPED, f"already applied: {p.detail}"
        reporter.step_finished(outcome, total)
        return True
    if p.row.db.target_label in heartbeat.lost:
        outcome.status = Status.REFUSED
        outcome.reason = f"stopped before this script: the lock on {p.row.db.target_label} was lost"
        reporter.step_finished(outcome, total)
        return False
    if hooks is not None:
        try:
            hooks.before_script()
        except UnreachableError as exc:
            outcome.status, outcome.reason = Status.UNREACHABLE, f"stopped before this script: {exc}"
            reporter.step_finished(outcome, total)
            return False
    reporter.step_started(outcome, total)
    _apply_one(deployment, p, outcome, options)
    reporter.step_finished(outcome, total)
    return outcome.status is Status.APPLIED


def _execute_parallel(deployment: Deployment, planned: list[PlannedRow], outcomes: list[Outcome],
                      heartbeat: Heartbeat, options: RunOptions, reporter: Reporter, hooks: Hooks | None,
                      escalation: Escalation, running: set[int]) -> None:
    """Targets in parallel, each target's rows in order. On a failure nothing new starts anywhere (running
    scripts finish), unless keep_going: then only the failed target stops. Losing Vault stops everything."""
    total = len(planned)
    scheduler = Scheduler(options.parallel, options.per_runner)
    guard = threading.Lock()

    def run_target(positions: list[int]) -> None:
        for position in positions:
            if scheduler.stopped:
                return
            p, outcome = planned[position], outcomes[position]
            with guard:
                running.add(position)
            try:
                ok = _step(deployment, p, outcome, heartbeat, options, reporter, hooks, total)
            finally:
                with guard:
                    running.discard(position)
            if position == positions[-1] or not ok:
                _release(deployment, heartbeat, p.row.db.key, planned, outcomes)
            if not ok:
                vault_gone = outcome.status is Status.UNREACHABLE and outcome.reason.startswith("stopped before")
                if not options.keep_going or vault_gone or outcome.status is Status.INTERRUPTED:
                    scheduler.stop()
                    deployment.stop_copies()
                return

    jobs = []
    for positions in targets([p.row for p in planned]).values():
        first_runner = planned[positions[0]].row.runner
        jobs.append((first_runner, functools.partial(run_target, positions)))
    scheduler.run(jobs, escalation)


def _apply_one(deployment: Deployment, p: PlannedRow, outcome: Outcome, options: RunOptions) -> None:
    row = p.row
    engine = engines.get(row.db.engine)
    single = row.single_transaction or (options.single_transaction and engine.transactional_ddl)
    started = time.monotonic()
    before = ""
    try:
        ledger = deployment.ledger(row)
        session = deployment.session(row.runner)
        script = session.upload(row.script, row.encoding)  # before anything is recorded: a failed copy leaves no trace
        credentials = session.credentials(row.db)
        if engine.shares_session(single):
            before = ledger.running_before_script(row.script_id, p.checksum, VERSION)
        else:
            ledger.mark_running(row.script_id, p.checksum, VERSION)
    except DbUpdaterError as exc:
        outcome.status, outcome.reason = Status.UNREACHABLE, f"not started: {exc}"
        return
    try:
        began = _run_script(session.transport, row, outcome, single, script, credentials, before)
    finally:
        outcome.seconds = time.monotonic() - started
    cancelled = deployment.cancelled and outcome.status is Status.FAILED
    if before and began:
        ledger.running_recorded(all_checked=engine.before_checked)
    if began is False:  # the `running` row was never written, nor the script run
        outcome.status, outcome.reason = Status.UNREACHABLE, f"not started: {outcome.reason}"
        return
    status = {Status.APPLIED: SUCCESS}.get(outcome.status, FAILED)
    if outcome.status is Status.FAILED and single:
        status = ROLLED_BACK
        outcome.reason += "; rolled back (single transaction): nothing of it remains"
    if cancelled:
        outcome.status = Status.INTERRUPTED
        outcome.reason = f"cancelled on the server (interrupted): {outcome.reason}"
    if status == SUCCESS:
        ledger.finish_later(row.script_id, status)
        return
    try:
        ledger.mark_finished(row.script_id, status, None if status == SUCCESS else redact(outcome.reason)[:900])
    except DbUpdaterError as exc:
        outcome.status = Status.UNREACHABLE
        outcome.reason = (f"{outcome.reason}; recording the result failed ({exc}): the history shows it as running, "
                          "and the next run will ask you to resolve it")


def _run_script(transport: Transport, row: ManifestRow, outcome: Outcome, single_transaction: bool, script: str,
                credentials: str, before: str) -> bool | None:
    """Run the client on the runner and judge it; returns whether the `running` row went in with it (always
    True when it was written beforehand, None when the runner went away and nobody can tell)."""
    engine = engines.get(row.db.engine)
    log = OutputLog(engine)
    command = engine.command(row.db, script, credentials, single_transaction=single_transaction, before=before)
    marker_seen = False

    def feed(stream: str, line: str) -> None:
        nonlocal marker_seen
        if not marker_seen and stream == "stdout" and line == command.started_marker:
            marker_seen = True
        else:
            log.feed(stream, line)

    try:
        try:
            result = transport.run(command, feed)
            outcome.exit_code = result.exit_code()
        finally:
            outcome.warnings, outcome.errors = log.warnings, log.errors
            outcome.stdout_tail = list(log.stdout_tail)
    except TransportError as exc:
        outcome.status, outcome.reason = Status.UNREACHABLE, f"{exc}; the script may be partially applied"
        return None if before else True
    verdict, reason = engine.verdict(result, log)
    outcome.status = {Verdict.APPLIED: Status.APPLIED, Verdict.FAILED: Status.FAILED,
                      Verdict.UNREACHABLE: Status.UNREACHABLE}[verdict]
    outcome.reason = reason
    if log.dropped:
        outcome.reason += f" ({log.dropped} more warning/error lines not kept)"
    return engine.started(result, log, marker_seen) if before else True

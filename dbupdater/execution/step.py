"""One row's script on its runner: copy, record `running`, run the client, judge it, record the outcome.

The order is what keeps the history truthful: the copy first (a failed copy leaves no trace), then the
`running` row (in the script's own client session when the engine can), the script, and its end; a success
rides with the database's next ledger call, a failure is written at once.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from ..checksum import VERSION
from ..engines import Engine, OutputLog, Verdict
from ..engines import registry as engines
from ..ledger import FAILED, ROLLED_BACK, SUCCESS, Ledger
from ..model.command import Client, Command, Signal
from ..model.errors import DbUpdaterError
from ..model.outcome import Outcome, Status
from ..model.secret import redact
from ..model.specs import ManifestRow
from ..plan import PlannedRow
from ..transports import Transport, TransportError
from .options import RunOptions
from .pool import Deployment
from .sessions import RunnerSession

LineSink = Callable[[str, str], None]


@dataclass(frozen=True)
class Ready:
    """What running a row's script needs on its runner, copied and written there before anything is recorded
    (a failed copy leaves no trace)."""

    session: RunnerSession
    script: str
    credentials: str
    engine: Engine
    client: Client

    @property
    def transport(self) -> Transport:
        return self.session.transport


def ready(deployment: Deployment, row: ManifestRow) -> Ready:
    session = deployment.session(row.runner)
    script = session.upload(row.script, row.encoding)
    engine = engines.get(row.db.engine)
    return Ready(session, script, session.credentials(row.db), engine, session.client(engine))


def single_transaction(row: ManifestRow, options: RunOptions, engine: Engine) -> bool:
    return row.single_transaction or (options.single_transaction and engine.transactional_ddl)


def interrupted(outcome: Outcome) -> None:
    """A script that failed because the run cancelled it (the second Ctrl-C, SIGTERM) was interrupted."""
    outcome.status = Status.INTERRUPTED
    outcome.reason = f"cancelled on the server (interrupted): {outcome.reason}"


def apply_one(deployment: Deployment, p: PlannedRow, outcome: Outcome, options: RunOptions,
              on_line: LineSink | None = None) -> None:
    row = p.row
    started = time.monotonic()
    before = ""
    try:
        ledger = deployment.ledger(row)
        on = ready(deployment, row)
    except DbUpdaterError as exc:
        outcome.status, outcome.reason = Status.UNREACHABLE, f"not started: {exc}"
        return
    single = single_transaction(row, options, on.engine)
    try:
        if on.engine.shares_session(single):
            before = ledger.running_before_script(row.script_id, p.checksum, VERSION, p.entry)
        else:
            ledger.mark_running(row.script_id, p.checksum, VERSION, p.entry)
    except DbUpdaterError as exc:
        refused(ledger, p, outcome, f"not started: {exc}", [str(exc)])
        return
    try:
        began = run_script(on, row, outcome, single, before, on_line, row.script_timeout or options.script_timeout,
                           STOP_OUTRIGHT if ledger.ends_sessions else CANCEL_FIRST)
    finally:
        outcome.seconds = time.monotonic() - started
    cancelled = deployment.cancelled and outcome.status is Status.FAILED
    if before and began:
        ledger.running_recorded(all_checked=on.engine.before_checked)
    if began is False:  # the `running` row was never written, nor the script run
        refused(ledger, p, outcome, f"not started: {outcome.reason}", outcome.errors)
        return
    if outcome.timed_out and not settled(ledger, row, outcome):
        return  # its session may still run: the history keeps it `running`, in doubt
    status = {Status.APPLIED: SUCCESS}.get(outcome.status, FAILED)
    if outcome.status is Status.FAILED and single:
        status = ROLLED_BACK
        outcome.reason += "; rolled back (single transaction): nothing of it remains"
    if cancelled:
        interrupted(outcome)
    if status == SUCCESS and deployment.holds_lock(ledger, row.db.key):
        ledger.finish_later(row.script_id, status)  # rides with this ledger's next call: the release at the latest
        return
    try:
        ledger.mark_finished(row.script_id, status, None if status == SUCCESS else redact(outcome.reason)[:900])
    except DbUpdaterError as exc:
        outcome.status = Status.UNREACHABLE
        outcome.reason = (f"{outcome.reason}; recording the result failed ({exc}): the script may be partially "
                          "applied, the history shows it as running, and the next run will ask you to resolve it")


# The server's words when the `running` row's NULL met its NOT NULL column (MySQL 1048, PostgreSQL 23502,
# ORA-01400, SQL Server 515 all name the column): the refusal, as opposed to a login that failed.
REFUSAL = re.compile(r"null.*\b(run_id|script)\b|\b(run_id|script)\b.*null", re.IGNORECASE)


def refused(ledger: Ledger, p: PlannedRow, outcome: Outcome, otherwise: str, errors: list[str]) -> None:
    """The `running` row did not go in, so the script did not start: when the server refused it, ask the
    ledger why, and say what is true. A lock lost (this run was paused past its lease, or cut off) stops the
    target, loudly; a script that is no longer what the plan saw (another run, or another name of this
    database, got there first) is skipped when it was applied as it is now, refused otherwise. Anything else
    is the login's failure (not asked again: a server that is down would cost its connect timeout twice)."""
    if not any(REFUSAL.search(line) for line in errors):
        outcome.status, outcome.reason = Status.UNREACHABLE, otherwise
        return
    try:
        why = ledger.refusal(p.row.script_id)
    except DbUpdaterError:
        outcome.status, outcome.reason = Status.UNREACHABLE, otherwise
        return
    target = p.row.db.target_label
    if why.lock_lost is not None or why.lease_ended:
        now = (f"it is held by {why.lock_lost.describe()}" if why.lock_lost is not None else
               "its lease ended before this script: this run was paused or could not renew it")
        outcome.status = Status.REFUSED
        outcome.reason = (f"LOCK LOST: this run no longer holds the lock on {target} ({now}); this script was not "
                          "started and nothing more runs on this target in this run")
        return
    latest, seen = why.latest, p.entry
    if latest is not None and (seen is None or (latest.id, latest.status) != (seen.id, seen.status)):
        if latest.status == SUCCESS and latest.checksum == p.checksum:
            outcome.status = Status.SKIPPED
            outcome.reason = (f"already applied: {latest.describe()}, after this run planned it (another run, or "
                              "another name of this database); not run again")
        else:
            outcome.status = Status.REFUSED
            outcome.reason = (f"not started: its history changed after this run planned it: {latest.describe()}; "
                              "plan again")
        return
    outcome.status, outcome.reason = Status.UNREACHABLE, otherwise


SETTLE = 5.0  # seconds a timed-out script's session may take to end on the server, once asked to


def settled(ledger: Ledger, row: ManifestRow, outcome: Outcome) -> bool:
    """After a script timeout stopped its client: whether the server shows the script's session gone (ended
    there if it still runs: a killed client's statement goes on until the server notices). Only then is the
    failure recorded; otherwise the history keeps the script `running` (in doubt) and the reason says why."""
    seen = "its database session could not be asked about"
    try:
        state = ledger.script_session(row.script_id)
        begun = time.monotonic()
        asked = False
        while state is not None and state.visible and state.alive and time.monotonic() < begun + 1 + SETTLE:
            if not asked and state.session and time.monotonic() > begun + 1:
                asked = ledger.end_session(state.session)
            time.sleep(0.5)
            state = ledger.script_session(row.script_id)
    except DbUpdaterError as exc:
        state, seen = None, f"its database session could not be asked about ({exc})"
    else:
        if state is None:
            seen = "its history entry is no longer `running`"
        elif not state.visible:
            seen = "its database session was not recorded or cannot be seen from this account"
        elif state.alive:
            seen = f"its database session {state.session} still exists"
        else:
            outcome.reason += f"; its database session {state.session} has ended"
            return True
    outcome.status = Status.FAILED
    outcome.reason += (f"; {seen}: the script may still run or be partially applied, so the history keeps it "
                       "`running` (in doubt) until you check the database and `resolve` it")
    return False


# What a script timeout sends to the client's process group on the runner, GRACE seconds apart, until it ends.
# Never SIGTERM: it can end the client while a child it started lives on, and sshd signals a session's process
# group only while its first process lives: the child would be out of reach. SIGKILL reaches them all at once.
# Where the ledger can end the script's session on the server (`settled`), the client is killed outright: a
# SIGINT would let a client in a shell escape (`\! sleep`: its system() ignores SIGINT, the child dies of it)
# go straight on to the script's next statement. Elsewhere (`exec`, engines that cannot end a session) SIGINT
# comes first: the client's own cancel is the only way the statement on the server ends.
STOP_OUTRIGHT = (Signal.KILL,)
CANCEL_FIRST = (Signal.INT, Signal.KILL)


class Deadline:
    """A script's time limit: when it passes, the client's process group on the runner gets the first of
    `signals`, and the next ones GRACE seconds apart while it has not ended; only that command, never the
    others."""

    GRACE = 5.0

    def __init__(self, transport: Transport, command: Command, seconds: float,
                 signals: tuple[Signal, ...] = CANCEL_FIRST) -> None:
        self.fired = False
        self._transport, self._command = transport, command
        self._timers = [threading.Timer(seconds + step * self.GRACE, self._fire, args=(signal,))
                        for step, signal in enumerate(signals)]
        for timer in self._timers:
            timer.daemon = True
            timer.start()

    def _fire(self, signal: Signal) -> None:
        self.fired = True
        self._transport.interrupt(self._command, signal)

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()


def exec_one(deployment: Deployment, p: PlannedRow, outcome: Outcome, options: RunOptions,
             on_line: LineSink | None = None) -> None:
    """`exec`: copy and run the script, judged exactly as `apply` judges it, with nothing read from or written to
    the history (ad-hoc checks and reports; the way every engine is tested end to end where no server runs)."""
    row = p.row
    started = time.monotonic()
    try:
        on = ready(deployment, row)
    except DbUpdaterError as exc:
        outcome.status, outcome.reason = Status.UNREACHABLE, f"not started: {exc}"
        return
    try:
        run_script(on, row, outcome, single_transaction(row, options, on.engine), "", on_line,
                   row.script_timeout or options.script_timeout)
    finally:
        outcome.seconds = time.monotonic() - started
    if deployment.cancelled and outcome.status is Status.FAILED:
        interrupted(outcome)


def run_script(on: Ready, row: ManifestRow, outcome: Outcome, single_transaction: bool, before: str,
               on_line: LineSink | None = None, timeout: float | None = None,
               signals: tuple[Signal, ...] = CANCEL_FIRST) -> bool | None:
    """Run the client on the runner and judge it; returns whether the `running` row went in with it (always
    True when it was written beforehand, None when the runner went away and nobody can tell)."""
    engine, transport = on.engine, on.transport
    log = OutputLog(engine)
    command = engine.adapt(engine.command(row.db, on.script, on.credentials, single_transaction=single_transaction,
                                          before=before), on.client)
    marker_seen = False

    def feed(stream: str, line: str) -> None:
        nonlocal marker_seen
        if not marker_seen and stream == "stdout" and line == command.started_marker:
            marker_seen = True
        else:
            log.feed(stream, line)
            if on_line is not None:
                on_line(stream, line)

    deadline = Deadline(transport, command, timeout, signals) if timeout else None
    try:
        try:
            result = transport.run(command, feed)
            outcome.exit_code = result.exit_code()
        finally:
            if deadline is not None:
                deadline.cancel()
            outcome.warnings, outcome.errors = log.warnings, log.errors
            outcome.stdout_tail = list(log.stdout_tail)
    except TransportError as exc:
        outcome.status, outcome.reason = Status.UNREACHABLE, f"{exc}; the script may be partially applied"
        return None if before else True
    verdict, reason = engine.verdict(result, log)
    outcome.status = {Verdict.APPLIED: Status.APPLIED, Verdict.FAILED: Status.FAILED,
                      Verdict.UNREACHABLE: Status.UNREACHABLE}[verdict]
    outcome.reason = reason
    if deadline is not None and deadline.fired:
        # Whatever the client said after the signal (even "applied": it finished as the signal came), the row
        # ran out of time. Whether its work on the server is over is the ledger's question (`settled`).
        outcome.status, outcome.timed_out = Status.FAILED, True
        outcome.reason = f"timed out after {timeout:g} s (script timeout): the client was stopped; {reason}"
    if log.dropped:
        outcome.reason += f" ({log.dropped} more warning/error lines not kept)"
    return engine.started(result, log, marker_seen) if before else True

"""Running a row's script with its engine's client on its runner, and judging it: what every kind of step that
runs a script shares (with or without the history).

The copy comes first (a failed copy leaves no trace); a script's time limit signals only its own client's
process group on the runner.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from ..engines import Engine, OutputLog
from ..engines import registry as engines
from ..execution.kinds import LinesSink
from ..execution.options import RunOptions
from ..execution.pool import Deployment
from ..execution.sessions import RunnerSession
from ..model.command import Client, Command, Signal
from ..model.outcome import Status
from ..model.specs import ManifestRow
from ..transports import Transport, TransportError
from ..transports.base import BatchedOutput
from .draft import Draft


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


def interrupted(draft: Draft) -> None:
    """A script that failed because the run cancelled it (the second Ctrl-C, SIGTERM) was interrupted."""
    draft.status = Status.INTERRUPTED
    draft.reason = f"cancelled on the server (interrupted): {draft.reason}"


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


class _Judged(BatchedOutput):
    """A script's output on its way: the marker that says the script began is taken out (once), the rest is
    judged and passed on a chunk at a time."""

    def __init__(self, log: OutputLog, marker: str | None, on_lines: LinesSink | None) -> None:
        self.log, self.marker, self.on_lines = log, marker, on_lines
        self.marker_seen = False

    def lines(self, stream: str, lines: list[str]) -> None:
        if not self.marker_seen and stream == "stdout" and self.marker and self.marker in lines:
            lines = list(lines)
            lines.remove(self.marker)  # the first one only: the script may print the same line itself
            self.marker_seen = True
        self.log.feed_lines(stream, lines)
        if self.on_lines is not None and lines:
            self.on_lines(stream, lines)


def run_script(on: Ready, row: ManifestRow, draft: Draft, single_transaction: bool, before: str,
               on_lines: LinesSink | None = None, timeout: float | None = None,
               signals: tuple[Signal, ...] = CANCEL_FIRST) -> bool | None:
    """Run the client on the runner and judge it; returns whether the `running` row went in with it (always
    True when it was written beforehand, None when the runner went away and nobody can tell)."""
    engine, transport = on.engine, on.transport
    log = OutputLog(engine)
    command = engine.adapt(engine.command(row.db, on.script, on.credentials, single_transaction=single_transaction,
                                          before=before), on.client)
    feed = _Judged(log, command.started_marker, on_lines)

    deadline = Deadline(transport, command, timeout, signals) if timeout else None
    try:
        try:
            result = transport.run(command, feed)
            draft.exit_code = result.exit_code()
        finally:
            if deadline is not None:
                deadline.cancel()
            draft.warnings, draft.errors = log.warnings, log.errors
            draft.stdout_tail = list(log.stdout_tail)
    except TransportError as exc:
        draft.status, draft.reason = Status.UNREACHABLE, f"{exc}; the script may be partially applied"
        return None if before else True
    draft.status, draft.reason = engine.verdict(result, log)
    if deadline is not None and deadline.fired:
        # Whatever the client said after the signal (even "applied": it finished as the signal came), the row
        # ran out of time. Whether its work on the server is over is the ledger's question (`settled`).
        draft.status, draft.timed_out = Status.FAILED, True
        draft.reason = f"timed out after {timeout:g} s (script timeout): the client was stopped; {draft.reason}"
    if log.dropped:
        draft.reason += f" ({log.dropped} more warning/error lines not kept)"
    return engine.started(result, log, feed.marker_seen) if before else True

"""Walk the manifest in order through pooled runner connections; the first failure halts the run."""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass
from typing import Protocol

from .engines import ENGINES, OutputLog, Verdict
from .manifest import Manifest, ManifestRow, RunnerSpec
from .outcome import Outcome, RunResult, Status
from .transports import SSHOptions, Transport, TransportError, open_transport

SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class Reporter(Protocol):
    def step_started(self, outcome: Outcome, total: int) -> None: ...
    def step_finished(self, outcome: Outcome, total: int) -> None: ...


@dataclass
class _Session:
    transport: Transport
    workdir: str


class SessionPool:
    """One connection and one private directory per runner for the whole run, cleaned up at the end."""

    def __init__(self, ssh_options: SSHOptions) -> None:
        self.ssh_options = ssh_options
        self._sessions: dict[RunnerSpec, _Session] = {}

    def get(self, spec: RunnerSpec) -> _Session:
        session = self._sessions.get(spec)
        if session is None:
            transport = open_transport(spec, self.ssh_options)
            try:
                session = _Session(transport, transport.make_private_dir())
            except BaseException:
                transport.close()
                raise
            self._sessions[spec] = session
        return session

    def close(self) -> None:
        for session in self._sessions.values():
            try:
                session.transport.remove(session.workdir)
            except TransportError:
                pass  # the runner is gone; its private directory goes with its /tmp policy
            finally:
                session.transport.close()
        self._sessions.clear()


def run_manifest(manifest: Manifest, ssh_options: SSHOptions, reporter: Reporter) -> RunResult:
    started = time.monotonic()
    outcomes = [Outcome(index, row) for index, row in enumerate(manifest.rows, start=1)]
    total = len(outcomes)
    pool = SessionPool(ssh_options)
    try:
        for outcome in outcomes:
            reporter.step_started(outcome, total)
            try:
                _run_step(pool, outcome)
            except KeyboardInterrupt:
                outcome.status = Status.INTERRUPTED
                outcome.reason = "interrupted; the script may be partially applied"
                reporter.step_finished(outcome, total)
                break
            reporter.step_finished(outcome, total)
            if outcome.status is not Status.APPLIED:
                break
    finally:
        pool.close()
    return RunResult(outcomes, time.monotonic() - started)


def _run_step(pool: SessionPool, outcome: Outcome) -> None:
    row: ManifestRow = outcome.row
    engine = ENGINES[row.db.engine]
    started = time.monotonic()
    try:
        session = pool.get(row.runner)
        transport = session.transport
        stem = f"{session.workdir}/{outcome.index:05d}"
        script = f"{stem}-{SAFE_NAME.sub('_', row.script.name)}"
        credentials = f"{stem}.cred"
        log = OutputLog(engine)
        try:
            transport.put(row.script, script)
            transport.put_bytes(engine.credentials(row.db), credentials)
            invocation = engine.invocation(row.db, script, credentials)
            outcome.exit_code = transport.run(invocation.argv, log.feed, stdin_path=invocation.stdin_path)
        finally:
            outcome.seconds = time.monotonic() - started
            outcome.warnings, outcome.errors = log.warnings, log.errors
            outcome.stdout_tail = list(log.stdout_tail)
            with contextlib.suppress(TransportError):
                transport.remove(credentials, script)
    except TransportError as exc:
        outcome.seconds = time.monotonic() - started
        outcome.status = Status.UNREACHABLE
        outcome.reason = str(exc)
        return
    verdict, reason = engine.verdict(outcome.exit_code, log)
    outcome.status = {Verdict.APPLIED: Status.APPLIED, Verdict.FAILED: Status.FAILED,
                      Verdict.UNREACHABLE: Status.UNREACHABLE}[verdict]
    outcome.reason = reason
    if log.dropped:
        outcome.reason += f" ({log.dropped} more warning/error lines not kept)"

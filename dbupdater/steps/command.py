"""A step that is not SQL: the row's file is an executable, copied to the runner and run there under the rules
of a script (restart a service, a data fix in Python, anything a runner can execute).

It is judged by its exit code (0 applied, anything else failed, its stderr lines the errors), its output is
streamed like a client's, its time limit stops its process group, and with the history it is recorded and
checksummed like a script, so an edited command is drift. The target's connection details are offered in a
0600 file on the runner whose path is in `DBUPDATER_TARGET_FILE`: never the password in argv or in the
environment (which the runner's process list may show). The file is removed when the command ends.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Sequence

from ..checksum import VERSION
from ..execution.kinds import Histories, StepContext
from ..ledger import Ledger, recorded
from ..model.command import Command, Ending
from ..model.errors import DbUpdaterError
from ..model.outcome import Outcome, Status
from ..model.specs import ManifestRow
from ..plan import Digests, PlannedRow, every_row, plan_history
from ..transports import Transport, TransportError
from .client import CANCEL_FIRST, Deadline, interrupted
from .draft import Draft
from .ledgered import finish, refused

TARGET_FILE = "DBUPDATER_TARGET_FILE"
TAIL = 50  # stdout lines kept for the report (the run document keeps its own excerpt)


def target_file(row: ManifestRow) -> bytes:
    """What a command learns of its target: the row's database, login included (the file is 0600)."""
    db = row.db
    return json.dumps({
        "engine": db.engine, "host": db.host, "port": db.port, "database": db.database, "user": db.user,
        "password": db.password.reveal() if db.password else "", "options": dict(db.options),
        "target": db.target_label, "script": row.script_id,
    }, indent=2).encode("utf-8")


class CommandStep:
    """Run the row's executable on its runner; `history`: recorded in the target's history (apply) or not
    (exec)."""

    name = "command"

    def __init__(self, history: bool = True) -> None:
        self.history = history
        self._digests = Digests()

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        if self.history:
            return plan_history(rows, histories, self.name, self._digests)
        return every_row(rows, self.name, self._digests)

    def describe(self, planned: PlannedRow) -> str:
        where = "recorded in the history" if self.history else "without the history"
        return f"run the command {planned.row.script_label} on {planned.row.runner.label}, {where}"

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        draft = Draft(planned.index, planned.row, self.name)
        started = time.monotonic()
        try:
            self._run(planned, context, draft)
        finally:
            draft.seconds = time.monotonic() - started
        return draft.outcome()

    def _run(self, p: PlannedRow, context: StepContext, draft: Draft) -> None:
        row, deployment = p.row, context.deployment
        ledger: Ledger | None = None
        try:
            if self.history:
                ledger = deployment.ledger(row)
            session = deployment.session(row.runner)
            transport = session.transport
            if transport.shell.platform != "posix":
                draft.status = Status.FAILED
                draft.reason = f"command steps run on POSIX runners only; {row.runner.label} is not one (not started)"
                return
            program = session.upload(row.script, row.encoding)
            settings = transport.shell.join(session.workdir, f"target-{p.index}.json")
            transport.put_bytes(target_file(row), settings)
            _executable(transport, program)
        except DbUpdaterError as exc:
            draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
            return
        try:
            if ledger is not None:
                try:
                    ledger.mark_running(row.script_id, p.checksum, VERSION, p.entry)
                except DbUpdaterError as exc:
                    refused(ledger, p, draft, f"not started: {exc}", [str(exc)])
                    return
            self._execute(transport, program, settings, row, draft, context)
        finally:  # if the runner is gone, the private directory goes with its /tmp policy
            with contextlib.suppress(TransportError):
                transport.remove(settings)
        if deployment.cancelled and draft.status is Status.FAILED:
            interrupted(draft)
        if ledger is not None and draft.status is not Status.UNREACHABLE:
            finish(ledger, p, recorded(draft.status), draft, context)

    def _execute(self, transport: Transport, program: str, settings: str, row: ManifestRow, draft: Draft,
                 context: StepContext) -> None:
        errors: list[str] = []
        tail: list[str] = []

        def feed(stream: str, line: str) -> None:
            (errors if stream == "stderr" else tail).append(line)
            del tail[:-TAIL]
            context.on_line(stream, line)

        command = Command((program,), env=((TARGET_FILE, settings),))
        timeout = row.script_timeout or context.options.script_timeout
        deadline = Deadline(transport, command, timeout, CANCEL_FIRST) if timeout else None
        try:
            result = transport.run(command, feed)
        except TransportError as exc:
            draft.status, draft.reason = Status.UNREACHABLE, f"{exc}; the command may have done part of its work"
            return
        finally:
            if deadline is not None:
                deadline.cancel()
            draft.errors, draft.stdout_tail = errors[:200], tail
        draft.exit_code = result.exit_code()
        if result.ending is Ending.CLIENT_MISSING:
            draft.status, draft.reason = Status.FAILED, "the runner could not execute it (not a program it can run)"
        elif result.ending is Ending.LOST:
            draft.status = Status.UNREACHABLE
            draft.reason = "the runner connection ended before the command reported an exit status"
        elif result.ending is Ending.SIGNALLED:
            draft.status, draft.reason = Status.FAILED, f"the command was killed by signal {result.code}"
        elif result.code == 0:
            draft.status, draft.reason = Status.APPLIED, "the command exited 0"
            draft.warnings, draft.errors = draft.errors, []  # stderr of a success is worth reading, not failing
        else:
            draft.status, draft.reason = Status.FAILED, f"the command exited with {result.code}"
        if deadline is not None and deadline.fired:
            draft.status, draft.timed_out = Status.FAILED, True
            draft.reason = f"timed out after {timeout:g} s (script timeout): the command was stopped; {draft.reason}"


def _executable(transport: Transport, path: str) -> None:
    """The copied file is 0600; only its owner may run it."""
    said: list[str] = []
    result = transport.run(Command(("chmod", "0700", path)), lambda stream, line: said.append(line))
    if not (result.exited and result.code == 0):
        raise TransportError(f"{transport.label}: cannot make {path} executable: {' '.join(said)[-300:]}")


"""Running an executable on a runner under the rules of a script: a command step, or a command's undo.

The file is copied byte for byte and made runnable by its owner only; the target's connection details are
offered in a 0600 JSON file whose path is in `DBUPDATER_TARGET_FILE` (never the password in argv or in the
environment, which the runner's process list may show), removed when the program ends. It is judged by its
exit code; its stderr lines are its errors (a success's are warnings); its time limit stops its process group.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from pathlib import Path

from .. import scriptfile
from ..execution.kinds import StepContext
from ..model.command import Command, Ending
from ..model.errors import DbUpdaterError
from ..model.outcome import Status
from ..model.specs import ManifestRow
from ..plan import PlannedRow
from ..transports import Transport, TransportError
from .client import CANCEL_FIRST, Deadline, interrupted
from .draft import Draft

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


def run_program(program_file: Path, p: PlannedRow, context: StepContext, draft: Draft,
                record_running: Callable[[], bool]) -> bool:
    """Copy an executable to the row's runner, offer it the target file, and run it (a command step, or a
    command's undo); `record_running` is called once everything is in place, right before it starts, and
    may refuse. False when it did not start."""
    row, deployment = p.row, context.deployment
    try:
        session = deployment.session(row.runner)
        transport = session.transport
        if transport.shell.platform != "posix":
            draft.status = Status.FAILED
            draft.reason = f"command steps run on POSIX runners only; {row.runner.label} is not one (not started)"
            return False
        program = session.upload(program_file, scriptfile.RAW)
        settings = transport.shell.join(session.workdir, f"target-{p.index}.json")
        transport.put_bytes(target_file(row), settings)
        _executable(transport, program)
    except DbUpdaterError as exc:
        draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
        return False
    try:
        if not record_running():
            return False
        _execute(transport, program, settings, row, draft, context)
    finally:  # if the runner is gone, the private directory goes with its /tmp policy
        with contextlib.suppress(TransportError):
            transport.remove(settings)
    if deployment.cancelled and draft.status is Status.FAILED:
        interrupted(draft)
    return True


def _execute(transport: Transport, program: str, settings: str, row: ManifestRow, draft: Draft,
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


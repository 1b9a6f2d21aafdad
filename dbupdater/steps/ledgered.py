"""The history's side of a script step: why a `running` row was refused, and whether a timed-out script's
session has ended on the server. Both answer from the database, never from what this run believes."""

from __future__ import annotations

import re
import time

from ..execution.kinds import StepContext
from ..ledger import SUCCESS, Ledger
from ..model.errors import DbUpdaterError
from ..model.outcome import Status
from ..model.secret import redact
from ..model.specs import ManifestRow
from ..plan import PlannedRow
from .draft import Draft

# The server's words when the `running` row's NULL met its NOT NULL column (MySQL 1048, PostgreSQL 23502,
# ORA-01400, SQL Server 515 all name the column): the refusal, as opposed to a login that failed.
REFUSAL = re.compile(r"null.*\b(run_id|script)\b|\b(run_id|script)\b.*null", re.IGNORECASE)


def refused(ledger: Ledger, p: PlannedRow, draft: Draft, otherwise: str, errors: list[str]) -> None:
    """The `running` row did not go in, so the script did not start: when the server refused it, ask the
    ledger why, and say what is true. A lock lost (this run was paused past its lease, or cut off) stops the
    target, loudly; a script that is no longer what the plan saw (another run, or another name of this
    database, got there first) is skipped when it was applied as it is now, refused otherwise. Anything else
    is the login's failure (not asked again: a server that is down would cost its connect timeout twice)."""
    if not any(REFUSAL.search(line) for line in errors):
        draft.status, draft.reason = Status.UNREACHABLE, otherwise
        return
    try:
        why = ledger.refusal(p.row.script_id)
    except DbUpdaterError:
        draft.status, draft.reason = Status.UNREACHABLE, otherwise
        return
    target = p.row.db.target_label
    if why.lock_lost is not None or why.lease_ended:
        now = (f"it is held by {why.lock_lost.describe()}" if why.lock_lost is not None else
               "its lease ended before this script: this run was paused or could not renew it")
        draft.status = Status.REFUSED
        draft.reason = (f"LOCK LOST: this run no longer holds the lock on {target} ({now}); this script was not "
                        "started and nothing more runs on this target in this run")
        return
    latest, seen = why.latest, p.entry
    if latest is not None and (seen is None or (latest.id, latest.status) != (seen.id, seen.status)):
        if latest.status == SUCCESS and latest.checksum == p.checksum:
            draft.status = Status.SKIPPED
            draft.reason = (f"already applied: {latest.describe()}, after this run planned it (another run, or "
                            "another name of this database); not run again")
        else:
            draft.status = Status.REFUSED
            draft.reason = (f"not started: its history changed after this run planned it: {latest.describe()}; "
                            "plan again")
        return
    draft.status, draft.reason = Status.UNREACHABLE, otherwise


SETTLE = 5.0  # seconds a timed-out script's session may take to end on the server, once asked to


def settled(ledger: Ledger, row: ManifestRow, draft: Draft) -> bool:
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
            draft.reason += f"; its database session {state.session} has ended"
            return True
    draft.status = Status.FAILED
    draft.reason += (f"; {seen}: the script may still run or be partially applied, so the history keeps it "
                     "`running` (in doubt) until you check the database and `resolve` it")
    return False


def finish(ledger: Ledger, p: PlannedRow, status: str, draft: Draft, context: StepContext) -> None:
    """Record how a step ended: a success rides with this ledger's next call (the release at the latest) where
    this ledger holds the lock; anything else, or a success through another runner, at once. When that write
    fails, the row says so: the history shows it `running`, and the next run asks for `resolve`."""
    row = p.row
    if status == SUCCESS and context.deployment.holds_lock(ledger, row.db.key):
        ledger.finish_later(row.script_id, status)
        return
    try:
        ledger.mark_finished(row.script_id, status, None if status == SUCCESS else redact(draft.reason)[:900])
    except DbUpdaterError as exc:
        draft.status = Status.UNREACHABLE
        draft.reason = (f"{draft.reason}; recording the result failed ({exc}): it may have done part of its "
                        "work, the history shows it as running, and the next run will ask you to resolve it")

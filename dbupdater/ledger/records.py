"""What the ledger stores and returns: statuses, history entries, lock holders."""

from __future__ import annotations

from dataclasses import dataclass

from ..model.errors import DbUpdaterError, ExitCode, UnreachableError
from ..model.outcome import Status

HISTORY_TABLE = "dbupdater_history"
LOCK_TABLE = "dbupdater_lock"
VERSION_TABLE = "dbupdater_schema"
LOCK_NAME = "deploy"

RUNNING, SUCCESS, FAILED = "running", "success", "failed"
RERUN = "rerun"  # resolved by a person: run it again
LEGACY_RERUN = "reverted"  # what ledger version 1 wrote for RERUN; read as RERUN (a revert script is not this)
ROLLED_BACK = "rolled_back"  # failed inside one transaction: nothing of it remains
UNDONE = "undone"  # its undo script ran (`revert`): pending again
IN_DOUBT = {RUNNING, FAILED}
NOT_APPLIED = {RERUN, LEGACY_RERUN, ROLLED_BACK, UNDONE}


def recorded(status: Status, *, rolled_back: bool = False) -> str:
    """The history's word for how a script ended: the run's one vocabulary (`Status`) meets the words the
    history tables have always held here, and only here (existing tables stay readable, never rewritten).
    Anything but applied is a failure, in doubt until a person resolves it; one that ran inside a single
    transaction left nothing behind."""
    if status is Status.APPLIED:
        return SUCCESS
    return ROLLED_BACK if rolled_back else FAILED


class LedgerError(UnreachableError):
    """The ledger could not be read or written: the target cannot be used safely."""


class SharedLedger(DbUpdaterError):
    """Two targets of one manifest reached the same ledger: the same database under two names (a DNS alias,
    a VIP and a node name, 127.0.0.1 and localhost), or one --history-schema shared by two databases."""

    exit_code = ExitCode.USAGE

    def __init__(self, label: str, tokens: list[str]) -> None:
        super().__init__(f"{label}: another target of this manifest reached the same history and lock tables")
        self.label = label
        self.tokens = tokens


class Refused(DbUpdaterError):
    """The ledger refuses the run: drift, a script in doubt, a lock held by another run, or a ledger written
    by a newer release."""

    exit_code = ExitCode.REFUSED


@dataclass(frozen=True)
class Entry:
    id: int
    script: str
    checksum: str
    checksum_version: int
    status: str
    started_at: str
    finished_at: str | None
    run_id: str
    runner_host: str | None
    os_user: str | None
    note: str | None

    def describe(self) -> str:
        when = self.finished_at or self.started_at
        who = f" by {self.os_user}" if self.os_user else ""
        return f"{self.status} at {when} UTC{who} via {self.runner_host or '?'} (run {self.run_id[:8]})"


@dataclass(frozen=True)
class Refusal:
    """Why the database refused a `running` row: what the ledger says now, read right after."""

    lock_lost: Holder | None  # the lock is not this run's any more: who holds it now (None: nobody, or ours)
    lease_ended: bool  # the lock row is still ours, but its lease ended (this run was paused, or cut off)
    latest: Entry | None  # the script's latest history entry now


@dataclass(frozen=True)
class ScriptSession:
    """The database session a `running` row's script ran in, as the server shows it now."""

    session: str | None
    visible: bool  # whether this session may see it (recorded, and the same account or allowed to see others)
    alive: bool


@dataclass(frozen=True)
class Holder:
    run_id: str
    host: str | None
    pid: int | None
    os_user: str | None
    since: str
    expires: str

    def describe(self) -> str:
        return (f"run {self.run_id[:8]} of {self.os_user or '?'} on host {self.host or '?'} (pid {self.pid}), "
                f"holding it since {self.since} UTC, lease until {self.expires} UTC")

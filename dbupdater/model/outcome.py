"""What happened to each row, as plain data: reports, the environment state and exit codes read only this."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from .errors import ExitCode
from .specs import ManifestRow


class Status(Enum):
    APPLIED = "applied"
    SKIPPED = "skipped"
    FAILED = "failed"
    UNREACHABLE = "unreachable"
    REFUSED = "refused"
    INTERRUPTED = "interrupted"
    NOT_RUN = "not run"


class InterruptStep(Enum):
    """How far a run's interrupts went: stop starting scripts, cancel them on the servers, leave."""

    WAIT = "wait"
    CANCEL = "cancel"
    LEAVE = "leave"


@dataclass
class Outcome:
    index: int
    row: ManifestRow
    status: Status = Status.NOT_RUN
    reason: str = ""
    exit_code: int | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stdout_tail: list[str] = field(default_factory=list)
    timed_out: bool = False  # its script timeout stopped the client


@dataclass
class RunResult:
    outcomes: list[Outcome]
    seconds: float = 0.0
    interrupted: bool = False  # Ctrl-C or SIGTERM: even if every script that ran succeeded, the run is not done

    def count(self, status: Status) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status is status)

    @property
    def exit_code(self) -> ExitCode:
        statuses = {outcome.status for outcome in self.outcomes}
        if self.interrupted or Status.INTERRUPTED in statuses:
            return ExitCode.INTERRUPTED
        if Status.UNREACHABLE in statuses:
            return ExitCode.UNREACHABLE
        if Status.REFUSED in statuses:
            return ExitCode.REFUSED
        if Status.FAILED in statuses:
            return ExitCode.SCRIPT_FAILED
        return ExitCode.OK

"""What happened to each row, as plain values: reports, the environment state and exit codes read only this.

`Status` is the one vocabulary from an engine's verdict on its client's output to the run's result; the
ledger translates it into the words its history tables have always held, at its own boundary only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any

from .errors import ExitCode
from .specs import ManifestRow


class Status(Enum):
    """What became of a step. An engine's verdict is one of APPLIED, FAILED and UNREACHABLE; the run adds the
    others (a row skipped as applied, refused by the ledger, interrupted, or never reached)."""

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


@dataclass(frozen=True)
class Outcome:
    """One row's outcome, as a value: a step returns one, and an event carries the one that was true when it
    was sent (a later change is a new value, never an edit that a listener could see half-made)."""

    index: int
    row: ManifestRow
    status: Status = Status.NOT_RUN
    reason: str = ""
    exit_code: int | None = None
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    stdout_tail: tuple[str, ...] = ()
    timed_out: bool = False  # its time limit stopped it
    step: str = "script"  # the kind of step that produced it

    def but(self, **changes: Any) -> Outcome:
        return dataclasses.replace(self, **changes)


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

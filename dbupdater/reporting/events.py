"""What a run tells the world, as events: the one protocol every report (console today; JSON, JUnit, HTML,
notifications next) implements, so the run knows no report and a new one changes no run code."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from ..ledger import Holder
from ..model.outcome import InterruptStep, Outcome, RunResult
from ..model.specs import DatabaseSpec, Manifest
from ..plan import PlannedRow


class Level(Enum):
    INFO = "info"
    SUCCESS = "success"
    NOTE = "note"
    WARNING = "warning"
    ERROR = "error"
    DETAIL = "detail"


@dataclass(frozen=True)
class RunStarted:
    manifest: Manifest


@dataclass(frozen=True)
class WaitingForLock:
    db: DatabaseSpec
    holder: Holder


@dataclass(frozen=True)
class PlanMade:
    """The plan of every row (shown when a run is refused, and by `plan`)."""

    planned: list[PlannedRow]


@dataclass(frozen=True)
class StepStarted:
    outcome: Outcome
    total: int


@dataclass(frozen=True)
class StepFinished:
    outcome: Outcome
    total: int


@dataclass(frozen=True)
class Interrupted:
    step: InterruptStep
    running: int


@dataclass(frozen=True)
class RunFinished:
    result: RunResult


@dataclass(frozen=True)
class Notice:
    text: str
    level: Level = Level.INFO


Event = RunStarted | WaitingForLock | PlanMade | StepStarted | StepFinished | Interrupted | RunFinished | Notice


class Reporter(Protocol):
    def handle(self, event: Event) -> None:
        """Called from any thread (targets run in parallel); a reporter serialises what it needs to."""


class Reporters:
    """Several reporters as one: each gets every event, in order."""

    def __init__(self, reporters: Iterable[Reporter]) -> None:
        self.reporters = list(reporters)

    def handle(self, event: Event) -> None:
        for reporter in self.reporters:
            reporter.handle(event)

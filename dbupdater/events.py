"""What a run tells the world, as events. They belong to the run (the Run sends them, and nothing else does)
and sit below reporting: the console, the run document, JUnit, HTML and notifications only listen, so what the
console shows and what run.json holds come from one stream and cannot disagree, and a new report changes no
run code. Every event is a frozen value: an outcome in an event is what was true when it was sent."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol

from .ledger import Holder
from .model.outcome import InterruptStep, Outcome, RunResult
from .model.specs import DatabaseSpec, Manifest
from .plan import PlannedRow
from .saved_plans import Approval


class Level(Enum):
    INFO = "info"
    SUCCESS = "success"
    NOTE = "note"
    WARNING = "warning"
    ERROR = "error"
    DETAIL = "detail"


@dataclass(frozen=True)
class RunStarted:
    """The run's identity as reports need it; the CLI fills what it knows (the command line already redacted)."""

    manifest: Manifest
    command: str = "apply"
    run_id: str = ""
    argv: tuple[str, ...] = ()
    environment: str | None = None
    shard: str | None = None
    report_dir: Path | None = None  # the run folder, when one is written
    history: bool = True  # False for `exec`: nothing is read from or written to the history tables


@dataclass(frozen=True)
class WaitingForLock:
    db: DatabaseSpec
    holder: Holder


@dataclass(frozen=True)
class PlanMade:
    """The plan of every row (shown when a run is refused, and by `plan`)."""

    planned: list[PlannedRow]


@dataclass(frozen=True)
class RunPlanned:
    """Every row's plan, with the history it came from (`PlannedRow.entry`: durations for estimates), and the
    caps on parallelism that apply. Sent once, before anything runs, whether or not the run goes ahead."""

    planned: list[PlannedRow]
    parallel: int = 1
    per_runner: int = 1
    caps: dict[str, str] = field(default_factory=dict)  # which cap applied where, said in words
    preview: bool = False  # `plan`: the plan is the answer (shown whole), nothing will run after it


@dataclass(frozen=True)
class OutputLine:
    """One line of a client's output while its script runs (for `-v` and output excerpts); already bounded
    (transports cut lines at 64 KiB) but not yet redacted: a reporter shows it through `shown()`."""

    outcome: Outcome
    stream: str
    line: str


@dataclass(frozen=True)
class OutputLines:
    """Several lines of one stream of a client's output, in order (the complete lines of one chunk it printed):
    what OutputLine says of each, in one event, so a client printing a million lines is not a million events."""

    outcome: Outcome
    stream: str
    lines: Sequence[str]


@dataclass(frozen=True)
class StepStarted:
    outcome: Outcome
    total: int


@dataclass(frozen=True)
class StepNotice:
    """What a long step has done so far, in words, while it runs (a table copied and verified; where a follower
    stands and how far behind): shown at default verbosity, unlike OutputLine. `ongoing`: a state that the next
    one replaces (the live view shows the latest on the step's line instead of printing it)."""

    outcome: Outcome
    text: str
    ongoing: bool = False


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
    # The command's exit code when it is not the result's own: the environment state could not be recorded in
    # Vault at the end (exit 3 although every script ran), so that every report says what the shell gets.
    exit_code: int | None = None
    # False when nothing was executed (a refused run, `plan`): there is no summary of rows to show.
    executed: bool = True


@dataclass(frozen=True)
class RunAborted:
    """The run ended by an error before it had a result (a runner unreachable, a lock timeout, an interrupt
    while opening): the reports still say what was planned and why it ended; the error itself is printed by
    the command line's last line of defence."""

    exit_code: int
    error: str


@dataclass(frozen=True)
class Approved:
    """The plan this run applies was approved (saved_plans.Approval: who, where, when, the plan's digest, how);
    sent before the first step, after the run checked the plan is still what was approved."""

    approval: Approval


@dataclass(frozen=True)
class Notice:
    text: str
    level: Level = Level.INFO


Event = (RunStarted | WaitingForLock | RunPlanned | PlanMade | StepStarted | OutputLine | OutputLines | StepNotice
         | StepFinished | Interrupted | RunFinished | RunAborted | Notice | Approved)


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

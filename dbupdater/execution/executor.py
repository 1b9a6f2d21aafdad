"""The walk of a run: targets in parallel (each target a job), or with `--parallel 1` the whole manifest as one
job, strictly in order; each row done by its kind of step. Whether a target and the run go on is decided from
data (`StepEnd`), from the outcome the step returned, never from an exception's text.

Outcomes are values: the walk keeps the latest one per row and replaces it (a release that could not record
a success, a row left behind by the third Ctrl-C); every event carries the value that was true when sent.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from ..events import OutputLine, Reporter, StepFinished, StepStarted
from ..model.errors import DbUpdaterError
from ..model.outcome import InterruptStep, Outcome, RunResult, Status
from ..model.specs import DbKey, targets
from ..plan import PlannedRow
from .heartbeat import Heartbeat
from .hooks import Hooks, StopRun
from .interrupts import LEAVE_GRACE, Escalation
from .kinds import StepContext, StepKind
from .options import RunOptions
from .pool import Deployment
from .scheduler import Scheduler, runner_cap


class StepEnd(Enum):
    CONTINUE = "continue"  # applied or skipped: the target's next row may run
    TARGET_FAILED = "target failed"  # this target stops; the run too, unless --keep-going
    STOP_RUN = "stop run"  # nothing more starts anywhere (a hook refused, or the script was interrupted)


@dataclass
class Executor:
    deployment: Deployment
    planned: list[PlannedRow]
    outcomes: list[Outcome]
    heartbeat: Heartbeat
    options: RunOptions
    reporter: Reporter
    hooks: Hooks
    kind_of: Callable[[PlannedRow], StepKind]
    running: set[int] = field(default_factory=set)
    # After the third Ctrl-C: the outcomes as they were when the run left. Abandoned workers may still end
    # their scripts and change the live ones; the result and the reports are of the moment of leaving.
    left: list[Outcome] | None = None
    _guard: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.last = {p.row.db.key: position for position, p in enumerate(self.planned)}
        strict = self.options.parallel <= 1
        self.scheduler = (Scheduler(1, 1) if strict else
                          Scheduler(self.options.parallel, runner_cap(self.options.parallel, self.options.per_runner)))
        self.strict = strict

    def jobs(self) -> list[tuple[object, list[int]]]:
        """(the runner it counts against, row positions in order) per job."""
        if self.strict:
            return [("manifest", list(range(len(self.planned))))]
        return [(self.planned[positions[0]].row.runner, positions)
                for positions in targets([p.row for p in self.planned]).values()]

    def run(self, escalation: Escalation) -> None:
        try:
            self.scheduler.run([(runner, functools.partial(self.walk, positions))
                                for runner, positions in self.jobs()], escalation)
        except KeyboardInterrupt:
            if escalation.step is not InterruptStep.LEAVE:
                raise
            # Left: the outcomes say what was abandoned; the run still ends with a result (exit 130), so its
            # report and hooks (the environment state) are written. Locks are released on the way out, in a
            # bounded time (a runner may be frozen: that is often why someone pressed Ctrl-C three times).
            self.deployment.close(within=LEAVE_GRACE)
            return
        for key in list(self.deployment.locked):
            self.release(key)

    def walk(self, positions: list[int]) -> None:
        stopped: set[DbKey] = set()
        for position in positions:
            key = self.planned[position].row.db.key
            if self.scheduler.stopped:
                return
            if key in stopped:
                continue
            with self._guard:
                self.running.add(position)
            try:
                end = self.step(position)
            finally:
                with self._guard:
                    self.running.discard(position)
            if end is not StepEnd.CONTINUE:
                stopped.add(key)
            if self.last[key] == position or end is not StepEnd.CONTINUE:
                self.release(key)
            if self.stops_run(end):
                self.scheduler.stop()
                self.deployment.stop_copies()
                return

    def stops_run(self, end: StepEnd) -> bool:
        """A failure stops everything unless --keep-going; in strict order (--parallel 1) it always does."""
        if end is StepEnd.TARGET_FAILED:
            return self.strict or not self.options.keep_going
        return end is StepEnd.STOP_RUN

    def step(self, position: int) -> StepEnd:
        """Run or skip one row."""
        p, total = self.planned[position], len(self.planned)
        if not p.state.runs:
            return self.finished(position, Status.SKIPPED, f"already applied: {p.detail}")
        if p.row.db.target_label in self.heartbeat.lost:
            self.finished(position, Status.REFUSED,
                          f"LOCK LOST: this run no longer holds the lock on {p.row.db.target_label} (its lease could "
                          "not be renewed: this run was paused or cut off, and another run may have taken it); this "
                          "script was not started and nothing more runs on this target in this run")
            return StepEnd.TARGET_FAILED
        try:
            self.hooks.before_script(p.row)
        except StopRun as exc:
            self.finished(position, Status.UNREACHABLE, f"stopped before this script: {exc}")
            return StepEnd.STOP_RUN
        begun = self.outcomes[position]
        self.reporter.handle(StepStarted(begun, total))
        context = StepContext(self.deployment, self.options,
                              lambda stream, line: self.reporter.handle(OutputLine(begun, stream, line)))
        outcome = self.kind_of(p).run(p, context)
        with self._guard:
            self.outcomes[position] = outcome
        if self.left is not None:
            return StepEnd.STOP_RUN  # abandoned: the run has ended without this row
        self.reporter.handle(StepFinished(outcome, total))
        if outcome.status in (Status.APPLIED, Status.SKIPPED):  # skipped: applied meanwhile, as it is now
            return StepEnd.CONTINUE
        return StepEnd.STOP_RUN if outcome.status is Status.INTERRUPTED else StepEnd.TARGET_FAILED

    def finished(self, position: int, status: Status, reason: str) -> StepEnd:
        """A row the run decided without running it."""
        outcome = self.outcomes[position].but(status=status, reason=reason)
        with self._guard:
            self.outcomes[position] = outcome
        self.reporter.handle(StepFinished(outcome, len(self.planned)))
        return StepEnd.CONTINUE

    def release(self, key: DbKey) -> None:
        """A target is done: record its last success and free its lock in one call, so other runs can start on
        it while the rest of this run goes on."""
        ledger = self.deployment.unlock(key)
        if ledger is None:
            return
        self.heartbeat.discard(ledger)
        pending = ledger.has_pending
        try:
            ledger.release()
        except DbUpdaterError as exc:
            if pending:
                with self._guard:
                    applied = [position for position, (p, o) in enumerate(zip(self.planned, self.outcomes, strict=True))
                               if p.row.db.key == key and o.status is Status.APPLIED]
                    if applied:
                        self.outcomes[applied[-1]] = self.outcomes[applied[-1]].but(
                            status=Status.UNREACHABLE,
                            reason=f"applied, but recording it failed ({exc}): the history shows it as running, and "
                                   "the next run will ask you to resolve it")

    def leave(self) -> None:
        """The third interrupt: what still runs is abandoned (the runner may still be executing it)."""
        with self._guard:
            left = list(self.outcomes)
            for position in self.running:
                left[position] = left[position].but(
                    status=Status.INTERRUPTED,
                    reason="interrupted: the script may be partially applied, and may still run on the runner")
            self.left = left

    def result(self, seconds: float, interrupted: bool) -> RunResult:
        return RunResult(self.left if self.left is not None else self.outcomes, seconds, interrupted=interrupted)


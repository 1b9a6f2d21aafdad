"""Walk a manifest: open every runner and ledger, plan, then run pending scripts, each target in order.

Phase 1 connects to every runner, and for each database creates the ledger tables, takes its lock and reads
its history. Phase 2 plans every row. Only when no row is drifted or in doubt anywhere does phase 3 run
anything. One executor serves both walks: targets in parallel (each target a job), or with `--parallel 1`
the whole manifest as one job, strictly in order. Whether to stop is decided from data (`StepEnd`).
"""

from __future__ import annotations

import dataclasses
import functools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from enum import Enum

from ..model.errors import DbUpdaterError
from ..model.identity import RunIdentity
from ..model.outcome import InterruptStep, Outcome, RunResult, Status
from ..model.specs import DbKey, Manifest, targets
from ..plan import PlannedRow, every_row, plan_rows
from ..reporting.events import (
    Interrupted,
    OutputLine,
    Reporter,
    RunPlanned,
    StepFinished,
    StepStarted,
    WaitingForLock,
)
from .heartbeat import Heartbeat
from .hooks import Hooks, StopRun
from .interrupts import LEAVE_GRACE, Escalation
from .options import RunOptions
from .pool import Deployment
from .scheduler import Scheduler, caps, runner_cap
from .step import apply_one, exec_one


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
        p, outcome, total = self.planned[position], self.outcomes[position], len(self.planned)
        if not p.state.runs:
            outcome.status, outcome.reason = Status.SKIPPED, f"already applied: {p.detail}"
            self.reporter.handle(StepFinished(outcome, total))
            return StepEnd.CONTINUE
        if p.row.db.target_label in self.heartbeat.lost:
            outcome.status = Status.REFUSED
            outcome.reason = (f"LOCK LOST: this run no longer holds the lock on {p.row.db.target_label} (its lease "
                              "could not be renewed: this run was paused or cut off, and another run may have taken "
                              "it); this script was not started and nothing more runs on this target in this run")
            self.reporter.handle(StepFinished(outcome, total))
            return StepEnd.TARGET_FAILED
        try:
            self.hooks.before_script(p.row)
        except StopRun as exc:
            outcome.status, outcome.reason = Status.UNREACHABLE, f"stopped before this script: {exc}"
            self.reporter.handle(StepFinished(outcome, total))
            return StepEnd.STOP_RUN
        self.reporter.handle(StepStarted(outcome, total))
        run_row = apply_one if self.options.history else exec_one
        run_row(self.deployment, p, outcome, self.options,
                lambda stream, line: self.reporter.handle(OutputLine(outcome, stream, line)))
        if self.left is not None:
            return StepEnd.STOP_RUN  # abandoned: the run has ended without this row
        self.reporter.handle(StepFinished(outcome, total))
        if outcome.status in (Status.APPLIED, Status.SKIPPED):  # skipped: applied meanwhile, as it is now
            return StepEnd.CONTINUE
        return StepEnd.STOP_RUN if outcome.status is Status.INTERRUPTED else StepEnd.TARGET_FAILED

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
                applied = [o for p, o in zip(self.planned, self.outcomes, strict=True)
                           if p.row.db.key == key and o.status is Status.APPLIED]
                if applied:
                    applied[-1].status = Status.UNREACHABLE
                    applied[-1].reason = (f"applied, but recording it failed ({exc}): the history shows it as "
                                          "running, and the next run will ask you to resolve it")

    def leave(self) -> None:
        """The third interrupt: what still runs is abandoned (the runner may still be executing it)."""
        for position in list(self.running):
            self.outcomes[position].status = Status.INTERRUPTED
            self.outcomes[position].reason = ("interrupted: the script may be partially applied, and may still run "
                                              "on the runner")
        self.left = [dataclasses.replace(outcome) for outcome in self.outcomes]

    def result(self, seconds: float, interrupted: bool) -> RunResult:
        return RunResult(self.left if self.left is not None else self.outcomes, seconds, interrupted=interrupted)


def apply(manifest: Manifest, options: RunOptions, reporter: Reporter, hooks: Hooks | None = None,
          identity: RunIdentity | None = None) -> tuple[list[PlannedRow], RunResult]:
    started = time.monotonic()
    hooks = hooks or Hooks()
    with Deployment(manifest, options, identity) as deployment:
        if options.history:
            histories = deployment.open(lock=True,
                                        on_wait=lambda db, holder: reporter.handle(WaitingForLock(db, holder)))
            planned = plan_rows(manifest.rows, histories)
        else:
            deployment.connect()
            planned = every_row(manifest.rows)
        first = [positions[0] for positions in targets([p.row for p in planned]).values()]
        counts = Counter(planned[position].row.runner.label for position in first)
        reporter.handle(RunPlanned(planned, options.parallel, runner_cap(options.parallel, options.per_runner),
                                   caps(dict(counts), options.parallel, options.per_runner)))
        outcomes = [Outcome(p.index, p.row) for p in planned]
        if any(p.state.blocks for p in planned):
            for p, outcome in zip(planned, outcomes, strict=True):
                if p.state.blocks:
                    outcome.status, outcome.reason = Status.REFUSED, f"{p.state.value}: {p.detail}"
            return planned, RunResult(outcomes, time.monotonic() - started)
        if any(p.state.runs for p in planned):
            hooks.executing(planned)
        deployment.prefetch(planned)
        heartbeat = Heartbeat(list(deployment.locked.values()), options.lock_lease)
        heartbeat.start()
        executor = Executor(deployment, planned, outcomes, heartbeat, options, reporter, hooks)

        def announce(step: InterruptStep, running: int) -> None:
            reporter.handle(Interrupted(step, running))

        escalation = Escalation(deployment.cancel, announce, executor.leave)
        try:
            executor.run(escalation)
        finally:  # leaving after interrupts: a renewal stuck on a frozen runner must not hold the exit
            heartbeat.stop(wait=LEAVE_GRACE / 4 if escalation.step is InterruptStep.LEAVE else 30.0)
    return planned, executor.result(time.monotonic() - started, escalation.interrupted)

"""The walk of a run: targets in parallel (each target a job), or with `--parallel 1` the whole manifest as one
job, strictly in order; each row done by its kind of step. Whether a target and the run go on is decided from
data (`StepEnd`), from the outcome the step returned, never from an exception's text.

Outcomes are values: the walk keeps the latest one per row and replaces it (a release that could not record
a success, a row left behind by the third Ctrl-C); every event carries the value that was true when sent.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from ..events import Level, Notice, OutputLine, OutputLines, Reporter, StepFinished, StepNotice, StepStarted
from ..model.errors import DbUpdaterError
from ..model.outcome import InterruptStep, Outcome, RunResult, Status
from ..model.specs import DbKey, targets
from ..plan import PlannedRow, RowState
from .heartbeat import Heartbeat
from .hooks import Hooks, StopRun
from .interrupts import LEAVE_GRACE, Escalation
from .kinds import Ask, StepContext, StepKind
from .options import RunOptions
from .pool import Deployment
from .releases import Releases
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
    ask: Ask | None = None  # the operator, when the run has one
    # The targets in waves (manifest order): a wave starts when the ones before it ended without a problem.
    waves: list[list[DbKey]] | None = None
    # Between waves: whether the next wave may start (wave number, waves, its targets' labels); None: it may.
    pause: Callable[[int, int, list[str]], bool] | None = None
    warnings_are_errors: bool = False  # a tier's policy: a script's warnings stop its target and fail the run
    approved: str | None = None  # the approval of the saved plan the run applies, in words
    running: set[int] = field(default_factory=set)
    # After the third Ctrl-C: the outcomes as they were when the run left. Abandoned workers may still end
    # their scripts and change the live ones; the result and the reports are of the moment of leaving.
    left: list[Outcome] | None = None
    _guard: threading.Lock = field(default_factory=threading.Lock)
    releases: Releases = field(default_factory=Releases)  # targets' releases, in shared calls where they can

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

    def wave_jobs(self) -> list[list[tuple[object, list[int]]]]:
        """The jobs of each wave, in order: one wave of every job without waves. In strict order (--parallel 1)
        each wave is one job, its targets' rows in manifest order."""
        if not self.waves:
            return [self.jobs()]
        wave_of = {key: number for number, keys in enumerate(self.waves) for key in keys}
        if self.strict:
            return [[("manifest", [position for position, p in enumerate(self.planned)
                                   if wave_of[p.row.db.key] == number])] for number in range(len(self.waves))]
        grouped: list[list[tuple[object, list[int]]]] = [[] for _ in self.waves]
        for runner, positions in self.jobs():
            grouped[wave_of[self.planned[positions[0]].row.db.key]].append((runner, positions))
        return grouped

    def run(self, escalation: Escalation) -> None:
        waves = self.wave_jobs()
        try:
            for number, jobs in enumerate(waves, start=1):
                if number > 1:
                    why, declined = self.before_wave(waves, number)
                    if why is not None:
                        self.never_started(waves, number, why, declined=declined)
                        break
                if len(waves) > 1:
                    labels = self.labels(jobs)
                    self.reporter.handle(Notice(f"wave {number} of {len(waves)}: {len(labels)} target(s): "
                                                f"{', '.join(labels)}", Level.INFO))
                self.scheduler.run([(runner, functools.partial(self.walk, positions)) for runner, positions in jobs],
                                   escalation)
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

    def labels(self, jobs: list[tuple[object, list[int]]]) -> list[str]:
        """The targets of some jobs, in manifest order."""
        rows = [self.planned[position].row for _, positions in jobs for position in positions]
        return [rows[positions[0]].db.target_label for positions in targets(rows).values()]

    def before_wave(self, waves: list[list[tuple[object, list[int]]]], number: int) -> tuple[str | None, bool]:
        """Why wave `number` must not start (None: it may): the run stopped, a wave before it had a problem
        (even with --keep-going: a wave is how a tier limits what one bad change reaches), or the operator
        said no (then True: declined, not failed)."""
        done = [position for jobs in waves[:number - 1] for _, positions in jobs for position in positions]
        problems = [self.outcomes[position] for position in done
                    if self.outcomes[position].status not in (Status.APPLIED, Status.SKIPPED, Status.NOT_RUN)]
        if problems:
            first = problems[0]
            return (f"wave {number - 1} had a problem ({first.row.script_label} {first.status.value} on "
                    f"{first.row.db.target_label})"), False
        if self.scheduler.stopped:
            return "the run stopped", False
        if self.pause is not None and not self.pause(number, len(waves), self.labels(waves[number - 1])):
            return f"the operator did not start wave {number}", True
        return None, False

    def never_started(self, waves: list[list[tuple[object, list[int]]]], number: int, why: str, *,
                      declined: bool = False) -> None:
        """The targets of waves `number` and later were never touched: each row says so, and so does a notice.
        Declined by the operator, they are refused (exit 5, as a pause answered no): the run is not complete,
        and no failure says so otherwise."""
        later = [job for jobs in waves[number - 1:] for job in jobs]
        reason = f"not started: waves {number}-{len(waves)} of {len(waves)} never started ({why})"
        with self._guard:
            for _, positions in later:
                for position in positions:
                    if self.outcomes[position].status is Status.NOT_RUN:
                        self.outcomes[position] = self.outcomes[position].but(
                            status=Status.REFUSED if declined else Status.NOT_RUN, reason=reason)
        labels = self.labels(later)
        self.reporter.handle(Notice(f"{reason}: {len(labels)} target(s) never started: {', '.join(labels)}",
                                    Level.ERROR))

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
            return self.finished(position, Status.SKIPPED,
                                 f"already applied: {p.detail}" if p.state is RowState.APPLIED else p.detail)
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
                              lambda stream, line: self.reporter.handle(OutputLine(begun, stream, line)),
                              lambda stream, lines: self.reporter.handle(OutputLines(begun, stream, lines)), self.ask,
                              self.approved, functools.partial(self.notice, begun))
        began = time.monotonic()
        # The walk times every step, whatever its kind: a kind says what happened, not how long it took.
        outcome = self.kind_of(p).run(p, context).but(seconds=time.monotonic() - began)
        with self._guard:
            self.outcomes[position] = outcome
        if self.left is not None:
            return StepEnd.STOP_RUN  # abandoned: the run has ended without this row
        if self.warnings_are_errors and outcome.status is Status.APPLIED and outcome.warnings:
            outcome = outcome.but(status=Status.FAILED, reason=(
                f"applied with {len(outcome.warnings)} warning(s), and the tier's policy warnings_are_errors makes "
                "that a failure: nothing more runs on this target (the history records the script as applied: it "
                f"was). First warning: {outcome.warnings[0]}"))
            with self._guard:
                self.outcomes[position] = outcome
        self.reporter.handle(StepFinished(outcome, total))
        if outcome.status in (Status.APPLIED, Status.SKIPPED):  # skipped: applied meanwhile, as it is now
            return StepEnd.CONTINUE
        return StepEnd.STOP_RUN if outcome.status is Status.INTERRUPTED else StepEnd.TARGET_FAILED

    def notice(self, outcome: Outcome, text: str, *, ongoing: bool = False) -> None:
        self.reporter.handle(StepNotice(outcome, text, ongoing))

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
            self.releases.release(ledger)
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


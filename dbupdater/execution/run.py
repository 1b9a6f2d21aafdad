"""The Run: the whole lifecycle of every command that walks targets, written once.

RunStarted; opening the targets (connections; with a kind that keeps the history, every ledger, its lock and
its history); the plan, each row by its kind of step; the refusal rules (drift, in doubt); the hooks before
the first step; the walk (parallelism, caps, keep-going, interrupts, time limits); the hooks after, always in
one order (the environment state in Vault before the end is announced, so every report says how it went);
RunFinished; the exit code. A command parses its options, chooses its kinds of step and its hooks, and calls
`execute` (or `preview`, for `plan`); it emits no event and drives no hook itself.

The Run knows no report: it sends events to one `Reporter`, which the command composes from the console, the
run document and the notifier.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .. import saved_plans
from ..events import (
    Approved,
    Interrupted,
    Level,
    Notice,
    PlanMade,
    Reporter,
    RunAborted,
    RunFinished,
    RunPlanned,
    RunStarted,
    WaitingForLock,
)
from ..model.errors import DbUpdaterError, ExitCode
from ..model.identity import RunIdentity
from ..model.outcome import InterruptStep, Outcome, RunResult, Status
from ..model.specs import DbKey, Manifest, ManifestRow, first_row_per_database, targets
from ..plan import PlannedRow
from ..saved_plans import Approval, SavedPlan
from .executor import Executor
from .heartbeat import Heartbeat
from .hooks import Hooks, RunHook
from .interrupts import LEAVE_GRACE, Escalation
from .kinds import Ask, Chooser, Histories, Orders, Prepares, StepContext, StepKind
from .options import RunOptions
from .pool import Deployment
from .scheduler import caps, runner_cap

if TYPE_CHECKING:
    from ..tiers import Waves  # only a tier's runs have waves: the module loads with the tier (start-up time)

REFUSED = ("refused: nothing ran anywhere. Drifted scripts need a new script instead of an edit; scripts in doubt "
           "need `resolve` after you checked the database.")


@dataclass(frozen=True)
class Promotion:
    """What a tier (environments.toml) and the command line ask of a run beyond its rows, as data: the Run
    owns the rules. `saved`: the plan `apply --plan` must still match (else the run is refused, naming what
    changed); `require_approval`: rows may run only under an approval (`yes` with a saved plan: approved
    before this run, e.g. on the CI platform; else the run's operator on a terminal approves by typing the
    tier's name); `save`: where `plan --save` puts the plan; `waves`: the targets in manifest order, walked
    wave after wave, a wave starting only when the ones before it had no failure; `pause_between_waves`: ask
    the operator before each later wave; `warnings_are_errors`: a script that printed warnings stops its
    target and fails the run (it is recorded as applied: it was)."""

    environment: str | None = None
    require_approval: bool = False
    policy: Mapping[str, Any] | None = None
    saved: SavedPlan | None = None
    saved_name: str = "the saved plan"
    yes: bool = False
    save: Callable[[SavedPlan], str] | None = None  # returns what to say about it
    waves: Waves | None = None
    pause_between_waves: bool = False
    warnings_are_errors: bool = False
    notes: tuple[str, ...] = ()  # said as the run starts (e.g. flags that loosened an unprotected tier's policy)
    # How this command saves a plan and runs it once approved, for the words of a refusal (None: `plan --save`,
    # then `apply --plan`); `{tier}` stands for the tier's name, `{plan}` for the plan's file.
    plan_commands: tuple[str, str] | None = None


@runtime_checkable
class RecordsApproval(Protocol):
    """A run hook that records the approval of the plan the run applies (the environment state in Vault)."""

    def approved(self, approval: Approval) -> None: ...


@dataclass(frozen=True)
class Invocation:
    """Who asked for the run, as the reports say it: the command, its (redacted) command line, the run folder,
    the environment and the shard."""

    command: str
    argv: tuple[str, ...] = ()
    report_dir: Path | None = None
    environment: str | None = None
    shard: str | None = None


class Run:
    """One run of one command over one manifest. `choose` says which kind of step does each row."""

    def __init__(self, manifest: Manifest, invocation: Invocation, options: RunOptions, reporter: Reporter,
                 choose: Chooser, hooks: Iterable[RunHook] = (), identity: RunIdentity | None = None,
                 ask: Ask | None = None, promotion: Promotion | None = None, *,
                 confirm: Callable[[list[PlannedRow]], bool] | None = None) -> None:
        """`ask`: the operator (a terminal), for steps that wait for one; None: the run has nobody to ask.
        `promotion`: a tier's rules (saved plan, approval, waves); None: none."""
        self.ask = ask
        # Asked, once the plan stands, before anything runs (`revert`): False refuses every step.
        self.confirm = confirm
        self.promotion = promotion or Promotion()
        self.refusal: str | None = None  # why the run was refused before any step (a plan changed, no approval)
        self.approval: Approval | None = None
        self.manifest = manifest
        self.invocation = invocation
        self.reporter = reporter
        self.choose = choose
        self.hooks = Hooks(hooks)
        self.identity = identity or RunIdentity()
        self.kinds: dict[int, StepKind] = {index: choose(row) for index, row in enumerate(manifest.rows, start=1)}
        self.history = any(kind.history for kind in self.kinds.values())
        self.options = dataclasses.replace(options, history=self.history)

    # --- the commands' entry points -------------------------------------------------------------------------

    def execute(self) -> int:
        """Plan, then do every row that runs; the exit code of the whole run."""
        self.started()
        with self.aborting():
            planned, result = self.walk()
        if self.refusal is not None:
            self.reporter.handle(Notice(self.refusal, Level.ERROR))
            self.reporter.handle(RunFinished(result, int(ExitCode.REFUSED), executed=False))
            return int(ExitCode.REFUSED)
        if any(p.state.blocks for p in planned):
            self.reporter.handle(PlanMade(planned))
            self.reporter.handle(Notice(REFUSED, Level.ERROR))
            self.reporter.handle(RunFinished(result, executed=False))
            return int(result.exit_code)
        code = int(result.exit_code)
        for failure in self.hooks.finished(result):
            self.reporter.handle(Notice(str(failure), Level.ERROR))
            code = code or int(ExitCode.UNREACHABLE)
        for note in self.hooks.notes():
            self.reporter.handle(Notice(note, Level.DETAIL))
        self.reporter.handle(RunFinished(result, None if code == int(result.exit_code) else code))
        return code

    def preview(self) -> int:
        """`plan`: open every target without locking, read every history, say what `execute` would do."""
        self.started()
        with self.aborting(), Deployment(self.manifest, self.options, self.identity) as deployment:
            histories = deployment.open(lock=False)
            # one query per database, in manifest order
            holders = {row.db.target_label: deployment.ledger(row).holder()
                       for row in first_row_per_database(self.manifest.rows)}
        planned = self.plan(histories)
        self.planned(planned, preview=True)
        waves = self.waves(planned)
        if waves is not None and len(waves) > 1:
            labels = {p.row.db.key: p.row.db.target_label for p in planned}
            self.reporter.handle(Notice("waves: " + "; ".join(
                f"{number}: {', '.join(labels[key] for key in keys)}" for number, keys in enumerate(waves, start=1)),
                Level.INFO))
        if self.promotion.save is not None:
            said = self.promotion.save(self.saved(planned, histories))
            self.reporter.handle(Notice(said, Level.SUCCESS))
        elif self.promotion.require_approval and any(p.state.runs for p in planned):
            tier = self.promotion.environment
            self.reporter.handle(Notice(f"tier {tier} applies only an approved plan: save this one with `plan "
                                        f"--environment {tier} --save FILE`, then `apply --environment {tier} "
                                        "--plan FILE` (--yes once it is approved elsewhere)", Level.NOTE))
        for label, holder in holders.items():
            if holder is not None:
                self.reporter.handle(Notice(f"{label} is locked right now by {holder.describe()}", Level.NOTE))
        if any(p.state.blocks for p in planned):
            self.reporter.handle(Notice("the run would be refused (see drifted / in doubt above); nothing was "
                                        "executed", Level.ERROR))
            code = ExitCode.REFUSED
        else:
            pending = sum(1 for p in planned if p.state.runs)
            self.reporter.handle(Notice(f"the run can go ahead: {pending} script(s) to apply; nothing was executed",
                                        Level.SUCCESS))
            code = ExitCode.OK
        self.reporter.handle(RunFinished(RunResult([]), int(code), executed=False))
        return int(code)

    # --- the lifecycle --------------------------------------------------------------------------------------

    def started(self) -> None:
        asked = self.invocation
        self.reporter.handle(RunStarted(self.manifest, asked.command, self.identity.run_id, argv=asked.argv,
                                        environment=asked.environment, shard=asked.shard or None,
                                        report_dir=asked.report_dir, history=self.history))
        for note in self.promotion.notes:
            self.reporter.handle(Notice(note, Level.WARNING))

    def aborting(self) -> _Aborting:
        return _Aborting(self.reporter)

    def plan(self, histories: Histories) -> list[PlannedRow]:
        """Each kind plans its own rows (from their targets' histories); the plan is in manifest order, unless
        its one kind walks in an order of its own (`Orders`)."""
        by_kind: dict[int, list[tuple[int, ManifestRow]]] = {}
        kinds: dict[int, StepKind] = {}
        for index, row in enumerate(self.manifest.rows, start=1):
            kind = self.kinds[index]
            kinds.setdefault(id(kind), kind)
            by_kind.setdefault(id(kind), []).append((index, row))
        planned = [dataclasses.replace(p, action=kinds[key].describe(p))
                   for key, rows in by_kind.items() for p in kinds[key].plan(rows, histories)]
        ordered = sorted(planned, key=lambda p: p.index)
        orders = {id(kind): kind for kind in kinds.values() if isinstance(kind, Orders)}
        if len(kinds) == 1 and orders:  # one kind with an order of its own: a revert, newest first
            return next(iter(orders.values())).order(ordered)
        return ordered

    def planned(self, planned: list[PlannedRow], *, preview: bool = False) -> None:
        options = self.options
        first = [positions[0] for positions in targets([p.row for p in planned]).values()]
        counts = Counter(planned[position].row.runner.label for position in first)
        self.reporter.handle(RunPlanned(planned, options.parallel, runner_cap(options.parallel, options.per_runner),
                                        caps(dict(counts), options.parallel, options.per_runner), preview))

    def walk(self) -> tuple[list[PlannedRow], RunResult]:
        """Open, plan, refuse or do every row; the plan and the result (no after-hooks, no RunFinished)."""
        started = time.monotonic()
        with Deployment(self.manifest, self.options, self.identity) as deployment:
            histories: Histories = {}
            if self.history:
                histories = deployment.open(
                    lock=True, on_wait=lambda db, holder: self.reporter.handle(WaitingForLock(db, holder)))
            else:
                deployment.connect()
            planned = self.plan(histories)
            outcomes = [Outcome(p.index, p.row, step=p.step) for p in planned]
            # The leases are renewed from here on: an operator may take minutes to answer a question before the
            # first step (an approval, a confirmation), and the locks must still be this run's after it.
            heartbeat = Heartbeat(list(deployment.locked.values()), self.options.lock_lease)
            heartbeat.start()
            escalation: Escalation | None = None
            try:
                if not any(p.state.blocks for p in planned):
                    self.refusal = self.gate(planned, histories, deployment)
                    if self.refusal is not None:
                        refused = [o.but(status=Status.REFUSED, reason=self.refusal) if p.state.runs else o
                                   for p, o in zip(planned, outcomes, strict=True)]
                        return planned, RunResult(refused, time.monotonic() - started)
                self.planned(planned)
                if any(p.state.blocks for p in planned):
                    refused = [o.but(status=Status.REFUSED, reason=f"{p.state.value}: {p.detail}") if p.state.blocks
                               else o for p, o in zip(planned, outcomes, strict=True)]
                    return planned, RunResult(refused, time.monotonic() - started)
                if self.confirm is not None and any(p.state.runs for p in planned):
                    self.reporter.handle(PlanMade(planned))
                    if not self.confirm(planned):
                        declined = [o.but(status=Status.REFUSED, reason="not confirmed: nothing was done")
                                    if p.state.runs else o for p, o in zip(planned, outcomes, strict=True)]
                        return planned, RunResult(declined, time.monotonic() - started)
                if any(p.state.runs for p in planned):
                    self.hooks.executing(planned)
                self.prepare(planned, deployment)
                executor = Executor(deployment, planned, outcomes, heartbeat, self.options, self.reporter, self.hooks,
                                    lambda p: self.kinds[p.index], self.ask, waves=self.waves(planned),
                                    pause=self.pause if self.promotion.pause_between_waves else None,
                                    warnings_are_errors=self.promotion.warnings_are_errors,
                                    approved=self.approved_plan())

                def announce(step: InterruptStep, running: int) -> None:
                    deployment.interrupted.set()
                    self.reporter.handle(Interrupted(step, running))

                escalation = Escalation(deployment.cancel, announce, executor.leave)
                executor.run(escalation)
            finally:  # leaving after interrupts: a renewal stuck on a frozen runner must not hold the exit
                leaving = escalation is not None and escalation.step is InterruptStep.LEAVE
                heartbeat.stop(wait=LEAVE_GRACE / 4 if leaving else 30.0)
        return planned, executor.result(time.monotonic() - started, escalation.interrupted)

    # --- promotion: saved plans, approvals, waves ------------------------------------------------------------

    def saved(self, planned: Sequence[PlannedRow], histories: Histories) -> SavedPlan:
        promotion = self.promotion
        return saved_plans.build(self.manifest, planned, histories, environment=promotion.environment,
                                 shard=self.invocation.shard or None, policy=promotion.policy)

    def gate(self, planned: list[PlannedRow], histories: Histories, deployment: Deployment) -> str | None:
        """The rules of a promoted run, decided while the run holds every lock (nothing moves between the check
        and the first step): a saved plan must still be what would run; a tier that requires approval runs
        rows only under one. Why the run is refused, or None (and the approval, if any, recorded)."""
        promotion = self.promotion
        runs = sum(1 for p in planned if p.state.runs)
        if promotion.saved is None and not (promotion.require_approval and runs):
            return None
        now = self.saved(planned, histories)
        if promotion.saved is not None:
            changed = saved_plans.differences(promotion.saved, now)
            if changed:
                self.reporter.handle(PlanMade(planned))
                return (f"refused: {promotion.saved_name} is not what would run now, so nothing ran anywhere. What "
                        f"changed: {'; '.join(changed)}. Save the plan again (`{self.plan_commands()[0]}`) and have "
                        "it approved")
        digest = promotion.saved.digest if promotion.saved is not None else now.digest
        tier = promotion.environment
        approval: Approval | None = None
        if promotion.saved is not None and promotion.yes:
            approval = Approval.now(digest, "--yes with the saved plan: approved before this run", tier)
        elif promotion.require_approval and runs:
            if self.ask is None:
                save, then = self.plan_commands()
                return (f"refused: tier {tier} requires an approved plan (require_approval), and nothing ran. Save "
                        f"it with `{save}`, have it approved, then `{then}`; or run {self.invocation.command} on a "
                        "terminal and approve it by typing the tier's name")
            self.reporter.handle(PlanMade(planned))
            answer = self.ask(f"{runs} script(s) to run on tier {tier} (plan {digest[:19]}...), as shown above.",
                              f"Type the tier's name ({tier}) to approve; anything else refuses: ")
            if (answer or "").strip() != tier:
                return f"refused: not approved (the answer was not {tier!r}); nothing ran anywhere"
            approval = Approval.now(digest, "typed the tier's name on a terminal", tier)
        if approval is not None:
            self.approval = approval
            for ledger in deployment.locked.values():
                ledger.approval = approval.note()
            for hook in self.hooks.hooks:
                if isinstance(hook, RecordsApproval):
                    hook.approved(approval)
            self.reporter.handle(Approved(approval))
        return None

    def plan_commands(self) -> tuple[str, str]:
        """How this command saves a plan and runs it once approved, in a refusal's words."""
        tier = self.promotion.environment
        save, then = self.promotion.plan_commands or (
            "plan" + (" --environment {tier}" if tier else "") + " --save {plan}",
            "apply" + (" --environment {tier}" if tier else "") + " --plan {plan} --yes")
        return (save.replace("{tier}", str(tier)).replace("{plan}", "plan.json"),
                then.replace("{tier}", str(tier)).replace("{plan}", "plan.json"))

    def waves(self, planned: Sequence[PlannedRow]) -> list[list[DbKey]] | None:
        """The targets in manifest order, as the tier's waves split them (None: one wave)."""
        if self.promotion.waves is None:
            return None
        return self.promotion.waves.split(list(targets([p.row for p in planned])))

    def pause(self, number: int, total: int, labels: Sequence[str]) -> bool:
        """Between waves: whether the operator lets wave `number` start (nobody to ask: it does not)."""
        if self.ask is None:
            return False
        named = ", ".join(labels[:5]) + (f" and {len(labels) - 5} more" if len(labels) > 5 else "")
        answer = self.ask(f"wave {number - 1} of {total} finished without a failure; wave {number} has "
                          f"{len(labels)} target(s): {named}.", f"Start wave {number}? [y/N] ")
        return (answer or "").strip().lower() in ("y", "yes")

    def approved_plan(self) -> str | None:
        """The approval that covers every row of the plan (a saved plan, matched and approved), in words."""
        if self.approval is None or self.promotion.saved is None:
            return None
        return self.approval.note()

    def prepare(self, planned: Sequence[PlannedRow], deployment: Deployment) -> None:
        """Let each kind that prepares (copies scripts ahead) see the rows it will run."""
        context = StepContext(deployment, self.options, lambda stream, line: None, lambda stream, lines: None,
                              self.ask)
        by_kind: dict[int, tuple[StepKind, list[PlannedRow]]] = {}
        for p in planned:
            if p.state.runs:
                kind = self.kinds[p.index]
                by_kind.setdefault(id(kind), (kind, []))[1].append(p)
        for kind, rows in by_kind.values():
            if isinstance(kind, Prepares):
                kind.prepare(rows, context)


class _Aborting:
    """A run that ends by an error before it has a result (a runner unreachable, a lock timeout, Ctrl-C while
    opening) still tells its reports why; the error goes on to the command line's last line of defence."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        if isinstance(error, (DbUpdaterError, KeyboardInterrupt)):
            code = int(getattr(error, "exit_code", ExitCode.INTERRUPTED))
            self.reporter.handle(RunAborted(code, str(error) or "interrupted"))

"""The two kinds of step that run a row's SQL script with its engine's native client on its runner.

`ScriptStep` (`apply`) keeps the history: the copy first (a failed copy leaves no trace), then the `running`
row (in the script's own client session when the engine can, fenced by the server), the script, and its
end; a success rides with the database's next ledger call, a failure is written at once. `ExecStep` (`exec`)
runs the same script judged the same way, with nothing read from or written to the history.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..checksum import VERSION
from ..engines import registry as engines
from ..execution.kinds import Histories, StepContext
from ..ledger import SUCCESS, recorded
from ..model.errors import DbUpdaterError
from ..model.outcome import Outcome, Status
from ..model.specs import ManifestRow
from ..plan import Digests, PlannedRow, every_row, plan_history
from .client import CANCEL_FIRST, STOP_OUTRIGHT, interrupted, ready, run_script, single_transaction
from .draft import Draft
from .ledgered import finish, refused, settled
from .undo import UndoRecords
from .verify import Verifier


def _client(row: ManifestRow) -> str:
    return engines.get(row.db.engine).client


class ScriptStep:
    """Run the row's script once per target, recorded in the target's history (`apply`), then its verify
    script when it has one."""

    name = "script"
    history = True

    def __init__(self) -> None:
        self._digests = Digests()
        self.verifier = Verifier()
        self.undo = UndoRecords()

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        self.verifier.remember(rows, histories)
        self.undo.remember(rows, histories)
        return self.undo.drift(plan_history(rows, histories, self.name, self._digests))

    def describe(self, planned: PlannedRow) -> str:
        row = planned.row
        then = f", then verify it with {row.verify_id}" if row.verify is not None else ""
        if row.blank:
            return f"record the blank {row.script_label} as applied, starting no client{then}"
        return f"run {row.script_label} with {_client(row)}, recorded in the history{then}"

    def prepare(self, planned: Sequence[PlannedRow], context: StepContext) -> None:
        """Copy, per runner and in the background, the scripts that will run, in the order they will."""
        context.deployment.prefetch([p for p in planned if not p.row.blank])

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        draft = Draft(planned.index, planned.row, self.name)
        self._apply(planned, context, draft)
        if draft.status is Status.APPLIED and planned.row.undo is not None:
            self.undo.record(planned, context, draft)
        if draft.status is Status.APPLIED and planned.row.verify is not None:
            self.verifier.after(planned, context, draft)
        return draft.outcome()

    def _apply(self, p: PlannedRow, context: StepContext, draft: Draft) -> None:
        row, deployment, options = p.row, context.deployment, context.options
        if row.blank:
            self._blank(p, context, draft)
            return
        before = ""
        try:
            ledger = deployment.ledger(row)
            on = ready(deployment, row)
        except DbUpdaterError as exc:
            draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
            return
        single = single_transaction(row, options, on.engine)
        try:
            if on.engine.shares_session(single):
                before = ledger.running_before_script(row.script_id, p.checksum, VERSION, p.entry)
            else:
                ledger.mark_running(row.script_id, p.checksum, VERSION, p.entry)
        except DbUpdaterError as exc:
            refused(ledger, p, draft, f"not started: {exc}", [str(exc)])
            return
        began = run_script(on, row, draft, single, before, context.on_lines,
                           row.script_timeout or options.script_timeout,
                           STOP_OUTRIGHT if ledger.ends_sessions else CANCEL_FIRST)
        cancelled = deployment.cancelled and draft.status is Status.FAILED
        if before and began:
            ledger.running_recorded(all_checked=on.engine.before_checked)
        if began is False:  # the `running` row was never written, nor the script run
            refused(ledger, p, draft, f"not started: {draft.reason}", draft.errors)
            return
        if draft.timed_out and not settled(ledger, row, draft):
            return  # its session may still run: the history keeps it `running`, in doubt
        rolled_back = draft.status is Status.FAILED and single
        status = recorded(draft.status, rolled_back=rolled_back)
        if rolled_back:
            draft.reason += "; rolled back (single transaction): nothing of it remains"
        if cancelled:
            interrupted(draft)
        finish(ledger, p, status, draft, context)

    def _blank(self, p: PlannedRow, context: StepContext, draft: Draft) -> None:
        """A blank script: its `running` row goes in (fenced, as any script's), then its success; no copy, no
        client. The history then holds it like any applied script, so a later edit is drift."""
        try:
            ledger = context.deployment.ledger(p.row)
        except DbUpdaterError as exc:
            draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
            return
        try:
            ledger.mark_running(p.row.script_id, p.checksum, VERSION, p.entry)
        except DbUpdaterError as exc:
            refused(ledger, p, draft, f"not recorded: {exc}", [str(exc)])
            return
        draft.status, draft.reason = Status.APPLIED, "blank script: recorded as applied; no client was started"
        finish(ledger, p, SUCCESS, draft, context)


class ExecStep:
    """Run the row's script every time, judged exactly as `apply` judges it, with nothing read from or written
    to the history (`exec`: ad-hoc checks and reports; the way every engine is tested end to end where no
    server runs)."""

    name = "exec"
    history = False

    def __init__(self) -> None:
        self._digests = Digests()
        self.verifier = Verifier()

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        return every_row(rows, self.name, self._digests)

    def describe(self, planned: PlannedRow) -> str:
        row = planned.row
        if row.blank:
            return f"nothing: {row.script_label} is blank"
        then = f", then verify it with {row.verify_id}" if row.verify is not None else ""
        return f"run {row.script_label} with {_client(row)}, without the history{then}"

    def prepare(self, planned: Sequence[PlannedRow], context: StepContext) -> None:
        context.deployment.prefetch([p for p in planned if not p.row.blank])

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        row = planned.row
        draft = Draft(planned.index, row, self.name)
        if row.blank:
            draft.status, draft.reason = Status.APPLIED, "blank script: nothing to run; no client was started"
            return draft.outcome()
        try:
            on = ready(context.deployment, row)
        except DbUpdaterError as exc:
            draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
            return draft.outcome()
        run_script(on, row, draft, single_transaction(row, context.options, on.engine), "", context.on_lines,
                   row.script_timeout or context.options.script_timeout)
        if context.deployment.cancelled and draft.status is Status.FAILED:
            interrupted(draft)
        if draft.status is Status.APPLIED and row.verify is not None:
            self.verifier.after(planned, context, draft, record=False)
        return draft.outcome()

"""A step that is not SQL: the row's file is an executable, copied to the runner and run there under the rules
of a script (restart a service, a data fix in Python, anything a runner can execute).

How it runs is `program.run_program`'s (shared with a command's undo); with the history it is recorded and
checksummed like a script, so an edited command is drift, and its undo script's checksum is kept beside it.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..checksum import VERSION
from ..execution.kinds import Histories, StepContext
from ..ledger import Ledger, recorded
from ..model.errors import DbUpdaterError
from ..model.outcome import Outcome, Status
from ..model.specs import ManifestRow
from ..plan import Digests, PlannedRow, every_row, plan_history
from .draft import Draft
from .ledgered import finish, refused
from .program import run_program
from .undo import UndoRecords


class CommandStep:
    """Run the row's executable on its runner; `history`: recorded in the target's history (apply) or not
    (exec)."""

    name = "command"

    def __init__(self, history: bool = True) -> None:
        self.history = history
        self._digests = Digests()
        self.undo = UndoRecords()

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        if self.history:
            self.undo.remember(rows, histories)
            return self.undo.drift(plan_history(rows, histories, self.name, self._digests))
        return every_row(rows, self.name, self._digests)

    def describe(self, planned: PlannedRow) -> str:
        where = "recorded in the history" if self.history else "without the history"
        return f"run the command {planned.row.script_label} on {planned.row.runner.label}, {where}"

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        draft = Draft(planned.index, planned.row, self.name)
        self._run(planned, context, draft)
        return draft.outcome()

    def _run(self, p: PlannedRow, context: StepContext, draft: Draft) -> None:
        ledger: Ledger | None = None
        if self.history:
            try:
                ledger = context.deployment.ledger(p.row)
            except DbUpdaterError as exc:
                draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
                return

        def record_running() -> bool:
            if ledger is None:
                return True
            try:
                ledger.mark_running(p.row.script_id, p.checksum, VERSION, p.entry)
            except DbUpdaterError as exc:
                refused(ledger, p, draft, f"not started: {exc}", [str(exc)])
                return False
            return True

        if not run_program(p.row.script, p, context, draft, record_running):
            return
        if ledger is not None and draft.status is not Status.UNREACHABLE:
            finish(ledger, p, recorded(draft.status), draft, context)
        if ledger is not None and draft.status is Status.APPLIED and p.row.undo is not None:
            self.undo.record(p, context, draft)

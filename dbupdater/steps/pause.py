"""A human step inside an automated run: show the row's message (its file) and wait for the operator.

On a terminal, Enter continues and anything else stops the run cleanly; where nobody can answer (CI, a pipe)
the run stops there, before anything after the pause, saying why, unless the run applies an approved saved
plan that contains the pause (`apply --plan FILE --yes`): its approvers saw it. A pause passed is recorded in
the history like a script (checksummed: an edited message is drift); a pause refused is recorded in the run's
reports only, so the next run asks again.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..checksum import VERSION
from ..execution.kinds import Histories, StepContext
from ..ledger import SUCCESS
from ..model.errors import DbUpdaterError
from ..model.outcome import Outcome, Status
from ..model.specs import ManifestRow
from ..plan import Digests, PlannedRow, every_row, plan_history
from .draft import Draft
from .ledgered import finish, refused

LIMIT = 4000  # characters of the message shown (a pause message is for a person, not a document)


def message(row: ManifestRow) -> str:
    text = row.script.read_text(encoding=row.encoding, errors="replace").strip()
    return text if len(text) <= LIMIT else text[:LIMIT] + f" [... {len(text) - LIMIT} more characters]"


class PauseStep:
    """Wait for the operator; `history`: a pause passed is recorded in the target's history (apply)."""

    name = "pause"

    def __init__(self, history: bool = True) -> None:
        self.history = history
        self._digests = Digests()

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        if self.history:
            return plan_history(rows, histories, self.name, self._digests)
        return every_row(rows, self.name, self._digests)

    def describe(self, planned: PlannedRow) -> str:
        first = next(iter(message(planned.row).splitlines()), "")
        return f"wait for the operator{': ' + first[:80] if first else ''}"

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        row = planned.row
        draft = Draft(planned.index, row, self.name)
        text = message(row)
        where = f"pause {row.script_label} before the next step on {row.db.target_label}"
        if context.ask is None and context.approved is not None:
            draft.status = Status.APPLIED
            draft.reason = f"passed without an operator: the approved plan contains it ({context.approved})"
            if self.history:
                self._record(planned, context, draft)
            return draft.outcome()
        if context.ask is None:
            draft.status = Status.REFUSED
            draft.reason = (f"{where}: it waits for an operator, and this run has none (not a terminal); the run "
                            "stops here, before anything after it. Run it on a terminal to answer")
            return draft.outcome()
        answer = context.ask(f"{where}:\n{text}" if text else f"{where}.", "Enter continues; anything else stops: ")
        if answer is None or answer.strip():
            said = "no answer (end of input)" if answer is None else f"the operator answered {answer.strip()[:40]!r}"
            draft.status = Status.REFUSED
            draft.reason = f"{where}: stopped there ({said}); nothing after it ran on this target"
            return draft.outcome()
        draft.status, draft.reason = Status.APPLIED, "the operator continued"
        if self.history:
            self._record(planned, context, draft)
        return draft.outcome()

    def _record(self, planned: PlannedRow, context: StepContext, draft: Draft) -> None:
        row = planned.row
        try:
            ledger = context.deployment.ledger(row)
        except DbUpdaterError as exc:
            draft.status, draft.reason = Status.UNREACHABLE, f"the operator continued, but it cannot be recorded: {exc}"
            return
        try:
            ledger.mark_running(row.script_id, planned.checksum, VERSION, planned.entry)
        except DbUpdaterError as exc:
            refused(ledger, planned, draft, f"the operator continued, but it could not be recorded: {exc}",
                    [str(exc)])
            return
        finish(ledger, planned, SUCCESS, draft, context)

"""Undo and revert: taking applied changes back, newest first, with the undo script each row names.

When a row with an `undo_script` applies, its undo script's checksum is recorded beside it in the history
(`<script>#undo`), so an undo script edited afterwards is drift like an edited script: the undo that runs is
the one that was there when the change went in. `revert` (the `UndoStep` kind) picks, per target, the applied
rows after `--to SCRIPT` or the last `--steps N`, newest application first; each undo is judged like a script
(a command's undo is an executable, judged like a command) and fenced like one; a success records the script
as `undone`, so it is pending again and the next apply runs it again; a failure leaves it in doubt (it may be
partly undone) until a person resolves it. A row without an undo script stops the revert of its target there,
saying which.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ..checksum import VERSION
from ..engines import registry as engines
from ..execution.kinds import Histories, StepContext
from ..ledger import FAILED, SUCCESS, UNDONE, Entry
from ..model.errors import DbUpdaterError
from ..model.outcome import Outcome, Status
from ..model.specs import DbKey, ManifestRow, targets
from ..plan import Digests, PlannedRow, RowState, plan_history
from .client import CANCEL_FIRST, STOP_OUTRIGHT, Ready, run_script
from .draft import Draft
from .ledgered import finish, refused, settled
from .program import run_program

SUFFIX = "#undo"


class UndoRecords:
    """The undo script each applied row had when it applied, kept in the history beside it."""

    def __init__(self) -> None:
        self.digests = Digests()
        self.seen: dict[tuple[DbKey, str], Entry | None] = {}

    def remember(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> None:
        for _, row in rows:
            if row.undo is not None:
                self.seen[(row.db.key, row.script_id + SUFFIX)] = histories.get(row.db.key, {}).get(
                    row.script_id + SUFFIX)

    def drift(self, planned: list[PlannedRow]) -> list[PlannedRow]:
        """Applied rows whose undo script is not the one recorded when they applied are drifted."""
        checked = []
        for p in planned:
            recorded = self.seen.get((p.row.db.key, p.row.script_id + SUFFIX))
            if (p.state is RowState.APPLIED and p.row.undo is not None and recorded is not None
                    and recorded.status == SUCCESS and recorded.checksum != self.digests(p.row.undo)):
                p = dataclasses.replace(p, state=RowState.DRIFTED, detail=(
                    f"its undo script {p.row.undo_id} changed since it was applied (recorded {recorded.checksum}, "
                    f"now {self.digests(p.row.undo)}): an undo script must stay as it was when its change went in"))
            checked.append(p)
        return checked

    def record(self, p: PlannedRow, context: StepContext, draft: Draft) -> None:
        """After the row applied: its undo script's checksum, in the history beside it."""
        row = p.row
        assert row.undo is not None
        key = (row.db.key, row.script_id + SUFFIX)
        undo = dataclasses.replace(p, row=dataclasses.replace(row, script_id=row.script_id + SUFFIX),
                                   checksum=self.digests(row.undo), entry=self.seen.get(key))
        try:
            ledger = context.deployment.ledger(row)
            ledger.mark_running(undo.row.script_id, undo.checksum, VERSION, undo.entry)
        except DbUpdaterError as exc:
            draft.warnings.append(f"its undo script's checksum could not be recorded ({exc}): revert will not know "
                                  "whether the undo script changed since")
            return
        finish(ledger, undo, SUCCESS, draft, context)


def _applied_order(planned: list[PlannedRow]) -> list[PlannedRow]:
    """A target's applied rows, the most recently applied first."""
    applied = [p for p in planned if p.state is RowState.APPLIED and p.entry is not None]
    return sorted(applied, key=lambda p: p.entry.id if p.entry is not None else 0, reverse=True)


class UndoStep:
    """`revert`: run the undo scripts of applied rows, newest first, per target: those applied after `to`
    (a script id), or the last `steps` of them."""

    name = "undo"
    history = True

    def __init__(self, to: str | None = None, steps: int | None = None) -> None:
        self.to = to
        self.steps = steps
        self.records = UndoRecords()
        self._digests = Digests()

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        self.records.remember(rows, histories)
        planned = self.records.drift(plan_history(rows, histories, self.name, self._digests))
        chosen: dict[int, PlannedRow] = {}
        for positions in targets([p.row for p in planned]).values():
            target = [planned[position] for position in positions]
            for p in self._select(target):
                chosen[p.index] = p
        return [chosen.get(p.index) or self._untouched(p) for p in planned]

    def _select(self, target: list[PlannedRow]) -> list[PlannedRow]:
        newest_first = _applied_order(target)
        if self.to is not None:
            mark = next((p for p in newest_first if p.row.script_id == self.to), None)
            if mark is None or mark.entry is None:
                return []
            picked = [p for p in newest_first if p.entry is not None and p.entry.id > mark.entry.id]
        else:
            picked = newest_first[: self.steps or 0]
        return [dataclasses.replace(p, state=RowState.PENDING, detail=(
            f"undo with {p.row.undo_id}" if p.row.undo is not None else
            "no undo script: the revert of this target stops here")) for p in picked]

    def _untouched(self, p: PlannedRow) -> PlannedRow:
        if p.state.blocks:
            return p
        if p.state is RowState.APPLIED:
            return dataclasses.replace(p, state=RowState.NOTHING, detail=f"stays applied ({p.detail})")
        return dataclasses.replace(p, state=RowState.NOTHING, detail="not applied: nothing to undo")

    def order(self, planned: list[PlannedRow]) -> list[PlannedRow]:
        """Rows to undo first, newest application first (each target's own order is kept by the walk); the
        rows left as they are after them, in manifest order."""
        undo = sorted((p for p in planned if p.state.runs), key=lambda p: p.entry.id if p.entry else 0, reverse=True)
        return undo + [p for p in planned if not p.state.runs]

    def describe(self, planned: PlannedRow) -> str:
        row = planned.row
        if not planned.state.runs:
            return f"nothing: {planned.detail}"
        if row.undo is None:
            return f"stop: {row.script_label} has no undo script"
        return f"run {row.undo_id} to take back {row.script_label}"

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        row = planned.row
        draft = Draft(planned.index, row, self.name)
        if row.undo is None:
            draft.status = Status.REFUSED
            draft.reason = (f"{row.script_label} has no undo script: the revert of {row.db.target_label} stops "
                            "before it; it and every change applied before it stay applied")
        else:
            self._undo(planned, context, draft)
        return draft.outcome()

    def _undo(self, p: PlannedRow, context: StepContext, draft: Draft) -> None:
        row = p.row
        assert row.undo is not None
        try:
            ledger = context.deployment.ledger(row)
        except DbUpdaterError as exc:
            draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
            return

        def record_running() -> bool:
            try:
                ledger.mark_running(row.script_id, p.checksum, VERSION, p.entry)
            except DbUpdaterError as exc:
                refused(ledger, p, draft, f"not started: {exc}", [str(exc)])
                return False
            return True

        if row.step == "command":
            if not run_program(row.undo, p, context, draft, record_running):
                return
        else:
            try:
                session = context.deployment.session(row.runner)
                engine = engines.get(row.db.engine)
                on = Ready(session, session.upload(row.undo, row.encoding), session.credentials(row.db), engine,
                           session.client(engine))
            except DbUpdaterError as exc:
                draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
                return
            if not record_running():
                return
            run_script(on, row, draft, False, "", context.on_lines,
                       row.script_timeout or context.options.script_timeout,
                       STOP_OUTRIGHT if ledger.ends_sessions else CANCEL_FIRST)
            if draft.timed_out and not settled(ledger, row, draft):
                return
        if draft.status is Status.UNREACHABLE:
            return  # nobody can tell: the history keeps it running, in doubt
        if draft.status is Status.APPLIED:
            draft.reason = f"undone with {row.undo_id}: {row.script_label} is pending again"
            finish(ledger, p, UNDONE, draft, context)
        else:
            draft.reason = f"its undo script {row.undo_id} failed: {draft.reason}; it may be partly undone"
            finish(ledger, p, FAILED, draft, context)

"""Console output: a line per row as it starts and ends, warnings and errors, then a summary table.

Every string passes through the redactor, and manifest values are never parsed as rich markup.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..model.outcome import InterruptStep, Outcome, RunResult, Status
from ..model.secret import shown
from ..model.specs import DatabaseSpec, Manifest
from ..plan import PlannedRow, RowState
from .events import (
    Event,
    Interrupted,
    Level,
    Notice,
    PlanMade,
    RunFinished,
    RunStarted,
    StepFinished,
    StepStarted,
    WaitingForLock,
)

if TYPE_CHECKING:
    import pandas as pd

    from ..ledger import Holder

STYLES = {
    Status.APPLIED: "green",
    Status.SKIPPED: "dim green",
    Status.REFUSED: "bold red",
    Status.FAILED: "bold red",
    Status.UNREACHABLE: "bold red",
    Status.INTERRUPTED: "bold yellow",
    Status.NOT_RUN: "dim",
}
PLAN_STYLES = {
    RowState.PENDING: "cyan",
    RowState.CHANGED: "cyan",
    RowState.APPLIED: "dim green",
    RowState.DRIFTED: "bold red",
    RowState.IN_DOUBT: "bold red",
}
MAX_SHOWN_LINES = 25
# Above this many rows the summary lists only the rows that went wrong (a table of hundreds helps nobody).
SUMMARY_ROWS = 50
PROBLEMS = {Status.FAILED, Status.UNREACHABLE, Status.REFUSED, Status.INTERRUPTED}


SHOWN_LINE = 2000  # characters of one client output line on screen


def _short(line: str) -> str:
    return line if len(line) <= SHOWN_LINE else f"{line[:SHOWN_LINE]} [... {len(line) - SHOWN_LINE} more characters]"


NOTICE_STYLES = {Level.INFO: "", Level.SUCCESS: "green", Level.NOTE: "cyan", Level.WARNING: "yellow",
                 Level.ERROR: "bold red", Level.DETAIL: "dim"}


class ConsoleReporter:
    """Lines as rows start and end, then tables; every string redacted, manifest values never parsed as markup."""

    def __init__(self, stream: TextIO | None = None, *, color: bool | None = None) -> None:
        stream = stream or sys.stdout
        # Logs (CI, files) get wide lines rather than rich's 80-column default, which truncates paths.
        width = None if stream.isatty() else int(os.environ.get("COLUMNS", "200"))
        self.console = Console(file=stream, highlight=False, soft_wrap=True, width=width,
                               no_color=color is False, force_terminal=color or None)

    def handle(self, event: Event) -> None:
        if isinstance(event, StepStarted):
            self.step_started(event.outcome, event.total)
        elif isinstance(event, StepFinished):
            self.step_finished(event.outcome, event.total)
        elif isinstance(event, RunStarted):
            self.run_started(event.manifest)
        elif isinstance(event, RunFinished):
            self.run_finished(event.result)
        elif isinstance(event, WaitingForLock):
            self.waiting_for_lock(event.db, event.holder)
        elif isinstance(event, Interrupted):
            self.interrupted(event.step, event.running)
        elif isinstance(event, PlanMade):
            self.plan_table(event.planned)
        elif isinstance(event, Notice):
            prefix = {Level.NOTE: "note: ", Level.WARNING: "warning: "}.get(event.level, "")
            self.say(prefix + event.text, NOTICE_STYLES[event.level])

    def say(self, text: str, style: str = "") -> None:
        self.console.print(Text(shown(text), style=style))

    def note(self, text: str) -> None:
        self.say(f"note: {text}", "cyan")

    def warn(self, text: str) -> None:
        self.say(f"warning: {text}", "yellow")

    def error(self, text: str) -> None:
        self.console.print(Text(shown(text), style="bold red"))

    def run_started(self, manifest: Manifest) -> None:
        runners = {row.runner for row in manifest.rows}
        databases = {row.db for row in manifest.rows}
        self.say(f"{manifest.source}: {len(manifest.rows)} scripts, {len(runners)} runner(s), "
                 f"{len(databases)} database(s)", "bold")
        for note in manifest.notes:
            self.note(note)
        for warning in manifest.warnings:
            self.warn(warning)

    def step_started(self, outcome: Outcome, total: int) -> None:
        row = outcome.row
        self.say(f"[{outcome.index}/{total}] start   {row.script_label}  on {row.runner.label}  "
                 f"-> {row.db.label}")

    def waiting_for_lock(self, db: DatabaseSpec, holder: Holder) -> None:
        self.say(f"waiting for the lock on {db.target_label}: held by {holder.describe()}", "yellow")

    def interrupted(self, step: InterruptStep, running: int) -> None:
        if step is InterruptStep.WAIT:
            text = (f"interrupted: starting nothing new; waiting for {running} running script(s) to finish. "
                    "Ctrl-C again to cancel them on the servers")
        elif step is InterruptStep.CANCEL:
            text = (f"cancelling {running} running script(s): their clients stop the statement on the server; "
                    "waiting for them to exit. Ctrl-C again to leave without waiting (they may go on running "
                    "and will be in doubt)")
        else:
            text = f"leaving {running} running script(s) behind: they may go on running and will be in doubt"
        self.say(text, "bold yellow")

    def step_finished(self, outcome: Outcome, total: int) -> None:
        if outcome.status is Status.SKIPPED:
            self.say(f"[{outcome.index}/{total}] skipped  {outcome.row.script_label}  ({outcome.reason})", "dim")
            return
        style = STYLES[outcome.status]
        code = "" if outcome.exit_code is None else f", exit {outcome.exit_code}"
        head = f"[{outcome.index}/{total}] {outcome.status.value:<8}{outcome.seconds:6.2f}s{code}"
        if outcome.status is not Status.APPLIED:
            head += f"  {outcome.reason}"
        self.say(head, style)
        for line in outcome.warnings[:MAX_SHOWN_LINES]:
            self.say(f"    warning: {_short(line)}", "yellow")
        for line in outcome.errors[:MAX_SHOWN_LINES]:
            self.say(f"    {_short(line)}", "red")
        hidden = max(0, len(outcome.warnings) - MAX_SHOWN_LINES) + max(0, len(outcome.errors) - MAX_SHOWN_LINES)
        if hidden:
            self.say(f"    ... {hidden} more lines", "dim")
        if outcome.status is Status.FAILED and not outcome.errors and outcome.stdout_tail:
            self.say("    last output lines:", "dim")
            for line in outcome.stdout_tail[-5:]:
                self.say(f"    | {_short(line)}", "dim")

    def plan_table(self, planned: list[PlannedRow]) -> None:
        table = Table(title="Plan", title_justify="left")
        for name in ("#", "script", "target", "state", "detail"):
            table.add_column(name, overflow="fold")
        for p in planned:
            style = PLAN_STYLES[p.state]
            table.add_row(str(p.index), shown(p.row.script_label), shown(p.row.db.target_label),
                          Text(p.state.value, style=style), shown(p.detail))
        self.console.print(table)

    def status_table(self, matrix: pd.DataFrame) -> None:
        table = Table(title="Status (latest entry per script and target, UTC)", title_justify="left")
        table.add_column("script", overflow="fold")
        for target in matrix.columns:
            table.add_column(shown(str(target)), overflow="fold")
        for script, row in matrix.iterrows():
            cells = [Text("-", style="dim") if not isinstance(v, str) else
                     Text(v, style="green" if v.startswith("success") else "bold red") for v in row]
            table.add_row(shown(str(script)), *cells)
        self.console.print(table)

    def environment_table(self, name: str, records: dict[str, dict[str, Any] | None]) -> None:
        table = Table(title=f"Environment {name} (state in Vault)", title_justify="left")
        for column in ("path", "status", "since", "last run", "result", "by"):
            table.add_column(column, overflow="fold")
        for path, record in records.items():
            if record is None:
                table.add_row(shown(path), Text("not registered", style="dim"), "", "", "", "")
                continue
            status = str(record.get("status", "?"))
            style = {"failed": "bold red", "updated": "green", "running": "green"}.get(status, "cyan")
            table.add_row(shown(path), Text(status, style=style), str(record.get("status_since", "")),
                          str(record.get("last_run_id", ""))[:8], shown(str(record.get("last_run_result", ""))),
                          shown(str(record.get("updated_by", ""))))
        self.console.print(table)

    def targets_table(self, result: RunResult) -> None:
        """With several databases: how far each one got."""
        by_target: dict[str, list[Outcome]] = {}
        for outcome in result.outcomes:
            by_target.setdefault(outcome.row.db.target_label, []).append(outcome)
        if len(by_target) < 2:
            return
        table = Table(title="Targets", title_justify="left")
        for name in ("target", "done", "failed", "not run", "got to"):
            table.add_column(name, overflow="fold")
        for target, outcomes in by_target.items():
            done = [o for o in outcomes if o.status in (Status.APPLIED, Status.SKIPPED)]
            bad = [o for o in outcomes if o.status not in (Status.APPLIED, Status.SKIPPED, Status.NOT_RUN)]
            waiting = sum(1 for o in outcomes if o.status is Status.NOT_RUN)
            if bad:
                where = Text(f"stopped at {bad[0].row.script_label} ({bad[0].status.value})", style="bold red")
            elif waiting:
                where = Text(f"not started after {done[-1].row.script_label}" if done else "not started",
                             style="yellow")
            else:
                where = Text("complete", style="green")
            table.add_row(shown(target), f"{len(done)}/{len(outcomes)}", str(len(bad)), str(waiting), where)
        self.console.print(table)

    def run_finished(self, result: RunResult) -> None:
        shown = result.outcomes
        title = "Summary"
        if len(shown) > SUMMARY_ROWS:  # each row's line is above; the Targets table says how far each got
            shown = [o for o in shown if o.status in PROBLEMS]
            title = f"Problems ({len(shown)} of {len(result.outcomes)} rows)"
        if shown:
            self._rows_table(title, shown)
        self.targets_table(result)
        parts = [f"{result.count(status)} {status.value}" for status in Status if result.count(status)]
        stopped = " after an interrupt" if result.interrupted else ""
        self.say(f"{', '.join(parts)} in {result.seconds:.2f}s{stopped} (exit {int(result.exit_code)})", "bold")

    def _rows_table(self, title: str, outcomes: list[Outcome]) -> None:
        table = Table(title=title, title_justify="left", show_lines=False)
        for name, justify in (("#", "right"), ("script", "left"), ("runner", "left"), ("database", "left"),
                              ("outcome", "left"), ("seconds", "right")):
            table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
        for outcome in outcomes:
            row = outcome.row
            seconds = f"{outcome.seconds:.2f}" if outcome.status is not Status.NOT_RUN else ""
            table.add_row(str(outcome.index), shown(row.script_label), shown(row.runner.label),
                          shown(row.db.label), Text(outcome.status.value, style=STYLES[outcome.status]), seconds)
        self.console.print(table)

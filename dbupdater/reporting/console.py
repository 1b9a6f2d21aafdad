"""Console output: the report a person reads, live on a terminal and as plain lines everywhere else.

On a terminal (and unless `-q`), a live area shows what runs now and how long is left (`live`), and finished
rows scroll above it. Elsewhere (CI logs, pipes, files) every row gives plain lines that name the script,
the database and the runner (`lines`), with no redraws, so a log reads top to bottom and tests can match it.
The end of a run is `summary`. Every string passes the redactor, and manifest values are never parsed as
rich markup.
"""

from __future__ import annotations

import os
import sys
import threading
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..events import (
    Approved,
    Event,
    Interrupted,
    Level,
    Notice,
    OutputLine,
    OutputLines,
    PlanMade,
    RunFinished,
    RunPlanned,
    RunStarted,
    StepFinished,
    StepNotice,
    StepStarted,
    WaitingForLock,
)
from ..model.outcome import InterruptStep, Outcome, RunResult
from ..model.secret import shown
from ..model.specs import DatabaseSpec, Manifest, targets
from ..plan import PlannedRow, RowState
from . import lines
from .estimates import Estimates, duration
from .live import LiveView
from .summary import print_summary

if TYPE_CHECKING:
    import pandas as pd

    from ..ledger import Holder

STYLES = lines.STYLES
PROBLEMS = lines.PROBLEMS
PLAN_STYLES = {
    RowState.PENDING: "cyan",
    RowState.CHANGED: "cyan",
    RowState.APPLIED: "dim green",
    RowState.DRIFTED: "bold red",
    RowState.IN_DOUBT: "bold red",
    RowState.NOTHING: "dim",
}
NOTICE_STYLES = {Level.INFO: "", Level.SUCCESS: "green", Level.NOTE: "cyan", Level.WARNING: "yellow",
                 Level.ERROR: "bold red", Level.DETAIL: "dim"}


class Verbosity(IntEnum):
    QUIET = 0  # -q: problems (failed rows, warnings, errors, interrupts, lock waits) and the summary
    NORMAL = 1
    VERBOSE = 2  # -v: and every line of client output, prefixed by its database


def is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


def _size(variable: str, default: int) -> int:
    """COLUMNS or LINES as a positive number (rich's own reading of them ignores anything else)."""
    value = os.environ.get(variable, "")
    return int(value) if value.isascii() and value.isdigit() and int(value) > 0 else default


class ConsoleReporter:
    """The console report: one listener of the run's events. Events arrive from every worker thread and are
    handled one at a time, so a row's lines are never cut by another row's."""

    def __init__(self, stream: TextIO | None = None, *, color: bool | None = None,
                 verbosity: Verbosity = Verbosity.NORMAL, live: bool | None = None) -> None:
        """color None: as the terminal and NO_COLOR say; live None: on a terminal, unless quiet."""
        stream = stream or sys.stdout
        terminal = is_terminal(stream)
        # Logs (CI, files) get wide lines rather than rich's 80-column default, which truncates paths.
        width = None if terminal else _size("COLUMNS", 200)
        # Its height too, as rich would take it: with both fixed, rich no longer asks every standard stream for
        # a terminal size and reads the environment on each line it prints (a quarter of its cost per line).
        height = None if terminal else _size("LINES", 25)
        # `--color always|never` wins over NO_COLOR; auto leaves NO_COLOR (and FORCE_COLOR) to rich.
        self.console = Console(file=stream, highlight=False, soft_wrap=True, width=width, height=height,
                               no_color=None if color is None else not color, force_terminal=color or None)
        self.verbosity = verbosity
        # Decided from the stream itself: `--color always` into a pipe colours lines but never animates them.
        # TERM=dumb cannot move its cursor: plain lines there too.
        self.live_wanted = ((terminal and not self.console.is_dumb_terminal and verbosity > Verbosity.QUIET)
                            if live is None else live)
        self.view: LiveView | None = None
        self.estimates: Estimates | None = None
        self.report_dir: Path | None = None
        self.caps: dict[str, str] = {}
        self._lock = threading.RLock()

    # --- events -------------------------------------------------------------------------------------------

    def handle(self, event: Event) -> None:
        if self.verbosity < Verbosity.VERBOSE and (type(event) is OutputLines or type(event) is OutputLine):
            return  # every line a client prints comes here: shown only with -v
        with self._lock:
            try:
                self._dispatch(event)
            except BaseException:
                self.close()  # whatever failed, the terminal is left as it was found
                raise

    def _dispatch(self, event: Event) -> None:
        if isinstance(event, StepStarted):
            self.step_started(event.outcome, event.total)
        elif isinstance(event, OutputLine):
            if self.verbosity >= Verbosity.VERBOSE:
                self.console.print(lines.output(event.outcome, event.stream, event.line))
        elif isinstance(event, OutputLines):
            if self.verbosity >= Verbosity.VERBOSE:
                for line in event.lines:
                    self.console.print(lines.output(event.outcome, event.stream, line))
        elif isinstance(event, StepNotice):
            self.step_notice(event)
        elif isinstance(event, StepFinished):
            self.step_finished(event.outcome, event.total)
        elif isinstance(event, RunStarted):
            self.report_dir = event.report_dir
            self.run_started(event.manifest)
        elif isinstance(event, RunPlanned):
            if event.preview:
                self.plan_table(event.planned)
            else:
                self.run_planned(event)
        elif isinstance(event, RunFinished):
            if event.executed:
                self.run_finished(event.result, event.exit_code)
            else:
                self.close()
        elif isinstance(event, WaitingForLock):
            self.waiting_for_lock(event.db, event.holder)
        elif isinstance(event, Interrupted):
            self.interrupted(event.step, event.running)
        elif isinstance(event, PlanMade):
            self.plan_table(event.planned)
        elif isinstance(event, Notice):
            self.notice(event)
        elif isinstance(event, Approved):
            approval = event.approval
            self.say(f"approved: plan {approval.digest} by {approval.by}@{approval.host} at {approval.at} "
                     f"({approval.method}); recorded in every target's history", "bold green")

    def ask(self, shown_first: str, question: str) -> str | None:
        """The operator's answer on the terminal (a pause step): the live area steps aside while the message and
        the question are shown, and other rows' lines wait (events are handled one at a time); None at the end
        of input."""
        with self._lock:
            view = self.view
            if view is not None:
                view.stop()
            try:
                self.say(shown_first, "bold yellow")
                return self.console.input(Text(shown(question), style="bold"))
            except EOFError:
                return None
            finally:
                if view is not None:
                    view.start()

    def close(self) -> None:
        """End the live area, if any (idempotent): at the end of a run, and on the way out of any error."""
        with self._lock:
            view, self.view = self.view, None
        if view is not None:
            view.stop()

    # --- lines --------------------------------------------------------------------------------------------

    def say(self, text: str, style: str = "") -> None:
        self.console.print(Text(shown(text), style=style))

    def notice(self, event: Notice) -> None:
        if self.verbosity > Verbosity.QUIET or event.level in (Level.WARNING, Level.ERROR):
            prefix = {Level.NOTE: "note: ", Level.WARNING: "warning: "}.get(event.level, "")
            self.say(prefix + event.text, NOTICE_STYLES[event.level])

    def note(self, text: str) -> None:
        if self.verbosity > Verbosity.QUIET:
            self.say(f"note: {text}", "cyan")

    def warn(self, text: str) -> None:
        self.say(f"warning: {text}", "yellow")

    def error(self, text: str) -> None:
        self.console.print(Text(shown(text), style="bold red"))

    def run_started(self, manifest: Manifest) -> None:
        if self.verbosity > Verbosity.QUIET:
            runners = {row.runner for row in manifest.rows}
            databases = {row.db for row in manifest.rows}
            self.say(f"{manifest.source}: {len(manifest.rows)} scripts, {len(runners)} runner(s), "
                     f"{len(databases)} database(s)", "bold")
        for note in manifest.notes:
            self.note(note)
        for warning in manifest.warnings:
            self.warn(warning)

    def run_planned(self, event: RunPlanned) -> None:
        planned = event.planned
        self.caps = dict(event.caps)
        self.estimates = Estimates(planned, event.parallel, event.per_runner)
        runs = sum(1 for p in planned if p.state.runs)
        blocked = sum(1 for p in planned if p.state.blocks)
        if self.verbosity > Verbosity.QUIET:
            self.say(plan_line(planned, event.parallel, event.per_runner, self.estimates), "bold")
            for name, said in self.caps.items():
                self.say(f"  cap: {name}: {said}", "dim")
        if self.live_wanted and runs and not blocked and self.view is None:
            self.view = LiveView(self.console, self.estimates, len(planned), places(planned))
            self.view.start()

    def step_started(self, outcome: Outcome, total: int) -> None:
        if self.estimates is not None:
            self.estimates.start(outcome.index)
        if self.view is not None:
            self.view.step_started(outcome)
        elif self.verbosity > Verbosity.QUIET:
            self.console.print(lines.started(outcome, total))

    def step_notice(self, event: StepNotice) -> None:
        """A step's progress: on its line of the live view when it is a state the next replaces, else a line
        (above the live area, which it scrolls with)."""
        if self.verbosity <= Verbosity.QUIET:
            return
        if self.view is not None and event.ongoing:
            self.view.step_notice(event.outcome, event.text)
            return
        self.console.print(lines.notice(event.outcome, event.text))

    def step_finished(self, outcome: Outcome, total: int) -> None:
        if self.estimates is not None:
            self.estimates.finish(outcome.index, outcome.status, outcome.seconds)
        if self.view is not None:
            self.view.step_finished(outcome)
        if self.verbosity > Verbosity.QUIET or outcome.status in PROBLEMS:
            for line in lines.finished(outcome, total):
                self.console.print(line)

    def waiting_for_lock(self, db: DatabaseSpec, holder: Holder) -> None:
        # Said even with -q: without it a quiet run that waits looks like one that hangs.
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

    def run_finished(self, result: RunResult, exit_code: int | None = None) -> None:
        self.close()
        print_summary(self.console, result, report_dir=self.report_dir,
                      only_problems=self.verbosity <= Verbosity.QUIET, caps=self.caps, exit_code=exit_code)

    # --- tables (plan, status, environment) ---------------------------------------------------------------

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


def places(planned: list[PlannedRow]) -> dict[int, tuple[int, int]]:
    """Each row's place among its database's rows: (n, of)."""
    place: dict[int, tuple[int, int]] = {}
    for positions in targets([p.row for p in planned]).values():
        for n, position in enumerate(positions, start=1):
            place[planned[position].index] = (n, len(positions))
    return place


def plan_line(planned: list[PlannedRow], parallel: int, per_runner: int, estimates: Estimates) -> str:
    """What the run is about to do, how wide, and how long it should take."""
    runs = [p for p in planned if p.state.runs]
    applied = sum(1 for p in planned if p.state is RowState.APPLIED)
    blocked = sum(1 for p in planned if p.state.blocks)
    databases = len({p.row.db.key for p in planned})
    text = f"plan: {len(runs)} to run, {applied} already applied"
    if blocked:
        text += f", {blocked} refused (drifted or in doubt)"
    text += f", on {databases} database(s); "
    text += ("one row at a time, in manifest order (--parallel 1)" if parallel <= 1 else
             f"up to {parallel} databases at once, {per_runner} per runner")
    if runs and not blocked:
        unknown = sum(1 for p in runs if estimates.estimate(p) is None)
        left = estimates.left().seconds
        text += (f"; estimated time: about {duration(left)}" if left is not None else
                 f"; estimated time unknown ({unknown} of {len(runs)} scripts never ran on any of these databases)")
    return text


"""A step's progress (`StepContext.notice`: a copy's tables as they are done, a follower's lag) reaches the reports
at default verbosity, unlike client output: the Run sends it as StepNotice events of the row, the console prints
it (plain lines, or above the live area; a state that the next replaces goes on the row's line of the live view),
`-q` leaves it out, and the run document keeps it under the row's `progress`, valid against the schema."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from dbupdater.events import StepNotice
from dbupdater.execution.kinds import Histories, StepContext, every_row
from dbupdater.execution.options import RunOptions
from dbupdater.execution.run import Invocation, Run
from dbupdater.model.outcome import Outcome, Status
from dbupdater.model.specs import DatabaseSpec, ManifestRow, RunnerSpec
from dbupdater.plan import PlannedRow, RowState
from dbupdater.reporting.console import ConsoleReporter, Verbosity
from dbupdater.reporting.document import PROGRESS_LINES, RunDocument
from dbupdater.reporting.estimates import Estimates
from dbupdater.reporting.live import LiveView
from dbupdater.reporting.validation import check

from .fakes import Harness, RecordingReporter, Repo


class Talks:
    """A kind whose rows say what they did as they go, then where they stand (twice: the second replaces)."""

    name = "talk"
    history = False

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        return [PlannedRow(index, row, "-", RowState.PENDING, "talk", step=self.name) for index, row in rows]

    def describe(self, planned: PlannedRow) -> str:
        return "talk"

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        context.notice(f"table a of {planned.row.db.database}: 10 rows, checksum equal")
        context.notice("lag 5 s", ongoing=True)
        context.notice("lag 0 s", ongoing=True)
        context.on_line("stdout", "client output")
        return Outcome(planned.index, planned.row, Status.APPLIED, "talked", step=self.name)


class Both:
    def __init__(self, *listeners: Any) -> None:
        self.listeners = listeners

    def handle(self, event: Any) -> None:
        for listener in self.listeners:
            listener.handle(event)


def test_notices_go_from_the_step_to_the_console_and_the_run_document(harness: Harness, repo: Repo,
                                                                      tmp_path: Path) -> None:
    repo.row("a", repo.script("one.sql", "ok"))
    reporter, out, documents = RecordingReporter(), io.StringIO(), []  # type: ignore[var-annotated]
    console = ConsoleReporter(out, color=False, live=False)
    Run(repo.load(), Invocation("talk", ("talk",), tmp_path / "run"), RunOptions(),
        Both(reporter, console, RunDocument([documents.append])), every_row(Talks())).execute()
    notices = reporter.of(StepNotice)
    assert [(n.text, n.ongoing, n.outcome.index) for n in notices] == [
        ("table a of a: 10 rows, checksum equal", False, 1), ("lag 5 s", True, 1), ("lag 0 s", True, 1)]
    text = out.getvalue()
    assert ": table a of a: 10 rows, checksum equal\n" in text and ": lag 0 s\n" in text
    assert "client output" not in text  # only with -v
    (document,) = documents
    check(json.loads(json.dumps(document)))
    assert document["results"][0]["progress"] == {
        "lines": ["table a of a: 10 rows, checksum equal", "lag 0 s"], "omitted_lines": 0}


def row() -> ManifestRow:
    return ManifestRow(2, RunnerSpec("ssh", "runner1", 22, "deploy"), DatabaseSpec("mysql", "db1", 3306, "app", "shop"),
                       Path("1.sql"), "copy from x", "copy from x")


def test_quiet_leaves_notices_out_and_plain_lines_name_the_database() -> None:
    outcome = Outcome(1, row())
    for verbosity, shown in ((Verbosity.QUIET, False), (Verbosity.NORMAL, True), (Verbosity.VERBOSE, True)):
        out = io.StringIO()
        reporter = ConsoleReporter(out, color=False, verbosity=verbosity, live=False)
        reporter.handle(StepNotice(outcome, "film: 1,000 rows"))
        reporter.handle(StepNotice(outcome, "lag 3 s", ongoing=True))
        expected = "  mysql://db1:3306/shop: film: 1,000 rows\n  mysql://db1:3306/shop: lag 3 s\n"
        assert (out.getvalue() == expected) is shown, out.getvalue()


def test_the_live_view_shows_the_latest_state_on_the_rows_line() -> None:
    outcome = Outcome(1, row())
    planned = [PlannedRow(1, outcome.row, "-", RowState.PENDING, "copy")]
    console = Console(file=io.StringIO(), width=200, color_system=None)
    view = LiveView(console, Estimates(planned), 1, {1: (1, 1)})
    view.step_started(outcome)
    view.step_notice(outcome, "following: lag 5 s")
    view.step_notice(outcome, "following: lag 0 s")
    console.print(view.render())
    drawn = console.file.getvalue()  # type: ignore[attr-defined]
    assert "following: lag 0 s" in drawn and "lag 5 s" not in drawn
    view.step_finished(outcome)
    view.step_notice(outcome, "too late")  # a row that ended has no line: nothing breaks


def test_the_document_keeps_the_last_lines_and_only_the_latest_of_a_running_state() -> None:
    document = RunDocument()
    outcome = Outcome(1, row())
    for n in range(PROGRESS_LINES + 5):
        document.handle(StepNotice(outcome, f"table {n}"))
        document.handle(StepNotice(outcome, f"lag {n}", ongoing=True))
        document.handle(StepNotice(outcome, f"lag {n} again", ongoing=True))
    kept = document.progress[1].data()
    assert kept["lines"][-2:] == [f"table {PROGRESS_LINES + 4}", f"lag {PROGRESS_LINES + 4} again"]
    assert len(kept["lines"]) == PROGRESS_LINES and kept["omitted_lines"] == 2 * (PROGRESS_LINES + 5) - PROGRESS_LINES

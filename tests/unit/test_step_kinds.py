"""A kind of step defined here, in the test alone, run through the Run on the fake transport: adding a kind
changes nothing in the core, and the Run still gives it the report, the events and the exit code.

The toy kind counts the lines of each row's script file on the runner (`wc -l` through the runner's shell,
a real command of the fake transport's runner), and fails a row whose script has more lines than it allows.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from dbupdater.events import (
    Notice,
    PlanMade,
    RunFinished,
    RunPlanned,
    RunStarted,
    StepFinished,
    StepStarted,
)
from dbupdater.execution.kinds import Histories, StepContext, every_row
from dbupdater.execution.options import RunOptions
from dbupdater.execution.run import Invocation, Run
from dbupdater.model.errors import ExitCode
from dbupdater.model.outcome import Outcome, Status
from dbupdater.model.specs import ManifestRow
from dbupdater.plan import PlannedRow, RowState
from dbupdater.reporting.document import RunDocument
from dbupdater.reporting.validation import check
from dbupdater.steps import ScriptStep

from .fakes import Harness, RecordingReporter, Repo


class CountLines:
    """A toy kind of step: how many lines a row's script has, judged against a limit; no history."""

    name = "count-lines"
    history = False

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.prepared: list[int] = []

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        return [PlannedRow(index, row, "-", RowState.PENDING, f"at most {self.limit} lines", step=self.name)
                for index, row in rows]

    def describe(self, planned: PlannedRow) -> str:
        return f"count the lines of {planned.row.script_label}"

    def prepare(self, planned: Sequence[PlannedRow], context: StepContext) -> None:
        self.prepared = [p.index for p in planned]

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        session = context.deployment.session(planned.row.runner)
        lines = len(planned.row.script.read_text().splitlines())
        context.on_line("stdout", f"{lines} lines on {session.transport.label}")
        if lines > self.limit:
            return Outcome(planned.index, planned.row, Status.FAILED, f"{lines} lines, more than {self.limit}",
                           exit_code=1, errors=(f"too long: {lines}",), step=self.name)
        return Outcome(planned.index, planned.row, Status.APPLIED, f"{lines} lines", exit_code=0, step=self.name)


def toy_run(repo: Repo, kind: CountLines, reporter: RecordingReporter, folder: Path,
            **options: object) -> tuple[int, dict[str, Any]]:
    documents: list[dict[str, Any]] = []
    listeners = Fanout(reporter, RunDocument([documents.append]))
    code = Run(repo.load(), Invocation("count", ("count", "-f", "manifest.csv"), folder), RunOptions(**options),  # type: ignore[arg-type]
               listeners, every_row(kind)).execute()
    (document,) = documents
    return code, document


class Fanout:
    def __init__(self, *listeners: object) -> None:
        self.listeners = listeners

    def handle(self, event: object) -> None:
        for listener in self.listeners:
            listener.handle(event)  # type: ignore[attr-defined]


@pytest.mark.parametrize("parallel", [1, 4])
def test_a_kind_defined_in_a_test_runs_through_the_run(harness: Harness, repo: Repo, tmp_path: Path,
                                                       parallel: int) -> None:
    repo.row("a", repo.script("short.sql", "ok"))
    repo.row("a", repo.script("long.sql", "ok", "ok", "ok", "ok"))
    repo.row("a", repo.script("after.sql", "ok"))
    repo.row("b", repo.script("other.sql", "ok", "ok"))
    kind = CountLines(limit=3)
    reporter = RecordingReporter()
    code, document = toy_run(repo, kind, reporter, tmp_path / "run", parallel=parallel, keep_going=True)

    # The exit code: a failed step is exit 1, as for a script.
    assert code == int(ExitCode.SCRIPT_FAILED)
    # The events, in the Run's order, each outcome the value of its moment.
    (started,) = reporter.of(RunStarted)
    assert started.command == "count" and started.history is False
    (planned,) = reporter.of(RunPlanned)
    assert [p.step for p in planned.planned] == ["count-lines"] * 4
    assert planned.planned[0].action == "count the lines of short.sql"
    assert kind.prepared == [1, 2, 3, 4]
    begun = reporter.of(StepStarted)
    assert all(event.outcome.status is Status.NOT_RUN for event in begun)
    finished = {event.outcome.row.script_label: event.outcome for event in reporter.of(StepFinished)}
    assert finished["short.sql"].status is Status.APPLIED
    assert finished["long.sql"].status is Status.FAILED and finished["long.sql"].errors == ("too long: 4",)
    # --keep-going lets the other target go on; in strict order (--parallel 1) a failure stops everything.
    other = Status.APPLIED if parallel > 1 else Status.NOT_RUN
    assert "after.sql" not in finished  # the failed target stops
    (end,) = reporter.of(RunFinished)
    assert end.executed and [o.status for o in end.result.outcomes] == [
        Status.APPLIED, Status.FAILED, Status.NOT_RUN, other]
    assert not reporter.of(PlanMade) and not [n for n in reporter.of(Notice) if n.level.value == "error"]
    # The report: the run document says the same, valid against its schema.
    check(json.loads(json.dumps(document)))  # raises where it breaks the schema
    assert document["run"]["command"] == "count" and document["run"]["exit_code"] == 1
    results = document["results"]
    assert [(r["script"], r["step"], r["status"]) for r in results] == [
        ("short.sql", "count-lines", "applied"), ("long.sql", "count-lines", "failed"),
        ("after.sql", "count-lines", "not run"), ("other.sql", "count-lines", other.value)]
    assert document["plan"]["rows"][1]["action"] == "count the lines of long.sql"
    excerpt = results[0]["output"]["lines"]
    assert excerpt == [{"stream": "stdout", "text": "1 lines on deploy@runner1"}]
    # Nothing touched any history: the kind keeps none, so no ledger was opened.
    assert harness.history("a") == [] and harness.history("b") == []


def test_kinds_mix_in_one_run(harness: Harness, repo: Repo, tmp_path: Path) -> None:
    """Each row has its own kind: the script kind keeps the history for its rows, the toy kind none."""
    repo.row("a", repo.script("001.sql", "ok"))
    repo.row("a", repo.script("check.sql", "ok"))
    toy, script = CountLines(limit=10), ScriptStep()
    reporter = RecordingReporter()
    run = Run(repo.load(), Invocation("mixed"), RunOptions(), reporter,
              lambda row: toy if row.script_label == "check.sql" else script)
    assert run.execute() == int(ExitCode.OK)
    (end,) = reporter.of(RunFinished)
    assert [(o.step, o.status) for o in end.result.outcomes] == [("script", Status.APPLIED),
                                                                   ("count-lines", Status.APPLIED)]
    assert harness.history("a") == [("001.sql", "success")]

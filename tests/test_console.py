"""The console where it is not a terminal (CI logs, pipes): plain lines that name script, database and runner,
`-q` (problems and the summary), `-v` (client output, each line prefixed by its database, masked and escaped),
the estimates behind the time left, and the end of a run (slowest scripts, run folder, caps).

The first tests need no server (events made by hand, or the real CLI on the stub engine of tests/unit); the
others run the real tool against the rig's databases.
"""

from __future__ import annotations

import io
import re
import sys
import threading
import time
from pathlib import Path

import pytest

from dbupdater.cli.common import guarded, reporter_for
from dbupdater.events import (
    Interrupted,
    Level,
    Notice,
    OutputLine,
    RunFinished,
    RunPlanned,
    RunStarted,
    StepFinished,
    StepStarted,
)
from dbupdater.ledger import Entry
from dbupdater.manifest import parse
from dbupdater.model.errors import UnreachableError
from dbupdater.model.outcome import InterruptStep, Outcome, RunResult, Status
from dbupdater.model.secret import Secret
from dbupdater.plan import PlannedRow, RowState
from dbupdater.reporting.console import ConsoleReporter, Verbosity
from dbupdater.reporting.estimates import Estimates

from .conftest import Target, Workspace

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
HEADER = ["sql_runner_host", "sql_runner_userid", "sql_runner_password", "database_type", "database_host",
          "database_userid", "database_password", "port", "database", "sql_script_to_run"]


def manifest_of(tmp_path: Path, rows: list[tuple[str, str, str]]):  # type: ignore[no-untyped-def]
    """(runner, database, script) rows on MySQL, scripts made as needed; nothing is contacted."""
    cells = []
    for line, (runner, database, script) in enumerate(rows, start=2):
        (tmp_path / script).write_text("SELECT 1;\n")
        cells.append((line, [runner, "u", "", "MySQL", "db.invalid", "u", "", "3306", database, script]))
    return parse("m.csv", tmp_path, HEADER, cells)


def entry(script: str, seconds: int, status: str = "success") -> Entry:
    finished = f"2025-01-01 10:{seconds // 60:02d}:{seconds % 60:02d}"
    return Entry(1, script, "c", 1, status, "2025-01-01 10:00:00", finished, "run", "r", "u", None)


def planned_of(manifest, entries: dict[tuple[str, str], Entry]) -> list[PlannedRow]:  # type: ignore[no-untyped-def]
    """Rows with an entry are applied (their history), the others pending."""
    out = []
    for index, row in enumerate(manifest.rows, start=1):
        found = entries.get((row.db.database, row.script_label))
        state = RowState.APPLIED if found is not None and found.status == "success" else RowState.PENDING
        out.append(PlannedRow(index, row, "c", state, "", found))
    return out


# --- estimates ----------------------------------------------------------------------------------------------


def test_a_pending_script_is_expected_to_take_the_median_of_its_durations_elsewhere(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, [("r1", db, "a.sql") for db in ("d1", "d2", "d3", "d4")])
    planned = planned_of(manifest, {("d1", "a.sql"): entry("a.sql", 10), ("d2", "a.sql"): entry("a.sql", 30),
                                    ("d3", "a.sql"): entry("a.sql", 20)})
    estimates = Estimates(planned, parallel=8, per_runner=8)
    assert estimates.estimate(planned[3]) == 20  # the median of 10, 30, 20
    assert estimates.left().seconds == 20
    assert str(estimates.left()) == "about 20s left"


def test_a_failed_attempt_is_no_duration_and_a_script_never_run_is_unknown(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, [("r1", "d1", "a.sql"), ("r1", "d2", "a.sql"), ("r1", "d2", "b.sql")])
    planned = planned_of(manifest, {("d1", "a.sql"): entry("a.sql", 40, status="failed")})
    estimates = Estimates(planned, parallel=8, per_runner=8)
    assert estimates.estimate(planned[0]) is None
    assert estimates.left().seconds is None and str(estimates.left()) == "time left unknown"
    # Once something ran in this run, scripts known nowhere get the median of what ran so far.
    estimates.start(1, at=0.0)
    estimates.finish(1, Status.APPLIED, 6.0)
    assert estimates.estimate(planned[2]) == 6.0
    assert estimates.left(now=0.0).seconds == 12.0  # d2 runs a.sql (6 s, as on d1) then b.sql (6 s)


def test_time_left_respects_parallelism_and_the_per_runner_cap(tmp_path: Path) -> None:
    rows = [("r1", f"d{n}", "a.sql") for n in range(1, 5)] + [("r1", f"e{n}", "a.sql") for n in range(1, 5)]
    manifest = manifest_of(tmp_path, rows)
    known = {(f"d{n}", "a.sql"): entry("a.sql", 10) for n in range(1, 5)}
    planned = planned_of(manifest, known)  # d1..d4 applied (10 s each); e1..e4 pending
    assert Estimates(planned, parallel=8, per_runner=8).left().seconds == 10  # all four at once
    assert Estimates(planned, parallel=2, per_runner=8).left().seconds == 20  # two at a time
    assert Estimates(planned, parallel=8, per_runner=1).left().seconds == 40  # one runner, one at a time
    assert Estimates(planned, parallel=1, per_runner=1).left().seconds == 40  # strictly in order
    running = Estimates(planned, parallel=8, per_runner=8)
    for index in (5, 6, 7, 8):
        running.start(index, at=100.0)
    assert running.left(now=104.0).seconds == 6
    late = running.left(now=115.0)
    assert late.seconds == 0 and late.overdue == 4 and "4 running longer than before" in str(late)


# --- lines, -q, -v (events made by hand) ---------------------------------------------------------------------


def events_of_a_run(tmp_path: Path) -> tuple[list[object], list[Outcome]]:
    manifest = manifest_of(tmp_path, [("r1", "shop", "001_init.sql"), ("r1", "shop", "002_index.sql"),
                                      ("r2", "crm", "001_init.sql")])
    planned = planned_of(manifest, {("shop", "001_init.sql"): entry("001_init.sql", 3)})
    first, second, third = planned
    outcomes = [Outcome(first.index, first.row, Status.SKIPPED, "already applied: success at ..."),
                Outcome(second.index, second.row, Status.APPLIED, seconds=2.034, exit_code=0),
                Outcome(third.index, third.row, Status.FAILED, "mysql exited with 1", exit_code=1, seconds=0.5,
                        errors=("ERROR 1064 (42000) at line 1: syntax",))]
    events: list[object] = [RunStarted(manifest, report_dir=Path("/var/runs/2025-01-01-abc")),
                            RunPlanned(planned, 8, 4, {"runner r1": "1 database"}),
                            StepFinished(outcomes[0], 3), StepStarted(outcomes[1], 3),
                            OutputLine(outcomes[1], "stdout", "hello \x1b[31mred"), StepFinished(outcomes[1], 3),
                            StepStarted(outcomes[2], 3), StepFinished(outcomes[2], 3),
                            Notice("a note", Level.NOTE), Notice("careful", Level.WARNING),
                            Interrupted(InterruptStep.WAIT, 1),
                            RunFinished(RunResult(outcomes, 3.0))]
    return events, outcomes


def console_text(events: list[object], verbosity: Verbosity = Verbosity.NORMAL) -> str:
    out = io.StringIO()
    reporter = ConsoleReporter(out, color=False, verbosity=verbosity)
    for event in events:
        reporter.handle(event)  # type: ignore[arg-type]
    return out.getvalue()


def test_each_line_names_its_script_database_and_runner(tmp_path: Path) -> None:
    events, _ = events_of_a_run(tmp_path)
    text = console_text(events)
    assert "[2/3] start    002_index.sql on mysql://db.invalid:3306/shop via u@r1\n" in text
    assert "[2/3] applied  002_index.sql on mysql://db.invalid:3306/shop via u@r1  2.03s\n" in text
    assert "[1/3] skipped  001_init.sql on mysql://db.invalid:3306/shop via u@r1  (already applied" in text
    assert "[3/3] failed   001_init.sql on mysql://db.invalid:3306/crm via u@r2  0.50s, exit 1  mysql exited" in text
    assert "    ERROR 1064 (42000) at line 1: syntax" in text
    assert "plan: 2 to run, 1 already applied, on 2 database(s); up to 8 databases at once, 4 per runner" in text
    assert "cap: runner r1: 1 database" in text
    assert "run folder: /var/runs/2025-01-01-abc" in text
    slowest = text[text.index("Slowest 2"):]
    assert slowest.index("002_index.sql") < slowest.index("001_init.sql")  # 2.03 s before 0.50 s
    assert "hello" not in text  # client output only with -v
    assert "note: a note" in text and "warning: careful" in text
    assert not ANSI.search(text), "no escape sequences where there is no terminal"


def test_quiet_keeps_problems_and_the_summary(tmp_path: Path) -> None:
    events, _ = events_of_a_run(tmp_path)
    text = console_text(events, Verbosity.QUIET)
    assert "] start" not in text and "[2/3]" not in text and "skipped  001" not in text and "plan:" not in text
    assert "note: a note" not in text
    assert "[3/3] failed   001_init.sql on mysql://db.invalid:3306/crm" in text and "ERROR 1064" in text
    assert "warning: careful" in text and "interrupted: starting nothing new" in text
    assert "Problems (1 of 3 rows)" in text and "1 applied, 1 skipped, 1 failed in 3.00s" in text


def test_verbose_streams_client_output_prefixed_by_its_database_masked_and_escaped(tmp_path: Path) -> None:
    events, outcomes = events_of_a_run(tmp_path)
    Secret("s3cr3t-value-for-the-console")
    events.insert(5, OutputLine(outcomes[1], "stderr", "echo s3cr3t-value-for-the-console"))
    text = console_text(events, Verbosity.VERBOSE)
    assert "  mysql://db.invalid:3306/shop | hello \\x1b[31mred\n" in text
    assert "  mysql://db.invalid:3306/shop stderr | echo ***\n" in text
    assert "s3cr3t" not in text and "\x1b" not in text


def test_events_from_many_threads_keep_every_line_whole(tmp_path: Path) -> None:
    manifest = manifest_of(tmp_path, [("r1", f"db{n}", "a.sql") for n in range(40)])
    planned = planned_of(manifest, {})
    out = io.StringIO()
    reporter = ConsoleReporter(out, color=False, verbosity=Verbosity.VERBOSE)
    reporter.handle(RunPlanned(planned, 8, 8))

    def work(p: PlannedRow) -> None:
        outcome = Outcome(p.index, p.row, Status.APPLIED, seconds=0.1)
        reporter.handle(StepStarted(outcome, 40))
        for n in range(50):
            reporter.handle(OutputLine(outcome, "stdout", f"line {n} of {p.row.db.database}"))
        reporter.handle(StepFinished(outcome, 40))

    threads = [threading.Thread(target=work, args=(p,)) for p in planned]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    lines = out.getvalue().splitlines()
    for n in range(40):
        assert sum(1 for line in lines if line.startswith(f"  mysql://db.invalid:3306/db{n} | line ")) == 50
        assert f"[{n + 1}/40] applied  a.sql on mysql://db.invalid:3306/db{n} via u@r1  0.10s" in lines


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_live_area_ends_on_an_error_before_the_error_is_printed(tmp_path: Path, monkeypatch, capsys) -> None:
    """A run that fails half-way (here: after its plan) leaves the cursor visible and the live thread gone."""
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stdout", terminal)
    manifest = manifest_of(tmp_path, [("r1", "shop", "a.sql")])
    made: list[ConsoleReporter] = []

    def body() -> int:
        import argparse

        reporter = reporter_for(argparse.Namespace(color="auto", verbose=0, quiet=False))
        made.append(reporter)
        reporter.handle(RunPlanned(planned_of(manifest, {}), 8, 8))
        assert reporter.view is not None and reporter.view.live.is_started
        raise UnreachableError("the runner went away")

    assert guarded(body) == 3
    view_gone = made[0].view is None
    monkeypatch.undo()
    text = terminal.getvalue()
    assert view_gone
    assert "\x1b[?25l" in text and text.rindex("\x1b[?25h") > text.rindex("\x1b[?25l"), "cursor left hidden"
    assert "error: the runner went away" in capsys.readouterr().err
    deadline = time.monotonic() + 2
    while [t for t in threading.enumerate() if type(t).__name__ == "_RefreshThread"]:
        assert time.monotonic() < deadline, "the live area's refresh thread still runs"
        time.sleep(0.05)


def test_color_follows_no_color_unless_told(monkeypatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    assert ConsoleReporter(FakeTerminal()).console.no_color
    assert not ConsoleReporter(FakeTerminal(), color=True).console.no_color  # --color always wins
    monkeypatch.delenv("NO_COLOR")
    assert not ConsoleReporter(FakeTerminal()).console.no_color
    assert ConsoleReporter(FakeTerminal(), color=False).console.no_color
    piped = ConsoleReporter(io.StringIO(), color=True)
    assert piped.console.is_terminal and not piped.live_wanted  # colour into a pipe, but never a live area


def test_live_area_only_on_a_terminal_that_can_move_its_cursor(monkeypatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    assert ConsoleReporter(FakeTerminal()).live_wanted
    assert not ConsoleReporter(FakeTerminal(), verbosity=Verbosity.QUIET).live_wanted
    assert ConsoleReporter(FakeTerminal(), verbosity=Verbosity.VERBOSE).live_wanted
    monkeypatch.setenv("TERM", "dumb")
    assert not ConsoleReporter(FakeTerminal()).live_wanted


# --- the real tool against the rig ---------------------------------------------------------------------------


@pytest.fixture
def second(rig, target: Target):  # type: ignore[no-untyped-def]
    """A second fresh database on the same server as `target`."""
    other = target.sibling(f"{target.name}_b")
    yield other
    other.drop()


def label(target: Target) -> str:
    return f"{target.engine}://{target.host}:{target.port}/{target.name}"


def test_plain_lines_of_a_real_run(workspace: Workspace, target: Target, second: Target, info, run_tool) -> None:
    for runner, db in ((1, target), (2, second)):
        workspace.row(db, workspace.script("001_create.sql", "CREATE TABLE t1 (id INT);\n"), runner=runner)
        workspace.row(db, workspace.script("002_slow.sql", db.sleep(0.3) + "\n"), runner=runner)
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 0, result.text
    runner1 = f"{info.runner_user}@{info.runners[0].host}"
    runner2 = f"{info.runner_user}@{info.runners[1].host}"
    for n, db, script, runner in ((1, target, "001_create.sql", runner1), (2, target, "002_slow.sql", runner1),
                                  (3, second, "001_create.sql", runner2), (4, second, "002_slow.sql", runner2)):
        assert f"[{n}/4] start    {script} on {label(db)} via {runner}\n" in result.out
        assert re.search(rf"^\[{n}/4\] applied  {re.escape(script)} on {re.escape(label(db))} via "
                         rf"{re.escape(runner)}  \d+\.\d\ds$", result.out, re.M), result.out
    assert "plan: 4 to run, 0 already applied, on 2 database(s)" in result.out
    assert "estimated time unknown (4 of 4 scripts never ran on any of these databases)" in result.out
    assert "Slowest 4" in result.out and "4 applied in" in result.out
    assert not ANSI.search(result.out) and "\r" not in result.out  # no live area: nothing is redrawn
    again = run_tool("-f", str(workspace.write()))
    assert again.code == 0 and "plan: 0 to run, 4 already applied" in again.out, again.text
    assert f"[4/4] skipped  002_slow.sql on {label(second)} via {runner2}  (already applied: success" in again.out


def test_quiet_run_shows_only_problems_and_the_summary(workspace: Workspace, target: Target, second: Target,
                                                       run_tool) -> None:
    workspace.row(target, workspace.script("ok.sql", "CREATE TABLE fine (id INT);\n"))
    workspace.row(second, workspace.script("bad.sql", "SELEC broken;\n"))
    result = run_tool("-q", "-f", str(workspace.write()), "--keep-going")
    assert result.code == 1, result.text
    out = result.out
    assert "] start" not in out and "applied  ok.sql" not in out and "plan:" not in out
    assert re.search(rf"^\[2/2\] failed   bad\.sql on {re.escape(label(second))} via .*exit", out, re.M), out
    assert "syntax" in out.lower()
    assert "Problems (1 of 2 rows)" in out and "Targets" in out and "1 applied, 1 failed in" in out
    assert "plain passwords" in out  # warnings stay


def test_verbose_streams_each_client_line_prefixed_masked_and_escaped(workspace: Workspace, target: Target,
                                                                      run_tool) -> None:
    marker = "SELECT CONCAT('marker-', 'one') AS m;" if target.engine == "mysql" else "SELECT 'marker-' || 'one' AS m;"
    # psql escapes control characters in query results itself; its \echo writes them as they are.
    escape = ("SELECT CONCAT('esc', CHAR(27), '[31mred') AS e;" if target.engine == "mysql" else
              "\\echo esc\x1b[31mred")
    script = f"{marker}\nSELECT '{target.password}' AS p;\n{escape}\n"
    workspace.row(target, workspace.script("talk.sql", script))
    result = run_tool("-v", "-f", str(workspace.write()))
    assert result.code == 0, result.text
    prefix = f"  {label(target)} | "
    assert re.search(rf"^{re.escape(prefix)}\s*marker-one\s*$", result.out, re.M), result.out
    assert re.search(rf"^{re.escape(prefix)}\s*\*\*\*\s*$", result.out, re.M), result.out  # the password, masked
    assert "esc\\x1b[31mred" in result.out and "\x1b" not in result.out  # escaped, never sent to the terminal
    assert "DEBUG:" not in result.err  # -v is the clients' output; debug logging is -vv / --debug
    workspace.row(target, workspace.script("more.sql", "SELECT 1;\n"))
    debug = run_tool("--debug", "-f", str(workspace.write()))
    assert debug.code == 0 and "DEBUG: uploading more.sql" in debug.err, debug.text

"""The end of a run on the console: what happened to each row (or only the rows that went wrong, when there
are many), how far each database got, the slowest scripts (where the time went), the run folder, and one
line of counts with the exit code."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..model.outcome import Outcome, RunResult, Status
from ..model.secret import shown
from .lines import PROBLEMS, STYLES

# Above this many rows the summary lists only the rows that went wrong (a table of hundreds helps nobody).
SUMMARY_ROWS = 50
SLOWEST = 5


def print_summary(console: Console, result: RunResult, *, report_dir: Path | None = None,
                  only_problems: bool = False, caps: dict[str, str] | None = None,
                  exit_code: int | None = None) -> None:
    outcomes = result.outcomes
    title = "Summary"
    if only_problems or len(outcomes) > SUMMARY_ROWS:  # each row's line is above; Targets says how far each got
        outcomes = [o for o in outcomes if o.status in PROBLEMS]
        title = f"Problems ({len(outcomes)} of {len(result.outcomes)} rows)"
    if outcomes:
        rows_table(console, title, outcomes)
    targets_table(console, result)
    slowest_table(console, result)
    for name, said in (caps or {}).items():
        console.print(Text(shown(f"cap: {name}: {said}"), style="dim"))
    if report_dir is not None:
        console.print(Text(shown(f"run folder: {report_dir}")))
    parts = [f"{result.count(status)} {status.value}" for status in Status if result.count(status)]
    stopped = " after an interrupt" if result.interrupted else ""
    code = int(result.exit_code) if exit_code is None else exit_code
    console.print(Text(f"{', '.join(parts)} in {result.seconds:.2f}s{stopped} (exit {code})",
                       style="bold"))


def rows_table(console: Console, title: str, outcomes: list[Outcome]) -> None:
    table = Table(title=title, title_justify="left", show_lines=False)
    for name, justify in (("#", "right"), ("script", "left"), ("runner", "left"), ("database", "left"),
                          ("outcome", "left"), ("seconds", "right")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for outcome in outcomes:
        row = outcome.row
        seconds = f"{outcome.seconds:.2f}" if outcome.status is not Status.NOT_RUN else ""
        table.add_row(str(outcome.index), shown(row.script_label), shown(row.runner.label),
                      shown(row.db.label), Text(outcome.status.value, style=STYLES[outcome.status]), seconds)
    console.print(table)


def targets_table(console: Console, result: RunResult) -> None:
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
            where = Text(shown(f"stopped at {bad[0].row.script_label} ({bad[0].status.value})"), style="bold red")
        elif waiting:
            where = Text(shown(f"not started after {done[-1].row.script_label}") if done else "not started",
                         style="yellow")
        else:
            where = Text("complete", style="green")
        table.add_row(shown(target), f"{len(done)}/{len(outcomes)}", str(len(bad)), str(waiting), where)
    console.print(table)


def slowest(result: RunResult, count: int = SLOWEST) -> list[Outcome]:
    """The rows that ran, longest first (ties in manifest order): where the run's time went."""
    ran = [o for o in result.outcomes if o.status not in (Status.SKIPPED, Status.NOT_RUN) and o.seconds > 0]
    return sorted(ran, key=lambda o: (-o.seconds, o.index))[:count]


def slowest_table(console: Console, result: RunResult) -> None:
    rows = slowest(result)
    if len(rows) < 2:  # one script: the line above already says how long it took
        return
    table = Table(title=f"Slowest {len(rows)}", title_justify="left")
    for name, justify in (("script", "left"), ("target", "left"), ("seconds", "right")):
        table.add_column(name, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for outcome in rows:
        table.add_row(shown(outcome.row.script_label), shown(outcome.row.db.target_label), f"{outcome.seconds:.2f}")
    console.print(table)

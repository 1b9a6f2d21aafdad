"""The live view, through a real pseudo-terminal (pexpect): the real tool against the rig's MariaDB and
PostgreSQL, slow scripts on several databases at once. What a person sees: a line per running database
(its place in that database's rows, the script, the time it has run), the overall bar with counts, the time
left (unknown before anything ran; from the history tables on a second run), finished rows scrolling above,
the summary, and a terminal left as it was (cursor visible), after an interrupt too.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from .conftest import ROOT, Target, Workspace, fresh_targets, secret_values

CSI = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
HIDE, SHOW = "\x1b[?25l", "\x1b[?25h"


def plain(raw: str) -> str:
    """What the terminal shows, without its control sequences."""
    return CSI.sub("", raw).replace("\r", "")


def colours(raw: str) -> set[str]:
    """The SGR colour parameters used (30-38, 90-97 foreground; 40-48, 100-107 background)."""
    found = set()
    for params, final in CSI.findall(raw):
        if final == "m":
            found.update(p for p in params.split(";") if re.fullmatch(r"3[0-8]|9[0-7]|4[0-8]|10[0-7]", p))
    return found


def label(target: Target) -> str:
    return f"{target.engine}://{target.host}:{target.port}/{target.name}"


@pytest.fixture
def databases(rig, info) -> Iterator[list[Target]]:  # type: ignore[no-untyped-def]
    """Three fresh databases on MariaDB and three on PostgreSQL."""
    with fresh_targets(rig, info, ("mysql",) * 3 + ("postgresql",) * 3) as made:
        yield made


def on_terminal(info, manifest: Path, *args: str, env: dict[str, str] | None = None,  # type: ignore[no-untyped-def]
                interrupt_when: str | None = None) -> tuple[int, str]:
    """Run the tool on a 200x50 pseudo-terminal; optionally press Ctrl-C once the output matches a pattern."""
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "NO_COLOR", "FORCE_COLOR")}
    environ.update({"TERM": "xterm-256color", **(env or {})})
    argv = [str(ROOT / "remote_database_updater.py"), "-f", str(manifest), "--known-hosts", info.known_hosts, *args]
    child = pexpect.spawn(sys.executable, argv, cwd=str(ROOT), env=environ, dimensions=(50, 200),
                          encoding="utf-8", codec_errors="replace", timeout=180)
    seen = ""
    if interrupt_when is not None:
        child.expect(interrupt_when)
        seen = child.before + child.after
        child.sendintr()
    child.expect(pexpect.EOF)
    raw = seen + child.before
    child.close()
    for value in secret_values(info):
        assert value not in raw, "a secret value appeared on the terminal"
    assert child.exitstatus is not None, f"the tool died of signal {child.signalstatus}"
    return child.exitstatus, raw


def assert_terminal_restored(raw: str) -> None:
    assert HIDE in raw, "no live area was drawn"
    assert raw.rindex(SHOW) > raw.rindex(HIDE), "the cursor was left hidden"


def slow_rows(workspace: Workspace, targets: list[Target]) -> None:
    for k, target in enumerate(targets):
        for n in (1, 2):
            # a folder per engine: the scripts' SQL differs, and each script's history is its engine's
            script = workspace.script(f"{target.engine}/slow_{n}.sql", target.sleep(1) + "\n")
            workspace.row(target, script, runner=1 + k % 2)


def test_live_view_shows_running_databases_counts_and_the_time_left(workspace: Workspace, databases: list[Target],
                                                                   info) -> None:
    first, later = databases[:2] + databases[3:5], [databases[2], databases[5]]  # each: MariaDB and PostgreSQL
    slow_rows(workspace, first)
    code, raw = on_terminal(info, workspace.write(), env={"NO_COLOR": "1"})
    screen = plain(raw)
    assert code == 0, screen
    for target in first:  # a line per running database: its label, its place, the script, the time it has run
        assert re.search(rf"{re.escape(label(target))}\s+1/2\s+\w+/slow_1\.sql\s+\d+\.\ds", screen), screen
        assert re.search(rf"{re.escape(label(target))}\s+2/2\s+\w+/slow_2\.sql\s+\d+\.\ds", screen), screen
        assert re.search(rf"\] applied  \w+/slow_2\.sql on {re.escape(label(target))} via \S+  \d+\.\d\ds", screen)
    bar = r"(\d+)/8\s+applied (\d+)\s+skipped (\d+)\s+failed (\d+)\s+waiting (\d+)\s+running (\d+)"
    counts = [tuple(map(int, m)) for m in re.findall(bar, screen)]
    assert any(running >= 2 for *_, running in counts), "never saw two databases running at once"
    assert all(done == applied + skipped + failed for done, applied, skipped, failed, _, _ in counts)
    assert "time left unknown" in screen  # nothing had run anywhere yet: no figure is invented
    assert re.search(r"about \d+s left|under 1s left", screen)  # after the first scripts ended: this run's median
    assert "Summary" in screen and "Slowest 5" in screen and "8 applied in" in screen
    assert not colours(raw), "NO_COLOR was not honoured"
    assert_terminal_restored(raw)

    # A second run: the same scripts on two more databases. Their estimate comes from the history tables of
    # the four that ran them (each about a second), before anything runs.
    slow_rows(workspace, later)
    code, raw = on_terminal(info, workspace.write())
    screen = plain(raw)
    assert code == 0, screen
    plan = re.search(r"plan: 4 to run, 8 already applied, on 6 database\(s\);.*estimated time: about (\d+)s", screen)
    assert plan and 1 <= int(plan.group(1)) <= 10, screen
    assert re.search(r"\d+/12\s+applied \d+\s+skipped 8\s+failed 0\s+waiting \d+\s+running [12]\s+elapsed \d+s\s+"
                     r"(about \d+s left|under 1s left|at least)", screen), screen
    assert "time left unknown" not in screen
    for target in later:
        assert re.search(rf"{re.escape(label(target))}\s+1/2\s+\w+/slow_1\.sql", screen), screen
    assert "4 applied, 8 skipped in" in screen
    assert colours(raw), "a terminal without NO_COLOR gets colour"
    assert_terminal_restored(raw)


def test_ctrl_c_prints_above_the_live_view_and_leaves_the_terminal_clean(workspace: Workspace,
                                                                        databases: list[Target], info) -> None:
    mysql, postgres = databases[0], databases[3]
    for target in (mysql, postgres):
        workspace.row(target, workspace.script(f"{target.engine}/slow.sql", target.sleep(2) + "\n"))
        workspace.row(target, workspace.script("next.sql", "CREATE TABLE next_one (id INT);\n"))
    code, raw = on_terminal(info, workspace.write(), "--color", "never", interrupt_when=r"running 2")
    screen = plain(raw)
    assert code == 130, screen
    assert "interrupted: starting nothing new; waiting for 2 running script(s) to finish" in screen
    assert re.search(rf"\] applied  mysql/slow\.sql on {re.escape(label(mysql))}", screen), screen
    assert "2 applied, 2 not run" in screen and "after an interrupt" in screen
    assert not colours(raw)  # --color never
    assert_terminal_restored(raw)
    assert "next_one" not in mysql.tables() | postgres.tables()


def test_quiet_on_a_terminal_draws_no_live_area(workspace: Workspace, databases: list[Target], info) -> None:
    workspace.row(databases[0], workspace.script("one.sql", "CREATE TABLE one_t (id INT);\n"))
    code, raw = on_terminal(info, workspace.write(), "-q")
    screen = plain(raw)
    assert code == 0, screen
    assert HIDE not in raw and "] start" not in screen and "applied  one.sql" not in screen
    assert "1 applied in" in screen

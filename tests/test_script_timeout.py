"""`--script-timeout` and the `script_timeout` column on the rig's real servers: the statement is cancelled on the
server, the row is recorded failed, the target stops, and the next run knows the script may be partially applied
(in doubt: `resolve` after a look at the database), as after any failure outside a single transaction."""

from __future__ import annotations

import time

from .conftest import Target, Workspace
from .test_interrupts import sleeping_statements
from .test_ledger import history


def test_script_timeout_cancels_the_statement_on_the_server(workspace: Workspace, target: Target,
                                                            run_tool) -> None:
    workspace.row(target, workspace.script("slow.sql", target.sleep(60) + "\nCREATE TABLE after_sleep (id INT);\n"))
    workspace.row(target, workspace.script("next.sql", "CREATE TABLE next_one (id INT);\n"))
    manifest = workspace.write()
    began = time.monotonic()
    result = run_tool("-f", str(manifest), "--script-timeout", "2s")
    took = time.monotonic() - began
    assert result.code == 1, result.text
    assert "timed out after 2 s" in result.text
    assert took < 30, f"the run took {took:.1f} s: the 60 s statement was not cancelled"
    assert history(target) == [["slow.sql", "failed"]]
    assert sleeping_statements(target) == 0
    assert {"after_sleep", "next_one"}.isdisjoint(target.tables())
    again = run_tool("plan", "-f", str(manifest))
    assert again.code == 5 and "in doubt" in again.out and "resolve" in again.out, again.text


def test_a_rows_script_timeout_column(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("quick.sql", target.sleep(0.2)), script_timeout="30")
    workspace.row(target, workspace.script("slow.sql", target.sleep(60)), script_timeout="1.5")
    header = [*workspace.rows[0].keys()]
    result = run_tool("-f", str(workspace.write(header=header)))
    assert result.code == 1, result.text
    assert history(target) == [["quick.sql", "success"], ["slow.sql", "failed"]]
    assert sleeping_statements(target) == 0

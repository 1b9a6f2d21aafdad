"""`exec` on the rig's real servers: every script runs each time, judged as `apply` judges, no history tables."""

from __future__ import annotations

from .conftest import Target, Workspace
from .test_single import SCRIPT, options


def test_exec_runs_each_time_without_history(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE IF NOT EXISTS seen (n INT);\n"))
    workspace.row(target, workspace.script("002.sql", "INSERT INTO seen VALUES (1);\n"))
    manifest = workspace.write()
    for _ in range(2):
        result = run_tool("exec", "-f", str(manifest))
        assert result.code == 0, result.text
    assert target.tables() == {"seen"}  # no dbupdater_history, no dbupdater_lock
    assert target.rows("SELECT COUNT(*) FROM seen") == [["2"]]


def test_exec_failure_is_exit_1_and_stops_the_target(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("001.sql", "SELECT no_such_column FROM no_such_table;\n"))
    workspace.row(target, workspace.script("002.sql", "CREATE TABLE never_exec (n INT);\n"))
    result = run_tool("exec", "-f", str(workspace.write()))
    assert result.code == 1, result.text
    assert "never_exec" not in target.tables() and "dbupdater_history" not in target.tables()


def test_single_script_no_history(workspace: Workspace, target: Target, run_tool, info) -> None:
    script = str(workspace.dir / workspace.script("one.sql", "CREATE TABLE IF NOT EXISTS once (n INT);\n"
                                                  "INSERT INTO once VALUES (1);\n"))
    env = {"DBU_TEST_RUNNER_PW": info.runner_password, "DBU_TEST_DB_PW": target.password}
    for _ in range(2):
        result = run_tool(*options(target, info, script), "--no-history", script=SCRIPT, env=env)
        assert result.code == 0, result.text
    assert target.tables() == {"once"}
    assert target.rows("SELECT COUNT(*) FROM once") == [["2"]]

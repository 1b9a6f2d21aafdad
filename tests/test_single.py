"""`ssh_and_run_database_script.py`: one script, one runner, the manifest fields as options."""

from __future__ import annotations

from .conftest import Target, Workspace

SCRIPT = "ssh_and_run_database_script.py"


def options(target: Target, info, script: str, **extra: str) -> list[str]:  # type: ignore[no-untyped-def]
    runner = info.runners[0]
    fields = {
        "--sql-runner-host": runner.host, "--sql-runner-port": str(runner.port),
        "--sql-runner-userid": info.runner_user, "--sql-runner-password": "env:DBU_TEST_RUNNER_PW",
        "--database-type": target.database_type, "--database-host": target.host,
        "--database-userid": target.user, "--database-password": "env:DBU_TEST_DB_PW",
        "--port": str(target.port), "--database": target.name, "--sql-script-to-run": script, **extra,
    }
    return [part for pair in fields.items() for part in pair]


def test_runs_one_script_with_references(workspace: Workspace, target: Target, run_tool, info) -> None:
    script = str(workspace.dir / workspace.script("one.sql", "CREATE TABLE from_single (id INT);\n"))
    env = {"DBU_TEST_RUNNER_PW": info.runner_password, "DBU_TEST_DB_PW": target.password}
    result = run_tool(*options(target, info, script), script=SCRIPT, env=env)
    assert result.code == 0, result.text
    assert "from_single" in target.tables()


def test_literal_password_is_refused(workspace: Workspace, target: Target, run_tool, info) -> None:
    script = str(workspace.dir / workspace.script("one.sql", "CREATE TABLE never_single (id INT);\n"))
    result = run_tool(*options(target, info, script, **{"--database-password": "hunter2-literal"}), script=SCRIPT)
    assert result.code == 2, result.text
    assert "visible to every user through ps" in result.err
    assert "never_single" not in target.tables()


def test_bad_option_names_the_option(workspace: Workspace, target: Target, run_tool, info) -> None:
    script = str(workspace.dir / workspace.script("one.sql", "SELECT 1;\n"))
    result = run_tool(*options(target, info, script, **{"--port": "not-a-port", "--database-type": "DB2"}),
                      script=SCRIPT)
    assert result.code == 2, result.text
    assert "column --port" in result.err and "column --database-type" in result.err


def test_script_failure_exits_1(workspace: Workspace, target: Target, run_tool, info) -> None:
    script = str(workspace.dir / workspace.script("bad.sql", "SELEC 1;\n"))
    env = {"DBU_TEST_RUNNER_PW": info.runner_password, "DBU_TEST_DB_PW": target.password}
    result = run_tool(*options(target, info, script), script=SCRIPT, env=env)
    assert result.code == 1, result.text

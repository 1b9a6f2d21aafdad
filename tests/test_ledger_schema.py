"""The ledger's schema version on the real servers: recorded on creation, older ledgers upgraded under the
lock (and read as they are by commands that only read), newer ones refused before anything runs."""

from __future__ import annotations

from .conftest import Target, Workspace


def versions(target: Target) -> list[str]:
    return [row[0] for row in target.rows("SELECT version FROM dbupdater_schema ORDER BY version")]


def history(target: Target) -> list[list[str]]:
    return target.rows("SELECT script, status FROM dbupdater_history ORDER BY id")


def test_a_new_ledger_records_every_version(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE v (id INT);\n"))
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 0, result.text
    assert versions(target) == ["1", "2", "3"]


RELEASE_2 = "ALTER TABLE dbupdater_history DROP COLUMN db_session, DROP COLUMN db_user"


def test_a_version_1_ledger_is_read_as_it_is_and_upgraded_under_the_lock(workspace: Workspace, target: Target,
                                                                        run_tool) -> None:
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE IF NOT EXISTS up (id INT);\n"))
    path = workspace.write()
    assert run_tool("-f", str(path)).code == 0
    # What release 1 left: no version table, and "reverted" for a script resolved to run again.
    target.query(f"DROP TABLE dbupdater_schema; UPDATE dbupdater_history SET status = 'reverted'; {RELEASE_2}")
    plan = run_tool("plan", "-f", str(path))
    assert plan.code == 0 and "pending" in plan.out, plan.text
    assert "dbupdater_schema" not in target.tables()  # plan writes nothing
    result = run_tool("-f", str(path))
    assert result.code == 0 and "1 applied" in result.out, result.text
    assert versions(target) == ["1", "2", "3"]
    assert history(target) == [["001.sql", "rerun"], ["001.sql", "success"]]


def test_a_version_2_ledger_gets_the_session_columns_under_the_lock(workspace: Workspace, target: Target,
                                                                    run_tool) -> None:
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE s1 (id INT);\n"))
    path = workspace.write()
    assert run_tool("-f", str(path)).code == 0
    target.query(f"{RELEASE_2}; DELETE FROM dbupdater_schema WHERE version = 3")
    workspace.row(target, workspace.script("002.sql", "CREATE TABLE s2 (id INT);\n"))
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 0 and "1 applied" in result.out, result.text
    assert versions(target) == ["1", "2", "3"]
    # The script's own session and account, recorded by its `running` row.
    ((session, user),) = target.rows("SELECT db_session, db_user FROM dbupdater_history WHERE script = '002.sql'")
    assert session.split(":")[0].isdigit() and user.startswith(target.user)


def test_a_ledger_from_a_newer_release_is_refused(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE n1 (id INT);\n"))
    path = workspace.write()
    assert run_tool("-f", str(path)).code == 0
    target.query("INSERT INTO dbupdater_schema (version) VALUES (99)")
    workspace.row(target, workspace.script("002.sql", "CREATE TABLE must_not_exist (id INT);\n"))
    path = workspace.write()
    for command in ("apply", "plan"):
        result = run_tool(command, "-f", str(path))
        assert result.code == 5, result.text
        assert "schema version 99, written by a newer dbupdater" in result.err
    assert "must_not_exist" not in target.tables()
    assert target.rows("SELECT COUNT(*) FROM dbupdater_lock") == [["0"]]  # released on the way out

"""Verify scripts on the real rig (both servers): run right after their script by `apply`, and on their own by
`test`; a query after `-- dbupdater: expect empty` must return no rows."""

from __future__ import annotations

import json
from pathlib import Path

from .conftest import HEADER, Target, Workspace

VERIFY_HEADER = [*HEADER, "verify_script"]

CREATE = "CREATE TABLE accounts (id INT, balance INT);\nINSERT INTO accounts (id, balance) VALUES (1, 10);\n"
CHECK = """-- every balance is positive
SELECT COUNT(*) FROM accounts;
-- dbupdater: expect empty
SELECT id, balance
  FROM accounts
 WHERE balance < 0;
"""


def rows(workspace: Workspace, target: Target, check: str = CHECK) -> str:
    workspace.row(target, workspace.script("01_accounts.sql", CREATE),
                  verify_script=workspace.script("verify/01_accounts.sql", check))
    workspace.row(target, workspace.script("02_more.sql", "CREATE TABLE more_things (id INT);\n"))
    return str(workspace.write(header=VERIFY_HEADER))


def history(target: Target) -> list[list[str]]:
    return target.rows("SELECT script, status FROM dbupdater_history ORDER BY id")


def test_a_passing_verify_is_recorded_and_test_passes(workspace: Workspace, target: Target, run_tool,
                                                      tmp_path: Path) -> None:
    manifest = rows(workspace, target)
    result = run_tool("-f", manifest, "--report-dir", str(tmp_path / "apply"))
    assert result.code == 0, result.text
    applied = json.loads((tmp_path / "apply" / "run.json").read_text())
    assert applied["results"][0]["reason"].endswith("verified by verify/01_accounts.sql")
    assert "then verify it with verify/01_accounts.sql" in applied["plan"]["rows"][0]["action"]
    assert history(target) == [["01_accounts.sql", "success"], ["01_accounts.sql#verify", "success"],
                               ["02_more.sql", "success"]]
    tested = run_tool("test", "-f", manifest, "--report-dir", str(tmp_path / "test"))
    assert tested.code == 0, tested.text
    document = json.loads((tmp_path / "test" / "run.json").read_text())
    assert [(r["script"], r["step"], r["status"]) for r in document["results"]] == [
        ("01_accounts.sql", "verify", "applied"), ("02_more.sql", "verify", "skipped")]
    assert document["results"][1]["reason"] == "no verify script"
    assert 'name="verify 01_accounts.sql"' in (tmp_path / "test" / "junit.xml").read_text()


def test_test_fails_naming_the_target_after_a_hand_made_change(workspace: Workspace, target: Target,
                                                               run_tool) -> None:
    manifest = rows(workspace, target)
    assert run_tool("-f", manifest).code == 0
    target.query("UPDATE accounts SET balance = -5 WHERE id = 1")
    tested = run_tool("test", "-f", manifest)
    assert tested.code == 1, tested.text
    assert "the query expected empty at line 4 returned 1 row(s)" in tested.out
    assert target.name in tested.out
    assert history(target)[-1] == ["01_accounts.sql#verify", "failed"]
    # The scripts themselves are untouched: applying again has nothing to do.
    again = run_tool("-f", manifest)
    assert again.code == 0 and "2 skipped" in again.out, again.text


def test_a_failing_verify_fails_its_row_and_stops_the_target(workspace: Workspace, target: Target,
                                                             run_tool) -> None:
    check = "-- dbupdater: expect empty\nSELECT id FROM accounts WHERE balance > 0;\n"
    result = run_tool("-f", rows(workspace, target, check))
    assert result.code == 1, result.text
    assert "applied, but its verify script verify/01_accounts.sql failed" in result.out
    assert "more_things" not in target.tables()
    assert history(target) == [["01_accounts.sql", "success"], ["01_accounts.sql#verify", "failed"]]


def test_a_verify_whose_client_fails_fails_its_row(workspace: Workspace, target: Target, run_tool) -> None:
    result = run_tool("-f", rows(workspace, target, "SELECT no_such_column FROM accounts;\n"))
    assert result.code == 1, result.text
    assert "applied, but its verify script verify/01_accounts.sql failed" in result.out
    assert history(target)[-1] == ["01_accounts.sql#verify", "failed"]

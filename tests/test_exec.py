"""`exec` on the rig's real servers: every script runs each time, judged as `apply` judges, no history tables."""

from __future__ import annotations

from .conftest import Target, Workspace
from .test_single import SCRIPT, options


def test_single_script_no_history(workspace: Workspace, target: Target, run_tool, info) -> None:
    script = str(workspace.dir / workspace.script("one.sql", "CREATE TABLE IF NOT EXISTS once (n INT);\n"
                                                  "INSERT INTO once VALUES (1);\n"))
    env = {"DBU_TEST_RUNNER_PW": info.runner_password, "DBU_TEST_DB_PW": target.password}
    for _ in range(2):
        result = run_tool(*options(target, info, script), "--no-history", script=SCRIPT, env=env)
        assert result.code == 0, result.text
    assert target.tables() == {"once"}
    assert target.rows("SELECT COUNT(*) FROM once") == [["2"]]

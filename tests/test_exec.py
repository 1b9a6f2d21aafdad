"""`exec` on the rig's real servers: every script runs each time, judged as `apply` judges, no history tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import Target, Workspace, fresh_targets
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


def test_psql_runs_without_debians_wrapper_as_the_wrapper_would_run_it(workspace: Workspace, rig, run_tool,
                                                                          info) -> None:  # type: ignore[no-untyped-def]
    """The rig's runners have Debian's pg_wrapper as `psql`: the probe names the newest psql, which runs with
    PGSYSCONFDIR as the wrapper sets it (engines/postgresql: `adapt`)."""
    if not Path("/usr/share/postgresql-common/pg_wrapper").exists():
        pytest.skip("the runners' psql is not Debian's pg_wrapper")
    with fresh_targets(rig, info, ["postgresql"]) as (target,):
        script = str(workspace.dir / workspace.script("env.sql", "\\! printf 'sysconfdir=%s\\n' \"$PGSYSCONFDIR\"\n"))
        env = {"DBU_TEST_RUNNER_PW": info.runner_password, "DBU_TEST_DB_PW": target.password}
        result = run_tool(*options(target, info, script), "--no-history", "-v", "--debug", script=SCRIPT, env=env)
    assert result.code == 0, result.text
    assert "sysconfdir=/etc/postgresql-common" in result.out
    assert "psql on " in result.text and "pg_wrapper\t/usr/lib/postgresql/" in result.text

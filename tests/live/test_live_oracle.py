"""Against a real Oracle server, opt in: `DBU_LIVE_ORACLE=user:password@host:port/service` (the password may be
URL-quoted), with a runner that has sqlplus: `DBU_LIVE_ORACLE_RUNNER=user@host[:port]` and
`DBU_LIVE_ORACLE_RUNNER_KEY=path` (default: the rig's runner 1, whose PATH must then hold a real sqlplus).
Runs apply, a rerun that skips, a failure, the lock, and exec. Skipped, saying why, without them.

What only this suite can show: that the ledger's SQL runs on a real server (JSON_OBJECT, the PL/SQL blocks,
identity columns), that WHENEVER SQLERROR fires at a failed CONNECT, and that USER_ERRORS catches a package
compiled with errors.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from urllib.parse import unquote

import pytest

from ..conftest import HEADER, write_manifest

pytestmark = pytest.mark.live
ENDPOINT = re.compile(r"^(?P<user>[^:]+):(?P<password>[^@]*)@(?P<host>[^:/]+):(?P<port>\d+)/(?P<service>.+)$")


@pytest.fixture
def live(info):  # type: ignore[no-untyped-def]
    value = os.environ.get("DBU_LIVE_ORACLE", "")
    if not value:
        pytest.skip("no Oracle server: set DBU_LIVE_ORACLE=user:password@host:port/service to run the live suite")
    found = ENDPOINT.match(value)
    if not found:
        pytest.fail("DBU_LIVE_ORACLE is not user:password@host:port/service")
    runner = os.environ.get("DBU_LIVE_ORACLE_RUNNER", "")
    if runner:
        user, _, host = runner.partition("@")
        host, _, port = host.partition(":")
        where = {"sql_runner_host": host, "sql_runner_userid": user, "sql_runner_port": port or "22",
                 "sql_runner_password": "", "sql_runner_key_file": os.environ.get("DBU_LIVE_ORACLE_RUNNER_KEY", "")}
    else:
        spec = info.runners[0]
        where = {"sql_runner_host": spec.host, "sql_runner_userid": info.runner_user,
                 "sql_runner_password": info.runner_password, "sql_runner_port": str(spec.port),
                 "sql_runner_key_file": ""}
    return {**where, "database_type": "Oracle", "database_host": found["host"], "port": found["port"],
            "database_userid": found["user"], "database_password": unquote(found["password"]),
            "database": found["service"]}


def manifest(tmp_path: Path, live: dict[str, str], scripts: dict[str, str]) -> Path:
    rows = []
    for name, text in scripts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        rows.append({**live, "sql_script_to_run": name})
    return write_manifest(tmp_path / "manifest.csv", HEADER, rows)


def test_apply_rerun_failure_lock_and_exec(tmp_path, live, run_tool) -> None:  # type: ignore[no-untyped-def]
    table = f"DBU_LIVE_{secrets.token_hex(3).upper()}"
    scripts = {"001.sql": f"CREATE TABLE {table} (n NUMBER, s VARCHAR2(20 CHAR));\n",
               "002.sql": f"INSERT INTO {table} VALUES (1, 'caf\u00e9 & co');\nCOMMIT;\n"}
    path = manifest(tmp_path, live, scripts)
    first = run_tool("-f", str(path), "--lock-timeout", "5")
    assert first.code == 0, first.text
    again = run_tool("-f", str(path))
    assert again.code == 0 and "already applied" in again.text, again.text
    status = run_tool("status", "-f", str(path), "--output", "json")
    assert status.code == 0 and "001.sql" in status.out, status.text
    failing = manifest(tmp_path, live, {**scripts, "003.sql": "SELECT no_such_column FROM dual;\n"})
    failed = run_tool("-f", str(failing))
    assert failed.code == 1 and "ORA-00904" in failed.text, failed.text
    resolved = run_tool("resolve", "-f", str(failing), "--script", "003.sql", "--mark", "rerun")
    assert resolved.code == 0, resolved.text
    compiled = manifest(tmp_path, live, {**scripts, "004.sql": f"CREATE OR REPLACE PROCEDURE {table}_P AS BEGIN "
                                                             "no_such_thing; END;\n/\n"})
    bad = run_tool("exec", "-f", str(compiled))
    assert bad.code == 1 and "compilation errors" in bad.text, bad.text
    cleanup = manifest(tmp_path, live, {"099.sql": f"DROP TABLE {table};\nDROP PROCEDURE {table}_P;\n"})
    assert run_tool("exec", "-f", str(cleanup)).code == 0


def test_wrong_password_is_exit_3(tmp_path, live, run_tool) -> None:  # type: ignore[no-untyped-def]
    path = manifest(tmp_path, {**live, "database_password": "surely-" + secrets.token_hex(4)},
                    {"001.sql": "SELECT 1 FROM dual;\n"})
    result = run_tool("exec", "-f", str(path))
    assert result.code == 3, result.text

"""Against a real SQL Server, opt-in: apply, a rerun that skips, a failure, the lock, exec, wait-ready --via direct.

    DBU_LIVE_SQLSERVER='user:password@host:port/database[?trust_server_certificate=yes]' pytest -m live \
        tests/live/test_live_sqlserver.py

The database must exist and the user may create tables in it. The real `sqlcmd` (mssql-tools18 or go-sqlcmd)
must be on this machine's PATH: the rows use the `local` transport, so the history and lock T-SQL of the
dialect, and the judging rules, meet a real server and a real client here. The password reaches the tool as an
`env:` reference, never in the manifest. pymssql (the `sqlserver` extra) is used to look at the tables and to
plant another run's lock.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from ..conftest import write_manifest

ROOT = Path(__file__).resolve().parents[2]
ENDPOINT = os.environ.get("DBU_LIVE_SQLSERVER", "")
PASSWORD_VARIABLE = "DBU_LIVE_SQLSERVER_PASSWORD"

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(not ENDPOINT, reason="set DBU_LIVE_SQLSERVER=user:password@host:port/database to run the "
                       "SQL Server suite against a real server (none can run here)"),
    pytest.mark.skipif(shutil.which("sqlcmd") is None, reason="no sqlcmd on PATH (mssql-tools18 or go-sqlcmd)"),
]


@dataclass
class Endpoint:
    user: str
    password: str
    host: str
    port: int
    database: str
    trust: bool


def endpoint() -> Endpoint:
    parts = urlsplit("mssql://" + ENDPOINT)
    options = parse_qs(parts.query)
    return Endpoint(unquote(parts.username or ""), unquote(parts.password or ""), parts.hostname or "",
                    parts.port or 1433, parts.path.lstrip("/"),
                    options.get("trust_server_certificate", ["no"])[0].lower() in ("yes", "true", "1"))


@pytest.fixture
def live() -> Iterator[Endpoint]:
    e = endpoint()
    yield e
    drop(e, "dbupdater_history", "dbupdater_lock", "dbupdater_schema", "live_t1")


def connect(e: Endpoint):  # type: ignore[no-untyped-def]
    pymssql = pytest.importorskip("pymssql")
    return pymssql.connect(server=e.host, port=str(e.port), user=e.user, password=e.password, database=e.database,
                           autocommit=True)


def drop(e: Endpoint, *tables: str) -> None:
    with connect(e) as connection:
        cursor = connection.cursor()
        for table in tables:
            cursor.execute(f"IF OBJECT_ID(N'{table}', N'U') IS NOT NULL DROP TABLE [{table}]")


def query(e: Endpoint, sql: str) -> list[tuple]:  # type: ignore[type-arg]
    with connect(e) as connection:
        cursor = connection.cursor()
        cursor.execute(sql)
        return list(cursor.fetchall())


def manifest(tmp_path: Path, e: Endpoint, scripts: dict[str, str]) -> Path:
    rows = []
    for name, text in scripts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        rows.append({"transport": "local", "database_type": "SQLServer", "database_host": e.host,
                     "database_userid": e.user, "database_password": f"env:{PASSWORD_VARIABLE}",
                     "port": str(e.port), "database": e.database, "sql_script_to_run": name,
                     **({"trust_server_certificate": "yes"} if e.trust else {})})
    columns = ["transport", "sql_runner_host", "sql_runner_userid", "sql_runner_password", "database_type",
               "database_host", "database_userid", "database_password", "port", "database", "sql_script_to_run",
               *(["trust_server_certificate"] if e.trust else [])]
    return write_manifest(tmp_path / "manifest.csv", columns, rows)


def tool(e: Endpoint, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, str(ROOT / "remote_database_updater.py"), *args, "--color", "never"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env={**os.environ, PASSWORD_VARIABLE: e.password})
    assert e.password not in proc.stdout + proc.stderr
    return proc


GOOD = "CREATE TABLE live_t1 (id INT PRIMARY KEY, name NVARCHAR(20));\nGO\nINSERT INTO live_t1 VALUES (1, N'Größe');\n"


def test_apply_then_a_rerun_skips(tmp_path: Path, live: Endpoint) -> None:
    path = manifest(tmp_path, live, {"001.sql": GOOD})
    first = tool(live, "-f", str(path))
    assert first.returncode == 0, first.stdout + first.stderr
    assert query(live, "SELECT name FROM live_t1") == [("Größe",)]  # UTF-8 arrived intact
    assert query(live, "SELECT script, status FROM dbupdater_history") == [("001.sql", "success")]
    again = tool(live, "-f", str(path))
    assert again.returncode == 0 and "already applied" in again.stdout + again.stderr
    assert len(query(live, "SELECT id FROM dbupdater_history")) == 1


def test_a_failure_is_exit_1_and_in_doubt_next_time(tmp_path: Path, live: Endpoint) -> None:
    path = manifest(tmp_path, live, {"001.sql": "SELECT * FROM no_such_table_here;\n"})
    failed = tool(live, "-f", str(path))
    assert failed.returncode == 1 and "Invalid object name" in failed.stdout + failed.stderr
    assert query(live, "SELECT status FROM dbupdater_history") == [("failed",)]
    assert tool(live, "-f", str(path)).returncode == 5


def test_another_runs_lock_is_waited_for_then_refused(tmp_path: Path, live: Endpoint) -> None:
    path = manifest(tmp_path, live, {"001.sql": GOOD})
    assert tool(live, "plan", "-f", str(path)).returncode == 0
    assert tool(live, "-f", str(path)).returncode == 0  # the tables exist now
    with connect(live) as connection:
        connection.cursor().execute(
            "INSERT INTO dbupdater_lock (name, run_id, host, pid, os_user, expires_at) VALUES "
            f"(N'deploy', N'{uuid.uuid4().hex}', N'elsewhere', 1, N'other', DATEADD(second, 300, SYSUTCDATETIME()))")
    held = tool(live, "-f", str(path), "--lock-timeout", "2")
    assert held.returncode == 5 and "elsewhere" in held.stdout + held.stderr


def test_exec_runs_without_the_history(tmp_path: Path, live: Endpoint) -> None:
    path = manifest(tmp_path, live, {"001.sql": "PRINT N'hello';\nGO\nSELECT 1;\n"})
    result = tool(live, "exec", "-f", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert query(live, "SELECT OBJECT_ID(N'dbupdater_history')") == [(None,)]


def test_wait_ready_direct(tmp_path: Path, live: Endpoint) -> None:
    path = manifest(tmp_path, live, {"001.sql": "SELECT 1;\n"})
    result = tool(live, "wait-ready", "-f", str(path), "--via", "direct", "--timeout", "30")
    assert result.returncode == 0, result.stdout + result.stderr

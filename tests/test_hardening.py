"""Defects the adversarial review found (issue 14), each pinned by a test on the real rig that failed before
its fix: a key row falling back to password authentication, a PostgreSQL connection lost mid-script reported
as a failed login, and passwords echoed back in the escaped form the tool itself wrote."""

from __future__ import annotations

import secrets
import subprocess
import threading
import time

import pytest

from .conftest import Target, Workspace


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_a_key_row_never_tries_a_password(workspace: Workspace, target: Target, run_tool, tmp_path, info) -> None:
    key = tmp_path / "not_authorized"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE by_password (id INT);\n"),
                  sql_runner_key_file=str(key), sql_runner_password="env:DBU_RUNNER_PASSWORD")
    # The password cell of a key row is the key's passphrase; here it is also the runner's login password,
    # which paramiko used to try once the key was refused.
    result = run_tool("-f", str(workspace.write()), env={"DBU_RUNNER_PASSWORD": info.runner_password})
    assert result.code == 3, result.text
    assert "authentication failed" in result.text and "(key file)" in result.text
    assert "by_password" not in target.tables()


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_a_postgres_connection_lost_mid_script_says_so(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("slow.sql", "CREATE TABLE before_sleep (id INT);\nSELECT pg_sleep(30);\n"))
    path = workspace.write()

    def terminate() -> None:
        sql = (f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{target.name}' "
               "AND query LIKE '%pg_sleep(30)%' AND pid <> pg_backend_pid()")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if target.rig.psql_exec(sql).strip() == "t":  # type: ignore[attr-defined]
                return
            time.sleep(0.1)

    killer = threading.Thread(target=terminate)
    killer.start()
    result = run_tool("-f", str(path))
    killer.join()
    assert result.code == 3, result.text
    assert "connection was lost mid-script; the script may be partially applied" in result.out
    assert "cannot connect to or log in" not in result.out
    assert target.rows("SELECT script, status FROM dbupdater_history") == [["slow.sql", "failed"]]
    again = run_tool("-f", str(path))
    assert again.code == 5 and "in doubt" in again.out, again.text


# Prints the credentials file the client was given (psql names it in PGPASSFILE; mysql in its argv).
PRINT_CREDENTIALS = {
    "postgresql": '\\! cat "$PGPASSFILE" 1>&2\n',
    "mysql": "\\! tr '\\0' '\\n' < /proc/$PPID/cmdline | sed -n 's/^--defaults-extra-file=//p' | xargs cat 1>&2\n",
}


def test_a_password_echoed_in_its_escaped_form_is_masked(workspace: Workspace, target: Target, run_tool) -> None:
    password = f'p:a\\ss"w\'rd-{secrets.token_hex(4)}'
    user = f"u{secrets.token_hex(4)}"
    quoted = password.replace("\\", "\\\\").replace("'", "\\'") if target.engine == "mysql" else \
        password.replace("'", "''")
    if target.engine == "mysql":
        target.query(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{quoted}'; "
                     f"GRANT ALL PRIVILEGES ON `{target.name}`.* TO '{user}'@'%'")
        escaped = password.replace("\\", "\\\\").replace('"', '\\"')  # the option file's form
    else:
        target.rig.psql_exec(f"CREATE ROLE {user} LOGIN PASSWORD '{quoted}'")  # type: ignore[attr-defined]
        target.query(f"GRANT ALL ON SCHEMA public TO {user}")
        escaped = password.replace("\\", "\\\\").replace(":", "\\:")  # the pgpass form
    try:
        workspace.row(target, workspace.script("echo.sql", PRINT_CREDENTIALS[target.engine]),
                      database_userid=user, database_password="env:DBU_ESCAPED_PASSWORD")
        result = run_tool("-f", str(workspace.write()), "-v", env={"DBU_ESCAPED_PASSWORD": password})
        assert result.code == 1, result.text  # the printed line is unexpected stderr: the row fails
        assert "***" in result.text
        for form in (password, escaped):
            assert form not in result.text
        assert "\\:a" not in result.text and "\\\\ss" not in result.text
    finally:
        if target.engine == "mysql":
            target.query(f"DROP USER '{user}'@'%'")
        else:
            target.query(f"DROP OWNED BY {user}")
            target.rig.psql_exec(f"DROP ROLE {user}")  # type: ignore[attr-defined]

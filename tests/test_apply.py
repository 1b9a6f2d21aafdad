"""The shared behaviour suite: every engine, through real sshd runners, against real servers."""

from __future__ import annotations

import os
import subprocess
import time

import pytest

from .conftest import HEADER, Target, Workspace


def test_rows_run_in_order_through_one_runner(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("01_create.sql", "CREATE TABLE steps (n INT, note VARCHAR(20));\n"))
    for n in (2, 3, 4):
        sql = f"INSERT INTO steps (n, note) SELECT COUNT(*) + 1, 'script {n}' FROM steps;\n"
        workspace.row(target, workspace.script(f"0{n}_step.sql", sql))
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 0, result.text
    assert target.rows("SELECT n, note FROM steps ORDER BY n") == [["1", "script 2"], ["2", "script 3"],
                                                                    ["3", "script 4"]]
    assert "4 applied" in result.out
    for n in range(1, 5):
        assert f"[{n}/4] applied" in result.out


def test_failure_in_second_of_three_halts(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("a.sql", "CREATE TABLE first_ok (id INT);\n"))
    workspace.row(target, workspace.script("b.sql", "CREATE TABLE second_partial (id INT);\nSELEC broken;\n"
                                                    "CREATE TABLE after_error (id INT);\n"))
    workspace.row(target, workspace.script("c.sql", "CREATE TABLE third_never (id INT);\n"))
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 1, result.text
    tables = target.tables()
    assert "first_ok" in tables and "second_partial" in tables
    assert "after_error" not in tables, "the client must stop at the first error"
    assert "third_never" not in tables
    assert "[2/3] failed" in result.out and "[3/3]" not in result.out
    assert "syntax" in result.out.lower()  # the server's error text is shown
    assert "1 applied, 1 failed, 1 not run" in result.out


def test_unexpected_stderr_fails_the_script(workspace: Workspace, target: Target, run_tool) -> None:
    script = "CREATE TABLE before_noise (id INT);\n" + target.stderr_line("something-unexpected")
    workspace.row(target, workspace.script("noise.sql", script))
    workspace.row(target, workspace.script("next.sql", "CREATE TABLE next_never (id INT);\n"))
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 1, result.text
    assert "unexpected lines on stderr" in result.out and "something-unexpected" in result.out
    assert "next_never" not in target.tables()


def test_large_output_on_both_streams_does_not_deadlock(workspace: Workspace, target: Target, run_tool) -> None:
    if target.engine == "mysql":
        # ~3 MB of result rows on stdout and 3000 warnings (each printed by --show-warnings).
        script = ("SELECT REPEAT('x', 200) FROM information_schema.columns a, information_schema.columns b "
                  "LIMIT 15000;\n" + "SELECT 1/0;\n" * 3000)
    else:
        script = ("SELECT repeat('x', 200) FROM generate_series(1, 15000);\n"
                  "DO $$ BEGIN FOR i IN 1..20000 LOOP RAISE NOTICE '%', repeat('n', 150); END LOOP; END $$;\n")
    workspace.row(target, workspace.script("big.sql", script + "CREATE TABLE after_big (id INT);\n"))
    result = run_tool("-f", str(workspace.write()), timeout=120)
    assert result.code == 0, result.text[-2000:]
    assert "after_big" in target.tables()
    assert "more lines" in result.out  # the report shows a bounded number of warnings


def test_runners_share_nothing_but_the_manifest(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("r1.sql", "CREATE TABLE via_runner_one (id INT);\n"), runner=1)
    workspace.row(target, workspace.script("r2.sql", "CREATE TABLE via_runner_two (id INT);\n"), runner=2)
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 0, result.text
    assert {"via_runner_one", "via_runner_two"} <= target.tables()
    assert "2 runner(s)" in result.out


def test_key_file_authentication(workspace: Workspace, target: Target, run_tool, info) -> None:
    workspace.row(target, workspace.script("k.sql", "CREATE TABLE via_key (id INT);\n"),
                  sql_runner_password="", sql_runner_key_file=info.runner_key_file)
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 0, result.text
    assert "via_key" in target.tables()


def test_local_transport(workspace: Workspace, target: Target, run_tool, info) -> None:
    # The controller reaches the servers on loopback; the client runs right here, without SSH.
    workspace.row(target, workspace.script("l.sql", "CREATE TABLE via_local (id INT);\n"), database_host="127.0.0.1")
    header = [*HEADER, "transport"]
    workspace.rows[-1]["transport"] = "local"
    result = run_tool("-f", str(workspace.write(header=header)))
    assert result.code == 0, result.text
    assert "via_local" in target.tables()


@pytest.mark.parametrize("bad", ["unknown_engine", "missing_script", "bad_port", "duplicate", "unknown_column"])
def test_bad_manifest_runs_nothing_anywhere(workspace: Workspace, target: Target, run_tool, bad: str) -> None:
    """The first row is valid and would create a table: nothing may run when any row is bad."""
    workspace.row(target, workspace.script("good.sql", "CREATE TABLE must_not_exist (id INT);\n"))
    header = None
    if bad == "unknown_engine":
        workspace.row(target, "good.sql", database_type="Informix")
    elif bad == "missing_script":
        workspace.row(target, "absent.sql")
    elif bad == "bad_port":
        workspace.row(target, "good.sql", port="5432x")
    elif bad == "duplicate":
        workspace.rows.append(dict(workspace.rows[0]))
    else:
        header = [*HEADER, "colour"]
    result = run_tool("-f", str(workspace.write(header=header)))
    assert result.code == 2, result.text
    assert "nothing was run" in result.err
    assert "line" in result.err and ("column" in result.err or bad == "duplicate")
    assert "must_not_exist" not in target.tables()


def test_validate_checks_without_connecting(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("v.sql", "CREATE TABLE not_by_validate (id INT);\n"),
                  sql_runner_host="no-such-runner.invalid")  # never resolves: any connection attempt would fail
    path = workspace.write()
    result = run_tool("validate", "-f", str(path), known_hosts=False, timeout=20)
    assert result.code == 0, result.text
    assert "manifest is valid" in result.out
    workspace.row(target, "missing.sql")
    assert run_tool("validate", "-f", str(workspace.write()), known_hosts=False).code == 2


def test_one_ssh_connection_per_runner_for_the_whole_run(workspace: Workspace, target: Target, run_tool,
                                                         rig) -> None:
    for n in range(4):
        workspace.row(target, workspace.script(f"s{n}.sql", "SELECT 1;\n"), runner=2)
    log = rig.layout.sshd_log(2)
    before = log.read_text(errors="replace").count("Accepted password")
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 0, result.text
    assert log.read_text(errors="replace").count("Accepted password") - before == 1


def test_agent_authentication_when_neither_password_nor_key(workspace: Workspace, target: Target, run_tool,
                                                            info, tmp_path) -> None:
    sock = tmp_path / "agent.sock"
    agent = subprocess.Popen(["ssh-agent", "-D", "-a", str(sock)], stdout=subprocess.DEVNULL)
    try:
        env = {"SSH_AUTH_SOCK": str(sock)}
        for _ in range(50):
            if sock.exists():
                break
            time.sleep(0.05)
        subprocess.run(["ssh-add", "-q", info.runner_key_file], env={**os.environ, **env},
                       check=True, capture_output=True)
        workspace.row(target, workspace.script("a.sql", "CREATE TABLE via_agent (id INT);\n"),
                      sql_runner_password="")
        result = run_tool("-f", str(workspace.write()), env=env)
        assert result.code == 0, result.text
        assert "via_agent" in target.tables()
    finally:
        agent.terminate()
        agent.wait()


def test_blank_scripts_are_no_ops_recorded_as_applied(workspace: Workspace, target: Target, run_tool) -> None:
    """Real histories hold blank files (a change for another engine only): applied as no-ops, recorded, and
    the next run applies nothing."""
    workspace.row(target, workspace.script("01_create.sql", "CREATE TABLE kept (id INT);\n"))
    workspace.row(target, workspace.script("02_other_engine.sql", ""))
    workspace.row(target, workspace.script("03_spaces.sql", "\n   \n\t\n"))
    workspace.row(target, workspace.script("04_insert.sql", "INSERT INTO kept (id) VALUES (4);\n"))
    manifest = str(workspace.write())
    result = run_tool("-f", manifest)
    assert result.code == 0, result.text
    assert "2 blank script(s)" in result.out and "4 applied" in result.out
    assert target.rows("SELECT id FROM kept") == [["4"]]
    history = target.rows("SELECT script, status FROM dbupdater_history ORDER BY id")
    assert history == [["01_create.sql", "success"], ["02_other_engine.sql", "success"],
                       ["03_spaces.sql", "success"], ["04_insert.sql", "success"]]
    again = run_tool("-f", manifest)
    assert again.code == 0, again.text
    assert "4 skipped" in again.out or "already applied" in again.out
    assert len(target.rows("SELECT script FROM dbupdater_history")) == 4
    strict = run_tool("-f", manifest, "--strict")
    assert strict.code == 2 and "--strict refuses blank scripts" in strict.err

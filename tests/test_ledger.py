"""The ledger on the real rig: once-only, drift, crash safety, locking, plan, status, resolve, baseline."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from dbupdater.execution import liveness

from .conftest import HEADER, ROOT, Target, Workspace


def history(target: Target) -> list[list[str]]:
    return target.rows("SELECT script, status FROM dbupdater_history ORDER BY id")


def start(workspace: Workspace, info, *args: str, name: str = "manifest.csv",  # type: ignore[no-untyped-def]
          env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    argv = [sys.executable, str(ROOT / "remote_database_updater.py"), "-f", str(workspace.dir / name),
            "--known-hosts", info.known_hosts, "--color", "never", *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, **(env or {})})


def wait_for(predicate, timeout: float = 30, what: str = "condition") -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def client_pids(database: str) -> list[int]:
    """Native clients (on the runners: same PID space) running a *script* (not a ledger query) on one database."""
    pattern = f"(--show-warnings .*--database={database}$|dbname='{database}' .*-f \\S+/[0-9]{{5}}-)"
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


@pytest.mark.parametrize("change", ["crlf", "bom"])
def test_line_endings_and_bom_are_not_drift(workspace: Workspace, target: Target, run_tool, change: str) -> None:
    name = workspace.script("001.sql", "CREATE TABLE le (id INT);\nINSERT INTO le VALUES (1);\n")
    workspace.row(target, name)
    assert run_tool("-f", str(workspace.write())).code == 0
    path = workspace.dir / name
    data = path.read_bytes()
    path.write_bytes(data.replace(b"\n", b"\r\n") if change == "crlf" else b"\xef\xbb\xbf" + data)
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 0, result.text
    assert "1 skipped" in result.out


def test_repeatable_rows_rerun_when_changed(workspace: Workspace, target: Target, run_tool) -> None:
    header = [*HEADER, "repeatable"]
    workspace.row(target, workspace.script("view.sql", "CREATE TABLE rep (v INT);\nINSERT INTO rep VALUES (1);\n"),
                  repeatable="yes")
    assert run_tool("-f", str(workspace.write(header=header))).code == 0
    assert "1 skipped" in run_tool("-f", str(workspace.write(header=header))).out
    workspace.script("view.sql", "DROP TABLE rep;\nCREATE TABLE rep (v INT);\nINSERT INTO rep VALUES (2);\n")
    result = run_tool("-f", str(workspace.write(header=header)))
    assert result.code == 0, result.text
    assert target.rows("SELECT v FROM rep") == [["2"]]


def test_killed_client_leaves_target_in_doubt_until_resolved(workspace: Workspace, target: Target, run_tool,
                                                              info) -> None:
    workspace.row(target, workspace.script("slow.sql", target.sleep(30) + "\nCREATE TABLE after_sleep (id INT);\n"))
    workspace.row(target, workspace.script("next.sql", "CREATE TABLE next_one (id INT);\n"))
    workspace.write()
    proc = start(workspace, info)
    wait_for(lambda: client_pids(target.name), what="the client to start")
    time.sleep(0.5)
    for pid in client_pids(target.name):
        os.kill(pid, signal.SIGKILL)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode in (1, 3), out
    assert "after_sleep" not in target.tables()
    assert history(target) == [["slow.sql", "failed"]], out

    refused = run_tool("-f", str(workspace.dir / "manifest.csv"))
    assert refused.code == 5, refused.text
    assert "in doubt" in refused.out and "partially applied" in refused.out and "resolve" in refused.out
    assert "next_one" not in target.tables()

    plan = run_tool("plan", "-f", str(workspace.dir / "manifest.csv"))
    assert plan.code == 5 and "in doubt" in plan.out

    resolved = run_tool("resolve", "-f", str(workspace.dir / "manifest.csv"), "--script", "slow.sql",
                        "--mark", "applied")
    assert resolved.code == 0, resolved.text
    after = run_tool("-f", str(workspace.dir / "manifest.csv"))
    assert after.code == 0, after.text
    assert "next_one" in target.tables() and "after_sleep" not in target.tables()  # marked applied: not re-run


def test_resolve_with_nothing_in_doubt_is_a_usage_error(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("ok.sql", "SELECT 1;\n"))
    path = workspace.write()
    assert run_tool("-f", str(path)).code == 0
    result = run_tool("resolve", "-f", str(path), "--all", "--mark", "applied")
    assert result.code == 2 and "no script in doubt" in result.err


def test_concurrent_runs_never_both_apply(workspace: Workspace, target: Target, info) -> None:
    workspace.row(target, workspace.script("count.sql", "CREATE TABLE IF NOT EXISTS hits (id INT);\n"
                                           + target.sleep(2) + "\nINSERT INTO hits VALUES (1);\n"))
    workspace.write()
    first = start(workspace, info)
    wait_for(lambda: client_pids(target.name), what="the first run's client")
    second = start(workspace, info, "--lock-timeout", "60")
    out1, _ = first.communicate(timeout=90)
    out2, _ = second.communicate(timeout=90)
    assert first.returncode == 0, out1
    assert second.returncode == 0, out2
    assert "waiting for the lock" in out2 and "skipped" in out2
    assert target.rows("SELECT COUNT(*) FROM hits") == [["1"]]


def test_lock_wait_times_out_naming_the_holder(workspace: Workspace, target: Target, info) -> None:
    workspace.row(target, workspace.script("slow.sql", target.sleep(6) + "\n"))
    workspace.write()
    first = start(workspace, info)
    wait_for(lambda: client_pids(target.name), what="the first run's client")
    second = start(workspace, info, "--lock-timeout", "1")
    out2, _ = second.communicate(timeout=60)
    first.communicate(timeout=60)
    assert second.returncode == 5, out2
    assert f"pid {first.pid}" in out2 and "locked by run" in out2 and "gave up after 1s" in out2


@pytest.mark.parametrize("proof", [True, False], ids=["same-machine", "lease-only"])
def test_lock_of_a_killed_run_is_taken_over_after_its_lease(workspace: Workspace, target: Target, info, rig,
                                                             run_tool, proof: bool) -> None:
    # The killed run holds two databases' locks; it dies while working on the first. The second database
    # must become usable without anybody cleaning up by hand: at once when this machine can prove the holder
    # is dead (its liveness file is nobody's), else once the lease runs out (a run of another machine).
    other = target.sibling(f"{target.name}_b")
    try:
        workspace.row(target, workspace.script("slow.sql", target.sleep(20) + "\n"))
        workspace.row(target, workspace.script("b.sql", "CREATE TABLE taken_over (id INT);\n"), database=other.name)
        workspace.write("both.csv")
        victim = start(workspace, info, "--lock-lease", "8", "--parallel", "1", name="both.csv")
        wait_for(lambda: client_pids(target.name), what="the victim's client")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        workspace.rows = workspace.rows[1:]
        path = workspace.write("b_only.csv")
        if not proof:  # as a run of another machine would see it: no liveness file to prove anything
            for tombstone in liveness.folder().glob("*.alive"):
                tombstone.unlink()
        started = time.monotonic()
        result = run_tool("-f", str(path), "--lock-timeout", "30", "--lock-lease", "3")
        assert result.code == 0, result.text
        assert f"pid {victim.pid}" in result.text  # it said whose lock it waited for or took over
        assert ("took over the lock" in result.text) is proof
        assert time.monotonic() - started < (8 if proof else 20)
    finally:
        other.drop()


def test_plan_reports_unreachable_database(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("001.sql", "SELECT 1;\n"), database_password="wrong")
    assert run_tool("plan", "-f", str(workspace.write())).code == 3


def test_status_matches_history_tables(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE st (id INT);\n"))
    workspace.row(target, workspace.script("002.sql", "SELEC broken;\n"))
    workspace.row(target, workspace.script("003.sql", "SELECT 1;\n"))
    path = workspace.write()
    assert run_tool("-f", str(path)).code == 1
    result = run_tool("status", "-f", str(path), "--output", "json")
    assert result.code == 0, result.text
    document = json.loads(result.out)
    (label,) = document["targets"]
    matrix = {script: cells[label] for script, cells in document["matrix"].items()}
    assert matrix == {"001.sql": "success", "002.sql": "failed", "003.sql": None}
    assert {script: status for script, status in history(target)} == {"001.sql": "success", "002.sql": "failed"}
    table = run_tool("status", "-f", str(path))
    assert "001.sql" in table.out and "success" in table.out and "failed" in table.out


def test_baseline_adopts_an_existing_database(workspace: Workspace, target: Target, run_tool) -> None:
    target.query("CREATE TABLE legacy (id INT)")
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE legacy (id INT);\n"))
    workspace.row(target, workspace.script("002.sql", "CREATE TABLE newer (id INT);\n"))
    path = workspace.write()
    result = run_tool("baseline", "-f", str(path), "--up-to", "001.sql")
    assert result.code == 0, result.text
    applied = run_tool("-f", str(path))
    assert applied.code == 0, applied.text
    assert "1 applied" in applied.out and "1 skipped" in applied.out
    assert "newer" in target.tables()


def test_history_in_another_schema(workspace: Workspace, target: Target, run_tool, rig) -> None:
    schema = f"{target.name}_meta"
    if target.engine == "mysql":
        rig.create_mysql_database(schema)
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE elsewhere (id INT);\n"))
    path = workspace.write()
    try:
        assert run_tool("-f", str(path), "--history-schema", schema).code == 0
        assert "dbupdater_history" not in target.tables()
        again = run_tool("-f", str(path), "--history-schema", schema)
        assert "1 skipped" in again.out
    finally:
        if target.engine == "mysql":
            rig.drop_mysql_database(schema)


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_single_transaction_failure_leaves_nothing_and_needs_no_resolve(workspace: Workspace, target: Target,
                                                                         run_tool) -> None:
    header = [*HEADER, "single_transaction"]
    name = workspace.script("tx.sql", "CREATE TABLE tx_part (id INT);\nSELEC broken;\n")
    workspace.row(target, name, single_transaction="yes")
    path = workspace.write(header=header)
    failed = run_tool("-f", str(path))
    assert failed.code == 1 and "rolled back" in failed.out
    assert "tx_part" not in target.tables()
    workspace.script(name, "CREATE TABLE tx_part (id INT);\n")
    fixed = run_tool("-f", str(path))
    assert fixed.code == 0, fixed.text
    assert [row[1] for row in history(target)] == ["rolled_back", "success"]


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_single_transaction_is_refused_for_mysql(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("tx.sql", "SELECT 1;\n"), single_transaction="yes")
    result = run_tool("-f", str(workspace.write(header=[*HEADER, "single_transaction"])))
    assert result.code == 2 and "commits DDL implicitly" in result.err



def _client_sessions(target: Target) -> int:
    """Logins to the target's database so far, counting this query's own (MySQL: the whole server, which the
    suite uses one test at a time)."""
    if target.engine == "mysql":
        return int(target.rows("SHOW GLOBAL STATUS LIKE 'Connections'")[0][1])
    return int(target.rows(f"SELECT sessions FROM pg_stat_database WHERE datname = '{target.name}'")[0][0])


def test_running_row_rides_in_the_script_session_and_leaves_it_as_found(workspace: Workspace, target: Target,
                                                                         run_tool) -> None:
    running = "(SELECT COUNT(*) FROM dbupdater_history WHERE script = 'probe.sql' AND status = 'running')"
    if target.engine == "mysql":
        probe = (f"CREATE TABLE seen AS SELECT @@session.time_zone AS tz, @dbupdater_tz IS NULL AS unset, "
                 f"{running} AS running_rows;\n")
        expected = [[target.rows("SELECT @@global.time_zone")[0][0], "1", "1"]]
    else:
        probe = (f"CREATE TABLE seen AS SELECT current_setting('client_min_messages') AS cmm, "
                 f"{running} AS running_rows;\n")
        expected = [["notice", "1"]]
    workspace.row(target, workspace.script("first.sql", "CREATE TABLE first_one (id INT);\n"))
    workspace.row(target, workspace.script("probe.sql", probe))
    path = workspace.write()
    before = _client_sessions(target)
    result = run_tool("-f", str(path))
    after = _client_sessions(target)
    assert result.code == 0, result.text
    # The `running` row was committed in the script's own session before it started, and the session was
    # left as the client opens it: the server's time zone, no variable of ours, default message level.
    assert target.rows("SELECT * FROM seen") == expected
    assert history(target) == [["first.sql", "success"], ["probe.sql", "success"]]
    # One client login per script, plus one to lock and read the history and one to record and unlock.
    assert after - before - 1 == 2 + 2, result.text  # - 1: the query that counts


def test_ledger_failure_in_the_script_session_means_not_started(workspace: Workspace, target: Target,
                                                                 run_tool) -> None:
    if target.engine == "mysql":  # a subquery of two rows as a value: error 1242 for boom.sql's `running` row
        trigger = ("CREATE TRIGGER reject_boom BEFORE INSERT ON dbupdater_history FOR EACH ROW "
                   "SET NEW.status = IF(NEW.script = 'boom.sql', (SELECT 1 UNION SELECT 2), NEW.status);\n")
        drop = "DROP TRIGGER reject_boom"
    else:
        trigger = ("CREATE FUNCTION reject_boom() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                   "IF NEW.script = 'boom.sql' THEN RAISE EXCEPTION 'no running row for boom'; END IF; "
                   "RETURN NEW; END $$;\n"
                   "CREATE TRIGGER reject_boom BEFORE INSERT ON dbupdater_history "
                   "FOR EACH ROW EXECUTE FUNCTION reject_boom();\n")
        drop = "DROP TRIGGER reject_boom ON dbupdater_history"
    workspace.row(target, workspace.script("trigger.sql", trigger))
    workspace.row(target, workspace.script("boom.sql", "CREATE TABLE boom_ran (id INT);\n"))
    path = workspace.write()
    result = run_tool("-f", str(path))
    assert result.code == 3, result.text
    assert "not started" in result.out, result.out
    assert "boom_ran" not in target.tables()
    # The first script's success (sent along with the failed insert) is recorded by the unlock call.
    assert history(target) == [["trigger.sql", "success"]]
    target.query(drop)
    again = run_tool("-f", str(path))
    assert again.code == 0, again.text
    assert "boom_ran" in target.tables()
    assert history(target) == [["trigger.sql", "success"], ["boom.sql", "success"]]


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_history_survives_a_server_without_autocommit(workspace: Workspace, target: Target, run_tool) -> None:
    """Some shops run MySQL with autocommit off for every session; the ledger's writes must still commit."""
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE one (id INT);\n"))
    workspace.row(target, workspace.script("002.sql", "INSERT INTO one VALUES (1);\nCOMMIT;\n"))
    path = workspace.write()
    target.query("SET GLOBAL autocommit = 0")
    try:
        result = run_tool("-f", str(path))
        assert result.code == 0, result.text
        assert history(target) == [["001.sql", "success"], ["002.sql", "success"]]
        again = run_tool("-f", str(path))
        assert again.code == 0 and "2 skipped" in again.out, again.text
        assert target.rows("SELECT COUNT(*) FROM one") == [["1"]]
    finally:
        target.query("SET GLOBAL autocommit = 1")

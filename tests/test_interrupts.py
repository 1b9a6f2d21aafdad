"""Ctrl-C and SIGTERM sent to a real run: wait, then cancel on the servers, then leave; the history stays true."""

from __future__ import annotations

import signal
import subprocess
import time

import pytest

from .adversarial.support import private_dirs
from .conftest import Target, Workspace
from .test_ledger import client_pids, history, start, wait_for


def sleeping_statements(target: Target) -> int:
    """Statements of a script still executing on the server (the tests' sleep), whoever's client sent them."""
    if target.engine == "mysql":
        sql = "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(%'"
    else:
        sql = "SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(%'"
    return int(target.rows(sql)[0][0])


def slow_then_next(workspace: Workspace, target: Target, seconds: float) -> None:
    slow = target.sleep(seconds) + "\nCREATE TABLE after_sleep (id INT);\n"
    workspace.row(target, workspace.script("slow.sql", slow))
    workspace.row(target, workspace.script("next.sql", "CREATE TABLE next_one (id INT);\n"))
    workspace.write()


def running_slow(target: Target) -> bool:
    try:
        return ["slow.sql", "running"] in history(target) and sleeping_statements(target) == 1
    except Exception:  # the history table is not there yet
        return False



def finish(proc: subprocess.Popen[str], timeout: float) -> str:
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        raise AssertionError(f"the run did not end within {timeout}s:\n{out}") from None
    return out


@pytest.mark.parametrize("mode", [[], ["--parallel", "1"]], ids=["parallel", "sequential"])
def test_first_ctrl_c_lets_the_running_script_finish_and_starts_nothing_new(workspace: Workspace, target: Target,
                                                                           info, mode: list[str]) -> None:
    slow_then_next(workspace, target, 2)
    proc = start(workspace, info, *mode)
    wait_for(lambda: running_slow(target), what="slow.sql to run")
    proc.send_signal(signal.SIGINT)
    out = finish(proc, 60)
    assert proc.returncode == 130, out
    assert "starting nothing new" in out and "after an interrupt" in out, out
    assert history(target) == [["slow.sql", "success"]], out
    assert "after_sleep" in target.tables() and "next_one" not in target.tables()
    assert "1 not run" in out, out


@pytest.mark.parametrize("mode", [[], ["--parallel", "1"]], ids=["parallel", "sequential"])
def test_second_ctrl_c_cancels_the_statement_on_the_server(workspace: Workspace, target: Target, info, run_tool,
                                                           mode: list[str]) -> None:
    slow_then_next(workspace, target, 60)
    proc = start(workspace, info, *mode)
    wait_for(lambda: running_slow(target), what="slow.sql to run")
    proc.send_signal(signal.SIGINT)
    time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out = finish(proc, 30)  # far less than the script's 60 s: the statement was cancelled
    assert proc.returncode == 130, out
    assert "cancelling 1 running script" in out and "cancelled on the server" in out, out
    assert sleeping_statements(target) == 0
    assert client_pids(target.name) == []
    assert "after_sleep" not in target.tables() and "next_one" not in target.tables()
    # Recorded as failed: the next run does not guess, it asks for a resolve.
    assert history(target) == [["slow.sql", "failed"]], out
    again = run_tool("-f", str(workspace.dir / "manifest.csv"))
    assert again.code == 5 and "in doubt" in again.out, again.text


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_sigterm_cancels_and_leaves_within_seconds(workspace: Workspace, target: Target, info) -> None:
    slow_then_next(workspace, target, 60)
    before = private_dirs()
    proc = start(workspace, info)
    wait_for(lambda: running_slow(target), what="slow.sql to run")
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out = finish(proc, 30)
    assert time.monotonic() - sent < 20, out  # generous: the point is "not the script's 60 s"
    assert proc.returncode == 130, out
    assert "cancelling 1 running script" in out, out
    assert sleeping_statements(target) == 0 and client_pids(target.name) == []
    assert history(target) == [["slow.sql", "failed"]], out
    assert private_dirs() <= before  # the credentials file went with the run's private directory
    assert target.rows("SELECT COUNT(*) FROM dbupdater_lock")[0][0] == "0"  # released on the way out

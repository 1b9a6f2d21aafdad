"""Issue 24's defects in what users trust the tool for, each pinned on the real rig, on MariaDB and PostgreSQL:

- a run paused (SIGSTOP) past its lease while another run takes the lock never starts another script: it
  notices before its next one, records only what it did, and says so (exit 5, LOCK LOST);
- a lock is not taken over while a script of the run that held it still runs in a database session: after
  kill -9 of that run (its client orphaned on the runner), and when its liveness file was forged;
- two names of one database in one manifest are refused before anything runs (exit 2, naming the lines);
- a script timeout stops the client's whole process group (a shell escape, a client ignoring SIGINT) and
  records `failed` only when the server shows the session gone.

The races are made deterministic by SIGSTOP/SIGCONT and by waiting on what the database says (the lease has
ended, the session is gone), not by sleeps alone; each runs DBU_TRUST_ROUNDS times per engine (default 3).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from dbupdater.execution import liveness

from ..conftest import Target, Workspace
from ..test_ledger import client_pids, start, wait_for
from . import tally
from .support import effect_script, effects, latest, locks, until

ROUNDS = int(os.environ.get("DBU_TRUST_ROUNDS", "3"))
MARKS = "trust_marks"


def successes(target: Target) -> dict[str, int]:
    rows = target.rows("SELECT script, COUNT(*) FROM dbupdater_history WHERE status = 'success' GROUP BY script")
    return {script: int(count) for script, count in rows}


def lease_over(target: Target) -> bool:
    now = "NOW(3)" if target.engine == "mysql" else "clock_timestamp()"
    return target.rows(f"SELECT COUNT(*) FROM dbupdater_lock WHERE name = 'deploy' AND expires_at < {now}") == [["1"]]


def marked(target: Target, what: str, sleep: float = 0) -> str:
    """SQL that sleeps, then notes `what` with the server's time: when a script's work ended. The sleep prints
    nothing: an orphaned client writing a result to its gone SSH channel would die of SIGPIPE (psql flushes
    each result; mysql --batch buffers them) before the note."""
    column = "TIMESTAMP(3) DEFAULT CURRENT_TIMESTAMP(3)"
    quiet = f"DO SLEEP({sleep});" if target.engine == "mysql" else f"DO $$ BEGIN PERFORM pg_sleep({sleep}); END $$;"
    return (f"CREATE TABLE IF NOT EXISTS {MARKS} (what VARCHAR(40), at_ {column});\n"
            + (quiet + "\n" if sleep else "") + f"INSERT INTO {MARKS} (what) VALUES ('{what}');\n")


def marks(target: Target) -> list[str]:
    return [row[0] for row in target.rows(f"SELECT what FROM {MARKS} ORDER BY at_, what")]


def alive_file(pid_run: str) -> Path:
    return liveness.folder() / f"{pid_run}.alive"


def running_run_id(target: Target) -> str:
    return target.rows("SELECT run_id FROM dbupdater_lock WHERE name = 'deploy'")[0][0]


@pytest.mark.parametrize("round_", range(ROUNDS))
def test_a_run_paused_past_its_lease_never_applies_a_script_twice(workspace: Workspace, target: Target, info,
                                                                  run_tool, round_: int) -> None:
    workspace.script("s1.sql", effect_script(target, "s1.sql", sleep=3))
    workspace.script("s2.sql", effect_script(target, "s2.sql"))
    workspace.row(target, "s1.sql")
    workspace.row(target, "s2.sql")
    workspace.write("a.csv")
    workspace.rows = workspace.rows[1:]
    b_manifest = workspace.write("b.csv")
    a = start(workspace, info, "--lock-lease", "2", "--parallel", "1", name="a.csv")
    try:
        wait_for(lambda: client_pids(target.name), what="A's client running s1")
        a.send_signal(signal.SIGSTOP)  # a VM pause, a laptop lid, a debugger: A's client goes on on the runner
        wait_for(lambda: lease_over(target), what="A's lease to end")
        wait_for(lambda: not client_pids(target.name), what="s1's client to end")
        b = run_tool("-f", str(b_manifest), "--lock-lease", "3", "--lock-timeout", "30")
        assert b.code == 0 and "1 applied" in b.out, b.text
    finally:
        a.send_signal(signal.SIGCONT)
    out, _ = a.communicate(timeout=60)
    tally.add("fencing races")
    assert a.returncode == 5, out
    assert "LOCK LOST" in out, out
    assert effects(target) == {"s1.sql": 1, "s2.sql": 1}
    # s1 ran once and is recorded by A, which ran it; s2 only by B.
    assert successes(target) == {"s1.sql": 1, "s2.sql": 1}, target.rows("SELECT * FROM dbupdater_history")
    assert latest(target) == {"s1.sql": "success", "s2.sql": "success"}
    assert locks(target) == 0


@pytest.mark.parametrize("round_", range(ROUNDS))
@pytest.mark.parametrize("how", ["killed", "forged-liveness"])
def test_no_take_over_while_a_script_of_the_holder_still_runs(workspace: Workspace, target: Target, info, run_tool,
                                                              how: str, round_: int) -> None:
    workspace.script("s1.sql", marked(target, "s1 ended", sleep=5))
    workspace.script("s3.sql", marked(target, "s3"))
    workspace.row(target, "s1.sql")
    workspace.write("a.csv")
    workspace.rows = []
    workspace.row(target, "s3.sql")
    b_manifest = workspace.write("b.csv")
    # A long lease: only the proof that A's work is over may let B in early.
    a = start(workspace, info, "--lock-lease", "120", name="a.csv")
    try:
        wait_for(lambda: client_pids(target.name), what="A's client running s1")
        run_id = running_run_id(target)
        if how == "killed":
            a.send_signal(signal.SIGKILL)
            a.wait(timeout=10)
            # The client goes on running s1 on the runner (unless it died with its SSH session: then B may
            # take over at once).
            orphaned = not until(lambda: not client_pids(target.name), timeout=1.5)
        else:  # A lives (stopped), but its liveness file was removed and made again: no flock on the new one
            a.send_signal(signal.SIGSTOP)
            alive_file(run_id).unlink()
            alive_file(run_id).touch(mode=0o600)
            orphaned = True
        assert not orphaned or client_pids(target.name), "s1's client must still run when B starts"
        started = time.monotonic()
        b = run_tool("-f", str(b_manifest), "--lock-lease", "3", "--lock-timeout", "60")
        took = time.monotonic() - started
    finally:
        if how != "killed":
            a.send_signal(signal.SIGCONT)
            a.communicate(timeout=60)
    tally.add("fencing races")
    assert b.code == 0 and "1 applied" in b.out, b.text
    if orphaned:
        assert marks(target) == ["s1 ended", "s3"], "B ran s3 while A's script was still running"
    else:
        assert marks(target) == ["s3"], marks(target)
    assert took < 60, "B waited for the lease instead of the end of A's script"
    if how == "killed":
        assert latest(target)["s1.sql"] == "running"  # in doubt: nobody saw it end


def alias(host: str) -> str:
    """The same address written another way (inet_aton reads 01 as 1): a DNS alias, a VIP or a node name in
    life, 127.0.0.1 and localhost on one machine."""
    network, last = host.rsplit(".", 1)
    return f"{network}.0{last}"


@pytest.mark.parametrize("command", ["apply --parallel 1", "apply --parallel 4", "plan", "status"])
def test_two_names_of_one_database_are_refused_before_anything_runs(workspace: Workspace, target: Target,
                                                                    run_tool, command: str) -> None:
    workspace.script("s1.sql", effect_script(target, "s1.sql"))
    workspace.row(target, "s1.sql")
    workspace.row(target, "s1.sql", database_host=alias(target.host))
    result = run_tool(*command.split(), "-f", str(workspace.write()))
    tally.add("fencing races")
    assert result.code == 2, result.text
    assert "are one database" in result.err and "line 2" in result.err and "line 3" in result.err, result.err
    assert effects(target) == {}
    assert "dbupdater_history" not in target.tables() or successes(target) == {}
    assert locks(target) == 0


def escape(target: Target, command: str) -> str:
    return f"\\! {command}\n"


# `sleep 6.25`: an odd figure no other process sleeps; the test waits until it would have ended (7.25 s in)
@pytest.mark.parametrize("shell_escape", ["sleep 6.25", "trap '' INT TERM; sleep 45"], ids=["sleep", "ignores-signals"])
def test_a_timeout_stops_the_whole_client_and_records_failed_once_the_session_is_gone(
        workspace: Workspace, target: Target, run_tool, shell_escape: str) -> None:
    text = ("CREATE TABLE before_escape (id INT);\n" + escape(target, shell_escape)
            + "CREATE TABLE after_escape (id INT);\n")
    workspace.row(target, workspace.script("slow.sql", text))
    path = workspace.write()
    started = time.monotonic()
    result = run_tool("-f", str(path), "--script-timeout", "2")
    took = time.monotonic() - started
    tally.add("timeouts enforced")
    assert result.code == 1, result.text
    assert "timed out after 2 s" in result.out and "has ended" in result.out, result.text
    assert took < 20, f"{took:.1f}s: the timeout was not enforced"
    sleeper = subprocess.run(["pgrep", "-f", r"sleep (6\.25|45)$"], capture_output=True, text=True).stdout.split()
    assert not sleeper, "the shell escape's process outlived the timeout"
    if "trap" not in shell_escape:  # past the end of the escape's sleep: nothing after it may have run
        time.sleep(max(0.0, 7.25 - took))
    assert "after_escape" not in target.tables()
    assert "before_escape" in target.tables()
    assert latest(target) == {"slow.sql": "failed"}


def test_a_timed_out_statement_still_running_on_the_server_is_ended_there(workspace: Workspace, target: Target,
                                                                          run_tool) -> None:
    workspace.row(target, workspace.script("slow.sql", target.sleep(60) + "\n"))
    started = time.monotonic()
    result = run_tool("-f", str(workspace.write()), "--script-timeout", "2")
    tally.add("timeouts enforced")
    assert result.code == 1 and "has ended" in result.out, result.text
    assert time.monotonic() - started < 20
    sessions = ("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE INFO LIKE 'SELECT SLEEP(60)%'"
                if target.engine == "mysql" else
                "SELECT COUNT(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep(60)%'")
    assert target.rows(sessions) == [["0"]]
    assert latest(target) == {"slow.sql": "failed"}

"""Faults: a runner that goes away mid-script is reported truthfully, and the next run works again."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from .conftest import ROOT, Target, Workspace


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_runner_lost_mid_script_exits_3(workspace: Workspace, target: Target, rig, info, run_tool) -> None:
    workspace.row(target, workspace.script("slow.sql", target.sleep(30) + "\n"), runner=2)
    workspace.row(target, workspace.script("after.sql", "CREATE TABLE after_loss (id INT);\n"), runner=2)
    argv = [sys.executable, str(ROOT / "remote_database_updater.py"), "-f", str(workspace.write()),
            "--known-hosts", info.known_hosts, "--color", "never"]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(3)
        rig.stop_runner(2)
        out, _ = proc.communicate(timeout=60)
    finally:
        rig.start_runner(2)
    assert proc.returncode == 3, out
    assert "may be partially applied" in out
    assert "[2/2]" not in out and "after_loss" not in target.tables()
    assert time.monotonic() - started < 25, "the loss should be noticed long before the script would end"
    workspace.rows = workspace.rows[1:]  # the runner is back: the rest of the work goes through
    began = time.monotonic()
    again = run_tool("-f", str(workspace.write("again.csv")))
    assert again.code == 0, again.text
    assert "after_loss" in target.tables()
    # The lost run's lock is still in the table (nothing could reach the database to release it), but that run
    # is provably gone (its liveness file on this machine is nobody's): taken over at once. Before: the next run
    # waited out the lease, about 55 s.
    assert "took over the lock" in again.text
    assert time.monotonic() - began < 20, "the next run waited for the dead run's lease"


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_a_runner_cut_off_before_connecting_is_a_named_connect_timeout(workspace: Workspace, target: Target,
                                                                        info, run_tool) -> None:  # type: ignore[no-untyped-def]
    """Its cable is cut (the host end of its veth down): the connection attempt gets no answer at all. Before:
    "runner ... unreachable: timed out", naming neither the limit nor the option that sets it."""
    from .adversarial.test_faults import _link

    workspace.row(target, workspace.script("001.sql", "CREATE TABLE never (id INT);\n"), runner=2)
    began = time.monotonic()
    _link(info, 2, "down")
    try:
        result = run_tool("-f", str(workspace.write()), "--connect-timeout", "2")
    finally:
        _link(info, 2, "up")
    assert result.code == 3, result.text
    assert "unreachable: no TCP connection within 2 s (--connect-timeout)" in result.text
    assert time.monotonic() - began < 15 and "never" not in target.tables()

"""Faults injected into real runs on the rig, each checked for its exit code, a truthful history, no leftovers
and a correct next run (support.py). Two scripts per run: the first records its effect and sleeps (the fault
lands then), the second must not run after a fault that stops the run.

By default each fault runs on one engine; `DBU_ADVERSARIAL_FULL=1` runs each on both, and adds the faults that
cost a client's whole connect timeout (a database frozen before the client connects).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ..conftest import Target, Workspace
from ..test_hardening import _freeze_runner_sessions
from ..test_ledger import client_pids, start, wait_for
from ..test_vault import ref
from . import tally
from .support import (
    assert_no_leftovers,
    assert_truthful,
    effect_script,
    effects,
    latest,
    locks,
    private_dirs,
    settle,
    until,
)

FULL = os.environ.get("DBU_ADVERSARIAL_FULL") == "1"
SCRIPTS = ["001.sql", "002.sql"]


def engines(default: str) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("target", ["mysql", "postgresql"] if FULL else [default], indirect=True)


@dataclass
class Ran:
    code: int
    out: str
    took: float  # from the fault to the end of the run


def two_scripts(workspace: Workspace, target: Target, sleep: float = 8, runner: int = 1,
                **overrides: str) -> Path:
    workspace.row(target, workspace.script("001.sql", effect_script(target, "001.sql", sleep)), runner, **overrides)
    workspace.row(target, workspace.script("002.sql", effect_script(target, "002.sql")), runner, **overrides)
    return workspace.write()


def first_script_running(target: Target) -> bool:
    try:
        return bool(client_pids(target.name)) and effects(target)["001.sql"] == 1
    except Exception:  # the tables are not there yet
        return False


Inject = Callable[[subprocess.Popen[str]], None]


def run_with_fault(workspace: Workspace, target: Target, info, fault: str, inject: Inject,  # type: ignore[no-untyped-def]
                   *args: str, env: dict[str, str] | None = None, timeout: float = 60, when_running: bool = True,
                   ) -> Ran:
    """Start the run, inject the fault once the first script is running (or at once), wait for the end."""
    proc = start(workspace, info, "--lock-lease", "3", *args, env=env)
    try:
        if when_running:
            wait_for(lambda: proc.poll() is not None or first_script_running(target), timeout=30,
                     what="the first script to run")
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.5)
        inject(proc)
        tally.fault(fault)
        began = time.monotonic()
        out, _ = proc.communicate(timeout=timeout)
        return Ran(proc.returncode, out, time.monotonic() - began)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def assert_stopped_after_first(target: Target, ran: Ran) -> None:
    """The fault hit 001: it is in doubt or failed (never `success` unless its effect is there), 002 never ran."""
    history = assert_truthful(target, SCRIPTS)
    assert "002.sql" not in history and effects(target)["002.sql"] == 0, (history, ran.out)
    assert history.get("001.sql") != "success", (history, ran.out)


def kill(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def kill_clients(target: Target) -> None:
    kill(client_pids(target.name), signal.SIGKILL)


# --- the runner -------------------------------------------------------------------------------------------


@engines("mysql")
def test_runner_sshd_killed(workspace: Workspace, target: Target, rig, info, run_tool) -> None:  # type: ignore[no-untyped-def]
    manifest = two_scripts(workspace, target, runner=2)
    before = private_dirs()
    try:
        ran = run_with_fault(workspace, target, info, "runner sshd killed", lambda _: rig.stop_runner(2))
    finally:
        rig.start_runner(2)
    assert ran.code == 3, ran.out
    assert ("may be partially applied" in ran.out or "unreachable" in ran.out) and ran.took < 20, ran
    assert_stopped_after_first(target, ran)
    assert_no_leftovers(target, before, lost_runner=True, lock=True)
    settle(target, run_tool, manifest, SCRIPTS)


@engines("postgresql")
def test_runner_frozen(workspace: Workspace, target: Target, info, run_tool) -> None:  # type: ignore[no-untyped-def]
    manifest = two_scripts(workspace, target)
    before = private_dirs()
    try:
        ran = run_with_fault(workspace, target, info, "runner frozen (SIGSTOP)",
                             lambda _: _freeze_runner_sessions(signal.SIGSTOP) and None, "--ssh-alive-interval", "1")
    finally:
        _freeze_runner_sessions(signal.SIGCONT)
    assert ran.code == 3, ran.out
    assert "did not answer for 3s" in ran.out and ran.took < 15, ran
    assert_stopped_after_first(target, ran)
    kill_clients(target)  # the thawed session's client would sleep on; the run has long given up on it
    assert_no_leftovers(target, before, lost_runner=True, lock=True)
    settle(target, run_tool, manifest, SCRIPTS)


def _link(info, index: int, state: str) -> None:  # type: ignore[no-untyped-def]
    """The host end of runner ``index``'s cable: down is a network cut, the runner's own state untouched."""
    runner = info.runners[index - 1]
    if not runner.netns:
        pytest.skip("the rig runs in loopback mode: no link to cut")
    veth = f"{runner.netns.rsplit('-r', 1)[0]}-r{index}h"
    subprocess.run(["ip", "link", "set", veth, state], check=True)


# The README's promise: a runner that stops answering is given up ALIVE_COUNT (3) intervals after its last answer.
ALIVE_INTERVAL = 5
PROMISED = 3 * ALIVE_INTERVAL


@engines("mysql")
def test_network_link_cut(workspace: Workspace, target: Target, info, run_tool) -> None:  # type: ignore[no-untyped-def]
    """The run ends within the promised time (15 s at --ssh-alive-interval 5) plus slack for leaving; it took
    30 s (and 61 to 75 s at the default 15, promised 45) when each keepalive was waited for before the next."""
    manifest = two_scripts(workspace, target, sleep=PROMISED * 2)
    before = private_dirs()
    try:
        ran = run_with_fault(workspace, target, info, "network link cut", lambda _: _link(info, 1, "down"),
                             "--ssh-alive-interval", str(ALIVE_INTERVAL))
    finally:
        _link(info, 1, "up")
    assert ran.code == 3, ran.out
    assert f"did not answer for {PROMISED}s" in ran.out, ran
    assert ran.took < PROMISED * 1.3, f"the run ended {ran.took:.1f} s after the cut; promised {PROMISED} s"
    assert_stopped_after_first(target, ran)
    kill_clients(target)
    assert_no_leftovers(target, before, lost_runner=True, lock=True)
    settle(target, run_tool, manifest, SCRIPTS)


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a tarpit, or a hung sshd)."""
    server = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def hold() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            with contextlib.suppress(OSError):
                held.append(server.accept()[0])

    thread = threading.Thread(target=hold, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in [*held, server]:
        conn.close()


@engines("mysql")
def test_runner_port_that_never_answers(workspace: Workspace, target: Target, info, run_tool,  # type: ignore[no-untyped-def]
                                        silent_port: int) -> None:
    two_scripts(workspace, target, sleep=0, sql_runner_host="127.0.0.1", sql_runner_port=str(silent_port))
    before = private_dirs()
    ran = run_with_fault(workspace, target, info, "port accepts and never answers", lambda _: None,
                         "--connect-timeout", "2", when_running=False, timeout=30)
    assert ran.code == 3, ran.out
    assert ran.took < 12, ran
    assert latest(target) == {} and effects(target) == {}, "nothing may run when a runner cannot be used"
    assert_no_leftovers(target, before)
    workspace.rows.clear()
    settle(target, run_tool, two_scripts(workspace, target, sleep=0), SCRIPTS)


# --- the database ------------------------------------------------------------------------------------------


def _server_pids(rig, target: Target) -> list[int]:  # type: ignore[no-untyped-def]
    info = rig.info()
    server = rig._mariadb(info) if target.engine == "mysql" else rig._postgres(info)
    return server.leftover_pids()  # type: ignore[no-any-return]


@engines("mysql")
def test_database_killed_mid_script(workspace: Workspace, target: Target, rig, info, run_tool) -> None:  # type: ignore[no-untyped-def]
    manifest = two_scripts(workspace, target)
    before = private_dirs()
    try:
        ran = run_with_fault(workspace, target, info, "database killed mid-script",
                             lambda _: kill(_server_pids(rig, target), signal.SIGKILL))
    finally:
        rig.up()  # restarts the server (crash recovery)
    assert ran.code == 3, ran.out
    assert_stopped_after_first(target, ran)
    assert_no_leftovers(target, before, lock=True)  # the release could not reach the database; its lease ends
    settle(target, run_tool, manifest, SCRIPTS)


@engines("postgresql")
def test_database_frozen_mid_script_then_sigterm(workspace: Workspace, target: Target, rig, info, run_tool) -> None:  # type: ignore[no-untyped-def]
    """A frozen server never answers the statement: nothing but the operator can end the run, and SIGTERM
    must do it within its bound (3 s to cancel, 2 s to leave)."""
    manifest = two_scripts(workspace, target, sleep=20)
    before = private_dirs()
    pids = _server_pids(rig, target)

    def freeze_then_terminate(proc: subprocess.Popen[str]) -> None:
        kill(pids, signal.SIGSTOP)
        time.sleep(1)
        proc.send_signal(signal.SIGTERM)

    try:
        ran = run_with_fault(workspace, target, info, "database frozen mid-script", freeze_then_terminate,
                             timeout=30)
    finally:
        kill(pids, signal.SIGCONT)
    assert ran.code == 130, ran.out
    assert ran.took < 1 + 3 + 2 + 3, ran
    kill_clients(target)
    assert_stopped_after_first(target, ran)
    settle(target, run_tool, manifest, SCRIPTS)
    # Before: the release (a client call to the frozen server) used up the leave grace, and the runner's
    # private directory with its credentials files stayed behind on a healthy runner.
    assert_no_leftovers(target, before, lock=True)


@engines("mysql")
def test_database_down_before_connect(workspace: Workspace, target: Target, rig, info, run_tool) -> None:  # type: ignore[no-untyped-def]
    manifest = two_scripts(workspace, target, sleep=0)
    before = private_dirs()
    kill(_server_pids(rig, target), signal.SIGKILL)
    try:
        assert until(lambda: not _server_pids(rig, target), timeout=10)
        ran = run_with_fault(workspace, target, info, "database killed before connect", lambda _: None,
                             when_running=False, timeout=40)
    finally:
        rig.up()
    assert ran.code == 3, ran.out
    assert "cannot connect to or log in" in ran.out, ran.out
    assert latest(target) == {} and effects(target) == {}
    assert_no_leftovers(target, before)
    settle(target, run_tool, manifest, SCRIPTS)


@pytest.mark.skipif(not FULL, reason="costs the client's whole connect timeout (15 s); DBU_ADVERSARIAL_FULL=1")
@pytest.mark.parametrize("target", ["mysql", "postgresql"], indirect=True)
def test_database_frozen_before_connect(workspace: Workspace, target: Target, rig, info, run_tool) -> None:  # type: ignore[no-untyped-def]
    manifest = two_scripts(workspace, target, sleep=0)
    before = private_dirs()
    pids = _server_pids(rig, target)
    kill(pids, signal.SIGSTOP)
    try:
        ran = run_with_fault(workspace, target, info, "database frozen before connect", lambda _: None,
                             when_running=False, timeout=60)
    finally:
        kill(pids, signal.SIGCONT)
    assert ran.code == 3, ran.out
    assert latest(target) == {} and effects(target) == {}
    assert_no_leftovers(target, before)
    settle(target, run_tool, manifest, SCRIPTS)


# --- Vault and the controller ---------------------------------------------------------------------------


@engines("mysql")
def test_vault_killed_mid_run(workspace: Workspace, target: Target, rig, info, run_tool) -> None:  # type: ignore[no-untyped-def]
    from environment_creators.system import find_pids

    secret = "mysql" if target.engine == "mysql" else "postgres"
    manifest = two_scripts(workspace, target, sleep=3, database_password=ref(info, secret, "password"),
                           sql_runner_password=ref(info, "runner", "password"))
    env = rig.vault_env()
    environment = f"adv{target.name[2:]}"
    before = private_dirs()
    needle = re.escape(f"-config={rig.layout.openbao_config}") + "( |$)"
    try:
        ran = run_with_fault(workspace, target, info, "Vault killed mid-run",
                             lambda _: kill(find_pids(needle), signal.SIGKILL), "--environment", environment,
                             env=env)
    finally:
        rig.up()  # restarts and reseeds OpenBao (dev mode keeps nothing)
    assert ran.code == 3, ran.out
    assert "stopped before this script" in ran.out, ran.out
    history = assert_truthful(target, SCRIPTS)
    assert history == {"001.sql": "success"}, (history, ran.out)  # 001 ended well; 002 was not started
    assert_no_leftovers(target, before)
    settle(target, run_tool, manifest, SCRIPTS, env=env)


@engines("postgresql")
def test_controller_killed(workspace: Workspace, target: Target, info, run_tool) -> None:  # type: ignore[no-untyped-def]
    """kill -9 of the controller: its client goes on alone on the runner, its lock stays until the lease
    ends, its private directory stays (for the 24-hour sweep); the next run takes the lock over and refuses
    the script left running."""
    manifest = two_scripts(workspace, target, sleep=3)
    before = private_dirs()
    ran = run_with_fault(workspace, target, info, "controller SIGKILL", lambda proc: proc.kill())
    assert ran.code == -signal.SIGKILL
    assert_stopped_after_first(target, ran)
    assert latest(target)["001.sql"] == "running"
    assert_no_leftovers(target, before, lost_runner=True, lock=True)
    settle(target, run_tool, manifest, SCRIPTS)


# --- what the scripts do ---------------------------------------------------------------------------------


@pytest.fixture
def tiny_tmpdir(info) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    """The runner user's TMPDIR on a 64 KiB tmpfs, set where a real runner's administrator would: the
    login shell's rc file (bash reads ~/.bashrc for commands sshd runs). The rest of /tmp is untouched."""
    import pwd

    home = Path(pwd.getpwnam(info.runner_user).pw_dir)
    mount = Path(f"/tmp/adv-tiny-{info.name}")
    mount.mkdir(exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=1777", "tmpfs", str(mount)], check=True)
    rc = home / ".bashrc"
    saved = rc.read_bytes() if rc.exists() else None
    rc.write_bytes(f"export TMPDIR={mount}\n".encode() + (saved or b""))
    try:
        yield mount
    finally:
        if saved is None:
            rc.unlink()
        else:
            rc.write_bytes(saved)
        subprocess.run(["umount", "-l", str(mount)], check=False)
        with contextlib.suppress(OSError):
            mount.rmdir()


@engines("mysql")
def test_runner_temp_space_full(workspace: Workspace, target: Target, info, run_tool, tiny_tmpdir: Path) -> None:  # type: ignore[no-untyped-def]
    padding = "".join(f"-- padding line {n:06d} to fill the runner's temp space\n" for n in range(4000))
    workspace.row(target, workspace.script("001.sql", effect_script(target, "001.sql") + padding))
    workspace.row(target, workspace.script("002.sql", effect_script(target, "002.sql")))
    manifest = workspace.write()
    ran = run_with_fault(workspace, target, info, "runner temp space full", lambda _: None, when_running=False)
    assert ran.code in (1, 3), ran.out
    assert "No space left on device" in ran.out or "space" in ran.out.lower(), ran.out
    history = assert_truthful(target, SCRIPTS)
    assert history.get("001.sql") != "success" and effects(target)["001.sql"] == 0, (history, ran.out)
    assert list(tiny_tmpdir.iterdir()) == [], "the private directory was left in the full temp space"
    assert locks(target) == 0
    settle_after_tmpfs(target, run_tool, manifest, tiny_tmpdir, info)


def settle_after_tmpfs(target: Target, run_tool, manifest: Path, mount: Path, info) -> None:  # type: ignore[no-untyped-def]
    import pwd

    rc = Path(pwd.getpwnam(info.runner_user).pw_dir) / ".bashrc"
    rc.write_bytes(rc.read_bytes().replace(f"export TMPDIR={mount}\n".encode(), b"", 1))  # space again
    settle(target, run_tool, manifest, SCRIPTS)


@engines("postgresql")
def test_huge_and_unterminated_output(workspace: Workspace, target: Target, info, run_tool) -> None:  # type: ignore[no-untyped-def]
    """300,000 lines (2 MB) on stdout and a last line without its newline: the run succeeds, the controller
    prints a bounded amount, and nothing is lost from the history."""
    noisy = effect_script(target, "001.sql", extra="\\! seq 1 300000\n\\! printf 'the end, no newline'\n")
    workspace.row(target, workspace.script("001.sql", noisy))
    workspace.row(target, workspace.script("002.sql", effect_script(target, "002.sql")))
    manifest = workspace.write()
    before = private_dirs()
    ran = run_with_fault(workspace, target, info, "huge and unterminated output", lambda _: None,
                         when_running=False)
    assert ran.code == 0, ran.out[-3000:]
    assert len(ran.out) < 1_000_000, f"{len(ran.out)} characters of output for 2 MB of client output"
    assert_truthful(target, SCRIPTS)
    assert_no_leftovers(target, before)
    settle(target, run_tool, manifest, SCRIPTS)


STDIN_READERS = {
    "postgresql": "\\! cat\n\\! read line; echo \"read: [$line]\"\n",
    "mysql": "\\! cat\n\\! read line; echo \"read: [$line]\"\n",
}


@engines("postgresql")
def test_scripts_reading_stdin_do_not_hang(workspace: Workspace, target: Target, info, run_tool) -> None:  # type: ignore[no-untyped-def]
    workspace.row(target, workspace.script("001.sql", effect_script(target, "001.sql",
                                                                    extra=STDIN_READERS[target.engine])))
    workspace.row(target, workspace.script("002.sql", effect_script(target, "002.sql")))
    manifest = workspace.write()
    before = private_dirs()
    ran = run_with_fault(workspace, target, info, "script reads stdin", lambda _: None, when_running=False,
                         timeout=30)
    assert ran.code == 0, ran.out
    assert ran.took < 20, ran
    assert_truthful(target, SCRIPTS)
    assert_no_leftovers(target, before)
    settle(target, run_tool, manifest, SCRIPTS)

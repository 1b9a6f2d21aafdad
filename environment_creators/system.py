"""Process, file and prerequisite helpers shared by the rig's pieces.

Daemons are started detached (``setsid -f``) so they are never our children: a pytest process that brings a
rig up and down again must not collect zombies that still answer ``kill -0``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

from .errors import RigError

log = logging.getLogger("environment_creators")

SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# Client-side variables that would silently redirect or authenticate our native clients.
_CLIENT_ENV_PREFIXES = ("PG", "MYSQL_")


def search_path() -> str:
    return os.environ.get("PATH", "") + ":" + SYSTEM_PATH


def which(program: str) -> str | None:
    if "/" in program:
        return program if os.access(program, os.X_OK) else None
    return shutil.which(program, path=search_path())


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Our environment minus PG*/MYSQL_* so only the credential files we name are used."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_CLIENT_ENV_PREFIXES)}
    env["PATH"] = search_path()
    env.update(extra or {})
    return env


def run(cmd: Sequence[str | Path], *, input: str | None = None, env: Mapping[str, str] | None = None,
        check: bool = True, timeout: float = 60, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command whose arguments never hold secrets (they go through stdin or 0600 files)."""
    argv = [str(a) for a in cmd]
    try:
        proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout,
                              env=dict(env) if env is not None else clean_env(), cwd=cwd,
                              stdin=None if input is not None else subprocess.DEVNULL)
    except FileNotFoundError as exc:
        raise RigError(f"{argv[0]}: command not found") from exc
    except subprocess.TimeoutExpired as exc:
        raise RigError(f"{' '.join(argv)} timed out after {timeout:g}s") from exc
    if check and proc.returncode != 0:
        detail = (proc.stderr.strip() or proc.stdout.strip() or "no output")
        raise RigError(f"{' '.join(argv)} failed (exit {proc.returncode}): {detail}")
    return proc


def spawn_detached(cmd: Sequence[str | Path], log_file: Path, *, cwd: Path | None = None) -> None:
    """Start a daemon in its own session, reparented away from us, output appended to ``log_file``."""
    with open(log_file, "ab") as out:
        subprocess.run(["setsid", "-f", *[str(a) for a in cmd]], stdin=subprocess.DEVNULL, stdout=out,
                       stderr=out, env=clean_env(), cwd=cwd, check=True)


# --- processes ---------------------------------------------------------------------------------------------

def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid_alive(pid: int | None) -> bool:
    """True for a live process; zombies count as dead because they will never serve anything again."""
    if not pid or pid <= 0:
        return False
    try:
        data = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = data.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def pid_runs(pid: int | None, needle: str) -> bool:
    """Alive and really ours: a stale pid file (after a reboot) may name an unrelated process."""
    return pid_alive(pid) and needle in cmdline(pid or 0)


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, uid) of a process, or None if it is gone."""
    try:
        ppid = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[1])
        uid = os.stat(f"/proc/{pid}").st_uid
    except (OSError, ValueError, IndexError):
        return None
    return ppid, uid


def all_pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def find_pids(pattern: str) -> list[int]:
    """Processes whose command line matches a regular expression (our own process excluded)."""
    rx = re.compile(pattern)
    me = os.getpid()
    return [pid for pid in all_pids() if pid != me and rx.search(cmdline(pid))]


def descendants(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        st = _proc_stat(pid)
        if st:
            children.setdefault(st[0], []).append(pid)
    found, todo = [], [root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def pids_of_uid(uid: int) -> list[int]:
    return [pid for pid in all_pids() if (st := _proc_stat(pid)) and st[1] == uid]


def terminate(pids: Iterable[int], *, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
    """Signal, wait, then SIGKILL whatever is still there."""
    pending = [p for p in set(pids) if pid_alive(p)]
    for pid in pending:
        _signal(pid, sig)
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        pending = [p for p in pending if pid_alive(p)]
    for pid in pending:
        log.warning("pid %s ignored signal %s; killing it", pid, sig)
        _signal(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while pending and time.monotonic() < deadline:
        time.sleep(0.05)
        pending = [p for p in pending if pid_alive(p)]


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_for(check: Callable[[], bool], *, timeout: float, what: str,
             failed: Callable[[], str | None] | None = None, interval: float = 0.1) -> None:
    """Poll ``check``; ``failed`` may explain early why waiting is pointless (e.g. the daemon died)."""
    deadline = time.monotonic() + timeout
    while True:
        if check():
            return
        if failed and (why := failed()):
            raise RigError(f"{what}: {why}")
        if time.monotonic() >= deadline:
            raise RigError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


# --- network -----------------------------------------------------------------------------------------------

def sshd_answers(host: str, port: int, *, timeout: float = 1.0) -> bool:
    """True when an SSH server greets on host:port.

    The probe answers like a client and closes cleanly, so sshd logs a plain disconnect, not a reset.
    """
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            greeting = sock.recv(256)
            sock.sendall(b"SSH-2.0-dbu-rig-probe\r\n")
            sock.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                while sock.recv(4096):
                    pass
    except OSError:
        return False
    return greeting.startswith(b"SSH-")


def port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


# --- files -------------------------------------------------------------------------------------------------

def make_dir(path: Path, *, mode: int = 0o755, owner: str | None = None) -> None:
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, mode)
    if owner:
        shutil.chown(path, owner, owner)


def write_file(path: Path, text: str, *, mode: int = 0o644, owner: str | None = None) -> None:
    """Create or replace a file with its final mode from the first byte (matters for secrets)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        os.fchmod(handle.fileno(), mode)
        if owner:
            shutil.chown(path, owner, owner)
        handle.write(text)


def ensure_traversable(path: Path) -> list[Path]:
    """Give 'others' search permission on every existing ancestor of ``path``.

    The database daemons and the runner's sshd session read below the rig root as other users; a 0700
    pytest tmp dir or /root would lock them out. Only the x bit is added, nothing becomes listable.
    """
    changed = []
    for directory in [path, *path.parents]:
        if not directory.exists():
            continue
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            os.chmod(directory, stat.S_IMODE(mode) | stat.S_IXOTH)
            changed.append(directory)
    return changed


def sshd_strict_path_ok(path: Path) -> bool:
    """Would sshd's StrictModes accept this file's directories (root-owned, not group/world-writable)?"""
    for directory in path.parents:
        st = directory.stat()
        if st.st_uid != 0 or st.st_mode & 0o022:
            return False
    return True


def remove_tree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"

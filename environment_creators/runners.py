"""Runner hosts: one system user plus one private sshd per runner, each with its own host key.

The runner user is marked in its GECOS field so ``down`` can never delete an account the rig did not
create. Its password is set through chpasswd's stdin; the client key pair has no passphrase.
"""

from __future__ import annotations

import pwd
import re
from collections.abc import Callable
from pathlib import Path

from .errors import RigError
from .info import RunnerInfo
from .layout import Layout
from .system import (
    descendants,
    find_pids,
    log,
    make_dir,
    pid_alive,
    pid_runs,
    pids_of_uid,
    port_free,
    read_pid,
    run,
    sshd_answers,
    sshd_strict_path_ok,
    terminate,
    wait_for,
    write_file,
)

SSHD = "/usr/sbin/sshd"
PRIVSEP_DIR = Path("/run/sshd")


def user_marker(rig_name: str) -> str:
    return f"dbupdater rig {rig_name} runner"


# --- the runner user -------------------------------------------------------------------------------------

def ensure_user(user: str, password: str, rig_name: str) -> None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        log.info("runners: adding system user %s", user)
        run(["useradd", "--create-home", "--home-dir", f"/home/{user}", "--shell", "/bin/bash", "--user-group",
             "--comment", user_marker(rig_name), user])
    else:
        if entry.pw_gecos != user_marker(rig_name):
            raise RigError(f"system user {user} exists but was not created by rig {rig_name!r}; "
                           "remove it or pick another --name")
    run(["chpasswd"], input=f"{user}:{password}\n")


def delete_user(user: str, rig_name: str) -> None:
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return
    if entry.pw_gecos != user_marker(rig_name):
        log.warning("runners: not deleting user %s: it was not created by rig %r", user, rig_name)
        return
    terminate(pids_of_uid(entry.pw_uid), timeout=5)
    run(["userdel", "--remove", user], check=False)
    if user_exists(user):
        raise RigError(f"could not delete system user {user}")


def user_ok(user: str, rig_name: str) -> bool:
    try:
        return pwd.getpwnam(user).pw_gecos == user_marker(rig_name)
    except KeyError:
        return False


def user_exists(user: str) -> bool:
    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True


# --- keys and files --------------------------------------------------------------------------------------

def ensure_client_key(layout: Layout, rig_name: str) -> None:
    make_dir(layout.ssh)
    key = layout.client_key
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"dbupdater-rig-{rig_name}", "-f", key])
    key.chmod(0o600)
    pub = key.with_name(key.name + ".pub").read_text()
    # Root-owned and not group/world-writable so sshd's StrictModes accepts it; world-readable because
    # sshd reads it with the runner user's privileges.
    write_file(layout.authorized_keys, pub, mode=0o644)


def ensure_host_key(layout: Layout, index: int) -> None:
    make_dir(layout.runner_dir(index))
    key = layout.host_key(index)
    if not key.exists():
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"runner{index}", "-f", key])
    key.chmod(0o600)


def write_known_hosts(layout: Layout, runners: list[RunnerInfo]) -> None:
    """OpenSSH format, which paramiko's ``load_host_keys`` reads too (``[host]:port`` unless port 22)."""
    lines = []
    for index, runner in enumerate(runners, start=1):
        key_type, key_b64 = layout.host_key(index).with_suffix(".pub").read_text().split()[:2]
        host = runner.host if runner.port == 22 else f"[{runner.host}]:{runner.port}"
        lines.append(f"{host} {key_type} {key_b64}\n")
    write_file(layout.known_hosts, "".join(lines), mode=0o644)


def write_sshd_config(layout: Layout, index: int, runner: RunnerInfo, user: str) -> None:
    # StrictModes checks every directory above authorized_keys; a rig under /tmp (1777) can never pass,
    # so it is relaxed only there. The files themselves are root-owned 0644 either way.
    strict = "yes" if sshd_strict_path_ok(layout.authorized_keys) else "no"
    make_dir(layout.replay_bin)
    config = f"""\
# written by environment_creators for runner {index}; private to this rig
ListenAddress {runner.host}:{runner.port}
HostKey {layout.host_key(index)}
PidFile {layout.sshd_pid(index)}
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile {layout.authorized_keys}
StrictModes {strict}
AllowUsers {user}
PermitRootLogin no
MaxSessions 100
MaxStartups 100:30:200
LogLevel VERBOSE
PrintMotd no
X11Forwarding no
Subsystem sftp internal-sftp
SetEnv PATH={layout.replay_bin}:/usr/local/bin:/usr/bin:/bin
"""
    write_file(layout.sshd_config(index), config, mode=0o644)


# --- sshd processes --------------------------------------------------------------------------------------

def sshd_pids(layout: Layout, index: int) -> list[int]:
    """The listener (by pid file and by command line) and every session it forked."""
    config = re.escape(str(layout.sshd_config(index)))
    listeners = set(find_pids(rf"sshd.* -f {config}( |$)"))
    if (pid := read_pid(layout.sshd_pid(index))) and pid_runs(pid, str(layout.sshd_config(index))):
        listeners.add(pid)
    alive = [p for p in listeners if pid_alive(p)]
    return alive + [child for p in alive for child in descendants(p)]


def sshd_running(layout: Layout, index: int) -> bool:
    return pid_runs(read_pid(layout.sshd_pid(index)), str(layout.sshd_config(index)))


def start_sshd(layout: Layout, index: int, runner: RunnerInfo, *, timeout: float = 15,
               answers: Callable[[], bool] | None = None) -> None:
    """Start runner ``index``'s sshd unless it runs, and wait until it answers: from here, or as ``answers`` says
    (a runner this machine has no route to is asked from a namespace that has)."""
    make_dir(PRIVSEP_DIR)
    if not sshd_running(layout, index):
        if runner.netns is None and not port_free(runner.host, runner.port):
            raise RigError(f"runner {index}: port {runner.host}:{runner.port} is already in use; pick another "
                           "--base-port")
        prefix = ["ip", "netns", "exec", runner.netns] if runner.netns else []
        config, log_file = layout.sshd_config(index), layout.sshd_log(index)
        run([SSHD, "-t", "-f", config])
        layout.sshd_pid(index).unlink(missing_ok=True)
        log.info("runners: starting sshd %d on %s:%s%s", index, runner.host, runner.port,
                 f" in netns {runner.netns}" if runner.netns else "")
        run([*prefix, SSHD, "-f", config, "-E", log_file])
    wait_for(answers or (lambda: sshd_answers(runner.host, runner.port)), timeout=timeout,
             what=f"sshd of runner {index} on {runner.host}:{runner.port} (log: {layout.sshd_log(index)})")


def stop_sshd(layout: Layout, index: int, *, extra_pids: list[int] | None = None) -> None:
    terminate([*sshd_pids(layout, index), *(extra_pids or [])], timeout=5)
    layout.sshd_pid(index).unlink(missing_ok=True)

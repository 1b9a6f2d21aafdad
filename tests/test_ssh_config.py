"""OpenSSH client configuration and jump hosts.

Offline: how a route is resolved from an ssh_config file (paramiko's reader) and a row's cells, the manifest
winning, OpenSSH's defaults (port 22, the local user) where neither says. On the rig: a runner on another port
reached by an alias whose port, user and key are only in the config (the row's user, port, password and key
cells empty), a row whose key comes from ssh-agent, and (netns mode) a runner whose sshd only the rig's bastion
can reach, used by its alias with the config's key (no password anywhere), one and two hops, the `ssh_jump`
column, a changed or unknown bastion host key refused, and no secret in any process's argv or environment while a
script runs through the bastion.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dbupdater.model.command import Command, Ending
from dbupdater.model.secret import Secret
from dbupdater.model.specs import RunnerSpec
from dbupdater.transports import HostKeyRefused, TransportError, registry

from .conftest import HEADER, ROOT, Target, Workspace, run_sampled, secret_values
from .test_channels import limited_runner  # noqa: F401  (the fixture: a second sshd beside runner 1)


def _config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "ssh_config"
    path.write_text(text, encoding="utf-8")
    return path


# --- resolution, offline -----------------------------------------------------------------------------------

CONFIG = """\
Host db-*
    User deploy
    IdentityFile ~/keys/%h.key
    ConnectTimeout 7
    ServerAliveInterval 4
Host db-one
    HostName 10.9.0.5
    Port 2222
    ProxyJump gate
Host gate
    HostName gate.example.net
    User jumper
    ProxyJump outer:2200
Host outer
    HostName outer.example.net
    HostKeyAlias outer-key
Host loop-a
    ProxyJump loop-b
Host loop-b
    ProxyJump loop-a
"""


def test_an_alias_takes_hostname_user_port_key_and_jumps_from_the_config(tmp_path: Path) -> None:
    from dbupdater.transports.ssh.config import resolve

    route = resolve("db-one", None, "", "", _config(tmp_path, CONFIG))
    assert (route.target.host, route.target.port, route.target.user) == ("10.9.0.5", 2222, "deploy")
    assert route.target.identity_files == (Path("~/keys/10.9.0.5.key").expanduser(),)
    assert (route.connect_timeout, route.alive_interval) == (7.0, 4.0)
    # gate's own ProxyJump goes before it, as `ssh -J gate` would chain it; outer is checked under its alias
    assert [(hop.host, hop.port, hop.user) for hop in route.jumps] == [
        ("outer.example.net", 2200, getpass.getuser()), ("gate.example.net", 22, "jumper")]
    assert route.jumps[0].known_as == "outer-key"  # an alias is looked up as written, port or not (as OpenSSH)
    assert route.target.known_as == "[10.9.0.5]:2222"


def test_the_manifest_wins_over_the_config(tmp_path: Path) -> None:
    from dbupdater.transports.ssh.config import resolve

    config = _config(tmp_path, CONFIG)
    route = resolve("db-one", 2022, "alice", "bob@other:2201", config)
    assert (route.target.port, route.target.user) == (2022, "alice")
    assert [(hop.alias, hop.port, hop.user) for hop in route.jumps] == [("other", 2201, "bob")]
    assert resolve("db-one", None, "alice", "none", config).jumps == ()
    plain = resolve("10.1.2.3", None, "carol", "", config)
    assert (plain.target.host, plain.target.port, plain.jumps, plain.connect_timeout) == ("10.1.2.3", 22, (), None)
    # A row's explicit port 22 is the manifest's and wins over the config's Port, as `ssh -p 22` does.
    assert resolve("db-one", 22, "", "none", config).target.port == 22


def test_what_neither_the_row_nor_the_config_says_is_openssh_default(tmp_path: Path) -> None:
    from dbupdater.transports.ssh.config import resolve

    route = resolve("10.1.2.3", None, "", "", _config(tmp_path, CONFIG))
    assert (route.target.port, route.target.user) == (22, getpass.getuser())
    assert resolve("db-two", None, "", "", Path("none")).target.user == getpass.getuser()


def test_jump_loops_and_unreadable_hops_are_errors(tmp_path: Path) -> None:
    from dbupdater.transports.ssh.config import resolve

    config = _config(tmp_path, CONFIG)
    with pytest.raises(TransportError, match="loop"):
        resolve("loop-a", None, "u", "", config)
    with pytest.raises(TransportError, match="not \\[user@\\]host\\[:port\\]"):
        resolve("db-one", None, "u", "a@b@c", config)
    with pytest.raises(TransportError, match="not a port number"):
        resolve("db-one", None, "u", "gate:99999", config)


def test_no_config_reads_nothing_and_the_option_checks_the_file(tmp_path: Path) -> None:
    from dbupdater.transports.ssh import SSH
    from dbupdater.transports.ssh.config import resolve

    assert resolve("db-one", None, "u", "", Path("none")).target.host == "db-one"
    parser = argparse.ArgumentParser()
    SSH().add_arguments(parser.add_argument_group("runners"))
    with pytest.raises(SystemExit):
        parser.parse_args(["--ssh-config", str(tmp_path / "missing")])
    options = SSH().options(parser.parse_args(["--ssh-config", str(_config(tmp_path, CONFIG)),
                                               "--connect-timeout", "3"]))
    assert options.connect_timeout == 3 and options.alive_interval is None
    assert "ssh_jump" in SSH.columns


# --- on the rig: a runner only the bastion reaches -----------------------------------------------------------

@pytest.fixture
def bastion(rig, info):  # type: ignore[no-untyped-def]
    if info.mode != "netns":
        pytest.skip("the bastion needs netns mode")
    return rig.bastion()


def _rig_config(tmp_path: Path, info, bastion) -> Path:  # type: ignore[no-untyped-def]
    return _config(tmp_path, f"""\
Host hidden
    HostName {bastion.runner.host}
    ProxyJump jumpbox
Host jumpbox
    HostName {bastion.bastion.host}
Host *
    User {info.runner_user}
    IdentityFile {info.runner_key_file}
""")


def _open(host: str, user: str, known_hosts: Path, config: Path, jump: str = "", password: str = ""):  # type: ignore[no-untyped-def]
    from dbupdater.transports.ssh import SSHOptions

    options = (("ssh_jump", jump),) if jump else ()
    spec = RunnerSpec("ssh", host, 22, user, Secret(password) if password else None, options=options)
    return registry.get("ssh").open(spec, SSHOptions(known_hosts, connect_timeout=10, ssh_config=config))


def _came_through_the_bastion(transport, bastion) -> None:  # type: ignore[no-untyped-def]
    """The runner saw the bastion's inner address as its client: the connection came through the bastion."""
    lines: list[str] = []
    try:
        result = transport.run(Command(["sh", "-c", 'echo "$SSH_CONNECTION"']),
                               lambda _stream, line: lines.append(line))
    finally:
        transport.close()
    assert result.ending is Ending.EXITED and result.code == 0
    client, _port, server, _ = lines[0].split()
    assert (client, server) == (bastion.bastion_inner, bastion.runner.host)


def test_a_runner_behind_the_bastion_by_alias_with_the_configs_key(bastion, info, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = _rig_config(tmp_path, info, bastion)
    with pytest.raises(TransportError, match="unreachable"):  # not reachable from here without the bastion
        _open("hidden", "", bastion.known_hosts, config, jump="none").close()
    _came_through_the_bastion(_open("hidden", "", bastion.known_hosts, config), bastion)


def test_two_hops_from_the_ssh_jump_column(bastion, info, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = _rig_config(tmp_path, info, bastion)
    _came_through_the_bastion(_open(bastion.runner.host, info.runner_user, bastion.known_hosts, config,
                                    jump=f"jumpbox,{info.runner_user}@{bastion.bastion_inner}"), bastion)


def test_a_changed_or_unknown_bastion_key_is_refused(bastion, info, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    config = _rig_config(tmp_path, info, bastion)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    forged = (tmp_path / "other.pub").read_text().split()[:2]
    lines = bastion.known_hosts.read_text().splitlines()
    changed = tmp_path / "changed_known_hosts"
    changed.write_text("".join(f"{bastion.bastion.host} {forged[0]} {forged[1]}\n" if line.startswith(
        bastion.bastion.host + " ") else line + "\n" for line in lines))
    with pytest.raises(HostKeyRefused, match=f"HOST KEY MISMATCH for {bastion.bastion.host}.*jump host offered"):
        _open("hidden", "", changed, config)
    unknown = tmp_path / "unknown_known_hosts"
    unknown.write_text("".join(line + "\n" for line in lines if not line.startswith(bastion.bastion.host + " ")))
    with pytest.raises(HostKeyRefused, match=f"host key of {bastion.bastion.host} .* is not in"):
        _open("hidden", "", unknown, config)
    runner_unknown = tmp_path / "runner_unknown"  # the bastion is known, the runner behind it is not
    runner_unknown.write_text("".join(line + "\n" for line in lines if not line.startswith(bastion.runner.host)))
    with pytest.raises(HostKeyRefused, match=f"host key of {bastion.runner.host} "):
        _open("hidden", "", runner_unknown, config)


def test_apply_through_the_bastion_with_no_secret_in_any_process(bastion, workspace: Workspace, target: Target,
                                                                 info, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A whole apply: the row names the alias and leaves password and key empty (the config's key); then a row
    with the runner's password through the bastion, sampled for secrets in every argv and environment."""
    config = _rig_config(tmp_path, info, bastion)
    workspace.row(target, workspace.script("first.sql", "CREATE TABLE through_bastion (id INT);\n"),
                  sql_runner_host="hidden", sql_runner_password="", sql_runner_port="")
    workspace.row(target, workspace.script("slow.sql", target.sleep(3) + "\nCREATE TABLE slept (id INT);\n"),
                  sql_runner_host=bastion.runner.host, sql_runner_port="", ssh_jump="jumpbox")
    manifest = workspace.write(header=[*HEADER, "ssh_jump"])
    argv = [sys.executable, str(ROOT / "remote_database_updater.py"), "-f", str(manifest), "--known-hosts",
            str(bastion.known_hosts), "--ssh-config", str(config), "--color", "never"]
    code, out, clients = run_sampled(argv, secret_values(info),
                                     lambda text: "--defaults-extra-file" in text or "PGPASSFILE" in text)
    assert (code, bool(clients)) == (0, True), out  # clients: samples that caught the native client running
    assert {"through_bastion", "slept"} <= target.tables()


# --- on the rig: user and port only in the config, a key only in the agent --------------------------------------

@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_a_runner_by_alias_with_port_user_and_key_only_in_the_config(workspace: Workspace, target: Target, info,
                                                                    limited_runner, run_tool,  # noqa: F811
                                                                    tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A second sshd beside runner 1, on another port: the rows name only an alias; the config gives HostName,
    Port, User and IdentityFile (the second sshd's log shows the logins, so the port came from the config). The
    second alias has a HostKeyAlias, whose key known_hosts holds under the alias alone, as OpenSSH looks it up."""
    sshd = limited_runner(100)
    config = _config(tmp_path, f"""\
Host db-on-another-port db-by-key-alias
    HostName {sshd.host}
    Port {sshd.port}
    User {info.runner_user}
    IdentityFile {info.runner_key_file}
Host db-by-key-alias
    HostKeyAlias db-key-alias
""")
    (line,) = sshd.known_hosts.read_text().splitlines()
    known = tmp_path / "known_hosts_with_alias"
    known.write_text(f"{line}\ndb-key-alias {line.split(' ', 1)[1]}\n")
    empty = {"sql_runner_userid": "", "sql_runner_port": "", "sql_runner_password": "", "sql_runner_key_file": ""}
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE by_alias (id INT);\n"),
                  sql_runner_host="db-on-another-port", **empty)
    workspace.row(target, workspace.script("002.sql", "CREATE TABLE by_key_alias (id INT);\n"),
                  sql_runner_host="db-by-key-alias", **empty)
    manifest = workspace.write()
    checked = run_tool("validate", "-f", str(manifest), "--ssh-config", str(config), known_hosts=False)
    assert checked.code == 0, checked.text
    result = run_tool("-f", str(manifest), "--known-hosts", str(known), "--ssh-config", str(config),
                      known_hosts=False)
    assert result.code == 0, result.text
    assert {"by_alias", "by_key_alias"} <= target.tables()
    assert sshd.log.read_text(errors="replace").count(f"Accepted publickey for {info.runner_user}") == 2


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_an_empty_password_and_key_take_the_agents_key(workspace: Workspace, target: Target, info, run_tool,
                                                       tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """No config, no key file, no password: the key comes from a real ssh-agent, as OpenSSH's would."""
    socket_path = tmp_path / "agent.sock"
    started = subprocess.run(["ssh-agent", "-s", "-a", str(socket_path)], capture_output=True, text=True, check=True)
    agent_pid = int(re.search(r"SSH_AGENT_PID=(\d+)", started.stdout)[1])  # type: ignore[index]
    try:
        env = {"SSH_AUTH_SOCK": str(socket_path), "HOME": str(tmp_path)}  # no ~/.ssh keys to fall back on
        subprocess.run(["ssh-add", "-q", info.runner_key_file], env={**os.environ, **env}, check=True,
                       capture_output=True)
        workspace.row(target, workspace.script("001.sql", "CREATE TABLE by_agent (id INT);\n"),
                      sql_runner_password="", sql_runner_key_file="")
        result = run_tool("-f", str(workspace.write()), "--ssh-config", "none", env=env)
        assert result.code == 0, result.text
        assert "by_agent" in target.tables()
    finally:
        os.kill(agent_pid, signal.SIGTERM)

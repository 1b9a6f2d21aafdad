"""OpenSSH client configuration and jump hosts.

Offline: how a route is resolved from an ssh_config file (paramiko's reader) and a row's cells, the manifest
winning. On the rig (netns mode): a runner whose sshd only the rig's bastion can reach, used by its alias with
the config's key (no password anywhere), one and two hops, the `ssh_jump` column, a changed or unknown bastion
host key refused, and no secret in any process's argv or environment while a script runs through the bastion.
"""

from __future__ import annotations

import argparse
import getpass
import subprocess
import sys
from pathlib import Path

import pytest

from dbupdater.model.command import Command, Ending
from dbupdater.model.secret import Secret
from dbupdater.model.specs import RunnerSpec
from dbupdater.transports import HostKeyRefused, TransportError, registry

from .conftest import HEADER, ROOT, Target, Workspace, run_sampled, secret_values


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
    assert route.jumps[0].known_as == "[outer-key]:2200"
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

"""SSH runners (paramiko, files with scp): the default transport. Host keys are verified by default, on every
hop.

This module only declares the kind, its options and its manifest column (`ssh_jump`); the connection code, the
OpenSSH configuration reader (config.py), and paramiko with them, load when a run opens its first SSH runner.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...model.specs import DEFAULT_SSH_PORT
from ..registry import TransportKind, register

if TYPE_CHECKING:
    from ...model.specs import RunnerSpec
    from ..base import Transport

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
DEFAULT_CONNECT_TIMEOUT = 15.0
DEFAULT_ALIVE_INTERVAL = 15.0
ALIVE_COUNT = 3  # intervals without an answer that mean the runner is gone (OpenSSH's ServerAliveCountMax)


JUMP_COLUMN = "ssh_jump"


@dataclass(frozen=True)
class SSHOptions:
    """The SSH options of a run. `connect_timeout` and `alive_interval` are None where the command line left them
    to the SSH config (its ConnectTimeout, ServerAliveInterval) or the defaults: `connect_seconds` and
    `alive_seconds` are what applies. `ssh_config` None reads ~/.ssh/config when it exists; `none` reads none."""

    known_hosts: Path
    accept_new_host_keys: bool = False
    connect_timeout: float | None = None
    alive_interval: float | None = None
    ssh_config: Path | None = None
    session_loop: bool = True  # persistent sessions (session.py); False: a channel per command

    @property
    def connect_seconds(self) -> float:
        return self.connect_timeout if self.connect_timeout is not None else DEFAULT_CONNECT_TIMEOUT

    @property
    def alive_seconds(self) -> float:
        return self.alive_interval if self.alive_interval is not None else DEFAULT_ALIVE_INTERVAL


def _config_file(text: str) -> Path:
    """`--ssh-config`: a readable regular file, or `none` (read no configuration, as OpenSSH's `-F none`)."""
    if text == "none":
        return Path(text)
    path = Path(text).expanduser()
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such file")
    return path


class SSH(TransportKind):
    name = "ssh"
    display = "SSH"
    default = True
    default_port = DEFAULT_SSH_PORT
    login_from_config = True  # an empty user or port cell: the SSH config's User / Port, else OpenSSH's defaults
    # Jump hosts for a row, as OpenSSH's ProxyJump / `ssh -J`: `[user@]host[:port]`, several separated by commas,
    # each looked up in the SSH config; `none` connects directly even where the config names a ProxyJump.
    columns = (JUMP_COLUMN,)

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--known-hosts", type=Path, default=Path(DEFAULT_KNOWN_HOSTS).expanduser(),
                           metavar="FILE", help="known_hosts file to verify runner host keys (default: %(default)s)")
        group.add_argument("--accept-new-host-keys", action="store_true",
                           help="trust and record host keys of runners not yet in known_hosts (trust on first "
                                "use); a changed key is still refused")
        group.add_argument("--connect-timeout", type=float, default=None, metavar="SECONDS",
                           help="SSH connect and authentication timeout (default: the SSH config's ConnectTimeout, "
                                f"else {DEFAULT_CONNECT_TIMEOUT:g})")
        group.add_argument("--ssh-alive-interval", type=float, default=None, metavar="SECONDS",
                           help="ask each runner to answer this often; when it has not answered for 3 intervals, it "
                                "counts as gone, even when its kernel still acknowledges TCP (a frozen host) "
                                f"(default: the SSH config's ServerAliveInterval, else {DEFAULT_ALIVE_INTERVAL:g})")
        group.add_argument("--ssh-config", type=_config_file, default=None, metavar="FILE",
                           help="OpenSSH client configuration for Host aliases, HostName, User, Port, IdentityFile, "
                                "ProxyJump, HostKeyAlias, ServerAliveInterval and ConnectTimeout; the manifest's "
                                "cells win over it ('none' reads none; default: ~/.ssh/config when it exists)")
        group.add_argument("--no-session-loop", action="store_true",
                           help="run every command on an SSH channel of its own instead of in a persistent session "
                                "per runner slot (a small shell loop on the runner; slower)")

    def options(self, args: argparse.Namespace) -> SSHOptions:
        known_hosts = getattr(args, "known_hosts", None) or Path(DEFAULT_KNOWN_HOSTS)
        return SSHOptions(Path(known_hosts).expanduser(), getattr(args, "accept_new_host_keys", False),
                          getattr(args, "connect_timeout", None), getattr(args, "ssh_alive_interval", None),
                          getattr(args, "ssh_config", None), not getattr(args, "no_session_loop", False))

    def open(self, spec: RunnerSpec, options: Any) -> Transport:
        from .config import resolve
        from .connection import SSHTransport

        password = spec.password.reveal() if spec.password else None
        key_data = spec.key_data.reveal() if spec.key_data else None
        given = options if isinstance(options, SSHOptions) else SSHOptions(Path(DEFAULT_KNOWN_HOSTS).expanduser())
        # Port 0 and user "": the row left them empty, for the config (or OpenSSH's defaults) to decide.
        route = resolve(spec.host, spec.port or None, spec.user, spec.option(JUMP_COLUMN), given.ssh_config)
        effective = replace(given, connect_timeout=given.connect_timeout if given.connect_timeout is not None
                            else route.connect_timeout, alive_interval=given.alive_interval
                            if given.alive_interval is not None else route.alive_interval)
        return SSHTransport(route, password, spec.key_file, effective, key_data)


register(SSH())

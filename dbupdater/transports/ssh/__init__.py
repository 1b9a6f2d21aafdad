"""SSH runners (paramiko, files with scp): the default transport. Host keys are verified by default.

This module only declares the kind and its options; the connection code, and paramiko with it, loads when
a run opens its first SSH runner.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
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


@dataclass(frozen=True)
class SSHOptions:
    known_hosts: Path
    accept_new_host_keys: bool = False
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    alive_interval: float = DEFAULT_ALIVE_INTERVAL


class SSH(TransportKind):
    name = "ssh"
    display = "SSH"
    default = True
    default_port = DEFAULT_SSH_PORT

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--known-hosts", type=Path, default=Path(DEFAULT_KNOWN_HOSTS).expanduser(),
                           metavar="FILE", help="known_hosts file to verify runner host keys (default: %(default)s)")
        group.add_argument("--accept-new-host-keys", action="store_true",
                           help="trust and record host keys of runners not yet in known_hosts (trust on first "
                                "use); a changed key is still refused")
        group.add_argument("--connect-timeout", type=float, default=DEFAULT_CONNECT_TIMEOUT, metavar="SECONDS",
                           help="SSH connect and authentication timeout (default: %(default)s)")
        group.add_argument("--ssh-alive-interval", type=float, default=DEFAULT_ALIVE_INTERVAL, metavar="SECONDS",
                           help="ask each runner to answer this often; when it has not answered for 3 intervals, it "
                                "counts as gone, even when its kernel still acknowledges TCP (a frozen host) "
                                "(default: %(default)s)")

    def options(self, args: argparse.Namespace) -> SSHOptions:
        known_hosts = getattr(args, "known_hosts", None) or Path(DEFAULT_KNOWN_HOSTS)
        return SSHOptions(Path(known_hosts).expanduser(), getattr(args, "accept_new_host_keys", False),
                          getattr(args, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
                          getattr(args, "ssh_alive_interval", DEFAULT_ALIVE_INTERVAL))

    def open(self, spec: RunnerSpec, options: Any) -> Transport:
        from .connection import SSHTransport

        password = spec.password.reveal() if spec.password else None
        key_data = spec.key_data.reveal() if spec.key_data else None
        given = options if isinstance(options, SSHOptions) else SSHOptions(Path(DEFAULT_KNOWN_HOSTS).expanduser())
        return SSHTransport(spec.host, spec.port, spec.user, password, spec.key_file, given, key_data)


register(SSH())

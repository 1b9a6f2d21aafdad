"""Where an SSH runner is and how to get there, the way the user's OpenSSH would: ~/.ssh/config (or
`--ssh-config FILE`) read by paramiko's own `SSHConfig`, then the manifest's cells on top.

What is honoured: Host aliases and HostName, User, Port, IdentityFile, ProxyJump (one or more hops, each hop
looked up in the config too; the first hop's own ProxyJump applies, as OpenSSH's `ssh -J` chains do),
HostKeyAlias (the name checked in known_hosts), ServerAliveInterval and ConnectTimeout. Everything else in the
file is ignored. Precedence, as OpenSSH's command line over its config: the manifest's cells (host, user, port,
password or key, `ssh_jump`) and the tool's own options win; the config fills what they leave open, and
OpenSSH's defaults what both leave open (port 22, the local user).
"""

from __future__ import annotations

import getpass
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..base import TransportError, without_module

with without_module("invoke"):  # only `Match exec` needs it: refused with its reason below
    import paramiko

DEFAULT_CONFIG = "~/.ssh/config"
NO_CONFIG = "none"  # OpenSSH's `-F none`: read no file
MAX_HOPS = 8  # a ProxyJump chain longer than this is a loop in the config
_HOP = re.compile(r"(?:ssh://)?(?:(?P<user>[^@/]+)@)?(?P<host>\[[^\]]+\]|[^:@/\[\]]+)(?::(?P<port>\d+))?/?")
_cache: dict[tuple[str, int, int], paramiko.SSHConfig] = {}
_cache_lock = threading.Lock()


@dataclass(frozen=True)
class Endpoint:
    """One SSH server on the way: what is written (alias), what is connected to, and as whom."""

    alias: str
    host: str  # HostName: where the TCP connection (or the previous hop's forwarding) goes
    port: int
    user: str
    identity_files: tuple[Path, ...] = ()
    host_key_alias: str = ""  # the name its host key is looked up under, when not host[:port]

    @property
    def known_as(self) -> str:
        """The name known_hosts holds it under, as OpenSSH looks it up: a HostKeyAlias as it is written, whatever
        the port (sshconnect.c takes the alias alone); else the host, `[host]:port` unless port 22."""
        if self.host_key_alias:
            return self.host_key_alias
        return self.host if self.port == 22 else f"[{self.host}]:{self.port}"

    @property
    def label(self) -> str:
        port = "" if self.port == 22 else f":{self.port}"
        return f"{self.user}@{self.alias}{port}" if self.user else f"{self.alias}{port}"


@dataclass(frozen=True)
class Route:
    """The runner and the jump hosts before it, in the order they are connected."""

    target: Endpoint
    jumps: tuple[Endpoint, ...] = ()
    connect_timeout: float | None = None  # the config's ConnectTimeout, when it sets one
    alive_interval: float | None = None  # the config's ServerAliveInterval

    @property
    def via(self) -> str:
        return " via " + ", ".join(hop.label for hop in self.jumps) if self.jumps else ""


def config_path(given: Path | None) -> Path | None:
    """The file to read: the one given, else ~/.ssh/config when it exists; None for `none`."""
    if given is not None:
        return None if str(given) == NO_CONFIG else given.expanduser()
    default = Path(DEFAULT_CONFIG).expanduser()
    return default if default.is_file() else None


def load(path: Path | None) -> paramiko.SSHConfig:
    """The parsed file, once per run and file version (rows share it)."""
    if path is None:
        return paramiko.SSHConfig()
    try:
        status = path.stat()
        key = (str(path), status.st_mtime_ns, status.st_size)
        with _cache_lock:
            if key not in _cache:
                _cache[key] = paramiko.SSHConfig.from_path(str(path))
            return _cache[key]
    except OSError as exc:
        raise TransportError(f"cannot read the SSH config {path}: {exc.strerror or exc}") from None
    except Exception as exc:  # paramiko's parser: ConfigParseError and what its helpers raise
        raise TransportError(f"cannot read the SSH config {path}: {exc}") from None


def _lookup(config: paramiko.SSHConfig, alias: str, path: Path | None) -> dict[str, Any]:
    try:
        return dict(config.lookup(alias))
    except ImportError:
        raise TransportError(f"the SSH config {path} has a `Match exec` line that applies to {alias}: running "
                             "commands from it is not supported") from None
    except Exception as exc:  # CouldNotCanonicalize, ConfigParseError
        raise TransportError(f"the SSH config {path} cannot be applied to {alias}: {exc}") from None


def _seconds(value: Any, name: str, path: Path | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise TransportError(f"the SSH config {path}: {name} {value!r} is not a number of seconds") from None
    return seconds if seconds > 0 else None


def _port(value: Any, where: str) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        port = 0
    if not 1 <= port <= 65535:
        raise TransportError(f"{where}: port {value!r} is not a port number")
    return port


def _endpoint(config: paramiko.SSHConfig, path: Path | None, alias: str, user: str, port: int | None,
              fallback_user: str) -> tuple[Endpoint, dict[str, Any]]:
    found = _lookup(config, alias, path)
    files = tuple(Path(os.path.expanduser(name)) for name in found.get("identityfile", []))
    chosen_port = port if port is not None else _port(found.get("port", 22), f"the SSH config {path} for {alias}")
    return Endpoint(alias, str(found.get("hostname") or alias), chosen_port,
                    user or str(found.get("user") or "") or fallback_user, files,
                    str(found.get("hostkeyalias") or "")), found


def parse_jumps(text: str) -> list[tuple[str, str, int | None]]:
    """A ProxyJump value (or an `ssh_jump` cell): `[user@]host[:port]` hops separated by commas, or `none`."""
    hops: list[tuple[str, str, int | None]] = []
    if text.strip().lower() == NO_CONFIG:
        return hops
    for part in text.split(","):
        match = _HOP.fullmatch(part.strip())
        if not match:
            raise TransportError(f"jump host {part.strip()!r} is not [user@]host[:port]")
        port = match["port"]
        hops.append((match["user"] or "", match["host"].strip("[]"),
                     _port(port, f"jump host {part.strip()!r}") if port else None))
    return hops


def _chain(config: paramiko.SSHConfig, path: Path | None, hops: list[tuple[str, str, int | None]],
           depth: int = 0) -> tuple[Endpoint, ...]:
    """The hops, each looked up in the config; the first one's own ProxyJump goes before it. A hop without a
    user anywhere logs in as the local user, as OpenSSH's does."""
    if not hops:
        return ()
    if depth + len(hops) > MAX_HOPS:
        raise TransportError(f"more than {MAX_HOPS} jump hosts: the SSH config {path}'s ProxyJump lines loop")
    endpoints = []
    first_jump = ""
    for index, (user, host, port) in enumerate(hops):
        endpoint, found = _endpoint(config, path, host, user, port, getpass.getuser())
        endpoints.append(endpoint)
        if index == 0:
            first_jump = str(found.get("proxyjump") or "")
    before = _chain(config, path, parse_jumps(first_jump), depth + len(hops)) if first_jump else ()
    return (*before, *endpoints)


def resolve(host: str, port: int | None, user: str, jump: str, given: Path | None) -> Route:
    """The route to a runner: `port` None and `user` '' when the row leaves them to the config (else OpenSSH's
    defaults: 22 and the local user), `jump` the row's `ssh_jump` cell ('' to take the config's ProxyJump,
    `none` for a direct connection)."""
    path = config_path(given)
    config = load(path)
    target, found = _endpoint(config, path, host, user, port, getpass.getuser())
    jumps_text = jump or str(found.get("proxyjump") or "")
    jumps = _chain(config, path, parse_jumps(jumps_text)) if jumps_text else ()
    route = Route(target, jumps, _seconds(found.get("connecttimeout"), "ConnectTimeout", path),
                  _seconds(found.get("serveraliveinterval"), "ServerAliveInterval", path))
    if route.jumps:
        logging.getLogger("dbupdater").debug("runner %s: %s%s", host, target.known_as, route.via)
    return route

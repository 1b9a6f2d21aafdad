"""What a running rig looks like, as saved in ``<root>/rig.json``.

Plain strings and ints only, so the file is the single source of truth between processes (the CLI that
brought the rig up, the pytest session that uses it, the shell scripts). Passwords and the OpenBao root
token live here and nowhere else except 0600 credential files (and OpenBao itself); every ``repr`` masks
them and ``to_dict(passwords=False)`` drops them, so they never land in logs or printed info.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Literal

Mode = Literal["netns", "loopback"]
MASK = "********"
# Field names whose values are secrets: masked in repr, dropped from printed info.
SECRET_SUFFIXES = ("password", "token")


def is_secret_field(name: str) -> bool:
    return name.endswith(SECRET_SUFFIXES)


def _masked_repr(obj: object) -> str:
    parts = []
    for f in fields(obj):  # type: ignore[arg-type]
        value = getattr(obj, f.name)
        shown = (MASK if value else "''") if is_secret_field(f.name) else repr(value)
        parts.append(f"{f.name}={shown}")
    return f"{type(obj).__name__}({', '.join(parts)})"


def _without_secrets(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_secrets(v) for k, v in value.items() if not is_secret_field(k)}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


@dataclass(kw_only=True, repr=False)
class DbInfo:
    """How to reach one database server from the machine running the rig."""

    host: str = "127.0.0.1"
    port: int
    admin_user: str
    admin_password: str
    app_user: str
    app_password: str

    __repr__ = _masked_repr


@dataclass
class RunnerInfo:
    """One runner host: where its sshd listens and, in netns mode, which namespace it lives in."""

    name: str
    host: str
    port: int
    netns: str | None = None


@dataclass(repr=False)
class RigInfo:
    """Everything a client needs to use the rig."""

    name: str
    root: str
    mode: Mode
    known_hosts: str
    runner_user: str
    runner_password: str
    runner_key_file: str
    runners: list[RunnerInfo]
    db_host_for_runners: str
    mysql: DbInfo
    postgres: DbInfo
    # OpenBao (dev mode, in memory). Defaults keep a rig.json from before OpenBao joined the rig loadable;
    # ``up`` fills them in. Secrets live at <kv mount>/<vault_prefix>/{runner,mysql,postgres}.
    vault_addr: str = ""
    vault_token: str = ""  # the root token; also in vault_token_file (0600) for shell scripts
    vault_token_file: str = ""
    vault_role_id: str = ""  # AppRole role "vault_role" at auth/approle; secret_ids are made per use
    vault_role: str = ""
    vault_policy: str = ""
    vault_prefix: str = ""
    vault_kv2_mount: str = ""
    vault_kv1_mount: str = ""
    replay_bin: str = ""  # first on the runners' PATH: replay clients (sqlplus, sqlcmd) go here in tests

    __repr__ = _masked_repr

    def to_dict(self, *, passwords: bool = True) -> dict[str, Any]:
        """Every field; ``passwords=False`` drops passwords and tokens (for anything printed)."""
        data = asdict(self)
        return data if passwords else _without_secrets(data)

    def to_json(self, *, passwords: bool = True) -> str:
        return json.dumps(self.to_dict(passwords=passwords), indent=2) + "\n"

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RigInfo:
        values = dict(data)
        values["runners"] = [RunnerInfo(**r) for r in data.get("runners", [])]
        values["mysql"] = DbInfo(**data["mysql"])
        values["postgres"] = DbInfo(**data["postgres"])
        return cls(**values)

    def save(self, path: Path) -> None:
        """Write atomically with mode 0600: the file holds every rig password and the OpenBao token."""
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            os.fchmod(handle.fileno(), 0o600)
            handle.write(self.to_json())
        os.replace(tmp, path)

    @classmethod
    def load(cls, path: Path) -> RigInfo:
        return cls.from_dict(json.loads(path.read_text()))

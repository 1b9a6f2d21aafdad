"""The benchmark's rig plus the private files every approach needs (option files, a work folder).

Secrets live only in 0600 files: a ``[client]`` option file for the runner user (floor), one for the controller
(Ansible copies it, sqitch's mysql reads it as ``~/.my.cnf``, the sequential baseline uploads it), and a
one-line password file that dbupdater's manifest references as ``file:PATH``.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import tempfile
from pathlib import Path

from environment_creators.info import RigInfo, RunnerInfo
from environment_creators.rig import Rig

from .settings import RigParams

log = logging.getLogger("bench")
MASK = "***"


def option_value(value: str) -> str:
    """A value for a MySQL option file, double-quoted with backslash escapes (as dbupdater writes it)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return f'"{escaped}"'


def write_private(path: Path, text: str, owner: int | None = None) -> Path:
    """Create ``path`` with mode 0600 from the first byte (never world-readable, not even briefly)."""
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    if owner is not None:
        os.chown(path, owner, owner_group(owner))
    return path


def owner_group(uid: int) -> int:
    return pwd.getpwuid(uid).pw_gid


class Testbed:
    """One rig for the whole benchmark run, and a private work folder under /tmp."""

    def __init__(self, params: RigParams) -> None:
        self.params = params
        self.rig = Rig(params.name, params.root, params.runners, params.subnet_index, params.base_port)
        self.was_up = False
        self._info: RigInfo | None = None
        self._work: Path | None = None

    # --- lifecycle -----------------------------------------------------------------------------------------

    def up(self) -> None:
        self.was_up = self.rig.layout.rig_json.exists()
        self._info = self.rig.up()
        self._work = Path(tempfile.mkdtemp(prefix="dbupdater-bench-"))
        self._work.chmod(0o711)  # the runner user must reach its own subfolder, nothing else
        runner_dir = self._work / "runner"
        runner_dir.mkdir(mode=0o700)
        os.chown(runner_dir, self.runner_uid, owner_group(self.runner_uid))
        db = self.info.mysql
        cnf = f"[client]\nuser={option_value(db.app_user)}\npassword={option_value(db.app_password)}\n"
        write_private(self.runner_cnf, cnf, owner=self.runner_uid)
        write_private(self.controller_cnf, cnf)
        write_private(self.password_file, db.app_password + "\n")

    def close(self, *, keep_rig: bool) -> None:
        if self._work is not None:
            shutil.rmtree(self._work, ignore_errors=True)
            self._work = None
        if self._info is not None and not keep_rig and not self.was_up:
            self.rig.down()
        elif self._info is not None:
            log.info("leaving rig %s up at %s (take it down with: python -m environment_creators.rig down "
                     "--name %s --root %s)", self.params.name, self.params.root, self.params.name, self.params.root)

    # --- what approaches use -------------------------------------------------------------------------------

    @property
    def info(self) -> RigInfo:
        if self._info is None:
            raise RuntimeError("the testbed is not up")
        return self._info

    @property
    def work(self) -> Path:
        if self._work is None:
            raise RuntimeError("the testbed is not up")
        return self._work

    @property
    def runner_dir(self) -> Path:
        """Owned by the runner user, mode 0700: scripts and the option file the floor uses on the runner."""
        return self.work / "runner"

    @property
    def runner_cnf(self) -> Path:
        return self.runner_dir / "client.cnf"

    @property
    def controller_cnf(self) -> Path:
        return self.work / "client.cnf"

    @property
    def password_file(self) -> Path:
        return self.work / "db-password"

    @property
    def runner_uid(self) -> int:
        return pwd.getpwnam(self.info.runner_user).pw_uid

    @property
    def mode(self) -> str:
        return self.info.mode

    @property
    def db_host(self) -> str:
        """The database host as the runners see it."""
        return self.info.db_host_for_runners

    @property
    def mysql_port(self) -> int:
        return self.info.mysql.port

    @property
    def app_user(self) -> str:
        return self.info.mysql.app_user

    def runner(self, index: int) -> RunnerInfo:
        return self.info.runners[index - 1]

    def runner_prefix(self, index: int) -> list[str]:
        """Run a command *on* runner ``index``: in its network namespace (netns mode), as the runner user."""
        runner = self.runner(index)
        netns = ["ip", "netns", "exec", runner.netns] if runner.netns else []
        return [*netns, "runuser", "-u", self.info.runner_user, "--"]

    def secrets(self) -> list[str]:
        info = self.info
        return [s for s in (info.runner_password, info.mysql.app_password, info.mysql.admin_password,
                            info.postgres.app_password, info.postgres.admin_password) if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, MASK)
        return text

    def leaked(self, text: str) -> bool:
        return any(secret in text for secret in self.secrets())

    def sql(self, statements: str, database: str | None = None) -> str:
        """Admin SQL through the native client on the controller (setup and checks, never timed)."""
        return self.rig.mysql_exec(statements, database, admin=True)

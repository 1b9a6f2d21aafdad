"""Proof, on this machine, that a run holding locks is gone, so the next run need not wait out its lease.

A run that takes locks keeps a file `<run id>.alive` in a 0700 folder of its user's, `flock`ed for as long as
the process lives (the kernel drops the flock when it dies, even after `kill -9`). When it ends with every lock
released it removes the file; when it ends with a lock it could not release (its runner went away, or it left
in a hurry), the file stays, unlocked: a tombstone. A later run of the same user on the same host that finds a
database locked by that run id, with the file there and nobody holding its flock, knows the holder is dead
and takes the lock over at once. Anything less certain (another host, another user, no file: another machine
or container that shares the host name) proves nothing, and the lease decides as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import stat
import tempfile
import time
from pathlib import Path

from ..ledger import Holder
from ..model.identity import RunIdentity

log = logging.getLogger("dbupdater")
RUN_ID = re.compile(r"[0-9a-f]{32}")  # a holder's run id comes from the database: never a path as it stands
STALE = 7 * 24 * 3600.0


def folder() -> Path:
    return Path(tempfile.gettempdir()) / f"dbupdater-runs-{os.getuid()}"


class Liveness:
    def __init__(self, identity: RunIdentity, where: Path | None = None) -> None:
        self.identity = identity
        self.where = where or folder()
        self._fd: int | None = None

    def _usable(self) -> bool:
        """The folder exists, is a real directory of ours and private (a shared /tmp must not let another user
        plant or read tombstones); made if missing."""
        with contextlib.suppress(FileExistsError):
            self.where.mkdir(mode=0o700)
        try:
            info = self.where.lstat()
        except OSError:
            return False
        return stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid() and stat.S_IMODE(info.st_mode) == 0o700

    def _path(self, run_id: str) -> Path:
        return self.where / f"{run_id}.alive"

    def start(self) -> None:
        """Before the first lock is taken; a failure only means the next run waits for the lease."""
        if self._fd is not None or not RUN_ID.fullmatch(self.identity.run_id):
            return
        try:
            if not self._usable():
                return
            self._sweep()
            fd = os.open(self._path(self.identity.run_id), os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            log.debug("no liveness file (%s): a lock left by this run ends with its lease", exc)
            return
        self._fd = fd

    def finish(self, *, all_released: bool) -> None:
        """Remove the file when no lock is left behind; otherwise leave it, unlocked, as the tombstone."""
        if self._fd is None:
            return
        if all_released:
            with contextlib.suppress(OSError):
                self._path(self.identity.run_id).unlink()
        os.close(self._fd)  # releases the flock
        self._fd = None

    def dead(self, holder: Holder) -> bool:
        """Whether the holder is a run of this user on this host whose process is gone (see the module doc)."""
        me = self.identity
        if holder.run_id == me.run_id or not RUN_ID.fullmatch(holder.run_id):
            return False
        if holder.host != me.host or holder.os_user != me.os_user or not self._usable():
            return False
        try:
            return self._tombstone(self._path(holder.run_id))  # flock free: its process is gone
        except OSError:
            return False  # no tombstone: nothing is proven

    def _sweep(self) -> None:
        """Tombstones a week old prove nothing any more (every lease has long ended): removed."""
        now = time.time()
        for path in self.where.glob("*.alive"):
            with contextlib.suppress(OSError):
                if now - path.lstat().st_mtime > STALE and self._tombstone(path):
                    path.unlink()

    @staticmethod
    def _tombstone(path: Path) -> bool:
        """Whether a liveness file is nobody's: its flock is free."""
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return False
        finally:
            os.close(fd)
        return True

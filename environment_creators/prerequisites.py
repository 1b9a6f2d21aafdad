"""What the rig needs from the machine, and which Debian package provides each piece.

The rig installs nothing itself (``bin/setup.sh`` does); it only says precisely what is missing.
"""

from __future__ import annotations

import os
import pwd
import re
from pathlib import Path

from .errors import RigError
from .system import which

# program -> Debian package that ships it
PROGRAMS: dict[str, str] = {
    "/usr/sbin/mariadbd": "mariadb-server",
    "mariadb-install-db": "mariadb-server",
    "mysql": "mariadb-client",
    "/usr/sbin/sshd": "openssh-server",
    "ssh-keygen": "openssh-client",
    "ip": "iproute2",
    "setsid": "util-linux",
    "runuser": "util-linux",
    "useradd": "passwd",
    "userdel": "passwd",
    "chpasswd": "passwd",
}
SYSTEM_USERS: dict[str, str] = {"mysql": "mariadb-server", "postgres": "postgresql"}
POSTGRES_ROOT = Path("/usr/lib/postgresql")


def postgres_bin_dir() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (Debian installs majors side by side)."""
    candidates = [p.parent for p in POSTGRES_ROOT.glob("*/bin/initdb") if re.fullmatch(r"\d+", p.parent.parent.name)]
    candidates.sort(key=lambda p: int(p.parent.name))
    return candidates[-1] if candidates else None


def check() -> Path:
    """Raise a RigError naming every missing package; return the PostgreSQL bin directory."""
    if os.geteuid() != 0:
        raise RigError("the rig must run as root: it adds a system user, network namespaces and private "
                       "sshd/mariadbd/postgres instances (try: sudo bin/bring_up.sh)")
    missing = {package for program, package in PROGRAMS.items() if not which(program)}
    pg_bin = postgres_bin_dir()
    if pg_bin is None:
        missing.add("postgresql")
    for user, package in SYSTEM_USERS.items():
        try:
            pwd.getpwnam(user)
        except KeyError:
            missing.add(package)
    if missing:
        names = " ".join(sorted(missing))
        raise RigError(f"missing packages: {names}; install them with: apt-get install -y {names} "
                       "(or run bin/setup.sh as root)")
    assert pg_bin is not None
    return pg_bin

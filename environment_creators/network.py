"""The netns-mode network: one Linux bridge on the host and one network namespace per runner.

Each runner is a real separate host as far as TCP is concerned: its sshd listens on port 22 at its own
address and the database clients it spawns reach the databases through the bridge, so connection and
authentication code paths are exercised the way they are against real runner hosts.
"""

from __future__ import annotations

import ipaddress
import re
import subprocess
from pathlib import Path

from .errors import RigError
from .system import log, run, terminate

NETNS_DIR = Path("/run/netns")
SYS_NET = Path("/sys/class/net")


def subnet(subnet_index: int) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(f"10.231.{subnet_index}.0/24")


def bridge_address(subnet_index: int) -> str:
    return f"10.231.{subnet_index}.1"


def runner_address(subnet_index: int, index: int) -> str:
    return f"10.231.{subnet_index}.{10 + index}"


def bridge_name(name: str) -> str:
    return f"{name}-br0"


def netns_name(name: str, index: int) -> str:
    return f"{name}-r{index}"


def veth_name(name: str, index: int) -> str:
    """Host end of runner ``index``'s veth pair (the namespace end is ``eth0``)."""
    return f"{name}-r{index}h"


def netns_supported(name: str) -> tuple[bool, str]:
    """Try what netns mode needs (a namespace and a bridge), leaving nothing behind."""
    probe_ns, probe_br = f"{name}-probe", f"{name}-pbr"
    try:
        for cmd, undo in ((["ip", "netns", "add", probe_ns], ["ip", "netns", "del", probe_ns]),
                          (["ip", "link", "add", probe_br, "type", "bridge"], ["ip", "link", "del", probe_br])):
            proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                return False, f"{' '.join(cmd)}: {proc.stderr.strip()}"
            subprocess.run(undo, capture_output=True, check=False)
    except FileNotFoundError as exc:
        return False, str(exc)
    return True, ""


def _link_exists(ifname: str) -> bool:
    return (SYS_NET / ifname).exists()


def check_subnet_unused(name: str, subnet_index: int) -> None:
    """Refuse to overlap another rig (or anything else) already using our /24."""
    net = subnet(subnet_index)
    out = run(["ip", "-o", "-4", "addr", "show"]).stdout
    for line in out.splitlines():
        parts = line.split()
        ifname, cidr = parts[1], parts[3]
        if ifname != bridge_name(name) and ipaddress.IPv4Interface(cidr).ip in net:
            raise RigError(f"subnet {net} is already used by interface {ifname} ({cidr}); "
                           "pick another --subnet-index")


def ensure(name: str, subnet_index: int, runners: int) -> None:
    """Create (or complete) bridge, namespaces and veth pairs; cheap when everything already exists."""
    bridge, gateway = bridge_name(name), bridge_address(subnet_index)
    if not _link_exists(bridge):
        check_subnet_unused(name, subnet_index)
        log.info("network: creating bridge %s (%s/24)", bridge, gateway)
        run(["ip", "link", "add", bridge, "type", "bridge"])
    if f" {gateway}/24 " not in run(["ip", "-o", "-4", "addr", "show", "dev", bridge]).stdout:
        run(["ip", "addr", "add", f"{gateway}/24", "dev", bridge])
    run(["ip", "link", "set", bridge, "up"])
    for index in range(1, runners + 1):
        ensure_namespace(name, subnet_index, index)
    log.info("network: %d runner namespace(s) ready on %s", runners, subnet(subnet_index))


def ensure_namespace(name: str, subnet_index: int, index: int) -> str:
    """Namespace ``index`` on the rig's bridge (which must exist): its ``eth0`` at ``runner_address``, a default
    route through the bridge. Returns the namespace's name; ``teardown`` removes it with the others."""
    ns, veth, address = netns_name(name, index), veth_name(name, index), runner_address(subnet_index, index)
    if not (NETNS_DIR / ns).exists():
        run(["ip", "netns", "add", ns])
    if not _link_exists(veth):
        run(["ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns])
    run(["ip", "link", "set", veth, "master", bridge_name(name), "up"])
    if f" {address}/24 " not in run(["ip", "-n", ns, "-o", "-4", "addr", "show", "dev", "eth0"]).stdout:
        run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", "eth0"])
    run(["ip", "-n", ns, "link", "set", "lo", "up"])
    run(["ip", "-n", ns, "link", "set", "eth0", "up"])
    run(["ip", "-n", ns, "route", "replace", "default", "via", bridge_address(subnet_index)])
    return ns


def netns_pids(ns: str) -> list[int]:
    if not (NETNS_DIR / ns).exists():
        return []
    out = run(["ip", "netns", "pids", ns], check=False).stdout
    return [int(p) for p in out.split() if p.isdigit()]


def rig_namespaces(name: str) -> list[str]:
    rx = re.compile(rf"{re.escape(name)}-r\d+")
    return sorted(p.name for p in NETNS_DIR.glob(f"{name}-r*") if rx.fullmatch(p.name)) if NETNS_DIR.exists() else []


def teardown(name: str) -> None:
    """Remove every namespace, veth and the bridge of rig ``name``, killing what still runs inside."""
    for ns in rig_namespaces(name):
        terminate(netns_pids(ns), timeout=5)
        run(["ip", "netns", "del", ns], check=False)
    rx = re.compile(rf"{re.escape(name)}-r\d+h")
    if SYS_NET.exists():
        for link in SYS_NET.iterdir():
            if rx.fullmatch(link.name):
                run(["ip", "link", "del", link.name], check=False)
    if _link_exists(bridge_name(name)):
        run(["ip", "link", "del", bridge_name(name)], check=False)

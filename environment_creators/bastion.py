"""A bastion and a runner behind it (netns mode only; started on first use, like the latin1 MariaDB).

    this machine ──ssh──► bastion (<name>-r91: 10.231.I.101 on the rig's bridge, 10.232.I.1 on the inner link)
                             └──ssh──► hidden runner (<name>-r92: sshd only at 10.232.I.2 on the inner link)

The hidden runner's sshd listens only on the inner link, to which this machine has no route: it can be reached
only through the bastion (ProxyJump). The hidden runner still reaches the rig's databases through its own leg
on the bridge (10.231.I.102, where no sshd listens), as a runner in a private network reaches its databases.
The bastion's sshd also listens on its inner address, so a chain of two hops (bastion, then the bastion again
by its inner address) can be tried too. Both sshds use the rig's runner user, its password and client key.

Namespaces, veths and sshds are numbered like runners (91, 92: above MAX_RUNNERS), so ``down`` stops and
removes them with the rest; the inner link disappears with its namespaces.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from . import network
from . import runners as hosts
from .errors import RigError
from .info import RigInfo, RunnerInfo
from .layout import PROJECT_DIR, Layout
from .system import run, write_file

BASTION_INDEX = 91
HIDDEN_INDEX = 92
INNER_LINK = ("in0", "in1")  # the inner veth's ends: in the bastion, in the hidden runner


def inner_address(subnet_index: int, host: int) -> str:
    return f"10.232.{subnet_index}.{host}"


@dataclass(frozen=True)
class BastionInfo:
    bastion: RunnerInfo  # reachable from here
    bastion_inner: str  # the bastion's address on the inner link (reachable from the bastion itself)
    runner: RunnerInfo  # reachable only through the bastion
    known_hosts: Path  # the bastion (both addresses) and the hidden runner, OpenSSH format
    host_keys: dict[str, Path]  # "bastion", "runner": their public host keys


def _plan(subnet_index: int, name: str) -> tuple[RunnerInfo, str, RunnerInfo]:
    bastion = RunnerInfo(network.netns_name(name, BASTION_INDEX), network.runner_address(subnet_index, BASTION_INDEX),
                         22, network.netns_name(name, BASTION_INDEX))
    hidden = RunnerInfo(network.netns_name(name, HIDDEN_INDEX), inner_address(subnet_index, 2), 22,
                        network.netns_name(name, HIDDEN_INDEX))
    return bastion, inner_address(subnet_index, 1), hidden


def _inner_link(bastion_ns: str, hidden_ns: str, bastion_inner: str, hidden_address: str) -> None:
    outer, inner = INNER_LINK
    if outer not in run(["ip", "-n", bastion_ns, "-o", "link", "show"]).stdout:
        run(["ip", "-n", bastion_ns, "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", hidden_ns])
    for ns, dev, address in ((bastion_ns, outer, bastion_inner), (hidden_ns, inner, hidden_address)):
        if f" {address}/24 " not in run(["ip", "-n", ns, "-o", "-4", "addr", "show", "dev", dev]).stdout:
            run(["ip", "-n", ns, "addr", "add", f"{address}/24", "dev", dev])
        run(["ip", "-n", ns, "link", "set", dev, "up"])


def _answers_from(ns: str, host: str, port: int) -> bool:
    """Whether an sshd greets at host:port as seen from namespace ``ns``."""
    probe = (f"import sys; from environment_creators.system import sshd_answers; "
             f"sys.exit(0 if sshd_answers({host!r}, {port}) else 1)")
    return run(["ip", "netns", "exec", ns, sys.executable, "-c", probe], check=False,
               cwd=PROJECT_DIR).returncode == 0


def ensure(layout: Layout, info: RigInfo, name: str, subnet_index: int) -> BastionInfo:
    """Create (or complete) the bastion and the runner behind it; cheap when both run."""
    if info.mode != "netns":
        raise RigError("the bastion needs netns mode (network namespaces)")
    bastion, bastion_inner, hidden = _plan(subnet_index, name)
    assert bastion.netns is not None and hidden.netns is not None
    network.ensure_namespace(name, subnet_index, BASTION_INDEX)
    network.ensure_namespace(name, subnet_index, HIDDEN_INDEX)  # its leg on the bridge: the databases
    _inner_link(bastion.netns, hidden.netns, bastion_inner, hidden.host)
    for index, host in ((BASTION_INDEX, bastion), (HIDDEN_INDEX, hidden)):
        hosts.ensure_host_key(layout, index)
        hosts.write_sshd_config(layout, index, host, info.runner_user)
    config = layout.sshd_config(BASTION_INDEX)
    write_file(config, config.read_text() + f"ListenAddress {bastion_inner}:22\n", mode=0o644)
    lines = []
    for index, names in ((BASTION_INDEX, [bastion.host, bastion_inner]), (HIDDEN_INDEX, [hidden.host])):
        key_type, key_b64 = layout.host_key(index).with_suffix(".pub").read_text().split()[:2]
        lines += [f"{host} {key_type} {key_b64}\n" for host in names]
    known_hosts = layout.ssh / "bastion_known_hosts"
    write_file(known_hosts, "".join(lines), mode=0o644)
    hosts.start_sshd(layout, BASTION_INDEX, bastion)
    hosts.start_sshd(layout, HIDDEN_INDEX, hidden, answers=lambda: _answers_from(bastion.netns or "", hidden.host, 22))
    return BastionInfo(bastion, bastion_inner, hidden, known_hosts,
                       {"bastion": layout.host_key(BASTION_INDEX).with_suffix(".pub"),
                        "runner": layout.host_key(HIDDEN_INDEX).with_suffix(".pub")})


def stop(layout: Layout, which: int) -> None:
    """Stop the bastion's (BASTION_INDEX) or the hidden runner's (HIDDEN_INDEX) sshd and its sessions."""
    hosts.stop_sshd(layout, which)

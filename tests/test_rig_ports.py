"""The rig's ports stay out of the kernel's ephemeral range: a fresh-clone run once failed because OpenBao's
cluster port (47654 then) had been taken by some program's outgoing connection. `up` refuses such ports
before it creates anything; the defaults of every rig the project starts lie below the range."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.drain import RIG as DRAIN_RIG
from bench.settings import RigParams
from environment_creators import ephemeral_ports
from environment_creators.rig import Rig, RigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def span() -> tuple[int, int]:
    found = ephemeral_ports.ephemeral_range()
    if found is None:
        pytest.skip("the kernel does not say its ephemeral port range here")
    return found


def test_the_project_rigs_lie_below_the_range(span: tuple[int, int]) -> None:
    bench = RigParams()
    for rig in (Rig(), Rig(bench.name, bench.root, bench.runners, bench.subnet_index, bench.base_port),
                Rig(DRAIN_RIG.name, DRAIN_RIG.root, DRAIN_RIG.runners, DRAIN_RIG.subnet_index, DRAIN_RIG.base_port)):
        assert rig.ports.stop - 1 < span[0], rig
        assert ephemeral_ports.clash(rig.ports) is None, rig


def test_up_refuses_ports_in_the_range_before_creating_anything(span: tuple[int, int], tmp_path: Path) -> None:
    root = tmp_path / "rig"
    with pytest.raises(RigError) as refused:
        Rig(name="dbe", root=root, runners=2, base_port=span[0] - 5).up()
    message = str(refused.value)
    assert f"ports {span[0] - 4}-{span[0] + 7} (--base-port {span[0] - 5})" in message
    assert f"ephemeral port range {span[0]}-{span[1]} (/proc/sys/net/ipv4/ip_local_port_range)" in message
    assert f"--base-port of at most {span[0] - 13}" in message
    assert not root.exists()


def test_the_command_line_says_so(span: tuple[int, int], tmp_path: Path) -> None:
    root = tmp_path / "rig"
    result = subprocess.run([sys.executable, "-m", "environment_creators.rig", "up", "--name", "dbe", "--root",
                             str(root), "--base-port", str(span[1] - 20)], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("rig: error: ports ") and f"range {span[0]}-{span[1]}" in result.stderr
    assert not root.exists()


def test_a_running_rig_on_such_ports_is_kept_with_a_warning(rig: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Its servers hold their ports already; refusing it would only stop the suites using it (a rig of an
    earlier release, on 47xxx). The suite's rig is made to look like one by a range file that covers it."""
    fake = tmp_path / "range"
    fake.write_text(f"{rig.base_port} 60999\n")
    monkeypatch.setattr(ephemeral_ports, "PORT_RANGE", fake)
    with caplog.at_level(logging.WARNING, logger="environment_creators"):
        assert rig.up() == rig.info()
    assert f"overlap the kernel's ephemeral port range {rig.base_port}-60999 ({fake})" in caplog.text


def test_reserved_ports_are_safe_inside_the_range(tmp_path: Path) -> None:
    """net.ipv4.ip_local_reserved_ports takes ports out of the range: the kernel's own list format."""
    port_range, reserved = tmp_path / "range", tmp_path / "reserved"
    port_range.write_text("32768\t60999\n")
    ports = range(40001, 40013)
    for text, clashes in (("\n", True), ("40001-40005,40010\n", True), ("8080,40000-40012\n", False),
                          ("40001-40006,40007-40012\n", False), ("nonsense\n", True)):
        reserved.write_text(text)
        found = ephemeral_ports.clash(ports, port_range=port_range, reserved_ports=reserved)
        assert (found == (32768, 60999)) is clashes, text
    assert ephemeral_ports.clash(range(27301, 27313), port_range=port_range, reserved_ports=reserved) is None
    assert ephemeral_ports.clash(ports, port_range=tmp_path / "absent", reserved_ports=reserved) is None

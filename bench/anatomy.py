"""Where per-script time goes over SSH: the operations an SSH-based approach repeats per script, timed alone.

On one paramiko connection to runner 1 (key auth, host key checked): run a command, copy a small file with
scp, run ``mysql < file``, run ``mysql`` with SQL on stdin (how a ledger statement travels), plus opening a
new connection. Each is measured twice: on a socket as paramiko leaves it (Nagle's algorithm on) and with
TCP_NODELAY, because small SSH packets held back by Nagle while the peer delays its ACK cost ~40 ms each.
"""

from __future__ import annotations

import io
import secrets
import shlex
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import paramiko
from scp import SCPClient

from .testbed import Testbed


@dataclass(frozen=True)
class Cost:
    operation: str
    default_ms: float
    nodelay_ms: float


def _connect(bed: Testbed, nodelay: bool) -> paramiko.SSHClient:
    runner = bed.runner(1)
    sock = socket.create_connection((runner.host, runner.port), timeout=15)
    if nodelay:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client = paramiko.SSHClient()
    client.load_host_keys(bed.info.known_hosts)
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(runner.host, runner.port, username=bed.info.runner_user, key_filename=bed.info.runner_key_file,
                   allow_agent=False, look_for_keys=False, timeout=15, sock=sock)
    return client


def _exec(transport: paramiko.Transport, command: str, stdin: bytes | None = None) -> None:
    channel = transport.open_session()
    channel.set_combine_stderr(True)
    channel.exec_command(command)
    if stdin is not None:
        channel.sendall(stdin)
    channel.shutdown_write()
    with channel.makefile("rb") as out:
        out.read()
    code = channel.recv_exit_status()
    channel.close()
    if code != 0:
        raise RuntimeError(f"{command.split()[0]} exited {code} on runner 1")


def _median_ms(action: Callable[[], None], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _costs(bed: Testbed, nodelay: bool, repeat: int) -> dict[str, float]:
    results: dict[str, float] = {}
    results["new SSH connection (TCP + key exchange + key auth)"] = _median_ms(
        lambda: _connect(bed, nodelay).close(), max(3, repeat // 2))
    client = _connect(bed, nodelay)
    transport = client.get_transport()
    assert transport is not None
    base = f"/tmp/bench-anatomy-{secrets.token_hex(6)}"
    cnf, sql = f"{base}.cnf", f"{base}.sql"
    try:
        with SCPClient(transport) as scp:
            scp.putfo(io.BytesIO(bed.controller_cnf.read_bytes()), cnf, mode="0600")
            scp.putfo(io.BytesIO(b"SELECT 1;\n"), sql, mode="0600")
        mysql = shlex.join(["mysql", f"--defaults-extra-file={cnf}", "--batch", f"--host={bed.db_host}",
                            f"--port={bed.mysql_port}", "--database=mysql"])

        def copy() -> None:
            with SCPClient(transport) as scp:
                scp.putfo(io.BytesIO(b"-- 1 KB\n" * 128), f"{base}.copy", mode="0600")

        results["run a command (exec `true`)"] = _median_ms(lambda: _exec(transport, "true"), repeat)
        results["copy a 1 KB file (scp)"] = _median_ms(copy, repeat)
        results["mysql < script on the runner"] = _median_ms(
            lambda: _exec(transport, f"{mysql} < {shlex.quote(sql)}"), repeat)
        results["mysql with SQL sent on stdin"] = _median_ms(
            lambda: _exec(transport, mysql, b"SELECT 1;\n"), repeat)
    finally:
        _exec(transport, f"rm -f {shlex.quote(cnf)} {shlex.quote(sql)} {shlex.quote(base + '.copy')}")
        client.close()
    return results


def measure(bed: Testbed, repeat: int) -> list[Cost]:
    default, nodelay = _costs(bed, False, repeat), _costs(bed, True, repeat)
    return [Cost(name, default[name], nodelay[name]) for name in default]

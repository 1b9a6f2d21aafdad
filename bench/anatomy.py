"""Where per-script time goes over SSH: the operations an SSH-based approach repeats per script, timed alone.

On one paramiko connection to runner 1 (key auth, host key checked): run a command, copy a small file with
scp, run ``mysql < file``, run ``mysql`` with SQL on stdin (how a ledger statement travels), plus opening a
new connection. Each is measured twice: on a socket as paramiko leaves it (Nagle's algorithm on) and with
TCP_NODELAY, because small SSH packets held back by Nagle while the peer delays its ACK cost ~40 ms each.

Then dbupdater's own calls, through its SSH transport and persistent session on runner 1, as a run makes them
(`tool_calls`): a tiny script (what every row pays), the ledger's opening (tables, lock, version, history: one
call; on a new database it also creates the tables) and its release (the last success and the unlock: one call).
A run pays the opening and the release once per target, whatever its number of scripts: what folding them into the
first and last script's calls could save at most.
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
from pathlib import Path

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


@dataclass(frozen=True)
class ToolCost:
    operation: str
    ms: float  # median
    low_ms: float
    high_ms: float


def _spread(operation: str, action: Callable[[], None], repeat: int, before: Callable[[], None] = lambda: None
            ) -> ToolCost:
    times = []
    for _ in range(repeat):
        before()  # untimed
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return ToolCost(operation, statistics.median(times), min(times), max(times))


def tool_calls(bed: Testbed, repeat: int) -> list[ToolCost]:
    """dbupdater's per-script and per-target client calls on runner 1, through its own transport and ledger."""
    from dbupdater.engines import registry as engines
    from dbupdater.execution.sessions import RunnerSession
    from dbupdater.ledger import Ledger, SqlChannel
    from dbupdater.model.identity import RunIdentity
    from dbupdater.model.secret import Secret
    from dbupdater.model.specs import DatabaseSpec, RunnerSpec
    from dbupdater.transports import open_transport
    from dbupdater.transports.ssh import SSHOptions

    runner, database = bed.runner(1), "bench_anatomy"
    spec = RunnerSpec("ssh", runner.host, runner.port, bed.info.runner_user, key_file=Path(bed.info.runner_key_file))
    transport = open_transport(spec, {"ssh": SSHOptions(Path(bed.info.known_hosts))})
    session = RunnerSession(transport, transport.make_private_dir())
    engine = engines.get("mysql")
    db = DatabaseSpec("mysql", bed.db_host, bed.mysql_port, bed.app_user, database, Secret(bed.info.mysql.app_password))
    held: list[Ledger] = []  # opened ledgers holding their lock, released before the next opening

    def fresh_database() -> None:
        release_all()
        bed.sql(f"DROP DATABASE IF EXISTS `{database}`; CREATE DATABASE `{database}`;")

    def release_all() -> None:
        while held:
            held.pop().release()

    def opened() -> None:
        ledger = Ledger(channel, None, RunIdentity(), spec.label)
        held.append(ledger)
        ledger.open_locked(60, 30)

    def released() -> None:
        ledger = held.pop()
        ledger.finish_later("anatomy.sql", "success")  # the last success rides with the release, as in a run
        ledger.release()

    def reopened() -> None:
        release_all()
        opened()

    def script() -> None:
        result = transport.run(engine.command(db, tiny, credentials), lambda _stream, _line: None)
        if not (result.exited and result.code == 0):
            raise RuntimeError(f"the tiny script failed on runner 1: {result.ending}")

    try:
        credentials = session.credentials(db)
        tiny = transport.shell.join(session.workdir, "tiny.sql")
        transport.put_bytes(b"SELECT 1;\n", tiny)
        channel = SqlChannel(transport, engine, db, credentials, session.client(engine))
        fresh_database()
        return [
            _spread("dbupdater: a tiny script (mysql < file) in its persistent session", script, repeat),
            _spread("dbupdater: ledger opening on a new database (creates the tables; lock, version, history)",
                    opened, max(3, repeat // 3), before=fresh_database),
            _spread("dbupdater: ledger opening (tables there: lock, version, history)", opened, repeat,
                    before=release_all),
            _spread("dbupdater: ledger release (the last success, the unlock)", released, repeat,
                    before=reopened),
        ]
    finally:
        release_all()
        session.close()
        bed.sql(f"DROP DATABASE IF EXISTS `{database}`;")

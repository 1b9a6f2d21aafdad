"""`Transport.stream` over WinRM at the protocol boundary (tests/winrm_endpoint.py; no Windows runs here):
stdin goes as Send envelopes pulled one line at a time, stdout comes back from the Receive streams byte for
byte, a failing source never sends the end of input, and the controller's memory stays flat.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("pypsrp")

from dbupdater.model.command import Command, Ending

from .winrm_endpoint import NS, Endpoint, Run, answering, clients, over_http, serving

MiB = 1 << 20
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def serve() -> Iterator[Callable[..., tuple[Endpoint, int]]]:
    with serving() as start:
        yield start


def sends(endpoint: Endpoint) -> list[ET.Element]:
    found = (root.find("s:Body/rsp:Send/rsp:Stream", NS) for action, root in list(endpoint.requests)
             if action == "Send")
    return [stream for stream in found if stream is not None]


def test_stdin_goes_as_send_envelopes_and_stdout_comes_back_byte_for_byte(serve) -> None:  # type: ignore[no-untyped-def]
    endpoint, port = serve(clients)
    payload = bytes(range(256)) * 4096 * 4 + b"\x00\xff tail"  # 4 MiB of every byte value, and a ragged end
    chunks: list[bytes] = []
    transport = over_http(port)
    try:
        result = transport.stream(Command(("cat",)), stdin=iter([payload[:3], payload[3:]]),
                                  on_stdout=chunks.append, on_stderr=lambda stream, line: None)
    finally:
        transport.close()
    assert (result.ending, result.code) == (Ending.EXITED, 0)
    assert b"".join(chunks) == payload
    assert len(chunks) > 10  # as the Receives brought it, never gathered here first
    streamed = sends(endpoint)
    assert len(streamed) > 20
    assert [stream.get("End") == "True" for stream in streamed] == [False] * (len(streamed) - 1) + [True]
    lines = b"".join(base64.b64decode(stream.text or "") for stream in streamed).split(b"\r\n")
    assert b"".join(base64.b64decode(line) for line in lines) == payload  # base64 lines, as the script reads


def test_a_source_is_pulled_one_line_per_send(serve) -> None:  # type: ignore[no-untyped-def]
    endpoint, port = serve(clients)
    ahead: list[int] = []

    def source() -> Iterator[bytes]:
        for index in range(200):
            ahead.append(index - len(sends(endpoint)))  # lines pulled beyond the Sends the endpoint answered
            yield bytes([index]) * 8192

    transport = over_http(port)
    try:
        result = transport.stream(Command(("cat",)), stdin=source(), on_stdout=lambda chunk: None,
                                  on_stderr=lambda stream, line: None)
    finally:
        transport.close()
    assert result.exited and len(ahead) == 200
    assert max(ahead) <= 2


def test_a_failing_source_terminates_the_command_and_never_sends_the_end(serve) -> None:  # type: ignore[no-untyped-def]
    endpoint, port = serve(clients)

    def failing() -> Iterator[bytes]:
        yield b"x" * MiB
        raise OSError("the dump being copied broke off")

    transport = over_http(port)
    try:
        with pytest.raises(OSError, match="broke off"):
            transport.stream(Command(("cat",)), stdin=failing(), on_stdout=lambda chunk: None,
                             on_stderr=lambda stream, line: None)
    finally:
        transport.close()
    run = next(run for run in endpoint.runs.values() if "FileName = 'cat'" in run.script)
    assert "Terminate" in run.signals
    assert not run.ended.is_set()  # no Send carried End="True"
    assert all(stream.get("End") != "True" for stream in sends(endpoint))


def test_a_command_that_ends_before_its_input_does_gives_its_own_ending(serve) -> None:  # type: ignore[no-untyped-def]
    """The server refuses Sends to a command that has ended: the sending stops there, and the command's exit
    code is the answer (a client that refused a login before reading its input)."""
    endpoint, port = serve(answering(b"", b"Login failed\r\n", 4))
    transport = over_http(port)
    try:
        result = transport.stream(Command(("sqlcmd",)), stdin=(b"x" * MiB for _ in range(64)),
                                  on_stdout=lambda chunk: None, on_stderr=lambda stream, line: None)
    finally:
        transport.close()
    assert (result.ending, result.code) == (Ending.EXITED, 4)
    sent = sum(len(base64.b64decode(stream.text or "")) for stream in sends(endpoint))
    assert sent < 64 * MiB  # not all of it (as base64 lines, a third more): the refused Send ended the sending


# The controller in a process of its own, so its peak memory is its own (VmHWM).
CONTROLLER = r"""
import hashlib, json, sys
from dbupdater.model.command import Command
from tests.winrm_endpoint import over_http

config = json.loads(sys.stdin.readline())

def hwm():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))

transport = over_http(config["port"])
before = hwm()
block = bytes(range(256)) * 4096
got = hashlib.sha256()
count = 0

def take(chunk):
    global count
    count += len(chunk)
    got.update(chunk)

try:
    source = (block for _ in range(config["size"] // len(block))) if config["direction"] == "up" else None
    result = transport.stream(Command(("cat",) if source else ("generate",)), stdin=source, on_stdout=take,
                              on_stderr=lambda stream, line: None)
finally:
    transport.close()
print(json.dumps({"before": before, "peak": hwm(), "count": count, "sha256": got.hexdigest(),
                  "ending": result.ending.value}))
"""


def generating(size: int) -> Callable[[Endpoint, Run], tuple[bytes | bytearray, bytes, int | None]]:
    data = (bytes(range(256)) * 4096) * (size // MiB)

    def behave(endpoint: Endpoint, run: Run) -> tuple[bytes | bytearray, bytes, int | None]:
        if "FileName = 'generate'" in run.script:
            return data, b"", 0
        return clients(endpoint, run)

    return behave


@pytest.mark.parametrize("direction", ["up", "down"])
def test_the_controller_s_memory_stays_flat(serve, direction: str) -> None:  # type: ignore[no-untyped-def]
    """64 MiB through `cat` (up: stdin and back) or from a generator (down): the controller's peak grows by
    far less than what went through."""
    size = 64 * MiB
    _, port = serve(generating(size))
    proc = subprocess.run([sys.executable, "-c", CONTROLLER], input=json.dumps(
        {"port": port, "direction": direction, "size": size}).encode() + b"\n", capture_output=True, cwd=ROOT,
        timeout=600)
    assert proc.returncode == 0, proc.stderr.decode(errors="replace")[-3000:]
    answer = json.loads(proc.stdout.decode().strip().splitlines()[-1])
    print(f"\nwinrm {direction}: {size} bytes, controller peak {answer['peak'] / MiB:.1f} MiB "
          f"({answer['before'] / MiB:.1f} MiB before streaming)")
    assert answer["ending"] == "exited" and answer["count"] == size
    assert answer["sha256"] == hashlib.sha256((bytes(range(256)) * 4096) * (size // MiB)).hexdigest()
    assert answer["peak"] - answer["before"] < 24 * MiB
    assert answer["peak"] < 100 * 1000 * 1000

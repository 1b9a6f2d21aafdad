"""1 GiB through `Transport.stream` each way, on the rig's OpenSSH runner and on this machine, with the
controller's peak memory measured: dumps, restores and copies of several GB (later issues) rely on it.

The controller is a child process (the project's API, nothing else), so its peak RSS is its own: VmHWM,
which it reads from /proc/self/status at the end (`wait4`'s ru_maxrss would count the parent's size at the
fork too: Linux carries the old address space's peak over an exec). What arrived is checked by count and
SHA-256 on the receiving side. Nothing here asserts a time; the seconds each direction took are printed
(`pytest -s`) for the record.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

SIZE = 1 << 30  # 1 GiB
PEAK_LIMIT = 100 * 1024 * 1024  # bytes of the controller's peak RSS
PATTERN = b"dbupdater-0123456789\n"  # what `yes` prints on the runner, repeated
ROOT = Path(__file__).resolve().parent.parent

# The controller: opens one transport from the registry with what it reads on stdin (the runner's password
# among it: never on a command line or in the environment), streams, and prints what it saw as JSON.
CONTROLLER = r"""
import hashlib, json, sys, time
from pathlib import Path
from dbupdater.model.command import Command
from dbupdater.model.secret import Secret
from dbupdater.model.specs import RunnerSpec
from dbupdater.transports import registry

config = json.loads(sys.stdin.readline())
size = config["size"]
kind = registry.get(config["kind"])
options = None
if config["kind"] == "ssh":
    from dbupdater.transports.ssh import SSHOptions
    options = SSHOptions(Path(config["known_hosts"]))
spec = RunnerSpec(config["kind"], config["host"], config["port"], config["user"],
                  Secret(config["password"]) if config["password"] else None)
transport = kind.open(spec, options)
errors = []
began = time.monotonic()
try:
    if config["direction"] == "up":
        sent = hashlib.sha256()
        count = 0

        def source():
            global count
            block = bytes(range(256)) * 4096
            for index in range(size // len(block)):
                data = index.to_bytes(8, "big") + block[8:]
                sent.update(data)
                count += len(data)
                yield data

        out = bytearray()
        result = transport.stream(Command(("sha256sum",)), stdin=source(), on_stdout=out.extend,
                                  on_stderr=lambda stream, line: errors.append(line))
        answer = {"count": count, "sent": sent.hexdigest(), "remote": out.decode().split()[0]}
    else:
        got = hashlib.sha256()
        count = 0

        def take(data):
            global count
            count += len(data)
            got.update(data)

        result = transport.stream(Command(("sh", "-c", f"yes dbupdater-0123456789 | head -c {size}")),
                                  on_stdout=take, on_stderr=lambda stream, line: errors.append(line))
        answer = {"count": count, "got": got.hexdigest()}
finally:
    transport.close()
answer.update(seconds=time.monotonic() - began, ending=result.ending.value, code=result.code, stderr=errors)
with open("/proc/self/status") as status:
    answer["peak"] = next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:"))
print(json.dumps(answer))
"""


def control(config: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Run the controller; what it printed, and its peak RSS in bytes."""
    proc = subprocess.Popen([sys.executable, "-c", CONTROLLER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=ROOT)
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(json.dumps(config).encode() + b"\n")
    proc.stdin.close()
    out = proc.stdout.read()
    err = proc.stderr.read()
    assert proc.wait() == 0, err.decode(errors="replace")[-3000:]
    answer = json.loads(out.decode().strip().splitlines()[-1])
    return answer, answer["peak"]


def expected_download() -> str:
    digest = hashlib.sha256()
    block = PATTERN * (1 << 16)
    whole, rest = divmod(SIZE, len(block))
    for _ in range(whole):
        digest.update(block)
    digest.update(block[:rest])
    return digest.hexdigest()


@pytest.fixture(params=["ssh", "local"])
def peer(request, info) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    if request.param == "local":
        return {"kind": "local", "host": "localhost", "port": 0, "user": "", "password": None}
    runner = info.runners[0]
    return {"kind": "ssh", "host": runner.host, "port": runner.port, "user": info.runner_user,
            "password": info.runner_password, "known_hosts": info.known_hosts}


@pytest.mark.parametrize("direction", ["up", "down"])
def test_one_gib_each_way_with_flat_memory(peer: dict[str, Any], direction: str) -> None:
    """up: a generator's 1 GiB into the runner's sha256sum; down: 1 GiB of `yes` from the runner."""
    began = time.monotonic()
    answer, peak = control({**peer, "direction": direction, "size": SIZE})
    print(f"\n{peer['kind']} {direction}: {answer['count']} bytes in {answer['seconds']:.1f} s streaming "
          f"({time.monotonic() - began:.1f} s with start-up), controller peak RSS {peak / 2**20:.1f} MiB")
    assert (answer["ending"], answer["code"], answer["stderr"]) == ("exited", 0, [])
    assert answer["count"] == SIZE
    if direction == "up":
        assert answer["remote"] == answer["sent"]  # the runner's sha256sum of what it read
    else:
        assert answer["got"] == expected_download()
    assert peak < PEAK_LIMIT

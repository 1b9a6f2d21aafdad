"""The contract every transport passes, against real peers: the rig's OpenSSH runner and this machine.

What engines rely on (model/command.py): argv values arrive as one argument each however hostile, `env`
and `env_files` reach the client, stdin parts arrive in order, the shell's exit statuses are read into
endings, files go there and back 0600, and the private directory is 0700 and removable.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbupdater.model.command import STDIN_PATH, Command, Ending, RemoteFile, Result
from dbupdater.model.secret import Secret
from dbupdater.model.specs import RunnerSpec
from dbupdater.transports import Transport, registry
from dbupdater.transports.ssh import SSHOptions

HOSTILE = ["db; touch /tmp/dbupdater-pwned", "$(id)", "it's \"quoted\"", "back\\slash", "  spaced  ", "*"]


@pytest.fixture(params=["ssh", "local"])
def transport(request, info) -> Iterator[Transport]:  # type: ignore[no-untyped-def]
    if request.param == "ssh":
        runner = info.runners[0]
        spec = RunnerSpec("ssh", runner.host, runner.port, info.runner_user, Secret(info.runner_password))
        opened = registry.get("ssh").open(spec, SSHOptions(Path(info.known_hosts)))
    else:
        opened = registry.get("local").open(RunnerSpec("local", "localhost", 0, ""), None)
    try:
        yield opened
    finally:
        opened.close()


@pytest.fixture
def workdir(transport: Transport) -> Iterator[str]:
    path = transport.make_private_dir()
    yield path
    transport.remove(path)


def run(transport: Transport, command: Command) -> tuple[Result, list[str], list[str]]:
    out: list[str] = []
    err: list[str] = []
    result = transport.run(command, lambda stream, line: (out if stream == "stdout" else err).append(line))
    return result, out, err


def remote_mode(transport: Transport, path: str) -> int:
    result, out, _ = run(transport, Command(("stat", "-c", "%a", path)))
    assert result.exited and result.code == 0
    return int(out[-1], 8)


def test_argv_values_arrive_as_one_argument_each(transport: Transport) -> None:
    result, out, _ = run(transport, Command(("printf", "%s\\n", *HOSTILE)))
    assert (result.ending, result.code) == (Ending.EXITED, 0)
    assert out == HOSTILE
    assert not os.path.exists("/tmp/dbupdater-pwned")


def test_env_and_env_files_reach_the_client(transport: Transport, workdir: str) -> None:
    secret = "s3cr3t 'with' $(quotes) and \\ backslash"
    path = transport.shell.join(workdir, "login.cred")
    transport.put_bytes(secret.encode() + b"\n", path)
    command = Command(("sh", "-c", 'printf "%s|%s\\n" "$PLAIN" "$FROM_FILE"'), env=(("PLAIN", HOSTILE[0]),),
                      env_files=(("FROM_FILE", path),))
    line, _ = transport.shell.render(command)
    assert secret not in line  # the value never sits on a command line
    result, out, _ = run(transport, command)
    assert result.exited and result.code == 0
    assert out == [f"{HOSTILE[0]}|{secret}"]


def test_stdin_parts_arrive_in_order(transport: Transport, workdir: str) -> None:
    first, last = transport.shell.join(workdir, "a"), transport.shell.join(workdir, "b")
    transport.put_bytes(b"first\n", first)
    transport.put_bytes(b"last\n", last)
    for parts, expected in (
        ((RemoteFile(first),), ["first"]),
        ((b"only bytes\n",), ["only bytes"]),
        ((RemoteFile(first), b"between\n", RemoteFile(last)), ["first", "between", "last"]),
        ((), []),
    ):
        result, out, _ = run(transport, Command(("cat",), stdin=parts))
        assert result.exited and result.code == 0
        assert out == expected


def test_stdin_as_a_named_file_for_clients_that_read_only_files(transport: Transport) -> None:
    """STDIN_PATH (sqlcmd's ledger call: `-i <file>`) is a path the client can open and read the stdin from."""
    result, out, _ = run(transport, Command(("cat", STDIN_PATH), stdin=(b"SELECT 1;\nSELECT 2;\n",)))
    assert result.exited and result.code == 0
    assert out == ["SELECT 1;", "SELECT 2;"]


def test_endings_are_read_by_the_shell(transport: Transport) -> None:
    missing, _, _ = run(transport, Command(("dbupdater-no-such-client", "--version")))
    assert missing.ending is Ending.CLIENT_MISSING
    exited, _, _ = run(transport, Command(("sh", "-c", "exit 3")))
    assert (exited.ending, exited.code) == (Ending.EXITED, 3)
    killed, _, _ = run(transport, Command(("sh", "-c", "kill -TERM $$")))
    assert (killed.ending, killed.code) == (Ending.SIGNALLED, 15)


def test_files_go_there_and_back_0600(transport: Transport, workdir: str, tmp_path: Path) -> None:
    assert stat.S_IMODE(remote_mode(transport, workdir)) == 0o700
    payload = bytes(range(256)) * 4096  # 1 MiB of every byte value
    source = tmp_path / "payload.bin"
    source.write_bytes(payload)
    remote = transport.shell.join(workdir, "payload.bin")
    transport.put(source, remote)
    assert remote_mode(transport, remote) == 0o600
    back = tmp_path / "back.bin"
    transport.get(remote, back)
    assert back.read_bytes() == payload
    assert stat.S_IMODE(back.stat().st_mode) == 0o600
    transport.remove(workdir)
    gone, _, _ = run(transport, Command(("test", "-e", workdir)))
    assert gone.exited and gone.code == 1

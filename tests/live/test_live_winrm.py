"""Opt-in: the WinRM transport against a real Windows runner, which this machine cannot run.

Set DBU_LIVE_WINRM=user@host[:port] (HTTPS, default port 5986), DBU_LIVE_WINRM_PASSWORD_FILE (a file holding the
password: never on a command line), and optionally DBU_LIVE_WINRM_CA_BUNDLE and DBU_LIVE_WINRM_AUTH
(default negotiate). It runs a command with hostile arguments, copies a file there and back with its checksum,
and removes the private directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from dbupdater.model.command import Command, Ending
from dbupdater.model.secret import Secret
from dbupdater.model.specs import RunnerSpec
from dbupdater.transports import registry
from dbupdater.transports.winrm import WinRMOptions

pytestmark = pytest.mark.live
ENDPOINT = os.environ.get("DBU_LIVE_WINRM", "")


@pytest.fixture
def transport():  # type: ignore[no-untyped-def]
    if not ENDPOINT:
        pytest.skip("DBU_LIVE_WINRM is not set (user@host[:port] of a real Windows runner with a WinRM HTTPS listener)")
    match = re.fullmatch(r"([^@]+)@([^:]+)(?::(\d+))?", ENDPOINT)
    assert match, "DBU_LIVE_WINRM must be user@host[:port]"
    password_file = os.environ.get("DBU_LIVE_WINRM_PASSWORD_FILE", "")
    if not password_file:
        pytest.skip("DBU_LIVE_WINRM_PASSWORD_FILE is not set (a file holding the runner user's password)")
    password = Secret(Path(password_file).read_text(encoding="utf-8").strip())
    ca = os.environ.get("DBU_LIVE_WINRM_CA_BUNDLE")
    options = WinRMOptions(os.environ.get("DBU_LIVE_WINRM_AUTH", "negotiate"), Path(ca) if ca else None)
    spec = RunnerSpec("winrm", match.group(2), int(match.group(3) or 5986), match.group(1), password)
    opened = registry.get("winrm").open(spec, options)
    yield opened
    opened.close()


def test_a_real_windows_runner(transport, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    directory = transport.make_private_dir()
    try:
        hostile = ["it's ‘q’", 'say "hi"', "$(whoami)", "", "a;b & c | d", "%PATH%"]  # noqa: RUF001
        out: list[str] = []
        result = transport.run(Command(("cmd.exe", "/d", "/c", "echo", *hostile)),
                               lambda stream, line: out.append(line))
        assert result.ending is Ending.EXITED
        payload = bytes(range(256)) * 1024
        source = tmp_path / "payload.bin"
        source.write_bytes(payload)
        remote = transport.shell.join(directory, "payload.bin")
        transport.put(source, remote)
        back = tmp_path / "back.bin"
        transport.get(remote, back)
        assert back.read_bytes() == payload
        exited = transport.run(Command(("cmd.exe", "/d", "/c", "exit", "3")), lambda stream, line: None)
        assert (exited.ending, exited.code) == (Ending.EXITED, 3)
        missing = transport.run(Command(("dbupdater-no-such-client",)), lambda stream, line: None)
        assert missing.ending is Ending.CLIENT_MISSING
    finally:
        transport.remove(directory)

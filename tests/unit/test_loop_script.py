"""The session loop's shell script (transports/ssh/session.py LOOP) under each POSIX shell this machine has, run
as sshd would run it (`shell -c LOOP`) on pipes: the protocol byte for byte, whichever way the shell reads the
line (bash at once with `read -N`, others up to the newline), with non-ASCII and long lines, stdin bytes a
command reads in part, statuses, and the loop's variables out of the command's reach. The rig's sshd runs the
same script under bash (tests/test_session_loop.py); dash is the login shell of many system accounts."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from dbupdater.transports.ssh.session import LOOP, PROBE

SHELLS = [name for name in ("bash", "dash", "sh", "ksh", "mksh", "zsh") if shutil.which(name)]
TOKEN = "0123456789abcdef0123456789abcdef"


def _session(shell: str, commands: list[tuple[str, bytes]], env: dict[str, str] | None = None
             ) -> tuple[list[tuple[bytes, int]], list[bytes]]:
    """Each command's stdout and status, and the stderr between the markers."""
    sent = TOKEN.encode() + b"\n" + PROBE
    for line, data in commands:
        encoded = line.encode()
        sent += b"%d %d\n%b\n%b" % (len(encoded), len(data), encoded, data)
    proc = subprocess.run([shutil.which(shell) or shell, "-c", LOOP], input=sent, capture_output=True, timeout=60,
                          env={"PATH": os.environ["PATH"], "SHELL": shutil.which(shell) or shell, **(env or {})})
    out = proc.stdout.split(f"{TOKEN} ready probe\n".encode(), 1)[1]
    err = proc.stderr.split(f"{TOKEN} ready\n".encode(), 1)[1]
    results = []
    for _ in commands:
        body, rest = out.split(b"\n" + TOKEN.encode() + b" ", 1)
        status, out = rest.split(b"\n", 1)
        results.append((body, int(status)))
    return results, err.split(b"\n" + TOKEN.encode() + b"\n")[:-1]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_the_protocol_byte_for_byte(shell: str, locale: str) -> None:
    long_word = "x" * 8000
    commands = [
        ("printf '%s\\n' 'caf\u00e9 \u65e5\u672c \U0001f600'", b""),  # non-ASCII: bash counts bytes, not characters
        (f"printf '%s' {long_word}", b""),
        ("head -c 2", b"abcdef\nnot a command\n"),  # reads part of its stdin: the rest is drained
        ("wc -c", b"12345"),
        ("exit 7", b""),
        ("echo \"${t-unset} ${n-unset} ${l-unset}\"", b""),  # the loop's token and counters are not the line's
        ("echo to-stderr >&2; exec sh -c 'exit 3'", b""),
        ("cat", b""),  # stdin closed at once
    ]
    results, err = _session(shell, commands, {"LANG": locale, "LC_ALL": locale})
    assert results == [
        ("caf\u00e9 \u65e5\u672c \U0001f600\n".encode(), 0),
        (long_word.encode(), 0),
        (b"ab", 0),
        (b"5\n", 0),
        (b"", 7),
        (b"unset unset unset\n", 0),
        (b"", 3),
        (b"", 0),
    ]
    assert err[6] == b"to-stderr\n" and all(part == b"" for number, part in enumerate(err) if number != 6)


@pytest.mark.parametrize("shell", SHELLS)
def test_a_line_that_is_not_valid_shell_fails_alone(shell: str) -> None:
    results, _ = _session(shell, [("echo 'unterminated", b""), ("echo next", b"")])
    assert results[0][1] != 0 and results[1] == (b"next\n", 0)

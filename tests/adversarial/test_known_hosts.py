"""Odd known_hosts files, each used for a real SSH connection to the rig's runner (in-process, through the
transport registry), and judged as OpenSSH would judge it: accepted, refused as unknown, as changed, or as
revoked; never a crash, never a hang. tests/test_hardening.py covers @cert-authority, malformed, non-UTF-8
and @revoked lines through whole runs; these are the other shapes a real file takes."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from dbupdater.model.errors import DbUpdaterError

from . import tally

Variant = Callable[[Path, bytes, bytes, bytes], None]  # (file to write, host id, trusted line, a wrong key)


def _write(data: bytes) -> Variant:
    return lambda path, host, line, wrong: path.write_bytes(data.replace(b"HOST", host).replace(b"LINE", line)
                                                            .replace(b"WRONG", wrong))


def _hashed(path: Path, host: bytes, line: bytes, wrong: bytes) -> None:
    path.write_bytes(line + b"\n")
    subprocess.run(["ssh-keygen", "-q", "-H", "-f", str(path)], check=True, capture_output=True)
    Path(str(path) + ".old").unlink(missing_ok=True)


def _directory(path: Path, host: bytes, line: bytes, wrong: bytes) -> None:
    path.mkdir()


def _fifo(path: Path, host: bytes, line: bytes, wrong: bytes) -> None:
    os.mkfifo(path)


def _missing(path: Path, host: bytes, line: bytes, wrong: bytes) -> None:
    pass


VARIANTS: list[tuple[str, Variant, str]] = [
    ("plain", _write(b"LINE\n"), "accepted"),
    ("hashed", _hashed, "accepted"),
    ("crlf", _write(b"# made on Windows\r\nLINE\r\n"), "accepted"),
    ("no final newline", _write(b"LINE"), "accepted"),
    ("comments, blank lines, trailing comment", _write(b"# runners\n\n   \nLINE root@runner1\n\n"), "accepted"),
    ("leading whitespace", _write(b"   LINE\n"), "accepted"),
    ("host in a list", _write(b"other.example.com,HOST,10.9.9.9 KEYONLY\n"),
     "accepted"),
    ("odd lines first", _write(b"@cert-authority * LINE\n@foo HOST x\nnot a key line\n\xff\xfe\nHOST ssh-ed25519 "
                               b"AAAA!!notbase64\nHOST ssh-ed25519\n" + b"x" * 1_000_000 + b"\nNUL\x00line\nLINE\n"),
     "accepted"),
    ("revoked, another key", _write(b"@revoked HOST WRONG\nLINE\n"), "accepted"),
    ("duplicate lines", _write(b"LINE\nLINE\nLINE\n"), "accepted"),
    ("right key then another type", _write(b"LINE\nHOST ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAI"
                                           b"bmlzdHAyNTYAAABBBHRoaXNpc25vdGFyZWFsa2V5YnV0aXRwYXJzZXM=\n"), "accepted"),
    ("empty", _write(b""), "unknown"),
    ("missing", _missing, "unknown"),
    ("only another host", _write(b"other.example.com KEYONLY\n"), "unknown"),
    ("negated pattern", _write(b"!HOST KEYONLY\n"), "unknown"),
    ("changed key", _write(b"HOST WRONG\n"), "changed"),
    ("revoked and trusted", _write(b"LINE\n@revoked LINE\n"), "revoked"),
    ("a directory", _directory, "error"),
    ("a FIFO", _fifo, "error"),
    # Both were refused before (paramiko's HostKeys: one key per type and name, names matched exactly):
    ("stale key after the right one", _write(b"LINE\nHOST WRONG\n"), "accepted"),
    ("wildcard pattern", _write(b"WILDCARD KEYONLY\n"), "accepted"),
    ("wildcard with a negation of this host", _write(b"WILDCARD,!HOST KEYONLY\n"), "unknown"),
    ("question-mark pattern", _write(b"QMARK KEYONLY\n"), "accepted"),
]
@pytest.fixture(scope="module")
def wrong(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """Another ed25519 public key (type and base64), as a known_hosts line's key fields."""
    path = tmp_path_factory.mktemp("kh") / "wrong"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return b" ".join(path.with_suffix(".pub").read_bytes().split()[:2])


def verdict(known_hosts: Path, runner, info) -> str:  # type: ignore[no-untyped-def]
    from dbupdater.model.secret import Secret
    from dbupdater.model.specs import RunnerSpec
    from dbupdater.transports import registry
    from dbupdater.transports.ssh import SSHOptions

    spec = RunnerSpec("ssh", runner.host, runner.port, info.runner_user, Secret(info.runner_password))
    try:
        registry.get("ssh").open(spec, SSHOptions(known_hosts, connect_timeout=10)).close()
    except DbUpdaterError as exc:
        text = str(exc)
        for word, meaning in (("REVOKED", "revoked"), ("MISMATCH", "changed"), ("is not in", "unknown")):
            if word in text:
                return meaning
        return "error: " + text
    return "accepted"


@pytest.mark.parametrize(("name", "make", "expected"), [pytest.param(*variant, id=variant[0]) for variant in VARIANTS])
def test_known_hosts_variant(tmp_path: Path, info, wrong: bytes, name: str, make: Variant, expected: str) -> None:  # type: ignore[no-untyped-def]
    runner = info.runners[0]
    host = (runner.host if runner.port == 22 else f"[{runner.host}]:{runner.port}").encode()
    entries = Path(info.known_hosts).read_bytes().splitlines()
    line = next(raw for raw in entries if raw.split(b" ")[0] == host)
    path = tmp_path / "known_hosts"
    keyonly = b" ".join(line.split(b" ")[1:3])
    wildcard = b".".join(host.split(b".")[:-1]) + b".*"
    qmark = host[:-1] + b"?"

    def fill(p: Path, h: bytes, ln: bytes, w: bytes) -> None:
        make(p, h, ln, w)
        if p.is_file():
            p.write_bytes(p.read_bytes().replace(b"KEYONLY", keyonly).replace(b"WILDCARD", wildcard)
                          .replace(b"QMARK", qmark).replace(b"NUL", host))

    fill(path, host, line, wrong)
    tally.add("known_hosts variants")
    found: list[str] = []
    worker = threading.Thread(target=lambda: found.append(verdict(path, runner, info)), daemon=True)
    worker.start()
    worker.join(20)
    if worker.is_alive():
        if path.is_fifo():  # unblock the reader so the thread ends
            with open(path, "wb"):
                pass
        pytest.fail(f"{name}: the connection hung reading known_hosts")
    got = found[0]
    if expected == "error":
        assert got.startswith("error: ") and str(path) in got, got
        return
    assert got == expected, f"{name}: {got}"

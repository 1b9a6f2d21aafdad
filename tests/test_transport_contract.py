"""The contract every registered transport passes, each against a real peer: the rig's OpenSSH runner, this
machine, and for WinRM the WS-Management endpoint of tests/winrm_endpoint.py (no Windows runs here).

The kinds come from `transports.registry`: registering a transport puts it under this suite, and a kind with
no peer in PEERS fails it, saying how to add one. What engines rely on (model/command.py): argv values
arrive as one argument each however hostile, `env` and `env_files` reach the client, stdin parts arrive in
order, the shell's exit statuses are read into endings, files go there and back 0600, and the private
directory is 0700 and removable. What dumps, restores and copies rely on (`Transport.stream`): bytes arrive
byte for byte both ways (NUL, invalid UTF-8, empty input), from a generator or a file object, stderr still
as lines; a slow consumer holds the producer back and a source is not read far ahead of the runner;
interrupts reach a streaming command; a failing source kills the command before its input could look
complete. A peer that cannot honour a case skips it with the reason (LIMITS).
"""

from __future__ import annotations

import contextlib
import io
import os
import stat
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dbupdater.model.command import STDIN_PATH, Command, Ending, RemoteFile, Result, Signal
from dbupdater.model.secret import Secret
from dbupdater.model.specs import RunnerSpec
from dbupdater.transports import Transport, registry

HOSTILE = ["db; touch /tmp/dbupdater-pwned", "$(id)", "it's \"quoted\"", "back\\slash", "  spaced  ", "*"]
MiB = 1 << 20

Peer = Callable[[pytest.FixtureRequest], contextlib.AbstractContextManager[Transport]]


@contextlib.contextmanager
def ssh_peer(request: pytest.FixtureRequest) -> Iterator[Transport]:
    from dbupdater.transports.ssh import SSHOptions

    info = request.getfixturevalue("info")
    runner = info.runners[0]
    spec = RunnerSpec("ssh", runner.host, runner.port, info.runner_user, Secret(info.runner_password))
    opened = registry.get("ssh").open(spec, SSHOptions(Path(info.known_hosts)))
    try:
        yield opened
    finally:
        opened.close()


@contextlib.contextmanager
def local_peer(request: pytest.FixtureRequest) -> Iterator[Transport]:
    opened = registry.get("local").open(RunnerSpec("local", "localhost", 0, ""), None)
    try:
        yield opened
    finally:
        opened.close()


@contextlib.contextmanager
def winrm_peer(request: pytest.FixtureRequest) -> Iterator[Transport]:
    """The recorded-protocol endpoint over HTTPS, opened by the kind as a run opens it (certificate checked
    against the CA bundle given, basic auth), playing `cat` and the shell's own scripts."""
    pytest.importorskip("pypsrp")
    import ssl

    from dbupdater.transports.winrm import WinRMOptions

    from .winrm_endpoint import PASSWORD, clients, self_signed, serving

    cert, key = self_signed(request.getfixturevalue("tmp_path"))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with serving() as start:
        _, port = start(clients, context)
        spec = RunnerSpec("winrm", "127.0.0.1", port, "deploy", Secret(PASSWORD))
        opened = registry.get("winrm").open(spec, WinRMOptions(auth="basic", ca_bundle=cert))
        try:
            yield opened
        finally:
            opened.close()


# How to reach a real peer of each registered kind. A new kind adds its own here.
PEERS: dict[str, Peer] = {"ssh": ssh_peer, "local": local_peer, "winrm": winrm_peer}

_POSIX_CLIENTS = ("the endpoint plays PowerShell's side for `cat` and the shell's own scripts only, not POSIX "
                  "clients such as printf, sh, stat or test")
# Cases a peer cannot honour, and why: (kind, test) -> reason.
LIMITS: dict[tuple[str, str], str] = {
    **{("winrm", name): f"{_POSIX_CLIENTS}; {covered}" for name, covered in (
        ("test_argv_values_arrive_as_one_argument_each", "PowerShell quoting of hostile values is "
         "tested offline, by PowerShell's and CommandLineToArgvW's rules (tests/unit/test_powershell_shell.py)"),
        ("test_env_and_env_files_reach_the_client", "the script's environment lines are tested offline "
         "(tests/unit/test_powershell_shell.py)"),
        ("test_stdin_parts_arrive_in_order", "files on the runner copied into stdin are PowerShell's doing "
         "(tests/test_winrm_protocol.py checks the script opens them)"),
        ("test_stdin_as_a_named_file_for_clients_that_read_only_files", "the temporary file is PowerShell's "
         "doing (tests/unit/test_powershell_shell.py)"),
        ("test_endings_are_read_by_the_shell", "Windows endings are read by PowerShell.interpret "
         "(tests/test_winrm_protocol.py: exit codes, 9009, Ctrl-C)"),
        ("test_files_go_there_and_back_0600", "modes are POSIX; WinRM's files go there and back with their "
         "checksum in tests/test_winrm_protocol.py, their ACL only on a real Windows (tests/live)"),
        ("test_stream_stderr_stays_lines_while_stdout_is_bytes", "stderr lines over WinRM are CLIXML-decoded "
         "and tested against recorded samples in tests/test_winrm_protocol.py"),
        ("test_a_client_that_exits_without_reading_its_stdin_gives_its_own_ending", "a Send the command no "
         "longer takes is answered with a fault, which ends the sending (tests/test_transport_winrm_stream.py)"),
        ("test_stream_a_failing_source_kills_the_command_before_its_end", "the missing end of input and the "
         "Terminate are checked at the protocol in tests/test_transport_winrm_stream.py"),
    )},
    ("winrm", "test_stream_a_slow_consumer_holds_the_producer_back"): (
        "the endpoint answers each Receive from memory, with no producer to hold back; the transport asks for "
        "the next Receive only once the last one is delivered, so on Windows the WinRM service holds the rest"),
    ("winrm", "test_stream_a_source_is_not_read_ahead_of_the_runner"): (
        "the endpoint takes every Send at once; tests/test_transport_winrm_stream.py checks the source is "
        "pulled one line per Send answered"),
    ("winrm", "test_stream_memory_stays_flat"): (
        "the endpoint runs in this process and keeps what it is sent; the controller's peak memory is measured "
        "in a process of its own in tests/test_transport_winrm_stream.py"),
}


def supported_kinds() -> list[str]:
    """Every kind a manifest can name. Placeholders (`supported = False`, transports/planned.py) open
    nothing: a run refuses them before connecting, so there is no transport to hold to the contract."""
    return sorted(name for name, kind in registry.kinds().items() if kind.supported)


@pytest.fixture(params=supported_kinds())
def transport(request: pytest.FixtureRequest) -> Iterator[Transport]:
    kind: str = request.param
    reason = LIMITS.get((kind, request.node.originalname))
    if reason:
        pytest.skip(f"{kind}: {reason}")
    peer = PEERS.get(kind)
    if peer is None:
        pytest.fail(f"transport kind {kind!r} is registered but has no peer to test against: add a function "
                    f"opening it against a real peer (or a recorded-protocol endpoint where none can run here) "
                    f"to PEERS in {__file__}, and list in LIMITS the cases that peer cannot honour, with why",
                    pytrace=False)
    with peer(request) as opened:
        yield opened


def test_every_registered_kind_has_a_peer() -> None:
    missing = sorted(set(supported_kinds()) - set(PEERS))
    assert not missing, f"registered transport kinds without a peer in PEERS ({__file__}): {missing}"


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


def exists(transport: Transport, path: str) -> bool:
    result, _, _ = run(transport, Command(("test", "-e", path)))
    assert result.exited and result.code in (0, 1)
    return result.code == 0


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


# -- byte streams --------------------------------------------------------------------------------------------

# What text decoding would damage: NUL, bytes that are no UTF-8, a character cut between chunks, CR and
# CRLF, a last line without its end.
AWKWARD = [b"\x00", b"nul\x00inside\n", b"\xff\xfe\xc3", b"\xa9 cut \xe2\x82", b"\xac\r\n", b"\r", b"\x80" * 3,
           bytes(range(256)) * 4096, b"", b"no end of line"]


class Sink:
    """An on_stdout that keeps what it was given, and how it was given."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.calls = 0

    def __call__(self, chunk: bytes) -> None:
        assert isinstance(chunk, bytes) and chunk
        self.data += chunk
        self.calls += 1


def stream(transport: Transport, command: Command, source: object = None,
           on_stdout: Callable[[bytes], None] | None = None) -> tuple[Result, bytes, list[str]]:
    sink = Sink()
    err: list[tuple[str, str]] = []
    result = transport.stream(command, stdin=source, on_stdout=on_stdout or sink,  # type: ignore[arg-type]
                              on_stderr=lambda stream, line: err.append((stream, line)))
    assert all(name == "stderr" for name, _ in err)
    return result, bytes(sink.data), [line for _, line in err]


def test_stream_bytes_arrive_byte_for_byte(transport: Transport) -> None:
    pulled: list[int] = []

    def source() -> Iterator[bytes]:
        for chunk in AWKWARD:
            pulled.append(len(chunk))
            yield chunk

    result, out, err = stream(transport, Command(("cat",)), source())
    assert (result.ending, result.code, err) == (Ending.EXITED, 0, [])
    assert out == b"".join(AWKWARD)
    assert len(pulled) == len(AWKWARD)


def test_stream_stdin_from_a_file_object(transport: Transport, tmp_path: Path) -> None:
    payload = os.urandom(3 * MiB + 12345)
    path = tmp_path / "payload.bin"
    path.write_bytes(payload)
    with path.open("rb") as handle:
        result, out, _ = stream(transport, Command(("cat",)), handle)
    assert (result.ending, result.code) == (Ending.EXITED, 0)
    assert out == payload
    result, out, _ = stream(transport, Command(("cat",)), io.BytesIO(b"\x00\xff" * 1000))
    assert out == b"\x00\xff" * 1000


def test_stream_empty_input(transport: Transport) -> None:
    for source in (iter(()), iter((b"", b"")), io.BytesIO(b"")):
        result, out, err = stream(transport, Command(("cat",)), source)
        assert (result.ending, result.code, out, err) == (Ending.EXITED, 0, b"", [])


def test_stream_without_a_source_feeds_the_command_s_own_stdin(transport: Transport) -> None:
    result, out, _ = stream(transport, Command(("cat",), stdin=(b"\x00own\xff\r\n",)))
    assert (result.ending, result.code, out) == (Ending.EXITED, 0, b"\x00own\xff\r\n")
    result, out, _ = stream(transport, Command(("cat",)))
    assert (result.ending, result.code, out) == (Ending.EXITED, 0, b"")


def test_stream_refuses_bytes_of_the_command_s_own_beside_a_source(transport: Transport) -> None:
    with pytest.raises(ValueError, match="no bytes part"):
        stream(transport, Command(("cat",), stdin=(b"own",)), iter((b"source",)))


def test_stream_stderr_stays_lines_while_stdout_is_bytes(transport: Transport) -> None:
    script = 'printf "first\\nsecond \\303\\251" >&2; cat; printf "\\000\\377"'
    result, out, err = stream(transport, Command(("sh", "-c", script)), iter((b"in\n",)))
    assert (result.ending, result.code) == (Ending.EXITED, 0)
    assert out == b"in\n\x00\xff"
    assert err == ["first", "second é"]


def test_stream_reads_the_ending_as_run_does(transport: Transport) -> None:
    result, _, _ = stream(transport, Command(("dbupdater-no-such-client",)), iter((b"x",)))
    assert result.ending is Ending.CLIENT_MISSING


def test_stream_interrupt_reaches_a_streaming_command(transport: Transport) -> None:
    """`cat` fed without end: only the interrupt can end it."""
    command = Command(("cat",))
    interrupted = threading.Event()

    def endless() -> Iterator[bytes]:
        while True:
            yield b"x" * 65536

    def take(chunk: bytes) -> None:
        if not interrupted.is_set():
            interrupted.set()
            transport.interrupt(Command(("cat",)), Signal.INT)  # an equal command, not this one: nothing
            transport.interrupt(command, Signal.INT)

    result, _, _ = stream(transport, command, endless(), on_stdout=take)
    assert interrupted.is_set()
    assert result.ending is Ending.SIGNALLED


def test_stream_a_slow_consumer_holds_the_producer_back(transport: Transport, workdir: str) -> None:
    """While the consumer holds its first chunk, 64 MiB cannot all have left the producer: it waits for the
    consumer (the window, the pipe), or it would have finished and written its mark."""
    mark = transport.shell.join(workdir, "done")
    seen: list[bool] = []
    total = 0

    def take(chunk: bytes) -> None:
        nonlocal total
        if not seen:
            time.sleep(1.0)  # a slow consumer, long enough for an unbounded reader to take it all
            seen.append(exists(transport, mark))
        total += len(chunk)

    command = Command(("sh", "-c", f'head -c {64 * MiB} /dev/zero && touch "$0"', mark))
    result = transport.stream(command, on_stdout=take, on_stderr=lambda stream, line: None)
    assert (result.ending, result.code, total) == (Ending.EXITED, 0, 64 * MiB)
    assert seen == [False]
    assert exists(transport, mark)


def test_stream_a_source_is_not_read_ahead_of_the_runner(transport: Transport, workdir: str) -> None:
    """The client reads nothing until a mark appears: meanwhile the source is pulled only as far as the
    buffers between (an SSH window, a pipe), not its 64 MiB."""
    mark = transport.shell.join(workdir, "go")
    pulled = 0

    def source() -> Iterator[bytes]:
        nonlocal pulled
        for _ in range(64):
            pulled += MiB
            yield b"\x00" * MiB

    command = Command(("sh", "-c", 'while [ ! -e "$0" ]; do sleep 0.05; done; exec cat', mark))
    outcome: list[tuple[Result, bytes, list[str]]] = []
    worker = threading.Thread(target=lambda: outcome.append(stream(transport, command, source(), Sink())))
    worker.start()
    try:
        time.sleep(1.0)  # long enough for an unbounded writer to pull it all
        held = pulled
    finally:
        transport.put_bytes(b"", mark)
        worker.join(120)
    assert held <= 16 * MiB
    assert outcome and outcome[0][0].exited and pulled == 64 * MiB


def test_stream_memory_stays_flat(transport: Transport) -> None:
    """256 MiB through `cat` both ways at once: this process grows by a few chunks at most."""
    def rss() -> int:
        with open("/proc/self/status", encoding="ascii") as status:
            return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS:"))

    before = rss()
    peak = before
    total = 0

    def take(chunk: bytes) -> None:
        nonlocal peak, total
        total += len(chunk)
        peak = max(peak, rss()) if total % (8 * MiB) < len(chunk) else peak

    block = os.urandom(MiB)
    result = transport.stream(Command(("cat",)), stdin=(block for _ in range(256)), on_stdout=take,
                              on_stderr=lambda stream, line: None)
    assert (result.ending, result.code, total) == (Ending.EXITED, 0, 256 * MiB)
    assert peak - before < 48 * MiB


def test_stream_a_failing_source_kills_the_command_before_its_end(transport: Transport, workdir: str) -> None:
    """A truncated input must never look complete: the client is killed, never shown an end of input."""
    mark = transport.shell.join(workdir, "completed")

    def failing() -> Iterator[bytes]:
        yield b"x" * MiB
        raise OSError("the dump being copied broke off")

    command = Command(("sh", "-c", 'cat > /dev/null && touch "$0"', mark))
    with pytest.raises(OSError, match="broke off"):
        stream(transport, command, failing())
    assert not exists(transport, mark)
    result, out, _ = stream(transport, Command(("cat",)), iter((b"still usable",)))
    assert (result.exited, out) == (True, b"still usable")


def test_stream_a_failing_consumer_ends_the_stream(transport: Transport) -> None:
    def refuse(chunk: bytes) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        stream(transport, Command(("cat",)), iter(b"x" * MiB for _ in range(64)), on_stdout=refuse)
    result, out, _ = stream(transport, Command(("cat",)), iter((b"still usable",)))
    assert (result.exited, out) == (True, b"still usable")


def test_a_client_that_exits_without_reading_its_stdin_gives_its_own_ending(transport: Transport) -> None:
    """A client that fails before it reads its input (a refused login) is judged by its exit status, not taken
    for a runner gone away because its stdin could no longer be sent."""
    for _ in range(5):
        result, _, _ = run(transport, Command(("sh", "-c", "exit 4"), stdin=(b"x" * (3 * MiB),)))
        assert (result.ending, result.code) == (Ending.EXITED, 4)
        streamed, _, _ = stream(transport, Command(("sh", "-c", "exit 4")), iter(b"x" * MiB for _ in range(3)))
        assert (streamed.ending, streamed.code) == (Ending.EXITED, 4)

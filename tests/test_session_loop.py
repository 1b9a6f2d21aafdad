"""The SSH transport's persistent sessions (dbupdater/transports/ssh/session.py) on the rig's real sshd.

Each case is judged against a channel per command, the way every command ran before: the same output, the
same Result. Output that looks like framing (a marker with a guessed token, the loop's own words, binary with
every byte value, a megabyte without a newline), a client killed by a signal, a command reading stdin,
interrupts and KILL mid-command, the runner's sshd killed mid-session: nothing hangs, and a session that
survives its command is reused.
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbupdater.model.command import Command, Ending, Result, Signal
from dbupdater.model.secret import Secret
from dbupdater.model.specs import RunnerSpec
from dbupdater.transports import Transport, TransportError, registry


@contextlib.contextmanager
def _opened(info, loop: bool, runner: int = 1) -> Iterator[Transport]:  # type: ignore[no-untyped-def]
    from dbupdater.transports.ssh import SSHOptions

    spec = RunnerSpec("ssh", info.runners[runner - 1].host, info.runners[runner - 1].port, info.runner_user,
                      Secret(info.runner_password))
    transport = registry.get("ssh").open(spec, SSHOptions(Path(info.known_hosts), connect_timeout=10,
                                                          alive_interval=2, session_loop=loop))
    try:
        yield transport
    finally:
        transport.close()


def _both(info, command: Command) -> tuple[tuple[Result, bytes, list[str]], ...]:  # type: ignore[no-untyped-def]
    """The command's result, raw stdout and stderr lines, in a session loop and on a channel of its own."""
    seen = []
    for loop in (True, False):
        out: list[bytes] = []
        err: list[str] = []
        with _opened(info, loop) as transport:
            result = transport.stream(command, on_stdout=out.append, on_stderr=lambda _s, line: err.append(line))
            if loop:
                assert transport._loops, "the command did not run in a session loop"  # type: ignore[attr-defined]
        seen.append((result, b"".join(out), err))
    return tuple(seen)


def _same(info, command: Command) -> tuple[Result, bytes, list[str]]:  # type: ignore[no-untyped-def]
    looped, alone = _both(info, command)
    assert looped == alone
    return looped


def test_output_that_looks_like_framing_passes_through(info) -> None:  # type: ignore[no-untyped-def]
    guess = secrets.token_hex(16)
    script = (f"printf '\\n{guess} 0\\n'; printf '\\n{guess}\\n' >&2; echo ready; printf 'x%.0s' $(seq 1 3000);"
              "head -c 1048576 /dev/zero | tr '\\0' 'y'; printf '\\n'; exit 4")
    result, out, err = _same(info, Command(["sh", "-c", script]))
    assert (result.ending, result.code) == (Ending.EXITED, 4)
    assert out.startswith(f"\n{guess} 0\nready\n".encode()) and out.endswith(b"y\n") and len(out) > 1 << 20
    assert err == ["", guess]


def test_binary_output_byte_for_byte(info) -> None:  # type: ignore[no-untyped-def]
    every = bytes(range(256)) * 64
    result, out, _ = _same(info, Command(["sh", "-c", "cat"]).with_stdin(every))
    assert result.code == 0 and out == every


def test_no_newline_at_the_end_and_empty_output(info) -> None:  # type: ignore[no-untyped-def]
    assert _same(info, Command(["printf", "no newline"]))[1] == b"no newline"
    assert _same(info, Command(["true"]))[1] == b""


def test_a_client_killed_by_a_signal_and_a_missing_one(info) -> None:  # type: ignore[no-untyped-def]
    result, _, err = _same(info, Command(["sh", "-c", "kill -9 $$"]))
    assert (result.ending, result.code) == (Ending.SIGNALLED, 9) and err == []
    looped, alone = _both(info, Command(["no-such-client-dbupdater"]))
    assert looped[0] == alone[0] and looped[0].ending is Ending.CLIENT_MISSING
    # The shells' words differ (the loop's line number, `exec:`); both name the client as not found.
    assert len(looped[2]) == len(alone[2]) == 1
    assert all("no-such-client-dbupdater" in said and "not found" in said for said in (*looped[2], *alone[2]))


def test_a_command_reading_stdin_gets_its_bytes_or_nothing(info) -> None:  # type: ignore[no-untyped-def]
    assert _same(info, Command(["cat"]))[1] == b""  # stdin closed at once, as on a channel of its own
    assert _same(info, Command(["wc", "-c"]).with_stdin(b"12345"))[1].strip() == b"5"
    # a command that reads only part of its stdin leaves nothing behind for the next one
    with _opened(info, True) as transport:
        lines: list[str] = []
        transport.run(Command(["head", "-c", "2"]).with_stdin(b"abcdef\nnot a command\n"),
                      lambda _s, line: lines.append(line))
        transport.run(Command(["echo", "next"]), lambda _s, line: lines.append(line))
        assert lines == ["ab", "next"]


def test_a_session_is_reused_and_serves_one_command_at_a_time(info) -> None:  # type: ignore[no-untyped-def]
    with _opened(info, True) as transport:
        outputs: list[list[str]] = [[] for _ in range(6)]
        threads = [threading.Thread(target=transport.run, args=(Command(["sh", "-c", f"sleep 0.3; echo {n}"]),
                                                                 lambda _s, line, n=n: outputs[n].append(line)))
                   for n in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert outputs == [[str(n)] for n in range(6)]
        assert len(transport._loops) == 6  # type: ignore[attr-defined]
        for _ in range(5):
            transport.run(Command(["true"]), lambda _s, _line: None)
        assert len(transport._loops) == 6  # type: ignore[attr-defined]


@pytest.mark.parametrize("signal", [Signal.INT, Signal.KILL])
def test_an_interrupt_mid_command_ends_it_as_on_a_channel_of_its_own(info, signal: Signal) -> None:  # type: ignore[no-untyped-def]
    endings = []
    for loop in (True, False):
        with _opened(info, loop) as transport:
            transport.run(Command(["true"]), lambda _s, _line: None)  # a session already serving
            command = Command(["sh", "-c", "echo started; sleep 30; echo never"])
            lines: list[str] = []
            threading.Timer(0.5, transport.interrupt, args=(command, signal)).start()
            began = time.monotonic()
            result = transport.run(command, lambda _s, line: lines.append(line))
            assert time.monotonic() - began < 10 and lines == ["started"]
            endings.append((result.ending, result.code))
            after: list[str] = []  # the connection still serves, in a new session when the old one died
            assert transport.run(Command(["echo", "after"]), lambda _s, line: after.append(line)).code == 0
            assert after == ["after"]
    assert endings[0] == endings[1] == (Ending.SIGNALLED, 2 if signal is Signal.INT else 9)


def test_the_runners_sshd_killed_mid_session(rig, info) -> None:  # type: ignore[no-untyped-def]
    with _opened(info, True, runner=2) as transport:
        transport.run(Command(["true"]), lambda _s, _line: None)
        stopper = threading.Timer(0.5, rig.stop_runner, args=(2,))
        stopper.start()
        began = time.monotonic()
        try:
            try:
                ending = transport.run(Command(["sleep", "30"]), lambda _s, _line: None).ending.value
            except TransportError:
                ending = "gone"  # the runner counted as gone: as on a channel of its own
            assert ending in ("lost", "gone") and time.monotonic() - began < 20
            with pytest.raises(TransportError):
                transport.run(Command(["true"]), lambda _s, _line: None)
        finally:
            stopper.join()  # stop_runner waits for every process of the runner: only then start it again
            rig.start_runner(2)


def test_a_marker_cut_anywhere_between_chunks_is_found() -> None:
    from dbupdater.transports.ssh.session import _Framed

    token = b"0123456789abcdef0123456789abcdef"
    stream = b"out\n\n" + token[:-1] + b"X partial marker\nend" + b"\n" + token + b" 7\n"
    for size in (1, 2, 3, 5, 31, 32, 33, 1000):
        got: list[bytes] = []
        framed = _Framed(b"\n" + token, got.append)
        for at in range(0, len(stream), size):
            framed.feed(stream[at:at + size])
        assert framed.ended and b"".join(got) == b"out\n\n" + token[:-1] + b"X partial marker\nend"
        assert framed.trailer == b" 7\n"


@pytest.mark.parametrize("seed", range(20))
def test_output_full_of_marker_beginnings_passes_whole_on_random_chunks(seed: int) -> None:
    """Only what could begin the marker is held back between chunks; the rest passes as it came."""
    import random

    from dbupdater.transports.ssh.session import _Framed

    rng = random.Random(seed)
    token = b"0123456789abcdef0123456789abcdef"
    pieces = [b"\n", b"\n0123", b"\n" + token[:-1], b"\n" + token[:-1] + b"\n", b"x" * 40, b"\xff\x00", b"\r\n"]
    body = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 300)))
    for ended in (True, False):
        stream = body + (b"\n" + token + b" 0\n" if ended else b"")
        cuts = sorted(rng.sample(range(len(stream) + 1), min(len(stream) + 1, rng.randrange(1, 40))))
        got: list[bytes] = []
        framed = _Framed(b"\n" + token, got.append)
        for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True):
            if a < b:
                framed.feed(stream[a:b])
        if not ended:
            framed.flush()
        assert b"".join(got) == body
        assert framed.ended is ended


def test_a_shell_that_cannot_host_the_loop_gets_a_channel_per_command_said_once(
        info, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    from dbupdater.transports.ssh import session

    # what a csh or fish login shell does with the loop: an error, and no "ready"
    monkeypatch.setattr(session, "LOOP", "echo 'Unmatched \".' >&2; exit 1")
    with _opened(info, True) as transport:
        for text in ("one", "two", "three"):
            lines: list[str] = []
            assert transport.run(Command(["echo", text]), lambda _s, line: lines.append(line)).code == 0
            assert lines == [text]
        assert transport._loops is None  # type: ignore[attr-defined]
    said = [r.getMessage() for r in caplog.records if "cannot host the session loop" in r.getMessage()]
    assert len(said) == 1 and "Unmatched" in said[0]

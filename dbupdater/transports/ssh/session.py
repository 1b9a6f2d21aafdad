"""A persistent session per runner slot: one SSH channel runs a small POSIX shell loop that executes the
command lines the shell object renders, one after another, so a command costs no channel opening, no sshd
session fork and no login shell start.

The protocol, on the channel's stdin, after the session's token line:

    <l> <n>\\n             the command line's length in bytes, and how many bytes of stdin follow (0: the
                          command's stdin is /dev/null)
    <command line>\\n      the line PosixShell rendered (one line; a line holding a newline takes a channel)
    <n bytes>             the command's stdin, piped from `head -c n`; what it leaves unread is drained, so
                          it can never be read as the next command's line

bash reads the line as `l + 1` bytes at once (`read -N`, in the C locale so that it counts bytes): a shell
reads a pipe a byte at a time to stop at a newline, which cost about 0.5 ms for the 1.5 KB of a MySQL script's
line with its ledger SQL. Other shells read it up to its newline, as before.

The line runs as sshd would run it with `$SHELL -c line`: in a subshell of the loop, which is that login
shell (nothing the line sets outlives it), with the loop's variables unset and its client replacing the
subshell (`exec`, as bash and dash replace a `-c` shell by a lone command), and with its stdout and stderr on
the channel's own. A shell's own messages name the line by the loop's line number ("line 7", where a channel
of its own says "line 1"), and a client that is not there is reported by `exec` ("exec: mysql: not found");
the status is the same (127). No shell is started per command: that cost 1 to 1.5 ms of a 2 ms round trip.

When the line has ended, the loop writes `\\n<token> <status>\\n` on stdout and `\\n<token>\\n` on stderr; the
reader passes everything before those markers on and drops the newline the loop added. The token is 128 random
bits made per session and sent on stdin: it is in no argv and no environment variable (the loop does not export
it), so a command's output cannot forge the end of its own output, whatever it prints (binary, long lines, text
that looks like a marker).

Interrupts and timeouts signal the session's process group exactly as they signal a channel of its own (sshd
sends RFC 4254's "signal" to it): the command, its children and the loop. The session then ends with the
signal as its exit-signal, which is read as before; the next command gets a new session. A loop whose
command ended by itself is reused.
"""

from __future__ import annotations

import contextlib
import secrets
import select
import time
from collections.abc import Callable

from ..base import CHUNK, Bytes, TransportError, without_module

with without_module("invoke"):
    import paramiko

# Run by the runner user's login shell, as sshd runs every command line; `read` never reads past what it
# was asked for (a line, or bash's `read -N` bytes). Each line runs in a subshell, `eval`ed there (the loop's
# token and counters unset first), with its stderr on the channel's through fd 3. The loop's own stderr goes
# to /dev/null: bash reports a child killed by a signal there ("Killed ..."), which a channel of its own never
# showed; the line's client replaces its subshell (PosixShell.render(replacing=True)), so no other shell is
# left to report it. Stdin bytes reach the command through a pipe from `head -c N`, and what the command
# leaves unread is drained after it, so the next line is read where the bytes end; the loop writes no file
# and makes no directory, so a session killed with its command (an interrupt, a timeout) leaves nothing
# behind. `head -c` must read no further than N: checked once at the start (the probe), else the runner gets
# a channel per command.
LOOP = r"""IFS= read -r t || exit 0
exec 3>&2 2>/dev/null
head -c 3 >/dev/null; IFS= read -r p
printf '%s ready %s\n' "$t" "$p"; printf '%s ready\n' "$t" >&3
while IFS=' ' read -r l n; do
  if [ -n "${BASH_VERSION-}" ]; then
    LC_ALL=C IFS= read -r -N "$((l + 1))" line || break; line=${line%?}
  else
    IFS= read -r line || break
  fi
  if [ "$n" -gt 0 ]; then
    head -c "$n" | { (unset t l n s p; eval "$line") 2>&3 3>&-; s=$?; cat >/dev/null; exit "$s"; }
  else
    (unset t l n s p; eval "$line") </dev/null 2>&3 3>&-
  fi
  s=$?
  printf '\n%s %s\n' "$t" "$s"; printf '\n%s\n' "$t" >&3
done
"""


PROBE = b"xyzprobe\n"  # `head -c 3` takes "xyz"; the loop's next `read` must get "probe"


class _Framed:
    """One of a session's output streams: bytes before the end marker go to `sink`, a few held back in case a
    marker begins at the end of a chunk."""

    def __init__(self, marker: bytes, sink: Callable[[bytes], None]) -> None:
        self.marker = marker  # b"\n" + token: the newline is the loop's, not the command's
        self.sink = sink
        self.held = b""
        self.trailer: bytes | None = None  # what follows the marker, once it came
        self.ended = False  # the marker's line is complete

    def feed(self, data: bytes) -> None:
        if self.trailer is not None:
            self.trailer += data
            self.ended = b"\n" in self.trailer
            return
        buffer = self.held + data if self.held else data
        at = buffer.find(self.marker)
        if at < 0:
            keep = self._open_end(buffer)
            if keep < len(buffer):
                self.sink(buffer[:-keep] if keep else buffer)  # whole, without a copy, when nothing is held
                self.held = buffer[-keep:] if keep else b""
            else:
                self.held = buffer
            return
        if at:
            self.sink(buffer[:at])
        self.held = b""
        self.trailer = buffer[at + len(self.marker):]
        self.ended = b"\n" in self.trailer

    def _open_end(self, buffer: bytes) -> int:
        """How many bytes at the end of `buffer` could begin the marker (which starts with a newline)."""
        start = max(0, len(buffer) - len(self.marker) + 1)
        at = buffer.find(b"\n", start)
        while at >= 0:
            if self.marker.startswith(buffer[at:]):
                return len(buffer) - at
            at = buffer.find(b"\n", at + 1)
        return 0

    def flush(self) -> None:
        """The session ended without a marker: what was held back was the command's."""
        if self.held:
            self.sink(self.held)
            self.held = b""


def send_all(channel: paramiko.Channel, data: Bytes) -> None:
    """`channel.sendall` without its copy of the rest after every packet. The runner's sshd takes packets of
    32 KiB, so sendall copied a 512 KiB chunk's remainder 16 times (measured: a fifth of the controller's
    memory copying on a 1 GB copy); a view is sliced instead, and paramiko's packet takes any buffer. Raises
    EOFError when the channel takes nothing more (its end sent or the channel closed), where sendall would
    retry forever."""
    view = memoryview(data)
    while view:
        sent = channel.send(view)  # type: ignore[arg-type]  # any buffer (paramiko.util.asbytes passes it on)
        if not sent:
            raise EOFError("the channel takes no more data")
        view = view[sent:]


def drain(channel: paramiko.Channel, on_stdout: Callable[[bytes], None], on_stderr: Callable[[bytes], None],
          done: Callable[[], bool]) -> bool:
    """Read stdout and stderr as they arrive until `done` (True) or the channel ended (False: closed, the
    connection gone, or its end of output and exit status came). Nothing more is read while a sink runs, and
    paramiko gives the runner window only for what was read: a slow consumer holds the remote producer back,
    and at most a window's worth waits here."""
    while True:
        if channel.recv_ready():
            on_stdout(channel.recv(CHUNK))
            if channel.recv_stderr_ready():
                on_stderr(channel.recv_stderr(CHUNK))
            continue
        if channel.recv_stderr_ready():
            on_stderr(channel.recv_stderr(CHUNK))
            continue
        finished = done()
        if finished or channel.closed or not channel.get_transport().is_active() or (
                channel.eof_received and channel.exit_status_ready()):
            while channel.recv_ready():
                on_stdout(channel.recv(CHUNK))
            while channel.recv_stderr_ready():
                on_stderr(channel.recv_stderr(CHUNK))
            return finished or done()
        select.select([channel], [], [], 5.0)


class SessionLoop:
    """One persistent session (its channel and token); used by one command at a time."""

    def __init__(self, channel: paramiko.Channel, timeout: float) -> None:
        self.channel = channel
        self.token = secrets.token_hex(16).encode()
        self.usable = True
        channel.exec_command(LOOP)
        # A shell that cannot host the loop may have exited already ("Socket is closed"): what it said tells why.
        with contextlib.suppress(OSError):
            channel.sendall(self.token + b"\n" + PROBE)
        self._await_ready(timeout)

    def _await_ready(self, timeout: float) -> None:
        """Both streams say ready (stdout with what `head -c 3` left of the probe); whatever the login shell
        printed before (a noisy profile) is dropped."""
        ready = {"out": self.token + b" ready " + PROBE[3:], "err": self.token + b" ready\n"}
        seen = {"out": b"", "err": b""}
        deadline = time.monotonic() + timeout
        while not all(ready[name] in text for name, text in seen.items()):
            if self.channel.recv_ready():
                seen["out"] = (seen["out"] + self.channel.recv(CHUNK))[-4096:]
            elif self.channel.recv_stderr_ready():
                seen["err"] = (seen["err"] + self.channel.recv_stderr(CHUNK))[-4096:]
            elif self.channel.closed or self.channel.eof_received or self.channel.exit_status_ready():
                said = (seen["err"] or seen["out"]).decode("utf-8", "replace").strip()[-200:]
                raise TransportError(f"the session loop did not start: {said or 'the shell exited'}")
            elif time.monotonic() > deadline:
                raise TransportError(f"the session loop did not start within {timeout:g} s")
            else:
                select.select([self.channel], [], [], 0.05)
        for name, text in seen.items():  # nothing may follow "ready" before a command is sent
            if not text.endswith(ready[name]):
                raise TransportError(f"the session loop printed more than expected on std{name}")

    def run(self, line: str, data: bytes | None, on_stdout: Callable[[bytes], None],
            on_stderr: Callable[[bytes], None]) -> int | None:
        """Run one command line; its raw status, or None when the session ended before it said one (an
        interrupt, a lost runner: the channel's own ending says what happened). Raises what the sinks raise,
        and paramiko's errors when the command cannot be sent."""
        payload, encoded = data or b"", line.encode()
        send_all(self.channel, b"%d %d\n%b\n%b" % (len(encoded), len(payload), encoded, payload))
        marker = b"\n" + self.token
        out, err = _Framed(marker, on_stdout), _Framed(marker, on_stderr)
        if not drain(self.channel, out.feed, err.feed, lambda: out.ended and err.ended):
            self.usable = False
            out.flush()
            err.flush()
            return None
        assert out.trailer is not None
        status = out.trailer.split(b"\n", 1)[0].strip()
        if not status.isdigit():
            self.usable = False
            raise TransportError(f"the session loop ended a command with {status[:40]!r}")
        return int(status)

    def close(self) -> None:
        """The end of its input: the loop exits."""
        self.usable = False
        with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
            self.channel.shutdown_write()

"""The transport interface: run a `Command`, copy files there and back, interrupt. Transports know nothing
of databases; what depends on the runner's operating system is in its `Shell`."""

from __future__ import annotations

import codecs
import contextlib
import io
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from ..model.command import Command, Result, Signal
from ..model.errors import UnreachableError
from .shells import Shell


@contextlib.contextmanager
def without_module(name: str) -> Iterator[None]:
    """Make an optional import of `name` fail while the block runs (when it is not loaded already)."""
    if name in sys.modules:
        yield
        return
    sys.modules[name] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        del sys.modules[name]


OutputHandler = Callable[[str, str], None]
"""Called with ("stdout" | "stderr", line) for every line, as it arrives."""


class BatchedOutput(ABC):
    """An OutputHandler that also takes the lines of one chunk of output in one call. A client printing a
    million short lines then costs a Python call per chunk instead of several per line (bench.drain): where a
    transport splits lines itself (`LineSplitter`), it hands over every complete line of a chunk at once, in
    order; a line it makes up on its own (a client missing, a lost runner) still comes through `__call__`."""

    def __call__(self, stream: str, line: str) -> None:
        self.lines(stream, [line])

    @abstractmethod
    def lines(self, stream: str, lines: list[str]) -> None:
        """Lines of `stream` as `__call__` would get them one by one (cut, without their line ends)."""


Bytes = bytes | memoryview
"""A chunk of a stream: a view where slicing a chunk would only copy it once more before it is sent."""

ByteSource = IO[bytes] | Iterable[Bytes]
"""A command's stdin sent along from here: a file-like object (read in chunks) or an iterable of chunks (a
generator producing them as it goes). Either is pulled only as fast as the runner reads."""

ByteSink = Callable[[bytes], None]
"""Called with each chunk of a command's stdout as it arrives, raw: never decoded, split or joined."""

CHUNK = 1 << 20  # bytes read from a file-like ByteSource at a time


def chunks(source: ByteSource, size: int = CHUNK) -> Iterator[Bytes]:
    """A ByteSource as chunks of at most `size` bytes (a larger chunk of an iterable is cut, never held twice);
    empty ones are dropped, since a transport may read an empty write as the end of its input."""
    if hasattr(source, "read"):
        read = source.read
        while data := read(size):
            yield data
        return
    for data in source:
        if len(data) <= size:
            if data:
                yield data
            continue
        view = memoryview(data)
        for at in range(0, len(data), size):
            yield bytes(view[at:at + size])


def with_streamed_stdin(command: Command) -> Command:
    """`command` with a place for the stdin `stream` sends along, after its files on the runner. The command
    must carry no bytes of its own: one connection carries one input stream, and two sources sent along
    would need an order this contract cannot promise."""
    if any(isinstance(part, bytes) for part in command.stdin):
        raise ValueError("stream() with a stdin source takes a command whose stdin has no bytes part "
                         "(send those bytes as the start of the source)")
    return command.with_stdin(b"")


class TransportError(UnreachableError):
    """The runner could not be reached, refused us, or went away."""


class HostKeyRefused(TransportError):
    """Unknown or changed host key: permanent until a person acts, so never retried."""


MAX_LINE = 64 * 1024  # characters of one output line kept; the rest is cut, and the cut says so


class LineSplitter:
    """Incremental UTF-8 decoding and line splitting, so output is judged while it streams. A line is kept up
    to MAX_LINE characters: a client printing 50 MB without a newline must not hold 50 MB (or print it)."""

    def __init__(self, stream: str, handler: OutputHandler) -> None:
        self.stream = stream
        self.handler = handler
        self._batch = handler.lines if isinstance(handler, BatchedOutput) else None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._cut = 0  # characters of the current line dropped so far

    def feed(self, data: bytes) -> None:
        text = self._pending + self._decoder.decode(data)
        *lines, self._pending = text.split("\n")
        if self._batch is None:
            handler, stream = self.handler, self.stream
            for line in lines:  # every line of a client's output passes here: the usual one takes no further call
                if self._cut or len(line) > MAX_LINE:
                    handler(stream, self._shown(line))
                else:
                    handler(stream, line.rstrip("\r"))
        elif lines:  # a chunk's lines in one call, each line's work done in C where it can be
            if self._cut or max(map(len, lines)) > MAX_LINE:
                self._batch(self.stream, [self._shown(line) for line in lines])
            else:
                self._batch(self.stream, [line.rstrip("\r") for line in lines] if "\r" in text else lines)
        if len(self._pending) > MAX_LINE:
            self._cut += len(self._pending) - MAX_LINE
            self._pending = self._pending[:MAX_LINE]

    def _shown(self, line: str) -> str:
        """The line as handlers get it: cut to MAX_LINE, saying how much of it was cut (here and before)."""
        if len(line) > MAX_LINE:
            self._cut += len(line) - MAX_LINE
            line = line[:MAX_LINE]
        if self._cut:
            line = f"{line} [... {self._cut} more characters of this line cut]"
            self._cut = 0
        return line.rstrip("\r")

    def close(self) -> None:
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        if text or self._cut:
            self.handler(self.stream, self._shown(text))


class Transport(ABC):
    label: str
    shell: Shell

    @abstractmethod
    def run(self, command: Command, on_output: OutputHandler) -> Result:
        """Run the command through the runner's shell, streaming its output as lines; the result's ending is
        already read by the shell (client missing, signal, connection lost)."""

    def stream(self, command: Command, *, stdin: ByteSource | None = None, on_stdout: ByteSink,
               on_stderr: OutputHandler) -> Result:
        """Run the command with its stdin and stdout as byte streams: dumps, restores and copies of many GB
        pass through the controller with flat memory, byte for byte (`run` decodes and splits lines, and
        sends stdin whole).

        stdin: None feeds the command's own stdin parts, as `run` does. A `ByteSource` is fed after the
        command's files on the runner (`RemoteFile` parts), and then closed on the runner's side; the
        command must have no bytes part then (ValueError). stdout reaches `on_stdout` as raw chunks; stderr
        still reaches `on_stderr` as ("stderr", line), so it can be judged as it streams.

        Back-pressure both ways: `on_stdout` is called on the reading thread, and nothing more is read from
        the runner while it runs, so a slow consumer slows the remote producer (an SSH channel's window, a
        pipe) instead of filling memory; `stdin` is pulled a chunk at a time, only as the runner accepts
        it. Either way the controller holds a few chunks at most, whatever the size.

        The ending is read by the shell as in `run` (client missing, signal, runner lost: Ending.LOST or
        TransportError, as `run` reports it), and `interrupt(command, signal)` reaches the command as it
        does one given to `run`. A command that exits before reading all of `stdin` ends the feeding and
        gives its own ending. When `on_stdout` raises, or reading `stdin` does, the command is killed (what
        interrupt's Signal.KILL sends: its process group; WinRM's Terminate) before its input is closed, so
        it never takes a truncated input for a complete one, and the exception propagates.

        Not abstract, so a test double that never streams needs no stub of it; every registered kind
        implements it (usually through StreamingTransport), and tests/test_transport_contract.py runs the
        byte-stream contract on each."""
        raise NotImplementedError(f"{type(self).__name__} does not stream bytes")

    def put(self, local: Path, remote: str) -> None:
        """Copy a file, streamed, as mode 0600."""
        with local.open("rb") as handle:
            self.put_stream(handle, os.fstat(handle.fileno()).st_size, remote, local.name)

    @abstractmethod
    def put_stream(self, source: IO[bytes], size: int, remote: str, name: str) -> None:
        """Copy `size` bytes read from `source` (streamed, never held whole) to a new 0600 file; `name` is
        what errors call it."""

    @abstractmethod
    def put_bytes(self, data: bytes, remote: str) -> None:
        """Write a small file as mode 0600 (credential files)."""

    def put_files(self, files: Sequence[tuple[bytes, str, str]]) -> None:
        """Write several small files (content, remote path, the name errors call it) as mode 0600: the scripts
        a run copies ahead of their turn. One at a time here; a transport that can write them all in one round
        trip does."""
        for data, remote, name in files:
            self.put_stream(io.BytesIO(data), len(data), remote, name)

    @abstractmethod
    def get(self, remote: str, local: Path) -> None:
        """Copy a file from the runner, streamed (a backup taken there), as mode 0600 here."""

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def interrupt(self, command: Command | None = None, signal: Signal = Signal.INT) -> None:
        """A signal to every command still running (or only to `command`, the very object given to `run`: a
        script over its --script-timeout), to its whole process group on the runner. INT is Ctrl-C in its
        terminal: mysql and psql then cancel the statement on the server and exit non-zero; KILL ends what
        ignores it. Returns at once; the commands end by themselves."""

    def make_private_dir(self) -> str:
        lines: list[str] = []
        result = self.run(self.shell.make_private_dir(), lambda stream, line: lines.append(line))
        path = self.shell.private_dir_path(lines)
        if not (result.exited and result.code == 0) or path is None:
            raise TransportError(f"{self.label}: cannot create a private directory: {' '.join(lines)[-300:]}")
        return path

    def remove(self, *paths: str) -> None:
        self.run(self.shell.remove(paths), lambda stream, line: None)


@runtime_checkable
class Tunnels(Protocol):
    """A transport that reaches a TCP endpoint as its runner does (optional: `isinstance(transport, Tunnels)`):
    for drivers that speak a database's protocol from this machine (the binary log reader of `copy-db
    --follow`, psycopg) where only the runner may connect to the database."""

    def tunnel(self, host: str, port: int) -> AbstractContextManager[tuple[str, int]]:
        """While the block runs, (host, port) on this machine that leads to `host:port` as the runner sees it,
        and only there; closed, with every connection through it, when the block ends."""
        ...


class StreamingTransport(Transport):
    """A transport whose `run` is its `stream` with stdout split into lines: one code path for both, so
    what the contract says of one holds for the other."""

    def run(self, command: Command, on_output: OutputHandler) -> Result:
        out = LineSplitter("stdout", on_output)
        result = self.stream(command, on_stdout=out.feed, on_stderr=on_output)
        out.close()
        return result

    @abstractmethod
    def stream(self, command: Command, *, stdin: ByteSource | None = None, on_stdout: ByteSink,
               on_stderr: OutputHandler) -> Result: ...

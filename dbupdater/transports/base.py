"""The transport interface: run a `Command`, copy files there and back, interrupt. Transports know nothing
of databases; what depends on the runner's operating system is in its `Shell`."""

from __future__ import annotations

import codecs
import contextlib
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

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
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._cut = 0  # characters of the current line dropped so far

    def feed(self, data: bytes) -> None:
        text = self._pending + self._decoder.decode(data)
        *lines, self._pending = text.split("\n")
        for line in lines:
            self._emit(line)
        if len(self._pending) > MAX_LINE:
            self._cut += len(self._pending) - MAX_LINE
            self._pending = self._pending[:MAX_LINE]

    def _emit(self, line: str) -> None:
        if len(line) > MAX_LINE:
            self._cut += len(line) - MAX_LINE
            line = line[:MAX_LINE]
        if self._cut:
            line = f"{line} [... {self._cut} more characters of this line cut]"
            self._cut = 0
        self.handler(self.stream, line.rstrip("\r"))

    def close(self) -> None:
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        if text or self._cut:
            self._emit(text)


class Transport(ABC):
    label: str
    shell: Shell

    @abstractmethod
    def run(self, command: Command, on_output: OutputHandler) -> Result:
        """Run the command through the runner's shell, streaming its output as lines; the result's ending is
        already read by the shell (client missing, signal, connection lost)."""

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

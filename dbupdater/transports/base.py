"""The transport interface: run an argv, put a file, remove a path. Transports know nothing of databases."""

from __future__ import annotations

import codecs
import contextlib
import os
import sys
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import UnreachableError


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

# A constant command, so no manifest value is involved; mktemp -d creates the directory 0700.
MAKE_PRIVATE_DIR = ["sh", "-c", 'umask 077 && mktemp -d "${TMPDIR:-/tmp}/dbupdater.XXXXXXXXXX"']


@dataclass(frozen=True)
class SSHOptions:
    known_hosts: Path
    accept_new_host_keys: bool = False
    connect_timeout: float = 15.0


class TransportError(UnreachableError):
    """The runner could not be reached, refused us, or went away."""


class HostKeyRefused(TransportError):
    """Unknown or changed host key: permanent until a person acts, so never retried."""


class LineSplitter:
    """Incremental UTF-8 decoding and line splitting, so output is judged while it streams."""

    def __init__(self, stream: str, handler: OutputHandler) -> None:
        self.stream = stream
        self.handler = handler
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""

    def feed(self, data: bytes) -> None:
        text = self._pending + self._decoder.decode(data)
        *lines, self._pending = text.split("\n")
        for line in lines:
            self.handler(self.stream, line.rstrip("\r"))

    def close(self) -> None:
        text = self._pending + self._decoder.decode(b"", final=True)
        self._pending = ""
        if text:
            self.handler(self.stream, text.rstrip("\r"))


class Transport(ABC):
    label: str

    @abstractmethod
    def run(self, argv: Sequence[str], on_output: OutputHandler, *, stdin_path: str | None = None,
            stdin_data: bytes | None = None) -> int:
        """Run argv (never through a shell string built from values), streaming output; return the exit code.

        stdin comes from a file already on the runner, or from a few bytes sent along (ledger SQL).
        """

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
    def close(self) -> None: ...

    @abstractmethod
    def interrupt(self) -> None:
        """SIGINT to every command still running, as Ctrl-C in its terminal: mysql and psql then cancel the
        statement on the server and exit non-zero. Returns at once; the commands end by themselves."""

    def make_private_dir(self) -> str:
        lines: list[str] = []
        code = self.run(MAKE_PRIVATE_DIR, lambda stream, line: lines.append(line))
        path = lines[-1].strip() if lines else ""
        if code != 0 or not path.startswith("/"):
            raise TransportError(f"{self.label}: cannot create a private directory: {' '.join(lines)[-300:]}")
        return path

    def remove(self, *paths: str) -> None:
        self.run(["rm", "-rf", "--", *paths], lambda stream, line: None)

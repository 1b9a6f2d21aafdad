"""Run the client on this machine: the `local` transport, for CI jobs that sit next to the database."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Sequence
from typing import IO

from .base import LineSplitter, OutputHandler, Transport, TransportError


class LocalTransport(Transport):
    label = "local"

    def __init__(self) -> None:
        self._running: set[subprocess.Popen[bytes]] = set()
        self._running_lock = threading.Lock()

    def run(self, argv: Sequence[str], on_output: OutputHandler, *, stdin_path: str | None = None,
            stdin_data: bytes | None = None) -> int:
        stdin: IO[bytes] | int = subprocess.DEVNULL if stdin_data is None else subprocess.PIPE
        if stdin_path is not None:
            stdin = open(stdin_path, "rb")  # noqa: SIM115 - closed below, after the child ends
        try:
            try:
                # A session of its own: the terminal's Ctrl-C reaches only us, and we decide what the client
                # gets (nothing at the first one; SIGINT through interrupt() at the second).
                proc = subprocess.Popen(list(argv), stdin=stdin, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, start_new_session=True)
            except FileNotFoundError:
                return 127
            except OSError as exc:
                raise TransportError(f"local: cannot start {argv[0]}: {exc.strerror}") from None
            with self._running_lock:
                self._running.add(proc)
            try:
                assert proc.stdout is not None and proc.stderr is not None
                if stdin_data is not None:
                    assert proc.stdin is not None
                    with contextlib.suppress(BrokenPipeError):
                        proc.stdin.write(stdin_data)
                    proc.stdin.close()
                _drain({proc.stdout: LineSplitter("stdout", on_output),
                        proc.stderr: LineSplitter("stderr", on_output)})
                return proc.wait()
            finally:
                with self._running_lock:
                    self._running.discard(proc)
        finally:
            if not isinstance(stdin, int):
                stdin.close()

    def interrupt(self) -> None:
        with self._running_lock:
            running = list(self._running)
        for proc in running:
            with contextlib.suppress(OSError):
                proc.send_signal(signal.SIGINT)

    def put_stream(self, source: IO[bytes], size: int, remote: str, name: str) -> None:
        fd = os.open(remote, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            shutil.copyfileobj(source, handle, 1 << 20)

    def put_bytes(self, data: bytes, remote: str) -> None:
        fd = os.open(remote, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def make_private_dir(self) -> str:
        return tempfile.mkdtemp(prefix="dbupdater.")

    def remove(self, *paths: str) -> None:
        for path in paths:
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.unlink(path)

    def close(self) -> None:
        pass


def _drain(pipes: dict[IO[bytes], LineSplitter]) -> None:
    """Read both pipes as data arrives: a client filling one pipe while we block on the other deadlocks."""
    with selectors.DefaultSelector() as selector:
        for pipe, splitter in pipes.items():
            selector.register(pipe.fileno(), selectors.EVENT_READ, splitter)
        while selector.get_map():
            for key, _ in selector.select():
                data = os.read(key.fd, 65536)
                if data:
                    key.data.feed(data)
                else:
                    selector.unregister(key.fd)
                    key.data.close()

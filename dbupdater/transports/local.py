"""Run the client on this machine: the `local` transport, for CI jobs that sit next to the database."""

from __future__ import annotations

import contextlib
import os
import selectors
import shutil
import signal as signals
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..model.command import STDIN_PATH, Command, Ending, RemoteFile, Result, Signal
from .base import (
    CHUNK,
    ByteSink,
    ByteSource,
    LineSplitter,
    OutputHandler,
    StreamingTransport,
    Transport,
    TransportError,
    chunks,
    with_streamed_stdin,
)
from .registry import TransportKind, register
from .shells import PosixShell

if TYPE_CHECKING:
    from ..model.specs import RunnerSpec


class LocalTransport(StreamingTransport):
    label = "local"
    shell = PosixShell()  # for joining paths and reading exit statuses the way a runner's shell would

    def __init__(self) -> None:
        self._running: dict[subprocess.Popen[bytes], Command] = {}
        self._running_lock = threading.Lock()

    def stream(self, command: Command, *, stdin: ByteSource | None = None, on_stdout: ByteSink,
               on_stderr: OutputHandler) -> Result:
        """The client as a child in a session of its own, stdin fed by a thread while both pipes are read."""
        env = {**os.environ, **dict(command.env)}
        for name, path in command.env_files:
            env[name] = Path(path).read_text(encoding="utf-8").rstrip("\n")
        parts: list[bytes | RemoteFile | ByteSource] = list(command.stdin)
        if stdin is not None:
            parts = [*with_streamed_stdin(command).stdin[:-1], stdin]
        single_file = len(parts) == 1 and isinstance(parts[0], RemoteFile)
        child_stdin: IO[bytes] | int = subprocess.DEVNULL if not parts else subprocess.PIPE
        if single_file:
            child_stdin = open(parts[0].path, "rb")  # type: ignore[union-attr]  # noqa: SIM115 - closed below
        try:
            try:
                # A session of its own: the terminal's Ctrl-C reaches only us, and we decide what the client
                # gets (nothing at the first one; SIGINT through interrupt() at the second).
                argv = ["/dev/stdin" if arg == STDIN_PATH else arg for arg in command.argv]
                proc = subprocess.Popen(argv, stdin=child_stdin, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env, start_new_session=True)
            except FileNotFoundError:
                return Result(Ending.CLIENT_MISSING, 127, 127)
            except OSError as exc:
                raise TransportError(f"local: cannot start {command.argv[0]}: {exc.strerror}") from None
            with self._running_lock:
                self._running[proc] = command
            failed: list[BaseException] = []
            try:
                assert proc.stdout is not None and proc.stderr is not None
                feeder = None
                if child_stdin == subprocess.PIPE:
                    feeder = threading.Thread(target=_feed, args=(proc, parts, failed), daemon=True)
                    feeder.start()
                err = LineSplitter("stderr", on_stderr)
                try:
                    _drain(proc.stdout, on_stdout, proc.stderr, err)
                except BaseException:
                    _kill(proc)  # a consumer that failed: the client must not run on unread
                    raise
                finally:
                    err.close()
                    code = proc.wait()
                    if feeder is not None:
                        feeder.join()
            finally:
                with self._running_lock:
                    self._running.pop(proc, None)
                for pipe in (proc.stdout, proc.stderr):
                    if pipe is not None:
                        pipe.close()
        finally:
            if not isinstance(child_stdin, int):
                child_stdin.close()
        if failed:
            raise failed[0]
        return Result(Ending.SIGNALLED, -code, 128 - code) if code < 0 else self.shell.interpret(code)

    def interrupt(self, command: Command | None = None, signal: Signal = Signal.INT) -> None:
        with self._running_lock:
            running = [proc for proc, started in self._running.items() if command is None or started is command]
        for proc in running:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, getattr(signals, f"SIG{signal.value}"))  # its session: the whole group

    def put_stream(self, source: IO[bytes], size: int, remote: str, name: str) -> None:
        fd = os.open(remote, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            shutil.copyfileobj(source, handle, 1 << 20)

    def put_bytes(self, data: bytes, remote: str) -> None:
        fd = os.open(remote, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def get(self, remote: str, local: Path) -> None:
        with open(remote, "rb") as source:
            self.put_stream(source, 0, str(local), remote)

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

    @contextlib.contextmanager
    def tunnel(self, host: str, port: int) -> Iterator[tuple[str, int]]:
        """The `Tunnels` capability: the runner is this machine, so the endpoint is reached as it is."""
        yield host, port


def _kill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signals.SIGKILL)  # its session: the whole group


def _feed(proc: subprocess.Popen[bytes], parts: list[bytes | RemoteFile | ByteSource],
          failed: list[BaseException]) -> None:
    """Write stdin's parts in order, while the output is drained: a large stdin cannot deadlock, and a
    blocking write is the back-pressure on a source. A source that fails kills the client before its
    stdin is closed (a truncated input must not look complete); a client that stops reading ends the
    feeding (its exit status says why)."""
    pipe = proc.stdin
    assert pipe is not None
    try:
        for part in parts:
            if isinstance(part, RemoteFile):
                with open(part.path, "rb") as handle:
                    shutil.copyfileobj(handle, pipe, CHUNK)
                continue
            pieces = chunks(part) if not isinstance(part, bytes) else iter((part,))
            while True:
                try:
                    data = next(pieces, None)
                except BaseException as exc:  # the caller's source: re-raised by the caller
                    failed.append(exc)
                    _kill(proc)
                    return
                if data is None:
                    break
                pipe.write(data)
    except OSError:
        pass  # the client stopped reading (broken pipe), or the file on the "runner" cannot be read
    finally:
        with contextlib.suppress(OSError):
            pipe.close()


def _drain(stdout: IO[bytes], on_stdout: ByteSink, stderr: IO[bytes], err: LineSplitter) -> None:
    """Read both pipes as data arrives: a client filling one pipe while we block on the other deadlocks.
    Nothing more is read while `on_stdout` runs: the pipe, once full, holds the client back."""
    with selectors.DefaultSelector() as selector:
        selector.register(stdout.fileno(), selectors.EVENT_READ, on_stdout)
        selector.register(stderr.fileno(), selectors.EVENT_READ, err.feed)
        while selector.get_map():
            for key, _ in selector.select():
                data = os.read(key.fd, CHUNK)
                if data:
                    key.data(data)
                else:
                    selector.unregister(key.fd)


class Local(TransportKind):
    name = "local"
    display = "local"
    needs_host = False

    def open(self, spec: RunnerSpec, options: Any) -> Transport:
        return LocalTransport()


register(Local())

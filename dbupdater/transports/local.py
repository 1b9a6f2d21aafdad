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
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..model.command import STDIN_PATH, Command, Ending, RemoteFile, Result, Signal
from .base import LineSplitter, OutputHandler, Transport, TransportError
from .registry import TransportKind, register
from .shells import PosixShell

if TYPE_CHECKING:
    from ..model.specs import RunnerSpec


class LocalTransport(Transport):
    label = "local"
    shell = PosixShell()  # for joining paths and reading exit statuses the way a runner's shell would

    def __init__(self) -> None:
        self._running: dict[subprocess.Popen[bytes], Command] = {}
        self._running_lock = threading.Lock()

    def run(self, command: Command, on_output: OutputHandler) -> Result:
        env = {**os.environ, **dict(command.env)}
        for name, path in command.env_files:
            env[name] = Path(path).read_text(encoding="utf-8").rstrip("\n")
        single_file = len(command.stdin) == 1 and isinstance(command.stdin[0], RemoteFile)
        stdin: IO[bytes] | int = subprocess.DEVNULL if not command.stdin else subprocess.PIPE
        if single_file:
            stdin = open(command.stdin[0].path, "rb")  # type: ignore[union-attr]  # noqa: SIM115 - closed below
        try:
            try:
                # A session of its own: the terminal's Ctrl-C reaches only us, and we decide what the client
                # gets (nothing at the first one; SIGINT through interrupt() at the second).
                argv = ["/dev/stdin" if arg == STDIN_PATH else arg for arg in command.argv]
                proc = subprocess.Popen(argv, stdin=stdin, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, env=env, start_new_session=True)
            except FileNotFoundError:
                return Result(Ending.CLIENT_MISSING, 127, 127)
            except OSError as exc:
                raise TransportError(f"local: cannot start {command.argv[0]}: {exc.strerror}") from None
            with self._running_lock:
                self._running[proc] = command
            try:
                assert proc.stdout is not None and proc.stderr is not None
                feeder = None
                if stdin == subprocess.PIPE:
                    feeder = threading.Thread(target=_feed, args=(proc.stdin, command.stdin), daemon=True)
                    feeder.start()
                _drain({proc.stdout: LineSplitter("stdout", on_output),
                        proc.stderr: LineSplitter("stderr", on_output)})
                code = proc.wait()
                if feeder is not None:
                    feeder.join()
            finally:
                with self._running_lock:
                    self._running.pop(proc, None)
        finally:
            if not isinstance(stdin, int):
                stdin.close()
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


def _feed(pipe: IO[bytes] | None, parts: tuple[bytes | RemoteFile, ...]) -> None:
    """Write stdin's parts in order, while the output is drained: a large stdin cannot deadlock."""
    assert pipe is not None
    with contextlib.suppress(BrokenPipeError, OSError):
        for part in parts:
            if isinstance(part, bytes):
                pipe.write(part)
            else:
                with open(part.path, "rb") as handle:
                    shutil.copyfileobj(handle, pipe, 1 << 20)
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.close()


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


class Local(TransportKind):
    name = "local"
    display = "local"
    needs_host = False

    def open(self, spec: RunnerSpec, options: Any) -> Transport:
        return LocalTransport()


register(Local())

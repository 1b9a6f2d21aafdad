"""A Windows runner over WinRM (WS-Management), through pypsrp's WinRS shell: commands, stdin, output, signals.

Each command runs as `powershell.exe -EncodedCommand` in a WinRS shell opened with code page 65001, so
what the client reads and writes is UTF-8 (pywinrm's default is 437; Ansible opens its shells with 65001
too). Shells are kept and reused, one per command running at a time, as SSH channels are: every shell has an
HTTP connection of its own, because a Receive waits on the server for output (up to the operation timeout)
and NTLM authenticates a connection, not a request. Ctrl-C (`interrupt`) is a WS-Man Signal `ctrl_c` sent
on a connection of its own, which the server delivers to the command's console; finished commands get a
Signal `terminate`, which releases them on the server; shells are deleted on close.
"""

from __future__ import annotations

import base64
import codecs
import contextlib
import hashlib
import itertools
import logging
import os
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ...extras import require
from ...model.command import Command, Result, Signal
from ..base import (
    MAX_LINE,
    Bytes,
    ByteSink,
    ByteSource,
    LineSplitter,
    OutputHandler,
    StreamingTransport,
    TransportError,
    chunks,
    with_streamed_stdin,
)
from . import powershell
from .clixml import StderrDecoder

require("winrm")  # MissingModule (exit 2, with the pip command) when the extra is not installed

import requests  # noqa: E402 - pypsrp's HTTP client, there whenever pypsrp is
from pypsrp.exceptions import AuthenticationError, WinRMError, WinRMTransportError, WSManFaultError  # noqa: E402
from pypsrp.shell import CommandState, SignalCode, WinRS  # noqa: E402
from pypsrp.wsman import NAMESPACES, WSMan  # noqa: E402

if TYPE_CHECKING:
    from ...model.specs import RunnerSpec
    from . import WinRMOptions

# pypsrp's DEBUG log prints every message, and stdin sent to a command (a credentials file being written)
# is in them, base64 encoded, which the redactor cannot recognise.
logging.getLogger("pypsrp").setLevel(logging.INFO)

CODEPAGE = 65001
# cmd.exe, which WinRS starts commands through, ends a command line at 8191 characters ("The command line is
# too long.", exit 1: sample winrm-command-line-too-long). A longer script is saved to a file first.
COMMAND_LINE_LIMIT = 8191
OPERATION_TIMEOUT = 2150858793  # the WS-Man fault of a Receive that saw no output in time: ask again
POWERSHELL_EXE = "powershell.exe"
# UnicodeError: basic authentication carries latin-1 only (requests encodes the password so)
NETWORK_ERRORS = (requests.RequestException, WinRMError, OSError, ET.ParseError, UnicodeError)


class WinRMTransport(StreamingTransport):
    def __init__(self, label: str, connect: Callable[[], WSMan]) -> None:
        self.label = label
        self.shell = powershell.PowerShell()
        self._connect = connect
        self._lock = threading.Lock()
        self._idle: list[WinRS] = []
        self._shells: list[WinRS] = []
        self._running: dict[str, tuple[WinRS, Command | None]] = {}  # by command id: its shell, what it runs
        self._control: WSMan | None = None
        self._scratch: str | None = None  # the private directory, where long scripts are saved
        self._serial = itertools.count(1)
        self._release(self._open_shell())  # reachable, certificate trusted, credentials accepted: now

    # -- commands ---------------------------------------------------------------------------------------

    def stream(self, command: Command, *, stdin: ByteSource | None = None, on_stdout: ByteSink,
               on_stderr: OutputHandler) -> Result:
        """The client writes to the WinRS stdout pipe itself, so the Receive streams are its bytes as they are.
        A stdin source goes as base64 lines (the script decodes `$input` into the client's stdin), one Send
        per line, from a thread on a connection of its own while this one waits in Receive: a command that
        prints while it reads is received as it prints, and the source is pulled a line at a time, as the
        server answers each Send."""
        if stdin is None:
            script, data = self.shell.render(command)
            return self._execute(script, [data] if data else [], on_stdout, on_stderr, command)
        script, _ = self.shell.render(with_streamed_stdin(command))
        return self._execute(script, self._stdin_lines(stdin), on_stdout, on_stderr, command, streamed=True)

    def _lines(self, script: str, stdin: Iterable[bytes], on_output: OutputHandler) -> Result:
        """The shell's own scripts, read as lines."""
        out = LineSplitter("stdout", on_output)
        result = self._execute(script, stdin, out.feed, on_output)
        out.close()
        return result

    def _stdin_lines(self, source: ByteSource) -> Iterator[bytes]:
        # Raw bytes per base64 line: a line, base64 encoded again by the Send, fills one envelope.
        return powershell.encode_stdin(chunks(source, max(1024, (self._payload() // 4 * 3 - 2) // 4 * 3)))

    def _execute(self, script: str, stdin: Iterable[bytes], on_stdout: ByteSink, on_stderr: OutputHandler,
                 command: Command | None = None, streamed: bool = False) -> Result:
        arguments = powershell.encoded_command(script)
        saved = None
        if len(POWERSHELL_EXE) + sum(len(argument) + 1 for argument in arguments) > COMMAND_LINE_LIMIT:
            if self._scratch is None:
                raise TransportError(f"{self.label}: a command of {len(script)} characters needs the private "
                                     "directory to run from, and there is none")
            saved = self.shell.join(self._scratch, f"command-{next(self._serial)}.ps1")
            self.put_bytes(script.encode("utf-8-sig"), saved)
            arguments = powershell.encoded_command(powershell.bootstrap_script(saved))
        try:
            return self._command(arguments, stdin, on_stdout, on_stderr, command, streamed)
        finally:
            if saved is not None:
                self.remove(saved)

    def _command(self, arguments: list[str], stdin: Iterable[bytes], on_stdout: ByteSink,
                 on_stderr: OutputHandler, command: Command | None, streamed: bool) -> Result:
        shell = self._shell()
        healthy = False
        failed: list[BaseException] = []
        feeder: threading.Thread | None = None
        try:
            try:
                response = shell.command(POWERSHELL_EXE, arguments)
            except NETWORK_ERRORS as exc:
                raise self._failure("cannot start a command", exc) from None
            found = response.find("rsp:CommandResponse/rsp:CommandId", namespaces=NAMESPACES)
            if found is None or not found.text:
                raise TransportError(f"{self.label}: the server started a command without naming it")
            command_id = found.text
            with self._lock:
                self._running[command_id] = (shell, command)
            try:
                if streamed:
                    feeder = threading.Thread(target=self._feed, args=(shell, command_id, stdin, failed),
                                              daemon=True, name=f"dbupdater-stdin {self.label}")
                    feeder.start()
                else:
                    self._send(shell, command_id, stdin)
                status = self._receive(shell, command_id, on_stdout, on_stderr)
            finally:
                with self._lock:
                    self._running.pop(command_id, None)
                # Ends the command on the server and releases it ([MS-WSMV] 3.1.4.12; pywinrm's cleanup_command).
                with contextlib.suppress(*NETWORK_ERRORS):
                    shell.signal(SignalCode.TERMINATE, command_id)
                if feeder is not None:
                    feeder.join()  # the command is ended: a Send still under way is refused at once
            if failed:
                raise failed[0]
            healthy = status >= 0 or status == powershell.CONTROL_C_EXIT - (1 << 32)
            return self.shell.interpret(status)
        finally:
            self._release(shell, healthy)

    def _feed(self, shell: WinRS, command_id: str, stdin: Iterable[bytes], failed: list[BaseException]) -> None:
        """A streamed stdin, sent on a connection of its own. A source that fails, or a connection that does,
        gets the command terminated instead of its input's end: a truncated input must not look complete."""
        try:
            wsman = self._connect()
        except NETWORK_ERRORS as exc:
            failed.append(self._failure("cannot connect to send input", exc))
            self._signal(shell, command_id, SignalCode.TERMINATE)
            return
        try:
            sender = WinRS(wsman, id=shell.id)
            sender._selector_set = shell._selector_set  # the shell the command runs in
            self._send(sender, command_id, stdin)
        except BaseException as exc:  # re-raised by the caller once the command has ended
            failed.append(exc)
            self._signal(shell, command_id, SignalCode.TERMINATE)
        finally:
            with contextlib.suppress(*NETWORK_ERRORS):
                wsman.close()

    def _send(self, shell: WinRS, command_id: str, stdin: Iterable[bytes]) -> None:
        """Stdin in pieces that fit one envelope, the last one marked as the end. What a caller's source
        raises goes up as it is, and the end is not sent."""
        size = max(1024, shell.wsman.max_payload_size // 4 * 3)
        pieces = iter(stdin)
        while True:
            data = next(pieces, None)  # outside the try below: the source's own errors are not the network's
            try:
                if data is None:
                    shell.send("stdin", b"", command_id=command_id, end=True)
                    return
                for at in range(0, len(data), size):
                    shell.send("stdin", data[at:at + size], command_id=command_id, end=False)
            except WSManFaultError:
                return  # the command ended before reading all of it: its exit status says how
            except NETWORK_ERRORS as exc:
                raise self._failure("went away while sending input", exc) from None

    def _receive(self, shell: WinRS, command_id: str, on_stdout: ByteSink, on_stderr: OutputHandler) -> int:
        """Output as it comes, until the command is done: its exit code, or -1 when the runner went away. One
        Receive at a time, each delivered before the next is asked for: what is not received yet waits on the
        runner, not here."""
        err = _StderrLines(on_stderr)
        while True:
            try:
                state, code, streams = shell.receive("stdout stderr", command_id)
            except WSManFaultError as exc:
                if exc.code == OPERATION_TIMEOUT:
                    continue
                logging.getLogger("dbupdater").warning("%s: %s", self.label, _reason(exc))
                status = -1
                break
            except NETWORK_ERRORS as exc:
                logging.getLogger("dbupdater").warning("%s: %s", self.label, _reason(exc))
                status = -1
                break
            if data := streams.get("stdout"):
                on_stdout(data)
            err.feed(streams.get("stderr", b""))
            if state == CommandState.DONE:
                status = code if code is not None else -1
                break
        err.close()
        return status

    def interrupt(self, command: Command | None = None, signal: Signal = Signal.INT) -> None:
        # Windows has Ctrl-C and terminate: KILL ends the command's process outright.
        code = SignalCode.CTRL_C if signal is Signal.INT else SignalCode.TERMINATE
        with self._lock:
            running = [(command_id, shell) for command_id, (shell, started) in self._running.items()
                       if command is None or started is command]
        for command_id, shell in running:
            threading.Thread(target=self._signal, args=(shell, command_id, code), daemon=True).start()

    def _signal(self, shell: WinRS, command_id: str, code: str) -> None:
        """A signal on the control connection: the command's own connection is waiting in a Receive."""
        with contextlib.suppress(*NETWORK_ERRORS):
            with self._lock:
                if self._control is None:
                    self._control = self._connect()
                control = self._control
            target = WinRS(control, id=shell.id)
            target._selector_set = shell._selector_set  # the shell the command runs in
            target.signal(code, command_id)

    # -- files ------------------------------------------------------------------------------------------

    def put_stream(self, source: IO[bytes], size: int, remote: str, name: str) -> None:
        digest = hashlib.sha256()

        def read() -> Iterator[Bytes]:
            for data in chunks(source):
                digest.update(data)
                yield data

        self._upload(self._stdin_lines(read()), digest, remote, name)

    def put_bytes(self, data: bytes, remote: str) -> None:
        digest = hashlib.sha256(data)
        self._upload(powershell.encode_stdin([data]), digest, remote, remote)

    def _upload(self, stdin: Iterable[bytes], digest: hashlib._Hash, remote: str, name: str) -> None:
        lines: list[str] = []
        result = self._lines(powershell.upload_script(remote), stdin, lambda stream, line: lines.append(line))
        answer = lines[-1].strip() if lines else ""
        if not (result.exited and result.code == 0):
            raise TransportError(f"copying {name} to {self.label} failed: {' '.join(lines)[-300:]}")
        if answer != f"sha256:{digest.hexdigest()}":
            self.remove(remote)
            raise TransportError(f"copying {name} to {self.label} failed: the runner wrote other bytes than were "
                                 f"sent (checksum {answer or 'missing'})")

    def get(self, remote: str, local: Path) -> None:
        digest = hashlib.sha256()
        answer: list[str] = []
        failed: list[str] = []
        fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            def take(stream: str, line: str) -> None:
                if stream != "stdout":
                    failed.append(line)
                elif line.startswith("sha256:"):
                    answer.append(line)
                elif line:
                    data = base64.b64decode(line)
                    digest.update(data)
                    handle.write(data)

            result = self._lines(powershell.fetch_script(remote), [], take)
        if not (result.exited and result.code == 0) or answer != [f"sha256:{digest.hexdigest()}"]:
            local.unlink(missing_ok=True)
            raise TransportError(f"copying {remote} from {self.label} failed: {' '.join(failed)[-300:]}")

    def make_private_dir(self) -> str:
        path = super().make_private_dir()
        if self._scratch is None:
            self._scratch = path
        return path

    def remove(self, *paths: str) -> None:
        if self._scratch in paths:
            self._scratch = None
        super().remove(*paths)

    # -- shells -----------------------------------------------------------------------------------------

    def _payload(self) -> int:
        with self._lock:
            shell = next(iter(self._shells), None)
        return shell.wsman.max_payload_size if shell is not None else 100_000

    def _open_shell(self) -> WinRS:
        wsman = self._connect()
        shell = WinRS(wsman, codepage=CODEPAGE)
        try:
            shell.open()
        except NETWORK_ERRORS as exc:
            wsman.close()
            raise self._failure("cannot open a shell", exc) from None
        with self._lock:
            self._shells.append(shell)
        return shell

    def _shell(self) -> WinRS:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return self._open_shell()

    def _release(self, shell: WinRS, healthy: bool = True) -> None:
        if healthy:
            with self._lock:
                self._idle.append(shell)
            return
        with self._lock:
            if shell in self._shells:
                self._shells.remove(shell)
        threading.Thread(target=_delete, args=(shell,), daemon=True).start()

    def close(self) -> None:
        with self._lock:
            running = [(command_id, shell) for command_id, (shell, _) in self._running.items()]
            shells, self._shells, self._idle = self._shells, [], []
            control, self._control = self._control, None
        for command_id, shell in running:
            self._signal(shell, command_id, SignalCode.TERMINATE)
        closers = [threading.Thread(target=_delete, args=(shell,), daemon=True) for shell in shells]
        for closer in closers:
            closer.start()
        for closer in closers:
            closer.join(2.0)  # a frozen runner cannot hold the exit: its shells end with their idle timeout
        if control is not None:
            control.close()

    def _failure(self, what: str, exc: BaseException) -> TransportError:
        return TransportError(f"runner {self.label}: {what}: {_reason(exc)}")


def _delete(shell: WinRS) -> None:
    with contextlib.suppress(*NETWORK_ERRORS):
        shell.close()
    with contextlib.suppress(*NETWORK_ERRORS):
        shell.wsman.close()


def _reason(exc: BaseException) -> str:
    """What went wrong, in words a person acts on (never the password: no message here carries it)."""
    if isinstance(exc, UnicodeError):  # its message would show a character of the password
        return "the user name or password has characters basic authentication cannot carry (latin-1 only)"
    if isinstance(exc, requests.exceptions.SSLError):
        return ("the server's certificate is not trusted (" + str(exc)[-200:] + "); give the CA that issued it "
                "with --winrm-ca-bundle")
    if isinstance(exc, AuthenticationError):
        return f"the credentials were rejected ({exc})"
    if isinstance(exc, WinRMTransportError):
        return f"the server answered HTTP {exc.code}"
    if isinstance(exc, WSManFaultError):
        return f"the server refused: {exc.reason or exc.code}"
    if isinstance(exc, requests.exceptions.Timeout):
        return "no answer in time"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "cannot connect (unreachable, or nothing listens on the port)"
    return str(exc)[-300:] or type(exc).__name__


class _StderrLines:
    """stderr bytes to lines: UTF-8 decoded as it streams, CLIXML documents reduced to their error records,
    each line kept to MAX_LINE characters."""

    def __init__(self, on_output: OutputHandler) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._lines = StderrDecoder(self._emit)
        self._on_output = on_output

    def _emit(self, line: str) -> None:
        if len(line) > MAX_LINE:
            line = f"{line[:MAX_LINE]} [... {len(line) - MAX_LINE} more characters of this line cut]"
        self._on_output("stderr", line)

    def feed(self, data: bytes) -> None:
        if data:
            self._lines.feed(self._decoder.decode(data))

    def close(self) -> None:
        self._lines.feed(self._decoder.decode(b"", final=True))
        self._lines.close()


def open_winrm(spec: RunnerSpec, options: WinRMOptions) -> WinRMTransport:
    """HTTPS, the server's certificate validated (against the system's CAs or --winrm-ca-bundle) unless
    --winrm-insecure says otherwise."""
    password = spec.password.reveal() if spec.password else None
    validation: bool | str = str(options.ca_bundle) if options.ca_bundle else not options.insecure
    timeout = max(1, round(options.connect_timeout))

    def connect() -> WSMan:
        return WSMan(spec.host, port=spec.port, username=spec.user, password=password, ssl=True,
                     auth=options.auth, cert_validation=validation,  # type: ignore[arg-type] # a path works too
                     connection_timeout=timeout, encryption="auto")

    return WinRMTransport(spec.label, connect)

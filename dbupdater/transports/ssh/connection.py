"""SSH runners: one paramiko connection per runner host for the whole run, files copied with scp.

Host keys are verified against known_hosts. An unknown key is refused unless the user opted into trust on
first use (`--accept-new-host-keys`, like OpenSSH's `StrictHostKeyChecking=accept-new`); a changed key is
refused always. A runner behind jump hosts (ProxyJump, the `ssh_jump` column) is reached as OpenSSH's `ssh -J`
reaches it: each hop's connection is made through a `direct-tcpip` channel of the previous hop's, and every
hop's host key is verified by the same rules as the runner's.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import shlex
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO, Any

from ...model.command import Command, Ending, Result, Signal
from ..base import (
    ByteSink,
    ByteSource,
    HostKeyRefused,
    LineSplitter,
    OutputHandler,
    StreamingTransport,
    TransportError,
    chunks,
    with_streamed_stdin,
    without_module,
)
from ..shells import PosixShell
from . import ALIVE_COUNT, SSHOptions, known_hosts
from .config import Endpoint, Route
from .known_hosts import KnownHosts
from .session import SessionLoop, drain, send_all

with without_module("invoke"):
    # paramiko imports invoke (30 ms of every run's start) only to run `Match exec` lines of ssh_config files,
    # which we never read.
    import paramiko
    from paramiko.common import (
        MSG_CHANNEL_CLOSE,
        MSG_CHANNEL_REQUEST,
        OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
        OPEN_FAILED_CONNECT_FAILED,
        cMSG_CHANNEL_REQUEST,
        cMSG_GLOBAL_REQUEST,
    )
    from scp import SCPClient, SCPException

logging.getLogger("paramiko").setLevel(logging.CRITICAL)
# Files up to this size are written through a persistent session (one round trip, no channel opened); larger
# ones stream over scp.
LOOP_UPLOAD_MAX = 1 << 20
# Several small files in one command: each file's size on a line, then its bytes, which `head -c` takes exactly
# (the session loop checked that at its start). One `head` per file, where a command per file cost a round trip
# and five processes on the runner (the loop's subshell, sh, cat and the loop's drain).
WRITE_FILES = 'umask 077 && for f; do IFS= read -r n || exit 1; head -c "$n" > "$f" || exit 1; done'
MAX_LINKS = 8  # connections to one runner at most, when its sshd refuses channels (MaxSessions)
# How a session channel is refused for MaxSessions: OpenSSH's sshd says "connect failed" ("no more sessions" in
# its log), other servers "administratively prohibited".
SESSIONS_REFUSED = (OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED, OPEN_FAILED_CONNECT_FAILED)
_known_hosts_lock = threading.Lock()


def _fingerprint(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.fingerprint}"


class _Verify(paramiko.MissingHostKeyPolicy):
    """Every host key is checked here, against known_hosts as OpenSSH reads it (the client's own table is
    left empty, so paramiko asks this policy each time): revoked keys first, then a known key must match,
    then an unknown one is refused or, with trust on first use, recorded."""

    def __init__(self, options: SSHOptions, port: int, known: KnownHosts, what: str = "runner") -> None:
        self.options = options
        self.port = port
        self.known = known
        self.what = what  # "runner" or "jump host", for the messages

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        if self.known.is_revoked(hostname, key):
            raise HostKeyRefused(f"REVOKED HOST KEY for {hostname} ({_fingerprint(key)}): {self.options.known_hosts} "
                                 f"marks this key @revoked. Ask the {self.what}'s administrator which key it should "
                                 "present")
        known = self.known.keys_for(hostname)
        if any(candidate.asbytes() == key.asbytes() for candidate in known):
            return  # any line holding the offered key, as OpenSSH: a stale line of the same type does not shadow it
        same_type = [candidate for candidate in known if candidate.get_name() == key.get_name()]
        if same_type:
            raise HostKeyRefused(
                f"HOST KEY MISMATCH for {hostname}: known_hosts has {_fingerprint(same_type[0])} but "
                f"the {self.what} offered {_fingerprint(key)}. This may be an attack; if the {self.what} was rebuilt, "
                f"remove the old entry (ssh-keygen -R) from {self.options.known_hosts} and verify the new key")
        if known:
            types = ", ".join(dict.fromkeys(candidate.get_name() for candidate in known))
            raise HostKeyRefused(
                f"HOST KEY MISMATCH for {hostname}: known_hosts has {types} keys but the {self.what} "
                f"offered {_fingerprint(key)}. Verify it with the runner's administrator")
        if self.options.accept_new_host_keys:
            self._record(hostname, key)
            return
        host = hostname.split("]")[0].lstrip("[")
        keyscan = f"ssh-keyscan -p {self.port} {shlex.quote(host)} >> {shlex.quote(str(self.options.known_hosts))}"
        raise HostKeyRefused(
            f"host key of {hostname} ({_fingerprint(key)}) is not in {self.options.known_hosts}. Verify the "
            f"fingerprint with the {self.what}'s administrator, then trust it with `{keyscan}` or "
            "`ssh -o StrictHostKeyChecking=accept-new ...`, or rerun with --accept-new-host-keys"
        )

    def _record(self, hostname: str, key: paramiko.PKey) -> None:
        path = self.options.known_hosts
        with _known_hosts_lock:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with path.open("a", encoding="ascii") as handle:
                handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
            path.chmod(0o600)
        self.known.trust(hostname, key)
        logging.getLogger("dbupdater").warning("trusted new host key of %s (%s), recorded in %s", hostname,
                                               _fingerprint(key), path)


def _load_key(text: str, passphrase: str | None) -> paramiko.PKey:
    """A private key given as text (from Vault or the environment), in any format paramiko reads."""
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key(io.StringIO(text), password=passphrase or None)
        except (paramiko.SSHException, ValueError, IndexError):
            continue
    raise TransportError("the private key from the manifest's sql_runner_key_file reference cannot be read "
                         "(not an Ed25519, ECDSA or RSA key, or a wrong passphrase)")


def _handle_channel_request(channel: paramiko.Channel, message: paramiko.Message) -> None:
    """RFC 4254 6.10 "exit-signal": the command died of a signal. Recorded as a POSIX shell reports it,
    128 + the signal's number, so the shell object reads it as SIGNALLED; every other request as paramiko
    handles it."""
    start = message.packet.tell()
    if message.get_text() != "exit-signal":
        message.packet.seek(start)
        paramiko.Channel._handle_request(channel, message)  # type: ignore[attr-defined]
        return
    message.get_boolean()  # want reply: never for exit-signal
    name = message.get_text()
    number = getattr(signal.Signals, f"SIG{name}", None)
    channel.exit_status = 128 + int(number) if number is not None else 128
    channel.status_event.set()


def _handle_channel_close(channel: paramiko.Channel, message: paramiko.Message) -> None:
    """A channel closed by the runner, answered as paramiko does, but never waiting on paramiko's own thread.
    paramiko sends the answering close from the thread that reads the connection, after waiting there for a
    key exchange to end, which only that thread can finish: a close that arrived just after paramiko asked
    for new keys (every 512 MiB each way) hung the connection for 30 s and then broke it ("Key-exchange
    timed out"; paramiko issue 822; a 1 GiB stream ending on the second rekey did, one run in three). During
    a key exchange the answer goes from a thread of its own, once the exchange is over."""
    transport = channel.get_transport()
    if transport.clear_to_send.is_set():  # only this thread clears it: no exchange can begin meanwhile
        paramiko.Channel._handle_close(channel, message)  # type: ignore[attr-defined]
        return
    threading.Thread(target=paramiko.Channel._handle_close, args=(channel, message),  # type: ignore[attr-defined]
                     daemon=True, name="dbupdater-close").start()


class _QuickAckSocket:
    """A socket that acknowledges what it receives at once instead of up to 40 ms later.

    sshd leaves Nagle's algorithm on for sessions without a pty, so a small packet it sends (the channel-open
    confirmation after the post-login debug messages, an exit status after output) waits until the client
    has ACKed the previous one, and Linux delays that ACK. Measured: the first command on every connection
    took 45 ms instead of 3. Asking for a quick ACK after each read sends the pending ACK now; paramiko
    accepts any object with a socket's methods.

    paramiko reads a packet in two pieces, its first block and the rest: two system calls per packet, and the
    quick ACK two more, which were a tenth of the controller's CPU on a 1 GB copy. So the socket is read up to
    READ bytes at a time and paramiko's pieces are served from that; the quick ACK goes after each read of the
    socket, so the last one before paramiko would wait for more data still acknowledges everything.
    """

    READ = 256 << 10

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._data = b""
        self._at = 0

    def recv(self, size: int) -> bytes:
        if self._at < len(self._data):
            piece = self._data[self._at:self._at + size]
            self._at += len(piece)
            return piece
        data = self._sock.recv(max(size, self.READ))
        if data:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        if len(data) <= size:
            return data
        self._data, self._at = data, size
        return data[:size]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def _socket(host: str, port: int, timeout: float) -> Any:
    """A TCP connection without Nagle delays, with keepalives so a vanished runner is noticed in a minute."""
    sock = socket.create_connection((host, port), timeout=timeout)
    # SSH sends small packets (channel open, exec, EOF, exit status) and waits for answers: with Nagle's
    # algorithm each waits for the peer's delayed ACK, about 40 ms per round trip. OpenSSH sets this too.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 20), ("TCP_KEEPINTVL", 10), ("TCP_KEEPCNT", 3),
                        ("TCP_USER_TIMEOUT", 60_000)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    return _QuickAckSocket(sock) if hasattr(socket, "TCP_QUICKACK") else sock


class _Heard(threading.Event):
    """The transport's completion event while keepalives run: paramiko sets it on every reply to a global
    request (and at the end of a key exchange, also an answer); when it last did is what the keepalives read."""

    def __init__(self) -> None:
        super().__init__()
        self.at = time.monotonic()

    def set(self) -> None:
        self.at = time.monotonic()
        super().set()


def _read_known_hosts(options: SSHOptions) -> KnownHosts:
    try:
        known = known_hosts.read(options.known_hosts)
    except OSError as exc:
        raise TransportError(f"cannot read known_hosts {options.known_hosts}: {exc.strerror}") from None
    for warning in known.warnings:
        logging.getLogger("dbupdater").warning("%s", warning)
    return known


def _credentials(user: str, password: str | None, key_file: Path | None, key_data: str | None,
                 timeout: float, configured: tuple[Path, ...] = ()) -> tuple[dict[str, Any], str]:
    """paramiko's connect arguments, and the way of authenticating in words for errors. Password or key
    given: exactly that. Neither: the SSH config's IdentityFile keys and the agent, or, when the config names
    none, the agent and ~/.ssh keys, as OpenSSH would. With a key, the password cell is the key's passphrase:
    never offered to the runner as a password (paramiko would fall back to password authentication when the
    key is refused)."""
    explicit = bool(password) or key_file is not None or key_data is not None
    with_key = key_file is not None or key_data is not None
    pkey = _load_key(key_data, password) if key_data else None
    identities = [str(path) for path in configured if path.is_file()] if not explicit else []
    method = ("key file" if key_file else "private key from the manifest's reference" if key_data
              else "password" if password else "the SSH config's IdentityFile / ssh-agent" if configured
              else "ssh-agent / ~/.ssh keys")
    return dict(
        username=user, password=None if with_key else password or None,
        key_filename=str(key_file) if key_file else identities or None, pkey=pkey,
        passphrase=password or None if with_key else None, allow_agent=not explicit,
        look_for_keys=not explicit and not configured,
        timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
    ), method


def _open_socket(who: str, host: str, port: int, timeout: float) -> Any:
    try:
        return _socket(host, port, timeout)
    except TimeoutError:
        raise TransportError(f"{who} unreachable: no TCP connection within {timeout:g} s "
                             "(--connect-timeout)") from None
    except OSError as exc:
        raise TransportError(f"{who} unreachable: {exc.strerror or exc}") from None


def _handshake(client: paramiko.SSHClient, label: str, sock: Any, host: str, port: int, options: SSHOptions,
               credentials: dict[str, Any], method: str, what: str = "runner") -> None:
    """SSH over the connected socket (or a previous hop's channel): host key checked (by _Verify) under
    `host` (its known_hosts name), then authentication; paramiko's errors in words that say what to do. The
    socket is closed when it fails."""
    began = time.monotonic()
    timeout = options.connect_seconds
    try:
        client.connect(host, port, sock=sock, transport_factory=_Transport, **credentials)
    except HostKeyRefused:
        sock.close()
        raise
    except paramiko.BadHostKeyException as exc:
        sock.close()
        raise HostKeyRefused(
            f"HOST KEY MISMATCH for {label}: known_hosts has {_fingerprint(exc.expected_key)} but the "
            f"{what} offered {_fingerprint(exc.key)}. This may be an attack; if the runner was rebuilt, "
            f"remove the old entry (ssh-keygen -R) from {options.known_hosts} and verify the new key"
        ) from None
    except paramiko.AuthenticationException:
        sock.close()
        raise TransportError(f"authentication failed for {label} ({method})") from None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        sock.close()
        took = time.monotonic() - began
        if took >= timeout * 0.9 or str(exc) == "No existing session":
            # paramiko's words when its banner or key-exchange wait ran out ("No existing session" comes
            # from the authentication step that follows a handshake that never finished).
            raise TransportError(
                f"{what} {label} unreachable: it accepted the TCP connection but its SSH server did not "
                f"complete the handshake within {timeout:g} s (--connect-timeout; a {what}, "
                "or this machine, only too loaded to finish in time needs a longer one)") from None
        raise TransportError(f"{what} {label} unreachable: {exc}") from None


def _read_what_paramiko_ignores(transport: paramiko.Transport) -> None:
    """This connection's own handler table: paramiko ignores the "exit-signal" a server sends for a command
    killed by a signal, and reports no exit status at all (read as "runner lost"); and it answers a close
    where a key exchange can deadlock it (see the handlers)."""
    transport._channel_handler_table = {  # type: ignore[attr-defined]
        **transport._channel_handler_table,  # type: ignore[attr-defined]
        MSG_CHANNEL_REQUEST: _handle_channel_request,
        MSG_CHANNEL_CLOSE: _handle_channel_close,
    }


WINDOW = 8 << 20  # bytes a runner may send on a channel before we have read them (paramiko's default: 2 MiB)
MAX_PACKET = 256 << 10  # the largest SSH packet we take (OpenSSH's limit; paramiko's default: 32 KiB)


class _Transport(paramiko.Transport):
    """paramiko's transport with AES-GCM offered first. paramiko offers it last, after AES-CTR with a separate
    HMAC-SHA2, which costs the controller about twice the CPU per byte (measured: 400 MB took 1.7 s of CPU with
    aes128-ctr and hmac-sha2-256, 0.8 to 1.0 s with aes128/aes256-gcm), and the runner's sshd more too: the bytes
    of a backup or a copy cross the controller twice, on machines whose servers need the same CPUs. GCM is an
    AEAD mode OpenSSH has offered since 6.2 and is not touched by the Terrapin prefix truncation (CVE-2023-48795);
    a server without it gets paramiko's usual order."""

    def __init__(self, sock: Any, **options: Any) -> None:
        super().__init__(sock, default_window_size=WINDOW, default_max_packet_size=MAX_PACKET, **options)

    _preferred_ciphers = tuple(dict.fromkeys(
        [name for name in ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
         if name in paramiko.Transport._cipher_info]  # type: ignore[attr-defined]
        + list(paramiko.Transport._preferred_ciphers)))  # type: ignore[attr-defined]


def _checked_as(endpoint: Endpoint) -> tuple[str, int]:
    """The host and port paramiko checks the key under: it writes `[host]:port` itself unless the port is 22, so
    a HostKeyAlias, which OpenSSH looks up as it is written whatever the port, goes with 22 (with a socket
    given, paramiko uses the port for nothing else)."""
    return (endpoint.host_key_alias, 22) if endpoint.host_key_alias else (endpoint.host, endpoint.port)


def _through_jumps(route: Route, options: SSHOptions, known: KnownHosts,
                   hops: list[paramiko.SSHClient]) -> Any:
    """The socket to the runner: a TCP connection, or, behind jump hosts, a `direct-tcpip` channel of the last
    hop, each hop logged into through the previous one's channel, its host key verified as a runner's (the
    same known_hosts and trust options). Hops authenticate as OpenSSH's would: the config's IdentityFile or
    the agent and ~/.ssh keys (never the row's password, which is the runner's). Each connected hop is added
    to `hops`, for the caller to close."""
    timeout = options.connect_seconds
    first = route.jumps[0] if route.jumps else route.target
    sock = _open_socket(f"{'jump host' if route.jumps else 'runner'} {first.label}", first.host, first.port, timeout)
    for index, hop in enumerate(route.jumps):
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(_Verify(options, hop.port, known, "jump host"))
        credentials, method = _credentials(hop.user, None, None, None, timeout, hop.identity_files)
        _handshake(client, hop.label, sock, *_checked_as(hop), options, credentials, method, "jump host")
        hops.append(client)
        transport = client.get_transport()
        assert transport is not None
        following = route.jumps[index + 1] if index + 1 < len(route.jumps) else route.target
        try:
            sock = transport.open_channel("direct-tcpip", (following.host, following.port), ("127.0.0.1", 0),
                                          timeout=timeout)
        except paramiko.ChannelException as exc:
            raise TransportError(f"jump host {hop.label} cannot reach {following.host}:{following.port}: "
                                 f"{exc.text}") from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"jump host {hop.label} went away: {exc}") from None
    return sock


class SSHTransport(StreamingTransport):
    shell = PosixShell()  # sshd runs commands with the user's login shell; Windows runners take WinRM

    def __init__(self, route: Route, password: str | None, key_file: Path | None, options: SSHOptions,
                 key_data: str | None = None) -> None:
        target = route.target
        self.label = target.label
        self._hops: list[paramiko.SSHClient] = []  # jump hosts, first to last, closed after the runner
        self._client = paramiko.SSHClient()
        known = _read_known_hosts(options)
        self._client.set_missing_host_key_policy(_Verify(options, target.port, known))
        credentials, method = _credentials(target.user, password, key_file, key_data, options.connect_seconds,
                                           target.identity_files)
        try:
            sock = _through_jumps(route, options, known, self._hops)
            _handshake(self._client, self.label + route.via, sock, *_checked_as(target), options,
                       credentials, method)
        except BaseException:
            self._close_hops()
            raise
        transport = self._client.get_transport()
        assert transport is not None
        _read_what_paramiko_ignores(transport)
        self._transport = transport
        self._running: dict[paramiko.Channel, Command] = {}
        self._running_lock = threading.Lock()
        self._timeout = options.connect_seconds
        self._gone: str | None = None  # why the runner counts as gone
        self._closing = threading.Event()
        # A runner's sshd allows MaxSessions channels per connection (10 by default): a channel it refuses goes
        # to a further connection to the same runner, opened on first need (see _overflow).
        self._reconnect: Callable[[], SSHTransport] = lambda: SSHTransport(route, password, key_file, options,
                                                                           key_data)
        self._overflowed: SSHTransport | None = None
        self._overflow_lock = threading.Lock()
        self._links = 1  # this connection and the ones opened after it for the same runner
        self._opening = threading.Lock()
        self._served = False  # a channel was ever opened on this connection
        # Persistent sessions (session.py), idle ones here; None once this runner's shell could not host one.
        self._loops: list[SessionLoop] | None = [] if options.session_loop else None
        self._loops_lock = threading.Lock()
        threading.Thread(target=self._keep_alive, args=(options.alive_seconds,), daemon=True,
                         name=f"dbupdater-alive {self.label}").start()

    def _close_hops(self) -> None:
        for hop in reversed(self._hops):
            hop.close()

    def _keep_alive(self, interval: float) -> None:
        """OpenSSH's ServerAlive: a request the server must answer, sent every `interval`. TCP keepalives cannot
        tell a frozen runner (its kernel still acknowledges) from a busy one; this can. Once nothing has answered
        for ALIVE_COUNT intervals the connection is closed, so every command on it ends as LOST at once: at most
        ALIVE_COUNT x interval after the runner's last answer, as --ssh-alive-interval promises. (Each request
        used to be waited for before the next interval began, which made that 5 to 7 intervals.)"""
        heard = _Heard()
        self._transport.completion_event = heard  # set by any reply to a global request
        silence = ALIVE_COUNT * interval
        due = time.monotonic() + interval
        while self._transport.is_active():
            now = time.monotonic()
            if now - heard.at >= silence:
                self._gone = f"runner {self.label} did not answer for {silence:g}s (frozen or cut off)"
                logging.getLogger("dbupdater").warning("%s; closing its connection", self._gone)
                self._transport.close()
                return
            if now >= due:
                message = paramiko.Message()
                message.add_byte(cMSG_GLOBAL_REQUEST)
                message.add_string("keepalive@openssh.com")
                message.add_boolean(True)  # want a reply: OpenSSH answers "failure", which is an answer
                threading.Thread(target=self._send, args=(message,), daemon=True).start()  # may block: frozen peer
                due = now + interval
            if self._closing.wait(max(0.0, min(due, heard.at + silence) - time.monotonic())):
                return

    def _send(self, message: paramiko.Message) -> None:
        with contextlib.suppress(paramiko.SSHException, OSError, EOFError):
            self._transport._send_user_message(message)  # type: ignore[attr-defined]

    def stream(self, command: Command, *, stdin: ByteSource | None = None, on_stdout: ByteSink,
               on_stderr: OutputHandler) -> Result:
        line, stdin_data = self.shell.render(command if stdin is None else with_streamed_stdin(command))
        if stdin is None and "\n" not in line and self._loops is not None:
            try:
                loop = self._loop()
            except paramiko.ChannelException as exc:
                return self._overflow(exc).stream(command, on_stdout=on_stdout, on_stderr=on_stderr)
            if loop is not None:
                line = self.shell.render(command, replacing=True)[0]
                return self._in_loop(loop, command, line, stdin_data, on_stdout, on_stderr)
        try:
            channel = self.open_session()
        except paramiko.ChannelException as exc:
            return self._overflow(exc).stream(command, stdin=stdin, on_stdout=on_stdout, on_stderr=on_stderr)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"runner {self.label} went away: {self._gone or exc}") from None
        with self._running_lock:
            self._running[channel] = command
        failed: list[BaseException] = []
        feeder: threading.Thread | None = None
        try:
            with channel:
                try:
                    channel.exec_command(line)
                    if stdin is None:
                        _send_whole(channel, stdin_data)
                    else:
                        # A thread of its own: a command whose stdout fills the window while its stdin is still
                        # being sent would otherwise wait for us as we wait for it.
                        feeder = threading.Thread(target=self._feed, args=(channel, stdin, failed), daemon=True,
                                                  name=f"dbupdater-stdin {self.label}")
                        feeder.start()
                except (paramiko.SSHException, OSError, EOFError) as exc:
                    raise TransportError(f"runner {self.label} went away: {exc}") from None
                err = LineSplitter("stderr", on_stderr)
                try:
                    _drain(channel, on_stdout, err)
                except BaseException:
                    self._signal(channel, Signal.KILL)  # the consumer failed: nothing may run on unread
                    raise
                finally:
                    err.close()
                # -1 when the connection ended without an exit status: the shell reads that as "runner lost".
                result = self.shell.interpret(channel.recv_exit_status() if channel.exit_status_ready() else -1)
        finally:
            with self._running_lock:
                self._running.pop(channel, None)
            if feeder is not None:
                feeder.join()  # the channel is closed: a send still waiting for the window fails at once
        if failed:
            raise failed[0]
        if result.ending is Ending.LOST and self._gone:
            raise TransportError(self._gone)
        return result

    def _loop(self) -> SessionLoop | None:
        """An idle persistent session, or a new one; None when this runner's shell cannot host the loop (said
        once, then every command takes a channel of its own, as before)."""
        with self._loops_lock:
            if self._loops is None:
                return None
            if self._loops:
                return self._loops.pop()
        try:
            channel = self.open_session()
        except paramiko.ChannelException:
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"runner {self.label} went away: {self._gone or exc}") from None
        try:
            return SessionLoop(channel, self._timeout)
        except (TransportError, paramiko.SSHException, OSError, EOFError) as exc:
            channel.close()
            if not self._transport.is_active():
                raise TransportError(f"runner {self.label} went away: {self._gone or exc}") from None
            with self._loops_lock:
                if self._loops is not None:
                    logging.getLogger("dbupdater").warning(
                        "runner %s: its shell cannot host the session loop (%s); a channel per command instead",
                        self.label, exc)
                self._loops = None
            return None

    def _in_loop(self, loop: SessionLoop, command: Command, line: str, data: bytes | None, on_stdout: ByteSink,
                 on_stderr: OutputHandler) -> Result:
        channel = loop.channel
        with self._running_lock:
            self._running[channel] = command
        err = LineSplitter("stderr", on_stderr)
        try:
            try:
                status = loop.run(line, data, on_stdout, err.feed)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                loop.usable = False
                raise TransportError(f"runner {self.label} went away: {self._gone or exc}") from None
            except BaseException:
                loop.usable = False
                self._signal(channel, Signal.KILL)  # the consumer failed: nothing may run on unread
                raise
            finally:
                err.close()
        finally:
            with self._running_lock:
                self._running.pop(channel, None)
            self._release(loop)
        if status is None:  # the session ended with the command: its exit-signal or status, or none (lost)
            status = channel.recv_exit_status() if channel.exit_status_ready() else -1
        result = self.shell.interpret(status)
        if result.ending is Ending.LOST and self._gone:
            raise TransportError(self._gone)
        return result

    def _release(self, loop: SessionLoop) -> None:
        with self._loops_lock:
            if loop.usable and self._loops is not None and not self._closing.is_set():
                self._loops.append(loop)
                return
        if loop.usable:
            loop.close()
        else:
            loop.channel.close()

    def _feed(self, channel: paramiko.Channel, source: ByteSource, failed: list[BaseException]) -> None:
        """Send `source` on the channel, then its end. `send_all` returns only once the runner's window took
        the chunk, so a source is never read ahead of the runner by more than one chunk. A source that fails
        gets the command killed instead of an end: a truncated input must not look complete to it."""
        pieces = chunks(source)
        while True:
            try:
                data = next(pieces, None)
            except BaseException as exc:  # the caller's source: re-raised by the caller
                failed.append(exc)
                self._signal(channel, Signal.KILL)
                return
            try:
                if data is None:
                    channel.shutdown_write()
                    return
                send_all(channel, data)
            except (paramiko.SSHException, OSError, EOFError):
                return  # the command ended (or the runner went away) before reading all: its ending says

    def interrupt(self, command: Command | None = None, signal: Signal = Signal.INT) -> None:
        with self._running_lock:
            channels = [channel for channel, running in self._running.items()
                        if command is None or running is command]
        for channel in channels:
            self._signal(channel, signal)
        if self._overflowed is not None:
            self._overflowed.interrupt(command, signal)

    def _signal(self, channel: paramiko.Channel, signal: Signal) -> None:
        # RFC 4254 6.9 "signal": sshd (OpenSSH 7.9+, privilege separation) sends it to the session's process
        # group (killpg), so a client's children go with it. paramiko has no call for it, so the request is
        # built the way paramiko's own send_exit_status builds its channel requests.
        message = paramiko.Message()
        message.add_byte(cMSG_CHANNEL_REQUEST)
        message.add_int(channel.remote_chanid)
        message.add_string("signal")
        message.add_boolean(False)
        message.add_string(signal.value)
        self._send(message)

    def _scp(self) -> SCPClient:
        # 128 KiB reads (scp's default is 16 KiB): fewer, fuller SSH packets; a 3.4 MB copy on a new connection
        # took about a third less time. Memory stays flat: one buffer per copy.
        return SCPClient(_Sessions(self), buff_size=128 * 1024, socket_timeout=60.0)

    def open_session(self) -> paramiko.Channel:
        """A session channel, one opening at a time: when two are refused at once, paramiko hands the reason to
        one of them only (the other gets a bare "Unable to open channel"), so a refusal could not be told apart
        from a lost connection. An opening is one round trip."""
        with self._opening:
            try:
                channel = self._transport.open_session(timeout=self._timeout)  # paramiko's default: an hour
            except paramiko.SSHException as exc:
                if str(exc) != "Timeout opening channel.":
                    raise
                raise paramiko.SSHException(f"no channel opened within {self._timeout:g} s (--connect-timeout)"
                                            ) from None
        self._served = True
        return channel

    def _write_in_loop(self, data: bytes, remote: str, name: str) -> bool:
        """A small file written 0600 by `cat` in a persistent session: False when there is none (take scp)."""
        if self._loops is None or len(data) > LOOP_UPLOAD_MAX:
            return False
        said: list[str] = []
        write = Command(("sh", "-c", 'umask 077 && cat > "$1"', "sh", remote)).with_stdin(data)
        result = self.run(write, lambda _stream, line: said.append(line))
        if not (result.exited and result.code == 0):
            raise TransportError(f"copying {name} to {self.label} failed: {' '.join(said)[-300:] or result.ending}")
        return True

    def put_stream(self, source: IO[bytes], size: int, remote: str, name: str) -> None:
        if self._loops is not None and size <= LOOP_UPLOAD_MAX:
            data = source.read(size)
            if self._write_in_loop(data, remote, name):
                return
            source = io.BytesIO(data)  # the loop became unusable meanwhile
        try:
            with self._scp() as scp:
                scp.putfo(source, remote, mode="0600", size=size)
        except paramiko.ChannelException as exc:  # refused before a byte was read
            self._overflow(exc).put_stream(source, size, remote, name)
        except (SCPException, paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"copying {name} to {self.label} failed: {exc}") from None

    def put_files(self, files: Sequence[tuple[bytes, str, str]]) -> None:
        """All in one command of a persistent session when they fit in one (else one at a time)."""
        if self._loops is None or len(files) < 2 or sum(len(data) for data, _, _ in files) > LOOP_UPLOAD_MAX:
            super().put_files(files)
            return
        said: list[str] = []
        data = b"".join(b"%d\n%b" % (len(content), content) for content, _, _ in files)
        write = Command(("sh", "-c", WRITE_FILES, "sh", *(remote for _, remote, _ in files))).with_stdin(data)
        result = self.run(write, lambda _stream, line: said.append(line))
        if not (result.exited and result.code == 0):
            names = f"{files[0][2]} and {len(files) - 1} more"
            raise TransportError(f"copying {names} to {self.label} failed: {' '.join(said)[-300:] or result.ending}")

    def get(self, remote: str, local: Path) -> None:
        try:
            os.close(os.open(local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))  # 0600 before any byte lands
            with self._scp() as scp:
                scp.get(remote, str(local))
            os.chmod(local, 0o600)  # scp sets the remote file's mode
        except paramiko.ChannelException as exc:
            self._overflow(exc).get(remote, local)
        except (SCPException, paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"copying {remote} from {self.label} failed: {exc}") from None

    def put_bytes(self, data: bytes, remote: str) -> None:
        if self._write_in_loop(data, remote, "a file"):
            return
        try:
            with self._scp() as scp:
                scp.putfo(io.BytesIO(data), remote, mode="0600")
        except paramiko.ChannelException as exc:
            self._overflow(exc).put_bytes(data, remote)
        except (SCPException, paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"writing a file on {self.label} failed: {exc}") from None

    def close(self) -> None:
        self._closing.set()
        with self._loops_lock:
            idle, self._loops = self._loops or [], None
        for loop in idle:
            loop.close()  # the loop leaves nothing on the runner: no waiting for it to end
        self._client.close()
        self._close_hops()
        if self._overflowed is not None:
            self._overflowed.close()

    def tunnel(self, host: str, port: int) -> AbstractContextManager[tuple[str, int]]:
        """The `Tunnels` capability: `direct-tcpip` channels of this connection (tunnel.py)."""
        from .tunnel import tunnel

        return tunnel(self._transport, host, port, self.label, self._timeout)

    def _overflow(self, refused: paramiko.ChannelException) -> SSHTransport:
        """The connection that takes a channel this one's sshd refused (its MaxSessions is reached), opened on
        first need; the same runner, host key and credentials. A connection refused its very first channel
        means sessions are refused outright (MaxSessions 0, or a policy): that fails, as does a connection
        beyond MAX_LINKS to one runner."""
        if refused.code not in SESSIONS_REFUSED:
            raise TransportError(f"runner {self.label} refused a channel: {refused.text}") from None
        with self._overflow_lock:
            if self._overflowed is None:
                held = len(self._transport._channels)  # type: ignore[attr-defined]
                if not self._served or self._links >= MAX_LINKS or self._closing.is_set():
                    raise TransportError(f"runner {self.label} refused a channel ({refused.text}) with {held} open "
                                         f"on {self._links} connection(s): check its sshd's MaxSessions") from None
                logging.getLogger("dbupdater").warning(
                    "runner %s refused a channel with %d open (its sshd's MaxSessions); opening another connection "
                    "to it", self.label, held)
                link = self._reconnect()
                link._links = self._links + 1
                self._overflowed = link
            return self._overflowed


class _Sessions:
    """What SCPClient uses of a paramiko transport, with channels opened through SSHTransport.open_session."""

    def __init__(self, link: SSHTransport) -> None:
        self._link = link

    def open_session(self) -> paramiko.Channel:
        return self._link.open_session()

    def getpeername(self) -> Any:
        return self._link._transport.getpeername()


def _send_whole(channel: paramiko.Channel, data: bytes | None) -> None:
    """A command's own stdin, then its end. A client that exits before reading it all (a refused login) has
    closed the channel by then: its exit status is the answer, not a runner gone away."""
    try:
        if data is not None:
            send_all(channel, data)
        channel.shutdown_write()
    except (paramiko.SSHException, OSError, EOFError):
        if not (channel.closed or channel.eof_received or channel.exit_status_ready()):
            raise


def _drain(channel: paramiko.Channel, on_stdout: ByteSink, err: LineSplitter) -> None:
    """Until the remote command has ended and sent everything (see session.drain)."""
    drain(channel, on_stdout, err.feed, lambda: False)

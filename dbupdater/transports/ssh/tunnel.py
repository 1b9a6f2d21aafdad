"""A database reached as the runner reaches it: a listener on this machine's 127.0.0.1 whose connections go
through the runner's own SSH connection (`direct-tcpip` channels, as `ssh -L` makes them) to one host and port.

Drivers that speak a server's protocol themselves (the binary log reader, psycopg) need a TCP address; the
database often accepts connections only from the runners. The listener takes any port the kernel gives
(`127.0.0.1:0`, never a fixed one), forwards to the one endpoint it was opened for and nowhere else, and is
closed with everything it carried when the block ends or the runner's connection closes.
"""

from __future__ import annotations

import contextlib
import logging
import select
import socket
import threading
from collections.abc import Iterator

import paramiko

from ..base import TransportError

BUFFER = 64 * 1024
POLL = 0.5  # seconds between looks at whether the tunnel is closing


class Tunnel:
    """One endpoint forwarded: `address` is what a client on this machine connects to."""

    def __init__(self, transport: paramiko.Transport, host: str, port: int, label: str, timeout: float) -> None:
        self._transport = transport
        self._target = (host, port)
        self._label = label
        self._timeout = timeout
        self._closing = threading.Event()
        self._open: set[socket.socket | paramiko.Channel] = set()
        self._lock = threading.Lock()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self._listener.settimeout(POLL)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self._accepting = threading.Thread(target=self._accept, daemon=True,
                                           name=f"dbupdater-tunnel {label} -> {host}:{port}")
        self._accepting.start()

    def _accept(self) -> None:
        while not self._closing.is_set() and self._transport.is_active():
            try:
                client, peer = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                channel = self._transport.open_channel("direct-tcpip", self._target, peer, timeout=self._timeout)
            except (paramiko.SSHException, OSError, EOFError) as exc:
                # The client sees its connection closed; the reason goes to the log (the driver's own error
                # names only the local address).
                logging.getLogger("dbupdater").warning("runner %s cannot reach %s:%s: %s", self._label,
                                                       *self._target, getattr(exc, "text", None) or exc)
                client.close()
                continue
            with self._lock:
                if self._closing.is_set():
                    client.close()
                    channel.close()
                    return
                self._open.update((client, channel))
            threading.Thread(target=self._pump, args=(client, channel), daemon=True,
                             name=f"dbupdater-tunnel {self._label} {peer[1]}").start()
        self._listener.close()

    def _pump(self, client: socket.socket, channel: paramiko.Channel) -> None:
        """Bytes both ways until either side ends; then both are closed (neither protocol half-closes)."""
        try:
            while not self._closing.is_set():
                ready, _, _ = select.select([client.fileno(), channel.fileno()], [], [], POLL)
                if client.fileno() in ready:
                    data = client.recv(BUFFER)
                    if not data:
                        return
                    channel.sendall(data)
                if channel.fileno() in ready:
                    data = channel.recv(BUFFER)
                    if not data:
                        return
                    client.sendall(data)
        except (OSError, paramiko.SSHException, EOFError):
            return
        finally:
            with self._lock:
                self._open.discard(client)
                self._open.discard(channel)
            client.close()
            channel.close()

    def close(self) -> None:
        self._closing.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            held = list(self._open)
            self._open.clear()
        for end in held:
            with contextlib.suppress(OSError, paramiko.SSHException, EOFError):
                end.close()
        self._accepting.join(timeout=2 * POLL)


@contextlib.contextmanager
def tunnel(transport: paramiko.Transport, host: str, port: int, label: str,
           timeout: float) -> Iterator[tuple[str, int]]:
    """(local host, local port) forwarded to host:port as the runner sees it, while the block runs."""
    if not transport.is_active():
        raise TransportError(f"runner {label} went away: no tunnel to {host}:{port}")
    opened = Tunnel(transport, host, port, label, timeout)
    try:
        yield opened.address
    finally:
        opened.close()

"""Transport factory. Imports are lazy so `--help` and `validate` never load paramiko."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import HostKeyRefused, SSHOptions, Transport, TransportError

if TYPE_CHECKING:
    from ..manifest import RunnerSpec


def open_transport(spec: RunnerSpec, ssh_options: SSHOptions) -> Transport:
    if spec.transport == "local":
        from .local import LocalTransport

        return LocalTransport()
    from .ssh import SSHTransport

    password = spec.password.reveal() if spec.password else None
    key_data = spec.key_data.reveal() if spec.key_data else None
    return SSHTransport(spec.host, spec.port, spec.user, password, spec.key_file, ssh_options, key_data)


__all__ = ["HostKeyRefused", "SSHOptions", "Transport", "TransportError", "open_transport"]

"""Transports: how a command reaches a runner host, one package or module per kind (see `registry`).

The core reaches them only through `registry`; a new transport is one new module that registers its kind.
"""

from __future__ import annotations

from .base import HostKeyRefused, Transport, TransportError, Tunnels
from .registry import TransportKind, open_transport

__all__ = ["HostKeyRefused", "Transport", "TransportError", "TransportKind", "Tunnels", "open_transport"]

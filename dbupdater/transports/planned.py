"""Transports users may already name, which a later release implements: "not supported yet" (exit 2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .registry import TransportKind, register

if TYPE_CHECKING:
    from ..model.specs import RunnerSpec
    from .base import Transport


class WinRM(TransportKind):
    """Windows runners over WinRM (PowerShell)."""

    name = "winrm"
    display = "WinRM"
    supported = False

    def open(self, spec: RunnerSpec, options: Any) -> Transport:
        raise NotImplementedError("the WinRM transport is not supported yet")


register(WinRM())

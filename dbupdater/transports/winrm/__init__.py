"""Windows runners over WinRM (WS-Management over HTTPS, port 5986), with PowerShell as the runner's shell.

pypsrp carries the protocol (it and pywinrm have one maintainer; pypsrp is the maintained one, validates
certificates against a CA bundle given as a path, and exposes WS-Man Signal, which Ctrl-C needs). This
module only declares the kind and its options; pypsrp loads when a run opens its first WinRM runner.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...model.errors import UsageError
from ..registry import TransportKind, register

if TYPE_CHECKING:
    from ...model.specs import RunnerSpec
    from ..base import Transport

DEFAULT_PORT = 5986
# basic: local accounts only, the password base64 in the request: HTTPS only, which is all this kind speaks.
AUTHS = ("negotiate", "ntlm", "kerberos", "credssp", "basic")
DEFAULT_CONNECT_TIMEOUT = 15.0


@dataclass(frozen=True)
class WinRMOptions:
    auth: str = "negotiate"
    ca_bundle: Path | None = None
    insecure: bool = False  # do not validate the server's certificate: only when asked for by name
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT


class WinRM(TransportKind):
    """Windows runners over WinRM (PowerShell)."""

    name = "winrm"
    display = "WinRM"
    default_port = DEFAULT_PORT

    def add_arguments(self, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--winrm-auth", choices=AUTHS, default="negotiate",
                           help="WinRM authentication: negotiate (Kerberos, else NTLM), ntlm, kerberos (needs a "
                                "ticket: kinit), credssp, or basic (local accounts) (default: %(default)s)")
        group.add_argument("--winrm-ca-bundle", type=Path, metavar="FILE",
                           help="PEM file of the CAs that issued the WinRM runners' HTTPS certificates "
                                "(default: the system's CAs)")
        group.add_argument("--winrm-insecure", action="store_true",
                           help="do not validate WinRM runners' certificates (insecure: anyone on the path can "
                                "pose as the runner and read the credentials)")

    def options(self, args: argparse.Namespace) -> WinRMOptions:
        ca_bundle = getattr(args, "winrm_ca_bundle", None)
        insecure = bool(getattr(args, "winrm_insecure", False))
        if ca_bundle is not None and insecure:
            raise UsageError("--winrm-ca-bundle and --winrm-insecure contradict each other: give one")
        if ca_bundle is not None and not Path(ca_bundle).expanduser().is_file():
            raise UsageError(f"--winrm-ca-bundle {ca_bundle}: no such file")
        return WinRMOptions(getattr(args, "winrm_auth", None) or "negotiate",
                            Path(ca_bundle).expanduser() if ca_bundle is not None else None, insecure,
                            getattr(args, "connect_timeout", None) or DEFAULT_CONNECT_TIMEOUT)

    def open(self, spec: RunnerSpec, options: Any) -> Transport:
        from .connection import open_winrm

        return open_winrm(spec, options if isinstance(options, WinRMOptions) else WinRMOptions())


register(WinRM())

"""Transports users may already name, which a later release implements: "not supported yet" (exit 2).

None at present (WinRM, the last one, is `transports/winrm/`). A placeholder is a `TransportKind` with
`supported = False` whose `open` raises NotImplementedError, registered here.
"""

from __future__ import annotations

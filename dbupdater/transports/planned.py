"""Transports users may already name, which a later release implements: "not supported yet" (exit 2).

None at present (WinRM, the last one, is `transports/winrm/`). A placeholder is a `TransportKind` with
`supported = False` whose `open` raises NotImplementedError, registered here. It opens no `Transport`, so it
has neither `run` nor `stream`: the transport contract (tests/test_transport_contract.py) holds every
supported kind and leaves placeholders out, and implementing one means registering it as supported, which
puts it under the contract.
"""

from __future__ import annotations

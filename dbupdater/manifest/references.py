"""Credential cells as references: `env:VAR`, `file:PATH` (its first line) and `vault:MOUNT/PATH#KEY`.

Resolving `vault:` needs a Vault client, which the command line hands in (`References(vault=...)`): the
manifest reader knows the syntax, not the service, so reading a manifest never imports Vault code.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from ..model.errors import UnresolvedReference
from ..model.secret import Secret

PREFIXES = ("env:", "file:", "vault:")
VaultLookup = Callable[[str], Secret]


def is_reference(cell: str) -> bool:
    return cell.startswith(PREFIXES)


class References:
    def __init__(self, vault: VaultLookup | None = None) -> None:
        self._vault = vault

    def resolve(self, cell: str, base_dir: Path) -> Secret:
        """A credential cell as a Secret: a reference resolved, or the literal value. Vault being unreachable
        raises its own error (exit 3), not a reference problem."""
        if cell.startswith("env:"):
            name = cell[4:]
            if not name:
                raise UnresolvedReference("env: reference names no variable")
            if name not in os.environ:
                raise UnresolvedReference(f"environment variable {name} (from {cell}) is not set")
            return Secret(os.environ[name])
        if cell.startswith("file:"):
            path = Path(cell[5:]).expanduser()
            if not path.is_absolute():
                path = base_dir / path
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise UnresolvedReference(f"cannot read {cell}: {exc.strerror}") from None
            return Secret(text.splitlines()[0] if text else "")
        if cell.startswith("vault:"):
            if self._vault is None:
                raise UnresolvedReference(f"{cell}: vault: references cannot be resolved here (no Vault client)")
            return self._vault(cell)
        return Secret(cell)

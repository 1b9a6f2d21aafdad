"""Credential cells as references: `env:VAR`, `file:PATH` (its first line) and `vault:MOUNT/PATH#KEY`.

Resolving `vault:` needs a Vault client, which the command line hands in (`References(vault=...)`): the
manifest reader knows the syntax, not the service, so reading a manifest never imports Vault code.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

from ..model.errors import UnresolvedReference
from ..model.secret import Secret

PREFIXES = ("env:", "file:", "vault:")
MAX_FILE = 64 * 1024  # a password or a private key; anything bigger is not what the cell meant
VaultLookup = Callable[[str], Secret]


def is_reference(cell: str) -> bool:
    return cell.startswith(PREFIXES)


class References:
    # False where references are checked for their form and never read (validate --without-secrets): the key
    # files the manifest names are secrets too, so they are not looked for either.
    reads = True

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
            return Secret(_first_line(cell, base_dir))
        if cell.startswith("vault:"):
            if self._vault is None:
                raise UnresolvedReference(f"{cell}: vault: references cannot be resolved here (no Vault client)")
            return self._vault(cell)
        return Secret(cell)


def _first_line(cell: str, base_dir: Path) -> str:
    """The first line of a `file:` reference's file: a regular file, at most MAX_FILE bytes, UTF-8. Checked
    before it is opened, so /dev/zero, a FIFO or /dev/stdin is refused instead of exhausting memory or
    blocking the run."""
    try:
        path = Path(cell[5:]).expanduser()
    except RuntimeError:
        path = Path(cell[5:])
    if not path.is_absolute():
        path = base_dir / path
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise UnresolvedReference(f"{cell}: not a regular file")
        if info.st_size > MAX_FILE:
            raise UnresolvedReference(f"{cell}: {info.st_size} bytes; a secret file holds at most {MAX_FILE}")
        with path.open("rb") as handle:
            data = handle.read(MAX_FILE + 1)
        text = data.decode("utf-8")
    except UnresolvedReference:
        raise
    except UnicodeDecodeError as exc:
        raise UnresolvedReference(f"{cell}: not UTF-8 text (byte {exc.start})") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise UnresolvedReference(f"cannot read {cell}: {getattr(exc, 'strerror', None) or exc}") from None
    return text.splitlines()[0] if text else ""

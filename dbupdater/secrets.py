"""Secret values and references.

A resolved secret is wrapped in `Secret` so that repr/str never show it, and every value is registered with
the process-wide redactor that all output passes through: a password echoed back by a client or a library
exception is masked too.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

MASK = "***"
REFERENCE_PREFIXES = ("env:", "file:", "vault:")


class Redactor:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._ordered: list[str] = []

    def add(self, value: str) -> None:
        # Very short values would mask ordinary words; such passwords are weak anyway.
        if len(value) < 3:
            return
        # A multi-line secret (a private key) is masked line by line too, as output splits it into lines.
        parts = [value, *(line.strip() for line in value.splitlines() if len(line.strip()) >= 16)]
        with self._lock:
            fresh = [part for part in parts if part not in self._values]
            if fresh:
                self._values.update(fresh)
                self._ordered = sorted(self._values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text


redact = Redactor()


class Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        redact.add(value)

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"Secret({MASK!r})"

    __str__ = __repr__


class ReferenceError_(ValueError):
    """A reference that cannot be resolved; the message names the reference, never a value."""


def is_reference(cell: str) -> bool:
    return cell.startswith(REFERENCE_PREFIXES)


def resolve(cell: str, base_dir: Path) -> Secret:
    """Turn a credential cell into a Secret: `env:VAR`, `file:PATH` (first line), `vault:MOUNT/PATH#KEY` or a
    literal value. Vault being unreachable raises VaultUnavailable (exit 3), not a reference problem."""
    if cell.startswith("env:"):
        name = cell[4:]
        if not name:
            raise ReferenceError_("env: reference names no variable")
        if name not in os.environ:
            raise ReferenceError_(f"environment variable {name} (from {cell}) is not set")
        return Secret(os.environ[name])
    if cell.startswith("file:"):
        path = Path(cell[5:]).expanduser()
        if not path.is_absolute():
            path = base_dir / path
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ReferenceError_(f"cannot read {cell}: {exc.strerror}") from None
        return Secret(text.splitlines()[0] if text else "")
    if cell.startswith("vault:"):
        from . import vault

        return vault.shared().resolve(cell)
    return Secret(cell)

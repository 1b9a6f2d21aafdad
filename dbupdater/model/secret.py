"""Secret values: wrapped so that repr/str never show them, and masked in everything the tool writes.

Every value is registered with the process-wide redactor that all output passes through, so a password echoed
back by a client or a library exception is masked too. The redactor is process-wide on purpose: a secret must
be masked wherever it surfaces, including in a traceback the CLI prints as a last resort.
"""

from __future__ import annotations

import threading

MASK = "***"


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

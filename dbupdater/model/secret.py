"""Secret values: wrapped so that repr/str never show them, and masked in everything the tool writes.

Every value is registered with the process-wide redactor that all output passes through, so a password echoed
back by a client or a library exception is masked too. The redactor is process-wide on purpose: a secret must
be masked wherever it surfaces, including in a traceback the CLI prints as a last resort.
"""

from __future__ import annotations

import json
import threading
import unicodedata
import urllib.parse

MASK = "***"
# Bidirectional overrides and isolates reorder what a person reads (CVE-2021-42574, "Trojan Source").
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class Redactor:
    def __init__(self) -> None:
        self._values: set[str] = set()
        self._lock = threading.Lock()
        self._ordered: list[str] = []

    def add(self, value: str, *forms: str) -> None:
        """Mask the value and the forms it is written or echoed in: the ones given (a client's escaped file
        format), and the common ones any tool might print (JSON, backslash-escaped, URL-encoded)."""
        # Very short values would mask ordinary words; such passwords are weak anyway.
        if len(value) < 3:
            return
        common = (json.dumps(value)[1:-1], value.replace("\\", "\\\\"), urllib.parse.quote(value, safe=""))
        # A multi-line secret (a private key) is masked line by line too, as output splits it into lines.
        lines = (line.strip() for line in value.splitlines() if len(line.strip()) >= 16)
        parts = [value, *lines, *(form for form in (*forms, *common) if len(form) >= 3)]
        with self._lock:
            fresh = [part for part in parts if part not in self._values]
            if fresh:
                self._values.update(fresh)
                self._ordered = sorted(self._values, key=len, reverse=True)

    def values(self) -> frozenset[str]:
        """What is masked now (for a test to put back afterwards, see `restore`)."""
        with self._lock:
            return frozenset(self._values)

    def restore(self, values: frozenset[str]) -> None:
        """Mask exactly these again: tests isolate each other's secrets; a run never forgets one."""
        with self._lock:
            self._values = set(values)
            self._ordered = sorted(self._values, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for value in self._ordered:
            if value in text:
                text = text.replace(value, MASK)
        return text


redact = Redactor()


def printable(text: str) -> str:
    """Text as it may reach a terminal or a log: control characters (an escape sequence that would rewrite
    what a person reads) and bidirectional overrides shown as escapes; newlines and tabs kept."""
    if text.isprintable():
        return text
    return "".join(_escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    if (unicodedata.category(ch) == "Cc" and ch not in "\n\t") or ch in BIDI:
        return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
    return ch


def shown(text: str) -> str:
    """What the tool writes: secrets masked, then control characters escaped."""
    return printable(redact(text))


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

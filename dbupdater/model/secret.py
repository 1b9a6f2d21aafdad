"""Secret values: wrapped so that repr/str never show them, and masked in everything the tool writes.

Every value is registered with the process-wide redactor that all output passes through, so a password echoed
back by a client or a library exception is masked too. The redactor is process-wide on purpose: a secret must
be masked wherever it surfaces, including in a traceback the CLI prints as a last resort.
"""

from __future__ import annotations

import html
import json
import re
import threading
import unicodedata
import urllib.parse
from collections import Counter

MASK = "***"
SHORTEST = 3  # values shorter than this are not masked: they would mask ordinary words (and are weak anyway)
# Bidirectional overrides and isolates reorder what a person reads (CVE-2021-42574, "Trojan Source").
BIDI = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# Backslash escapes as MySQL writes a string (mysql_real_escape_string, QUOTE()) and as its client's --batch
# output writes a value; PostgreSQL's E'' strings read the same ones.
_BACKSLASH = {"\\": "\\\\", "\0": "\\0", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1a": "\\Z"}
# A SQL string literal's body, for every engine's quoting rule (`'` doubled is standard SQL, PostgreSQL,
# Oracle and SQL Server; MySQL escapes with backslashes, and accepts both at once; `E'...'` is PostgreSQL's
# quote_literal of a value with a backslash) and a quoted identifier's (`"` doubled, or backslashed inside a
# MySQL double-quoted string and an option file).
_SQL = tuple(str.maketrans(table) for table in (
    {"'": "''"},
    {'"': '""'},
    _BACKSLASH | {"'": "\\'"},
    _BACKSLASH | {"'": "\\'", '"': '\\"'},
    _BACKSLASH | {'"': '\\"'},
    _BACKSLASH | {"'": "''"},
    _BACKSLASH | {'"': '""'},
    _BACKSLASH,
))
_ECHO = str.maketrans(_BACKSLASH)
# Characters no form changes (none of the escapes above, nor JSON, URL or HTML escaping, touches them): a run of
# them in a value is in every form of it, so one search for that run rules out all its forms at once.
_KEPT = re.compile(r"[A-Za-z0-9_.~-]{4,}")
WINDOW = 4  # the shortest search string shared by forms of a value with no such run


def forms(value: str) -> set[str]:
    """Every form the tool can know a value to be written or echoed in: as written; in a SQL literal for each
    engine's quoting, and that as the mysql client's batch output escapes it again; JSON (ASCII-escaped and
    not), Python's repr, URL-encoded (path and form encoding) and HTML-escaped (with and without quotes)."""
    sql = {value, *(value.translate(table) for table in _SQL)}
    return {
        *sql, *(form.translate(_ECHO) for form in sql), value.replace("\\", "\\\\"),
        json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], repr(value)[1:-1],
        urllib.parse.quote(value, safe=""), urllib.parse.quote(value), urllib.parse.quote_plus(value),
        html.escape(value), html.escape(value, quote=False),
    }


def anchors(value: str, parts: set[str]) -> dict[str, str]:
    """A search string for each form, shared by as many forms as possible: a text holding none of a value's
    few anchors holds none of its forms, so most lines cost one search per secret however many forms it has.
    The value's longest run of unescaped characters first; forms without it share the substring of WINDOW
    characters most of them hold (chosen greedily); a form that shares nothing is its own anchor."""
    if not parts:
        return {}
    runs = _KEPT.findall(value)
    hint = max(runs, key=len) if runs else ""
    chosen = {part: hint for part in parts if hint and hint in part}
    left = {part for part in parts if part not in chosen}
    while left:
        windows = Counter(window for part in left
                          for window in {part[i:i + WINDOW] for i in range(len(part) - WINDOW + 1)})
        best, shared = windows.most_common(1)[0] if windows else ("", 0)
        if shared < 2:
            chosen.update((part, part) for part in left)
            break
        covered = {part for part in left if best in part}
        chosen.update(dict.fromkeys(covered, best))
        left -= covered
    return chosen


class Redactor:
    """The process's masks. Called on every line the tool writes: while nothing matches, a line costs one
    substring search per anchor (about one per secret, see `anchors`), not one per form; only the forms behind
    an anchor found are tried, longest first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._anchors: dict[str, str] = {}  # form -> its anchor
        self._groups: dict[str, tuple[str, ...]] = {}  # anchor -> its forms, longest first
        self._added: set[str] = set()  # values whose `forms` are in already
        # what a search reads without the lock: swapped whole, never changed in place
        self._search: tuple[tuple[str, ...], dict[str, tuple[str, ...]]] = ((), {})

    def add(self, value: str, *forms_: str) -> None:
        """Mask the value and every form it is written or echoed in: the ones given (a client's file format:
        `Engine.secret_forms`) and the ones any tool might print (`forms`)."""
        if len(value) < SHORTEST:
            return
        parts = {value, *(form for form in forms_ if len(form) >= SHORTEST)}
        if value not in self._added:  # a value named by many rows is added once per row
            # A multi-line secret (a private key) is masked line by line too, as output splits it into lines.
            parts.update(line.strip() for line in value.splitlines() if len(line.strip()) >= 16)
            parts.update(form for form in forms(value) if len(form) >= SHORTEST)
        with self._lock:
            self._added.add(value)
            fresh = anchors(value, {part for part in parts if part not in self._anchors})
            if fresh:
                self._anchors.update(fresh)
                self._regroup(fresh)

    def values(self) -> frozenset[str]:
        """What is masked now (for a test to put back afterwards, see `restore`)."""
        with self._lock:
            return frozenset(self._anchors)

    def restore(self, values: frozenset[str]) -> None:
        """Mask exactly these again: tests isolate each other's secrets; a run never forgets one."""
        with self._lock:
            self._anchors = {value: self._anchors.get(value, value) for value in values}
            self._added = {value for value in self._added if value in self._anchors}
            self._groups = {}
            self._regroup(self._anchors)

    def _regroup(self, fresh: dict[str, str]) -> None:
        """Put fresh forms into their anchors' groups (under the lock) and publish the new search."""
        members: dict[str, list[str]] = {}
        for form, anchor in fresh.items():
            members.setdefault(anchor, list(self._groups.get(anchor, ()))).append(form)
        for anchor, forms_ in members.items():
            self._groups[anchor] = tuple(sorted(forms_, key=len, reverse=True))
        self._search = (tuple(self._groups), dict(self._groups))

    def __call__(self, text: str) -> str:
        found, groups = self._search
        for anchor in found:  # the common case: nothing there, one search per anchor
            if anchor in text:
                break
        else:
            return text
        hits = [anchor for anchor in found if anchor in text]
        ordered = groups[hits[0]] if len(hits) == 1 else sorted(
            {form for anchor in hits for form in groups[anchor]}, key=len, reverse=True)
        for form in ordered:
            if form in text:
                text = text.replace(form, MASK)
        return text


redact = Redactor()


def printable(text: str) -> str:
    """Text as it may reach a terminal or a log: control characters (an escape sequence that would rewrite
    what a person reads) and bidirectional overrides shown as escapes; newlines and tabs kept."""
    if text.isprintable():
        return text
    return "".join(_escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    # Control characters, bidi overrides, and lone surrogates (a file name's undecodable bytes: no terminal or
    # UTF-8 stream can carry them). Noncharacters such as U+FFFF are valid UTF-8 and kept: the run document
    # keeps text as the client wrote it, and each format escapes what it cannot hold (reporting.characters).
    if (unicodedata.category(ch) in ("Cc", "Cs") and ch not in "\n\t") or ch in BIDI:
        return escape(ch)
    return ch


def escape(ch: str) -> str:
    """One character as the tool shows what it will not write as it is: `\\xNN`, or `\\uNNNN` beyond Latin-1."""
    return f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"


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

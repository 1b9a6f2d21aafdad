"""The characters a report file cannot hold as they are, and the escape each writer shows instead.

XML 1.0 allows tab, newline, carriage return, U+0020-U+D7FF, U+E000-U+FFFD and U+10000-U+10FFFF, and no
character reference can bring anything else in (`&#xFFFF;` is as wrong as the character): one U+FFFF in a
client's error text made junit.xml not well-formed, and CI systems then drop the whole test report. A lone
surrogate (a file name Python decoded with surrogateescape, or a `"\\ud800"` in a run.json) cannot even be
encoded as UTF-8, so it broke every writer. HTML counts C1 controls and noncharacters as parse errors too.

Every writer therefore shows such a character as an escape: `\\xNN` or `\\uNNNN` as text in XML and on a
terminal (what `model.secret.printable` shows for control characters), a JSON `\\uNNNN` escape in run.json
and in the page's data, which a JSON reader turns back into the very same string.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..model.secret import escape, shown

# The noncharacters of the first plane (those beyond it are allowed in XML, and a class holding them makes
# every search several times slower).
_NONCHARACTERS = "\ufdd0-\ufdef\ufffe\uffff"
# Not in XML 1.0 at all (tab, newline and carriage return are).
XML_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
# What json.dumps(ensure_ascii=False) leaves as it is and a file or a page must not hold: C0 controls are
# escaped by json.dumps already; C1 controls, surrogates and noncharacters are not (all beyond ASCII).
JSON_UNSAFE = re.compile(f"[\x80-\x9f\ud800-\udfff{_NONCHARACTERS}]")
# What a person's terminal, a log or an XML file gets as an escape beyond what `shown` escapes already (control
# characters, bidi overrides, lone surrogates).
TEXT_UNSAFE = re.compile(f"[{_NONCHARACTERS}]")


def _text_escape(match: re.Match[str]) -> str:
    return escape(match.group())


def _json_escape(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def xml_text(text: str) -> str:
    """The text with every character XML 1.0 does not allow shown as an escape."""
    return XML_FORBIDDEN.sub(_text_escape, text)


def visible(text: str) -> str:
    """What may reach a terminal, a log or an XML file: `shown` (secrets masked, control characters, bidi
    overrides and surrogates escaped), and noncharacters escaped as well."""
    text = shown(text)
    return text if text.isprintable() else TEXT_UNSAFE.sub(_text_escape, text)


def json_text(value: Any, *, indent: int | None = None, separators: tuple[str, str] | None = None) -> str:
    """JSON text that is valid UTF-8 and valid in a page whatever strings the value holds: the same value
    comes back from a JSON reader."""
    text = json.dumps(value, ensure_ascii=False, indent=indent, separators=separators)
    return text if text.isascii() else JSON_UNSAFE.sub(_json_escape, text)

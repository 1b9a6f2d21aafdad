"""PowerShell's stderr over WinRM: CLIXML documents, from which only the error records are kept.

PowerShell writes its own error stream to a redirected stderr as `#< CLIXML` and an `<Objs>` document, and
progress records come that way on successful runs too ("Preparing modules for first use.": samples
winrm-clixml-progress-only-stderr, winrm-clixml-error-stderr-and-pywinrm-cleaned). Counting them as errors
would make every run look failed, so, as Ansible's parse_clixml_stream does, only `<S S="Error">` strings
are kept. The client itself writes plain text to the same stderr (it inherits the pipe), and chunked output
can put a `#< CLIXML` marker mid-line (sample winrm-clixml-progress-packer-log), so plain text and documents
are told apart as the bytes stream.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Callable

MARKER = "#< CLIXML"
_END = "</Objs>"
_NS = "{http://schemas.microsoft.com/powershell/2004/04}"
_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_MAX_DOCUMENT = 4 * 1024 * 1024  # a CLIXML document larger than this is passed on as text, not held


def unescape(text: str) -> str:
    """CLIXML's `_xHHHH_` escapes (UTF-16 code units: `_x000D__x000A_` is CRLF; a pair of surrogates is one
    character)."""
    units = _ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), text)
    return units.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")


def error_text(document: str) -> str:
    """The text of the error records of one `<Objs>` document ("" when it holds only progress records)."""
    root = ET.fromstring(document)  # noqa: S314 - the runner's own stderr; ElementTree resolves no entities
    parts = [unescape(node.text or "") for node in root.iter(f"{_NS}S") if node.get("S") == "Error"]
    return "".join(parts)


class StderrDecoder:
    """Feeds decoded stderr text and emits lines: plain text as it is, CLIXML documents as their error
    records' lines. A document that does not parse is passed on as text, so nothing is lost."""

    def __init__(self, emit: Callable[[str], None]) -> None:
        self._emit = emit
        self._text = ""
        self._document: str | None = None  # the document being collected, from the marker on
        self._pending = ""  # plain text of a line not ended yet
        self._after_document = False  # the line break PowerShell writes after a document is no line of text

    def feed(self, text: str) -> None:
        self._text += text
        while self._text:
            if self._document is None:
                at = self._text.find(MARKER)
                if at < 0:
                    keep = _partial_marker(self._text)
                    self._plain(self._text[:len(self._text) - keep])
                    self._text = self._text[len(self._text) - keep:]
                    return
                self._plain(self._text[:at])
                self._document = ""
                self._text = self._text[at + len(MARKER):]
            before = len(self._document)
            collected = self._document + self._text
            end = collected.find(_END, max(0, before - len(_END)))  # the end tag may be cut by a chunk boundary
            if end < 0:
                self._document = collected
                self._text = ""
                if len(self._document) > _MAX_DOCUMENT:
                    self._plain(MARKER + self._document)
                    self._document = None
                return
            self._text = collected[end + len(_END):]
            self._parsed(collected[:end + len(_END)])
            self._document = None

    def close(self) -> None:
        if self._document is not None and self._document.strip():  # a marker at the very end: no document
            self._plain(MARKER + self._document)
            self._document = None
        self._plain(self._text)
        self._text = ""
        self._line_end()

    def _plain(self, text: str) -> None:
        if self._after_document and text:
            self._after_document = False
            text = text[2:] if text.startswith("\r\n") else text[1:] if text.startswith("\n") else text
        *lines, self._pending = (self._pending + text).split("\n")
        for line in lines:
            self._emit(line.rstrip("\r"))

    def _line_end(self) -> None:
        if self._pending.strip():
            self._emit(self._pending.rstrip("\r"))
        self._pending = ""

    def _parsed(self, document: str) -> None:
        body = document.strip()
        try:
            text = error_text(body)
        except ET.ParseError:
            self._plain(MARKER + document)
            return
        self._line_end()  # a record starts a line of its own
        for line in text.replace("\r\n", "\n").split("\n"):
            if line.strip():
                self._emit(line.rstrip())
        self._after_document = True


def _partial_marker(text: str) -> int:
    """How many characters at the end of `text` may be the start of a marker cut by a chunk boundary."""
    for keep in range(min(len(MARKER) - 1, len(text)), 0, -1):
        if MARKER.startswith(text[-keep:]):
            return keep
    return 0

"""Script files as text: the declared encoding, checked before anything runs, and UTF-8 on the way out.

Every client session runs in UTF-8 (see `engines.base.Engine`), so a script must reach the client as UTF-8:
a script kept in a legacy encoding (cp1252, latin1, UTF-16 with its byte-order mark) is declared in the
manifest and converted as it is copied to the runner. Bytes that do not decode in the declared encoding,
a NUL (no SQL text holds one: it is a binary file or a wrong declaration) or a UTF-16 file without its
byte-order mark are found by `check` while the manifest is validated, with the line and byte offset, so a
wrong declaration never reaches a server as mojibake. A byte-order mark is never sent (neither mysql nor
psql skips one). The checksum stays that of the file as committed (`checksum.py`).
"""

from __future__ import annotations

import codecs
import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import defaults

DEFAULT = defaults.SCRIPT_ENCODING
RAW = "bytes"  # not a text encoding: the file is copied byte for byte (a command step's executable)
CHUNK = 1 << 20
# Encodings whose byte-order mark says which byte order follows (the BOM itself is not text).
_BOMS: dict[str, tuple[tuple[bytes, str], ...]] = {
    "utf-8": ((codecs.BOM_UTF8, "utf-8"),),
    "utf-16": ((codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be")),
    "utf-32": ((codecs.BOM_UTF32_LE, "utf-32-le"), (codecs.BOM_UTF32_BE, "utf-32-be")),
}
# Explicit byte orders may still start with a BOM (some editors write one): it is dropped too.
_OPTIONAL_BOM = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE,
                 "utf-32-le": codecs.BOM_UTF32_LE, "utf-32-be": codecs.BOM_UTF32_BE}


class EncodingError(ValueError):
    """A declared encoding that is not a text encoding Python knows; the message says which."""


def codec(name: str) -> str:
    """The canonical name of a declared encoding (`UTF8`, `latin-1`, `Windows-1252` all work)."""
    cleaned = name.strip()
    try:
        info = codecs.lookup(cleaned)
    except (LookupError, ValueError):  # ValueError: a NUL in the name
        raise EncodingError(f"unknown encoding {cleaned!r}; e.g. utf-8, cp1252, latin1, utf-16") from None
    if not getattr(info, "_is_text_encoding", True):
        raise EncodingError(f"{cleaned!r} is not a text encoding")
    canonical = info.name
    return DEFAULT if canonical == "utf-8-sig" else canonical


@dataclass(frozen=True)
class Layout:
    """How a file's bytes are read: a BOM of `skip` bytes, then text in `body` (a codec with no BOM logic)."""

    body: str
    skip: int


def layout(path: Path, declared: str) -> Layout | str:
    """The file's layout, or why it cannot be read in the declared encoding."""
    with path.open("rb") as handle:
        head = handle.read(4)
    if declared in _BOMS:
        for bom, body in _BOMS[declared]:
            if head.startswith(bom):
                return Layout(body, len(bom))
        if declared != DEFAULT:
            return (f"declared {declared} but has no byte-order mark; declare {declared}-le or {declared}-be for "
                    "a file without one")
        return Layout(DEFAULT, 0)
    optional = _OPTIONAL_BOM.get(declared)
    return Layout(declared, len(optional) if optional and head.startswith(optional) else 0)


BLANK = "is blank (empty, or white space only): nothing to run"
"""What `check` says of a blank script: not a problem unless the manifest is read strictly (real migration
histories hold blank files for changes that concern other engines only; every migration tool takes them as
no-ops), so callers compare with `is`."""


def check(path: Path, declared: str) -> str | None:
    """Read the whole file in its declared encoding (streamed); None if it is clean text, BLANK when it holds
    nothing but white space, else the problem: the first byte that does not decode, or the first NUL, with its
    line (1-based) and byte offset (0-based)."""
    found = layout(path, declared)
    if isinstance(found, str):
        return found
    decoder = codecs.getincrementaldecoder(found.body)(errors="strict")
    offset = found.skip  # file offset of the next byte to feed
    lines = 1
    blank = True  # nothing but white space so far
    with path.open("rb") as handle:
        handle.seek(found.skip)
        while True:
            chunk = handle.read(CHUNK)
            buffered = len(decoder.getstate()[0])
            start = offset - buffered  # file offset of what this call decodes (held-back bytes + chunk)
            try:
                text = decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                before = codecs.decode(exc.object[:exc.start], found.body)
                bad = exc.object[exc.start:exc.end].hex(" ").upper()
                return (f"is not valid {declared}: byte{'s' if exc.end - exc.start > 1 else ''} 0x{bad} at line "
                        f"{lines + before.count(chr(10))}, byte offset {start + exc.start}")
            nul = text.find("\x00")
            if nul >= 0:
                before = text[:nul]
                return (f"contains a NUL character at line {lines + before.count(chr(10))}, byte offset "
                        f"{start + len(before.encode(found.body))}: a binary file, or a wrong encoding declared")
            lines += text.count("\n")
            offset += len(chunk)
            blank = blank and not text.strip()
            if not chunk:
                return BLANK if blank else None


@contextlib.contextmanager
def utf8(path: Path, declared: str) -> Iterator[tuple[IO[bytes], int]]:
    """The script as UTF-8 without a BOM, and its size in bytes: the file itself (past its BOM) when it is
    UTF-8 already, else a converted copy spooled in memory and then on local disk, 0600, removed after; RAW:
    the file as it is."""
    if declared == RAW:
        with path.open("rb") as handle:
            yield handle, os.fstat(handle.fileno()).st_size
        return
    found = layout(path, declared)
    if isinstance(found, str):
        raise EncodingError(f"{path.name} {found}")
    with path.open("rb") as handle:
        if found.body == DEFAULT:
            handle.seek(found.skip)
            yield handle, os.fstat(handle.fileno()).st_size - found.skip
            return
        handle.seek(found.skip)
        decoder = codecs.getincrementaldecoder(found.body)(errors="strict")
        with tempfile.SpooledTemporaryFile(max_size=8 * CHUNK) as converted:
            while True:
                chunk = handle.read(CHUNK)
                converted.write(decoder.decode(chunk, final=not chunk).encode("utf-8"))
                if not chunk:
                    break
            size = converted.tell()
            converted.seek(0)
            yield converted, size

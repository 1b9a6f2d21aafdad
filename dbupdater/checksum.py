"""Script checksums that ignore what editors and Git change behind people's backs.

Version 1: SHA-256 of the content with a leading UTF-8 BOM removed and CRLF turned into LF. A checkout
with `core.autocrlf` or an editor adding a BOM is not drift; any other byte is. The file is streamed,
never read whole.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

VERSION = 1
BOM = b"\xef\xbb\xbf"
CHUNK = 1 << 20


def checksum(path: Path) -> str:
    digest = hashlib.sha256()
    carry = b""
    with path.open("rb") as handle:
        # A regular file's first read is the whole file or a full chunk, so the BOM is never split.
        chunk = handle.read(CHUNK).removeprefix(BOM)
        while chunk:
            chunk = carry + chunk
            # A CR at the end of a chunk may be half of a CRLF split across two reads.
            carry = b"\r" if chunk.endswith(b"\r") else b""
            digest.update(chunk[: len(chunk) - len(carry)].replace(b"\r\n", b"\n"))
            chunk = handle.read(CHUNK)
    digest.update(carry)
    return digest.hexdigest()

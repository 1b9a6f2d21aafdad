"""Identifiers and literals for both engines, written so that no name or value can break out of its quotes.

MySQL text goes in as hex literals with an introducer (`_utf8mb4 X'..'`): whatever the session's sql_mode
(NO_BACKSLASH_ESCAPES, ANSI_QUOTES) and character set, the bytes are the bytes. PostgreSQL literals rely on
standard_conforming_strings (on by default since 9.1): only the quote is doubled.
"""

from __future__ import annotations

import hashlib
import re

PG_NAME_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL silently truncates longer identifiers
CHARSET_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


def pg_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def my_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def pg_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def my_literal(text: str) -> str:
    """Plain quotes for short printable ASCII without quotes or backslashes (readable in a reviewed plan),
    a hex literal for anything else."""
    if re.fullmatch(r"[ !#-&(-\[\]-~]*", text):
        return "'" + text + "'"
    return "_utf8mb4 X'" + text.encode("utf-8").hex().upper() + "'"


def my_char(code: int) -> str:
    """One control character as utf8mb4 text (CHAR(n) alone would be a binary string)."""
    return f"CHAR({code} USING utf8mb4)"


def pg_name(name: str) -> str:
    """A name that fits PostgreSQL's 63 bytes: longer ones keep their start and gain a hash of the whole, so
    two long names that share a start stay apart and the result is the same on every run."""
    raw = name.encode("utf-8")
    if len(raw) <= PG_NAME_BYTES:
        return name
    digest = hashlib.sha256(raw).hexdigest()[:8]
    head = raw[:PG_NAME_BYTES - 9].decode("utf-8", errors="ignore")
    return f"{head}_{digest}"


def pg_column(name: str) -> str:
    """A MySQL name as its quoted PostgreSQL identifier (shortened when longer than 63 bytes)."""
    return pg_ident(pg_name(name))


def dollar_tag(*texts: str) -> str:
    """A dollar-quote tag that none of `texts` holds."""
    tag, number = "$dbupdater$", 0
    while any(tag in text for text in texts):
        number += 1
        tag = f"$dbupdater{number}$"
    return tag


def charset_name(charset: str) -> str:
    if not CHARSET_NAME.fullmatch(charset):
        raise ValueError(f"not a character set name: {charset!r}")
    return charset

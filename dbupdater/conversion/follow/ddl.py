"""Statements in the binary log (query events) that change a followed table's structure.

Rows are logged as rows, but DDL is logged as its text. The follower cannot translate an `ALTER TABLE` the
way the copy translated the table, so a statement that alters, drops, renames or indexes a followed table (or
drops the source database) stops following, naming the statement and the table; a person changes the target
to match, and the next run continues past that statement. `TRUNCATE` of a followed table is carried as
`TRUNCATE ... RESTART IDENTITY` (MySQL's TRUNCATE restarts AUTO_INCREMENT too). Anything else (transaction
control, views, routines, grants, DDL of tables not followed) is passed over.

Finding the tables is done on the statement's words, not a parser: a name that equals a followed table's
anywhere in such a statement counts, so in doubt it stops (the safe side), never misses.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

_COMMENT = re.compile(r"/\*(?!!).*?\*/|/\*!\d*|\*/|--[ \t][^\n]*|#[^\n]*", re.S)
_STRUCTURE = re.compile(
    r"^\s*(?:ALTER\s+(?:ONLINE\s+|IGNORE\s+)*TABLE|DROP\s+TABLE|RENAME\s+TABLE|TRUNCATE|"
    r"CREATE\s+(?:OR\s+REPLACE\s+)?(?:UNIQUE\s+|FULLTEXT\s+|SPATIAL\s+)?INDEX|DROP\s+INDEX|"
    r"CREATE\s+(?:OR\s+REPLACE\s+)?TABLE|(?:DROP|ALTER)\s+(?:DATABASE|SCHEMA))\b", re.I)
_TEMPORARY = re.compile(r"^\s*(?:DROP|CREATE(?:\s+OR\s+REPLACE)?)\s+TEMPORARY\b", re.I)
_DATABASE = re.compile(r"^\s*(?:DROP|ALTER)\s+(?:DATABASE|SCHEMA)\b", re.I)
_TRUNCATE = re.compile(r"^\s*TRUNCATE\s+(?:TABLE\s+)?(?P<name>(?:`(?:[^`]|``)+`|[\w$]+)"
                       r"(?:\s*\.\s*(?:`(?:[^`]|``)+`|[\w$]+))?)\s*;?\s*$", re.I)
_IF_EXISTS = re.compile(r"^\s*IF\s+(?:NOT\s+)?EXISTS\b", re.I)
_NAME = re.compile(r"(`(?:[^`]|``)+`|[\w$]+)(?:\s*\.\s*(`(?:[^`]|``)+`|[\w$]+))?")


@dataclass(frozen=True)
class Structural:
    """A statement that touches a followed table: which table, and whether it is a plain TRUNCATE of it."""

    table: str
    truncate: bool


def _unquote(word: str) -> str:
    return word[1:-1].replace("``", "`") if word.startswith("`") else word


def _names(text: str, default_schema: str) -> Iterable[tuple[str, str]]:
    """(schema, name) for every word or dotted pair in the statement."""
    for match in _NAME.finditer(text):
        first, second = match.group(1), match.group(2)
        if second is None:
            yield default_schema, _unquote(first)
        else:
            yield _unquote(first), _unquote(second)


def without_comments(query: str) -> str:
    """The statement without its comments; MariaDB's executable comments (/*!...*/) keep their content."""
    return _COMMENT.sub(" ", query).strip()


def structural(query: str, default_schema: str, database: str, tables: Iterable[str]) -> Structural | None:
    """What a logged statement does to the followed `tables` of `database` (None: nothing)."""
    text = without_comments(query)
    if not _STRUCTURE.match(text) or _TEMPORARY.match(text):
        return None
    followed = {name.lower(): name for name in tables}
    whole = _DATABASE.match(text)
    if whole is not None:
        word = _NAME.search(_IF_EXISTS.sub("", text[whole.end():], count=1))
        if word is not None and _unquote(word.group(1)).lower() == database.lower() and followed:
            return Structural(next(iter(followed.values())), False)
        return None
    touched = [followed[name.lower()] for schema, name in _names(text, default_schema)
               if schema.lower() == database.lower() and name.lower() in followed]
    if not touched:
        return None
    plain = _TRUNCATE.match(text)
    if plain is not None:
        schema, name = next(iter(_names(plain.group("name"), default_schema)))
        if schema.lower() == database.lower() and name.lower() in followed:
            return Structural(followed[name.lower()], True)
    return Structural(touched[0], False)


def ends_transaction(query: str) -> bool:
    """A COMMIT logged as a query (a group of changes to a non-transactional table ends so)."""
    return without_comments(query).upper().rstrip(";").strip() in ("COMMIT", "XA COMMIT")

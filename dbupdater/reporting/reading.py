"""Run documents read from disk, within bounds: `report` reads files it did not write (the downloaded artifacts
of a CI matrix, a colleague's folder), and each bound below answers a file that hung it, filled the memory or
ended in a traceback.

- Regular files only. A path is looked at (lstat, after following the links of a path given by name) before
  it is opened, and opened with O_NOFOLLOW and O_NONBLOCK and checked again (fstat), so a FIFO is refused
  without blocking and a device (/dev/zero) is never opened at all.
- A size limit (MAX_SIZE, `report --max-size`) on each document and on all of one report's documents
  together, checked before a byte is read: what a document costs in memory is bounded by it.
- A nesting limit (MAX_NESTING levels of `[` and `{`; a run document has 6) checked on the bytes before the
  parser, which recurses once per level, sees them; and a limit on how many containers the text opens for
  its size (the parser's objects for empty containers take 20 times their text).
- Numbers JSON can hold only: NaN, Infinity and a number too large for a double are refused as they are parsed.
- Folder walks with a depth and a count limit, never through a symbolic link, never into hidden folders (.git,
  a run folder being written), and never of the whole file system.
- The schema (`validation`): whatever the document's shape, nothing reads a field of the wrong type, and an
  exit code outside the tool's own set cannot become the process's exit status.

Every refusal is a UsageError (exit 2) naming the file and what is wrong with it.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model.errors import UsageError
from .characters import visible

if TYPE_CHECKING:  # the document's module (and events, ledger under it) loads when a document is read: every
    from .document import Document  # command builds `report`'s options from this module's bounds (start-up time)

MIB = 1024 * 1024
MAX_SIZE = 64 * MIB  # bytes of one run document, and of all the documents of one report together
MAX_NESTING = 32  # levels of [ and {
DENSITY, SLACK = 16, 1_000  # at most one [ or { per DENSITY bytes (and SLACK more, for a small document)
WALK_DEPTH = 8  # folder levels searched below a folder given
WALK_ENTRIES = 20_000  # folder entries looked at, in all the folders given
MAX_DOCUMENTS = 1_000  # run documents in one report
NAME = "run.json"

_STRUCTURE = re.compile(rb'[\[\]{}"]')
_STRING_END = re.compile(rb'["\\]')
QUOTE, BACKSLASH, OPENING = ord('"'), ord("\\"), frozenset(b"[{")


@dataclass
class Reading:
    """The bounds of one `report`, and what it has read so far."""

    max_size: int = MAX_SIZE
    walk_depth: int = WALK_DEPTH
    walk_entries: int = WALK_ENTRIES
    max_documents: int = MAX_DOCUMENTS
    entries: int = 0
    total: int = 0
    found: list[Path] = field(default_factory=list)
    names: dict[Path, str] = field(default_factory=dict)  # how messages name a file reached through a link

    def inputs(self, paths: list[Path]) -> list[Path]:
        """The run documents the paths name: files as given, folders searched for run.json; each once."""
        for given in paths:
            path = Path(os.path.abspath(given))
            try:
                info = path.stat()
            except OSError as exc:
                raise UsageError(f"{visible(str(given))}: no such file or folder"
                                 f"{'' if isinstance(exc, FileNotFoundError) else f' ({exc.strerror})'}") from None
            if stat.S_ISDIR(info.st_mode):
                self._walk(path.resolve(), given)
            else:
                resolved = path.resolve()
                if resolved != path:
                    self.names[resolved] = f"{path} (a link to {resolved})"
                self.found.append(resolved)
        unique = list(dict.fromkeys(self.found))
        if len(unique) > self.max_documents:
            raise UsageError(f"{len(unique)} run documents, more than the {self.max_documents} one report merges: "
                             "name fewer folders")
        return unique

    def _walk(self, top: Path, given: Path) -> None:
        if top == Path(top.anchor):
            raise UsageError(f"{visible(str(given))}: the whole file system is not searched for run.json; name the "
                             "run folders, or the folder the CI job downloaded them into")
        before = len(self.found)
        pending = [(top, 0)]
        while pending:
            folder, depth = pending.pop()
            try:
                with os.scandir(folder) as entries:
                    for entry in entries:
                        self._entry(top, Path(entry.path), entry, depth, pending)
            except OSError as exc:
                raise UsageError(f"{visible(str(folder))}: cannot be searched ({exc.strerror})") from None
        if len(self.found) == before:
            raise UsageError(f"{visible(str(given))}: no {NAME} in this folder or under it")

    def _entry(self, top: Path, path: Path, entry: os.DirEntry[str], depth: int,
               pending: list[tuple[Path, int]]) -> None:
        self.entries += 1
        if self.entries > self.walk_entries:
            raise UsageError(f"{visible(str(top))}: more than {self.walk_entries} files and folders under it, the "
                             "most a search for run.json looks at: name the run folders, or a folder holding "
                             "only them")
        if entry.is_dir(follow_symlinks=False):
            if entry.name.startswith("."):
                return
            if depth + 1 > self.walk_depth:
                raise UsageError(f"{visible(str(path))}: {depth + 1} folder levels below {visible(str(top))}, "
                                 f"deeper than the {self.walk_depth} a search for run.json goes: name a folder "
                                 "closer to the run folders")
            pending.append((path, depth + 1))
        elif entry.name == NAME:
            if entry.is_symlink():
                raise UsageError(f"{visible(str(path))}: a symbolic link, which a search does not follow; name "
                                 "the file it points to if it is a run document")
            self.found.append(path)

    def document(self, path: Path) -> Document:
        """One run document, read within the bounds and checked against the schema. Its strings are as the
        file has them: whoever shows one passes it through `characters` (the writers, the summary)."""
        data = self._read(path)
        where = self.name(path)
        try:
            problem = shape(data)
            if problem:
                raise UsageError(f"{where}: {problem}: not a run document")
            text = data.decode("utf-8-sig")
            del data
            loaded = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
        except UnicodeDecodeError as exc:
            raise UsageError(f"{where}: not UTF-8 text (byte {exc.start}): not a run document") from None
        except (ValueError, RecursionError) as exc:  # JSONDecodeError, a number too long, _finite's refusals
            raise UsageError(f"{where}: not a readable {NAME} ({visible(str(exc))[:200]})") from None
        return readable(loaded, where)

    def name(self, path: Path) -> str:
        return visible(self.names.get(path, str(path)))

    def _read(self, path: Path) -> bytearray:
        where = self.name(path)
        try:
            info = os.lstat(path)
            if not stat.S_ISREG(info.st_mode):
                raise UsageError(f"{where}: {_kind(info.st_mode)}, not a regular file: not read")
            self._fits(info.st_size, where)
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError as exc:
            raise UsageError(f"{where}: cannot be read ({exc.strerror})") from None
        try:
            info = os.fstat(descriptor)
            if not stat.S_ISREG(info.st_mode):  # replaced between the look and the open
                raise UsageError(f"{where}: {_kind(info.st_mode)}, not a regular file: not read")
            self._fits(info.st_size, where)
            buffer = bytearray(info.st_size + 1)  # one byte more: a file that grew is noticed, not followed
            view, got = memoryview(buffer), 0
            while got < len(buffer) and (count := os.readv(descriptor, [view[got:]])):
                got += count
            view.release()
        except OSError as exc:
            raise UsageError(f"{where}: cannot be read ({exc.strerror})") from None
        finally:
            os.close(descriptor)
        if got > info.st_size:
            raise UsageError(f"{where}: grew while it was read: a run document is complete when its run ends")
        self.total += got
        del buffer[got:]
        return buffer

    def _fits(self, size: int, where: str) -> None:
        if size > self.max_size:
            raise UsageError(f"{where}: {size / MIB:.1f} MiB, more than the {self.max_size / MIB:g} MiB a run "
                             "document may have here; if it is one, raise the limit with --max-size MIB")
        if self.total + size > self.max_size:
            raise UsageError(f"{where}: with it the run documents of this report hold {(self.total + size) / MIB:.1f} "
                             f"MiB, more than {self.max_size / MIB:g} MiB; raise the limit with --max-size MIB")


def shape(data: bytes | bytearray, deepest: int = MAX_NESTING, density: int = DENSITY) -> str | None:
    """Why the brackets of a JSON text are not a run document's, or None: nested deeper than `deepest`, or more
    than one `[` or `{` per `density` bytes (the objects a parser makes of empty containers take 20 times their
    text in memory: 64 MiB of `[],` took 1.6 GB). Strings are set aside, and the count stops at the first excess.

    A loop over the structural bytes, jumping through strings and everything else at the regular expression
    engine's speed: no recursion, no copy of the text, and no pattern that backtracks (one that repeats a group
    kept gigabytes of state on 64 MiB of quotes). About 1.5 s for 60 MiB of run document. Unbalanced brackets
    and an unterminated string are the parser's to name."""
    depth = containers = position = 0
    most = len(data) // density + SLACK
    structure, string_end = _STRUCTURE.search, _STRING_END.search
    while found := structure(data, position):
        position = found.end()
        byte = data[position - 1]
        if byte == QUOTE:
            while (inside := string_end(data, position)) and data[inside.start()] == BACKSLASH:
                position = inside.end() + 1  # the escaped byte is skipped with it
            if inside is None:
                break
            position = inside.end()
        elif byte in OPENING:
            depth += 1
            containers += 1
            if depth > deepest:
                return f"nested deeper than {deepest} levels of [ and {{ (a run document has 6)"
            if containers > most:
                return (f"more than one [ or {{ per {density} bytes, far more than a run document has (one per "
                        "100 bytes or so)")
        else:
            depth -= 1
    return None


def readable(loaded: Any, where: str) -> Document:
    """The parsed document, checked against the schema; `where` names it in messages."""
    from .document import FORMAT, VERSION
    from .validation import Invalid, check

    if not isinstance(loaded, dict) or loaded.get("format") != FORMAT:
        raise UsageError(f"{where}: not a dbupdater run document (no \"format\": \"{FORMAT}\")")
    if loaded.get("version") != VERSION:
        raise UsageError(f"{where}: run document version {visible(repr(loaded.get('version')))[:40]}; this "
                         f"release reads version {VERSION}")
    try:
        check(loaded)
    except Invalid as exc:
        raise UsageError(f"{where}: not a valid run document: {visible(str(exc))}") from None
    document: Document = loaded
    return document


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {text[:40]} is too large")
    return number


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"

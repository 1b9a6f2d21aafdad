"""The path every line of a client's output takes on the controller (bench.drain measures its speed): what each
stage made cheaper still does exactly what it did. The run document's excerpt against the incremental algorithm
it replaced, on random output; the line splitter's fast path beside its cut lines; MySQL's stdout warnings; the
console drawing lines only with -v."""

from __future__ import annotations

import io
import random
from collections import deque
from pathlib import Path

import pytest

from dbupdater.engines import registry
from dbupdater.engines.base import Severity
from dbupdater.events import OutputLine
from dbupdater.model.outcome import Outcome
from dbupdater.model.specs import DatabaseSpec, ManifestRow, RunnerSpec
from dbupdater.reporting.console import ConsoleReporter, Verbosity
from dbupdater.reporting.document import EXCERPT_BYTES, EXCERPT_LINES, Excerpt, clean
from dbupdater.transports.base import MAX_LINE, LineSplitter


def _incremental(lines: list[tuple[str, str]]) -> dict[str, object]:
    """The excerpt as it was kept before: trimmed after every line, dropped lines counted as they went."""
    kept: deque[tuple[str, str]] = deque()
    size = cut_lines = cut_bytes = 0
    for stream, line in lines:
        kept.append((stream, line))
        size += len(line)
        while len(kept) > EXCERPT_LINES or (size > EXCERPT_BYTES and len(kept) > 1):
            _, dropped = kept.popleft()
            size -= len(dropped)
            cut_lines += 1
            cut_bytes += len(dropped.encode())
    return {"lines": [{"stream": stream, "text": clean(text)} for stream, text in kept], "omitted_lines": cut_lines,
            "omitted_bytes": cut_bytes}


@pytest.mark.parametrize("seed", range(40))
def test_the_excerpt_keeps_what_trimming_after_every_line_kept(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [0, 1, 80, 300, 2000, EXCERPT_BYTES - 1, EXCERPT_BYTES + 5]
    lines = [(rng.choice(("stdout", "stderr")),
              rng.choice("aé€😀") * rng.choice(lengths)) for _ in range(rng.randrange(0, 400))]
    excerpt = Excerpt()
    for stream, line in lines:
        excerpt.add(stream, line)
    assert excerpt.data() == _incremental(lines)


def test_the_splitter_passes_ordinary_lines_and_still_cuts_long_ones() -> None:
    seen: list[tuple[str, str]] = []
    splitter = LineSplitter("stdout", lambda stream, line: seen.append((stream, line)))
    for piece in (b"one\r\ntw", b"o\n", b"x" * (MAX_LINE + 10) + b"\nafter\n\xc3", b"\xa9\n", b"tail"):
        splitter.feed(piece)
    splitter.close()
    assert [line for _, line in seen] == ["one", "two", "x" * MAX_LINE + " [... 10 more characters of this line cut]",
                                          "after", "é", "tail"]
    assert {stream for stream, _ in seen} == {"stdout"}


def test_mysql_judges_its_shown_warnings_on_stdout_and_nothing_else() -> None:
    mysql = registry.get("mysql")
    assert mysql.classify_stdout("Warning (Code 1265): Data truncated for column 'a' at row 1") is Severity.WARNING
    assert mysql.classify_stdout("Note (Code 1050): Table 't' already exists") is Severity.WARNING
    for line in ("x" * 100, "id\tname", "a Warning (Code 1) inside", ""):
        assert mysql.classify_stdout(line) is Severity.INFO


def test_the_console_shows_output_lines_only_with_verbose() -> None:
    row = ManifestRow(2, RunnerSpec("ssh", "runner1", 22, "deploy"), DatabaseSpec("mysql", "db1", 3306, "app", "shop"),
                      Path("1.sql"), "1.sql", "1.sql")
    event = OutputLine(Outcome(0, row), "stdout", "hello from the client")
    for verbosity, shown in ((Verbosity.QUIET, False), (Verbosity.NORMAL, False), (Verbosity.VERBOSE, True)):
        out = io.StringIO()
        ConsoleReporter(out, color=False, verbosity=verbosity, live=False).handle(event)
        assert ("hello from the client" in out.getvalue()) is shown

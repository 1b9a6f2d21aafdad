"""The path every line of a client's output takes on the controller (bench.drain measures its speed): what each
stage made cheaper still does exactly what it did. The run document's excerpt against the incremental algorithm
it replaced, on random output; the line splitter's fast path beside its cut lines, and its batches of lines against
its lines one by one; MySQL's stdout warnings, found line by line and over a chunk; the console drawing lines only
with -v."""

from __future__ import annotations

import io
import itertools
import random
from collections import deque
from pathlib import Path

import pytest

from dbupdater.engines import registry
from dbupdater.engines.base import OutputLog, Severity
from dbupdater.events import OutputLine, OutputLines
from dbupdater.model.outcome import Outcome
from dbupdater.model.specs import DatabaseSpec, ManifestRow, RunnerSpec
from dbupdater.reporting.console import ConsoleReporter, Verbosity
from dbupdater.reporting.document import EXCERPT_BYTES, EXCERPT_LINES, Excerpt, clean
from dbupdater.transports.base import MAX_LINE, BatchedOutput, LineSplitter


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
    batched, at = Excerpt(), 0  # the same lines in runs of one stream and random sizes, as chunks bring them
    while at < len(lines):
        stream, size = lines[at][0], rng.randrange(1, 300)
        run = list(itertools.takewhile(lambda item: item[0] == stream, lines[at:at + size]))
        batched.extend(stream, [line for _, line in run])
        at += len(run)
    assert batched.data() == excerpt.data()


def test_the_splitter_passes_ordinary_lines_and_still_cuts_long_ones() -> None:
    seen: list[tuple[str, str]] = []
    splitter = LineSplitter("stdout", lambda stream, line: seen.append((stream, line)))
    for piece in (b"one\r\ntw", b"o\n", b"x" * (MAX_LINE + 10) + b"\nafter\n\xc3", b"\xa9\n", b"tail"):
        splitter.feed(piece)
    splitter.close()
    assert [line for _, line in seen] == ["one", "two", "x" * MAX_LINE + " [... 10 more characters of this line cut]",
                                          "after", "é", "tail"]
    assert {stream for stream, _ in seen} == {"stdout"}


class _Collected(BatchedOutput):
    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def lines(self, stream: str, lines: list[str]) -> None:
        self.calls.append((stream, list(lines)))


@pytest.mark.parametrize("seed", range(30))
def test_the_splitter_gives_a_batch_the_lines_it_gives_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    pieces = [b"plain", b"\r", b"\n", "é€😀".encode(), b"x" * (MAX_LINE - 2), b"y" * 700, b"\xff"]
    data = b"".join(rng.choice(pieces) for _ in range(rng.randrange(0, 200)))
    cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randrange(0, 12))))
    chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    one_by_one: list[tuple[str, str]] = []
    single = LineSplitter("stderr", lambda stream, line: one_by_one.append((stream, line)))
    collected = _Collected()
    batched = LineSplitter("stderr", collected)
    for chunk in chunks:
        single.feed(chunk)
        batched.feed(chunk)
    single.close()
    batched.close()
    assert [(stream, line) for stream, lines in collected.calls for line in lines] == one_by_one
    assert len(collected.calls) <= len(chunks) + 1  # a call per chunk at most (and one for the last line)


def test_mysql_finds_the_same_warnings_in_a_chunk_as_line_by_line() -> None:
    mysql = registry.get("mysql")
    lines = ["id\tname", "Warning (Code 1265): Data truncated for column 'a' at row 1", "x" * 100,
             "a Warning (Code 1) inside", "", "Note (Code 1050): Table 't' already exists", "Warning (Code 2)"]
    by_line, by_chunk = OutputLog(mysql), OutputLog(mysql)
    for line in lines:
        by_line.feed("stdout", line)
    by_chunk.feed_lines("stdout", lines)
    assert by_chunk.warnings == by_line.warnings == [lines[1], lines[5], lines[6]]
    assert list(by_chunk.stdout_tail) == list(by_line.stdout_tail)
    postgres = registry.get("postgresql")  # its stdout is never a warning: nothing to ask line by line
    assert list(postgres.stdout_candidates(lines)) == []


def test_mysql_judges_its_shown_warnings_on_stdout_and_nothing_else() -> None:
    mysql = registry.get("mysql")
    assert mysql.classify_stdout("Warning (Code 1265): Data truncated for column 'a' at row 1") is Severity.WARNING
    assert mysql.classify_stdout("Note (Code 1050): Table 't' already exists") is Severity.WARNING
    for line in ("x" * 100, "id\tname", "a Warning (Code 1) inside", ""):
        assert mysql.classify_stdout(line) is Severity.INFO


def test_the_console_shows_output_lines_only_with_verbose() -> None:
    row = ManifestRow(2, RunnerSpec("ssh", "runner1", 22, "deploy"), DatabaseSpec("mysql", "db1", 3306, "app", "shop"),
                      Path("1.sql"), "1.sql", "1.sql")
    for event in (OutputLine(Outcome(0, row), "stdout", "hello from the client"),
                  OutputLines(Outcome(0, row), "stdout", ["first", "hello from the client"])):
        for verbosity, shown in ((Verbosity.QUIET, False), (Verbosity.NORMAL, False), (Verbosity.VERBOSE, True)):
            out = io.StringIO()
            ConsoleReporter(out, color=False, verbosity=verbosity, live=False).handle(event)
            assert ("hello from the client" in out.getvalue()) is shown

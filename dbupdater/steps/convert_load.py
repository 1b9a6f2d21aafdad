"""One table of a copy across engines, streamed: the source's client on its runner writes the table's rows in
the destination's COPY text (the server formats every value), the controller passes the bytes on untouched,
and the destination's client on its runner loads them in one transaction.

The source session is one consistent snapshot: the carried rows, a line `\\.`, the statement that loads the
rows not carried into `dbupdater_copy.discarded_rows`, those rows, `\\.`, and last the checksum of the carried
rows. So the bytes the source writes are, but for that last line, the destination's script; the controller
holds back the last few bytes (never parsing a row) and takes the checksum line from them. The destination's
transaction is opened and committed by the stream itself: the table dropped and made again, its rows and its
discarded rows copied in, its state row set `loaded` with both checksums (the copy's computed there, over what
it commits), COMMIT, then a line saying it was committed. The COMMIT is sent only after the source exited 0 and
its stream ended with a checksum; a source that fails, a stream cut anywhere (the controller killed, a runner's
connection lost) ends the destination's input without it, and the server rolls the table back: a table is
wholly loaded and recorded, or untouched.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from ..conversion.model import TablePlan
from ..conversion.translate import COUNTED_SESSION_SQL
from ..engines import Engine, OutputLog
from ..engines import registry as engines
from ..engines.capabilities import ExportsRows, ImportsRows
from ..engines.dialect import Dialect
from ..execution.kinds import LineSink, StepContext
from ..execution.sessions import RunnerSession
from ..model.command import Command, Result
from ..model.errors import UsageError
from ..model.outcome import Status
from ..model.specs import ManifestRow
from ..transports import TransportError
from ..transports.base import Bytes, LineSplitter
from .convert_state import DISCARDED, DISCARDED_COLUMNS, State, of_schema, schema_setting, statement
from .copy import Pipe
from .dump import KEEP_ERRORS

MARKER = "dbupdater:loaded"  # the destination's line once a table's load committed: MARKER, discarded, checksum
SUM_TABLE = "dbupdater_sum"  # the destination session's temporary table of the copy's checksum
TAIL = 512  # bytes of the source's stream held back: its last line (the checksum) is the controller's
CHECKSUM_LINE = re.compile(r"^(\d+)\t([^\t]*)$")
# The source session: values read in UTC, under a known sql_mode whatever the server's (backslash escapes,
# no ANSI_QUOTES, no EMPTY_STRING_IS_NULL: the translation's SQL means what it says), and a server that may wait
# a long time on a slow destination before it gives up on writing.
SOURCE_SESSION = ("SET SESSION sql_mode = '', time_zone = '+00:00', net_write_timeout = 86400, "
                  "net_read_timeout = 86400;\n")


class CopyFailed(Exception):
    """A statement on one side failed: why, the client's error lines, and whether the side was unreachable."""

    def __init__(self, reason: str, errors: tuple[str, ...] = (), unreachable: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.errors = errors
        self.unreachable = unreachable


class SourceFailed(Exception):
    """The source's stream failed or ended wrongly: the destination must not take what came for a table."""


@dataclass(frozen=True)
class Sides:
    """The two ends of a copy across engines and how each is reached: the sessions on their runners, the
    source's exporting client and the destination's loading client (credentials in the runners' 0600 files),
    and the two dialects. Made once per copy; `--follow` reuses it."""

    source: ManifestRow
    destination: ManifestRow
    source_session: RunnerSession
    destination_session: RunnerSession
    export: Command
    load: Command
    source_engine: Engine
    destination_engine: Engine

    @property
    def source_dialect(self) -> Dialect:
        return self.source_engine.dialect

    @property
    def destination_dialect(self) -> Dialect:
        return self.destination_engine.dialect

    @classmethod
    def open(cls, context: StepContext, source: ManifestRow, destination: ManifestRow) -> Sides:
        exporting, loading = engines.get(source.db.engine), engines.get(destination.db.engine)
        if not isinstance(exporting, ExportsRows) or not isinstance(loading, ImportsRows):
            raise UsageError(f"copies from {exporting.display} to {loading.display} are not supported")
        out = context.deployment.session(source.runner)
        into = context.deployment.session(destination.runner)
        export = exporting.adapt(exporting.export_command(source.db, out.credentials(source.db)),
                                 out.client(exporting))
        load = loading.adapt(loading.import_command(destination.db, into.credentials(destination.db)),
                             into.client(loading))
        return cls(source, destination, out, into, export, load, exporting, loading)

    def sql(self, sql: str) -> list[str]:
        """Run SQL on the destination in one session (stopping at the first error); its stdout lines, or
        CopyFailed with its error lines."""
        try:
            said = client_lines(self.destination_session, self.load, self.destination_engine, sql)
        except TransportError as exc:
            raise CopyFailed(f"the destination's runner connection failed: {exc}", unreachable=True) from exc
        if said.verdict is not Status.APPLIED:
            raise CopyFailed(said.reason, tuple(said.errors), said.verdict is Status.UNREACHABLE)
        return said.lines


@dataclass(frozen=True)
class Said:
    """What one client call printed and how its engine judged it."""

    lines: list[str]  # stdout
    errors: list[str]
    verdict: Status
    reason: str


def client_lines(session: RunnerSession, command: Command, engine: Engine, sql: str) -> Said:
    """Run `sql` on `command`'s stdin through the session's transport (TransportError when it fails)."""
    lines: list[str] = []
    log = OutputLog(engine)

    def collect(stream: str, line: str) -> None:
        if stream == "stdout":
            lines.append(line)
        else:
            log.feed(stream, line)

    result = session.transport.run(command.with_stdin(sql.encode("utf-8")), collect)
    verdict, reason = engine.verdict(result, log)
    return Said(lines, list(log.errors), verdict, reason)


@dataclass(frozen=True)
class TableLoad:
    """How one table's load went."""

    table: str
    ok: bool
    rows: int = 0
    discarded: int = 0
    source_checksum: str = ""
    size: int = 0
    seconds: float = 0.0
    reason: str = ""
    errors: tuple[str, ...] = ()
    unreachable: bool = False
    checksum: str = ""  # the copy's, computed in the load's own transaction


class Tail:
    """The end of the source's stream held back from the destination: everything but the last TAIL bytes goes
    on as it comes (flat memory, no parsing); at the end, the last line is the source's checksum and the rest
    goes on."""

    def __init__(self, keep: int = TAIL) -> None:
        self.keep = keep
        self.held = b""

    def push(self, chunk: bytes) -> tuple[Bytes, ...]:
        """What may go on now, as pieces: what was held, and a view of the chunk but its end (a chunk is
        copied into each SSH packet anyway; joining the two first would copy it once more)."""
        keep = self.keep
        if len(chunk) < keep:
            data = self.held + chunk
            if len(data) <= keep:
                self.held = data
                return ()
            self.held = data[-keep:]
            return (data[:-keep],)
        passed, self.held = (self.held, memoryview(chunk)[:-keep]), chunk[-keep:]
        return passed if passed[0] else passed[1:]

    def end(self) -> tuple[bytes, str]:
        """What is left for the destination, and the checksum line; SourceFailed when the stream did not end
        with the discarded rows' end (`\\.`) and a checksum line."""
        data, self.held = self.held, b""
        cut = data.rfind(b"\n", 0, len(data) - 1)
        body, line = data[:cut + 1], data[cut + 1:].rstrip(b"\n")
        if not data.endswith(b"\n") or not (body == b"\\.\n" or body.endswith(b"\n\\.\n")):
            raise SourceFailed("the source's stream did not end with its rows' end marker and a checksum line")
        text = line.decode("utf-8", "replace")
        if not CHECKSUM_LINE.match(text):
            raise SourceFailed(f"the source's stream ended with {text[:80]!r}, not a checksum (<count>\\t<sum>)")
        return body, text


def checksum_value(text: str) -> tuple[int, str]:
    """A checksum `<count>\\t<sum>` as both sides' texts are compared: the count, and the sum as an exact
    number (an empty table's sum, NULL or empty, is 0)."""
    count, _, total = text.partition("\t")
    total = total.strip()
    if total in ("", "NULL", "\\N", "None", "null"):
        total = "0"
    with contextlib.suppress(InvalidOperation, ValueError):
        total = str(Decimal(total).normalize()) if "." in total or "e" in total.lower() else str(int(total))
    return int(count.strip() or 0), total


def source_sql(d: Dialect, source: str, table: TablePlan) -> str:
    """The source session of one table (`d`: the source's dialect; `source`: the copy's source, which the
    discarded rows carry). One pass over the table writes its rows and sums their checksum as it goes
    (translate.py: counted_rows_sql); then it prints the destination's statements that come next: the copy's
    checksum, computed into a temporary table while the source counts the table's rows (and, only when it left
    some out, finds them), then the COPY of the discarded rows; last the checksum line."""
    end = d.literal("\\.")
    checksum = table.target_checksum_sql.strip().rstrip(";")
    after = d.literal(f"CREATE TEMPORARY TABLE {SUM_TABLE} ON COMMIT DROP AS {checksum};\n"
                      f"COPY {DISCARDED} {DISCARDED_COLUMNS} FROM STDIN;")
    return (SOURCE_SESSION + f"SET @dbupdater_source = {d.literal(source)};\n" + statement(COUNTED_SESSION_SQL)
            + "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;\nSTART TRANSACTION WITH CONSISTENT SNAPSHOT;\n"
            + statement(table.counted_rows_sql) + f"SELECT {end};\nSELECT {after};\n"
            + (statement(table.skipped_sql) if table.skipped_sql else "")
            + statement(table.discarded_if_skipped_sql) + f"SELECT {end};\n" + statement(table.counted_checksum_sql)
            + "COMMIT;\n")


def load_prelude(state: State, table: TablePlan) -> str:
    """The destination's script before the rows: one transaction, the table and its types made afresh (a table
    loaded again may have keys, indexes, or a changed DDL; the foreign keys that pointed at it go with it and
    are made again after the load), its old discarded rows gone, then its COPY."""
    d = state.d
    drops = table.drop_sql or (f"DROP TABLE IF EXISTS {table.qualified} CASCADE",)
    forget = (f"DELETE FROM {DISCARDED} WHERE source = {d.literal(state.source)} AND "
              f"table_name = {d.literal(table.source.name)} AND {of_schema(d, state.schema)};\n")
    return ("SET client_min_messages = warning;\nBEGIN;\n" + schema_setting(d, state.schema)
            + "".join(statement(sql) for sql in (*drops, *table.types_sql, table.create_sql)) + forget
            + statement(table.copy_sql))


def load_postlude(state: State, table: TablePlan, ddl_sha256: str, checksum: str) -> str:
    rows, _ = checksum_value(checksum)
    return (state.loaded_sql(table.name, table.source.name, ddl_sha256, rows, checksum, f"SELECT * FROM {SUM_TABLE}")
            + "COMMIT;\n"
            + state.loaded_echo_sql(table.name, MARKER))


def load_table(sides: Sides, state: State, table: TablePlan, ddl_sha256: str, on_line: LineSink) -> TableLoad:
    """Stream one table from the source into the destination (see the module's docstring); never raises for
    what either side did."""
    started = time.monotonic()
    pipe = Pipe()
    source_errors: list[str] = []
    ended: dict[str, Result | BaseException] = {}
    label = sides.source.db.target_label

    def on_source_stderr(stream: str, line: str) -> None:
        if line.strip() and len(source_errors) < KEEP_ERRORS:
            source_errors.append(f"{label}: {line}")
        on_line(stream, line)

    def produce() -> None:
        command = sides.export.with_stdin(source_sql(sides.source_dialect, state.source, table).encode("utf-8"))
        try:
            result = sides.source_session.transport.stream(command, on_stdout=pipe.sink, on_stderr=on_source_stderr)
            ended["source"] = result
            if result.exited and result.code == 0:
                pipe.put(Pipe.END)
            else:
                pipe.put(SourceFailed(f"{sides.source_engine.client} on {label} exited with {result.exit_code()}"))
        except BaseException as exc:  # the destination stopped (the pipe raised), or the source's runner failed
            ended["source"] = exc
            if not pipe.stopped.is_set():
                with contextlib.suppress(Exception):
                    pipe.put(SourceFailed(f"reading {label} failed: {exc}"))

    tail = Tail()
    checksum: list[str] = []

    def feed() -> Iterator[Bytes]:
        yield load_prelude(state, table).encode("utf-8")
        first = pipe.first()
        if isinstance(first, BaseException):
            raise first
        if first == Pipe.END:
            raise SourceFailed(f"{label} wrote nothing for {table.name}")
        for chunk in pipe.chunks(first):
            yield from tail.push(chunk)
        rest, line = tail.end()
        checksum.append(line)
        yield rest + load_postlude(state, table, ddl_sha256, line).encode("utf-8")

    log = OutputLog(sides.destination_engine)
    committed: list[tuple[int, str]] = []

    def on_destination(stream: str, line: str) -> None:
        if stream == "stdout" and line.startswith(MARKER + "\t"):
            _, discarded, copied = line.split("\t", 2)
            committed.append((int(discarded or 0), copied))
            return
        log.feed(stream, line)
        on_line(stream, line)

    thread = threading.Thread(target=produce, name=f"dbupdater-convert {table.name}", daemon=True)
    thread.start()
    out = LineSplitter("stdout", on_destination)
    failure: str | None = None
    unreachable = False
    result: Result | None = None
    try:
        result = sides.destination_session.transport.stream(sides.load, stdin=feed(), on_stdout=out.feed,
                                                            on_stderr=on_destination)
    except SourceFailed as exc:
        failure = str(exc)
    except TransportError as exc:
        failure, unreachable = f"the destination's runner connection failed: {exc}", True
    except Exception as exc:  # the feeding failed otherwise: the destination was killed before its input closed
        failure = f"the stream failed: {exc}"
    finally:
        out.close()
        pipe.stopped.set()
        thread.join(timeout=30)
    source = ended.get("source")
    if isinstance(source, TransportError):
        failure, unreachable = f"the source's runner connection failed: {source}", True
    errors = tuple(source_errors) + tuple(log.errors)
    seconds = time.monotonic() - started
    if failure is None and result is not None:
        verdict, reason = sides.destination_engine.verdict(result, log)
        if verdict is not Status.APPLIED or not committed or not checksum:
            failure = reason if verdict is not Status.APPLIED else "the destination did not say it committed"
            unreachable = verdict is Status.UNREACHABLE
    if failure is not None:
        return TableLoad(table.name, False, size=pipe.size, seconds=seconds, reason=failure, errors=errors,
                         unreachable=unreachable)
    rows, _ = checksum_value(checksum[0])
    return TableLoad(table.name, True, rows, committed[0][0], checksum[0], pipe.size, seconds,
                     checksum=committed[0][1])


def in_parallel(work: Callable[[TablePlan], TableLoad], tables: list[TablePlan], at_once: int,
                stop: Callable[[], bool]) -> list[TableLoad]:
    """Load `tables` `at_once` at a time, in the order given; after a failure (or when `stop` says so)
    nothing new starts, and the loads under way finish. The loads that ran, in the order they ended."""
    from ..execution.scheduler import parallel_map

    done: list[TableLoad] = []
    lock = threading.Lock()

    class _Halt(Exception):
        pass

    def one(table: TablePlan) -> None:
        if stop():
            raise _Halt
        load = work(table)
        with lock:
            done.append(load)
        if not load.ok:
            raise _Halt

    with contextlib.suppress(_Halt):
        parallel_map(one, tables, max(1, at_once))
    return done

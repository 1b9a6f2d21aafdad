"""Copies between targets as a kind of step: the source's dump streams from its runner, through the
controller, into the destination's restoring client on its runner, without a copy on disk anywhere.

Two threads and a bounded queue between them: the source's stdout fills the queue (its reader blocks when it
is full, so the source's runner is held back), the destination's stdin drains it. Either side ending badly
ends the other: a source that fails makes the queue raise into the destination's stdin, whose client is then
killed before its input is closed (a cut dump is never taken for a whole one); a destination that stops makes
the source's sink raise, which kills the dump. Then `plan` against the copy shows what a deployment would do
to the source: the copy's history is the source's (carried by the dump, or recorded from its head).
"""

from __future__ import annotations

import contextlib
import hashlib
import queue
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timezone

from .. import __version__
from ..backups import Sidecar
from ..engines import registry as engines
from ..engines.capabilities import magic_compression
from ..execution.kinds import Histories, StepContext
from ..ledger import Entry
from ..ledger.records import LOCK_TABLE
from ..model.command import Result
from ..model.errors import DbUpdaterError
from ..model.outcome import Outcome, Status
from ..model.specs import DbKey, ManifestRow
from ..plan import PlannedRow, RowState
from ..transports import TransportError
from .draft import Draft
from .dump import KEEP_ERRORS, dumper, head_of, server_version, tool_version
from .restore import applied

DEPTH = 16  # chunks held between the two runners
GATHER = 512 << 10  # bytes gathered into one chunk (reads come as small as one SSH packet, 32 KiB)
POLL = 0.5


class _Stopped(Exception):
    """The destination stopped reading: the source's dump is ended."""


class _SourceFailed(Exception):
    """The source's dump failed: the destination must not take what came for a whole dump."""


class Pipe:
    """The source's stdout to the destination's stdin, bounded; counts size and SHA-256 on the way.

    What the source's transport reads is gathered into chunks of GATHER bytes before it crosses to the
    destination's thread: each crossing wakes a thread, and with reads of one SSH packet the wake-ups, not the
    bytes, were most of the controller's CPU (measured with perf on a 1 GB copy: a quarter of it in the kernel's
    task switching). Anything else put (the end, a failure) first sends on what was gathered."""

    END = b""

    def __init__(self) -> None:
        self.queue: queue.Queue[bytes | BaseException] = queue.Queue(DEPTH)
        self.stopped = threading.Event()
        self.sha = hashlib.sha256()
        self.size = 0
        self._gathered: list[bytes] = []  # joined once when they reach GATHER: one copy, no regrowing
        self._gathered_size = 0

    def put(self, item: bytes | BaseException) -> None:
        self._send_gathered()
        self._put(item)

    def _send_gathered(self) -> None:
        if self._gathered:
            pieces, self._gathered, self._gathered_size = self._gathered, [], 0
            self._put(pieces[0] if len(pieces) == 1 else b"".join(pieces))

    def _put(self, item: bytes | BaseException) -> None:
        while True:
            if self.stopped.is_set():
                raise _Stopped
            try:
                self.queue.put(item, timeout=POLL)
                return
            except queue.Full:
                continue

    def sink(self, data: bytes) -> None:
        if not data:
            return
        self._gathered.append(data)
        self._gathered_size += len(data)
        if self._gathered_size >= GATHER:
            self._send_gathered()

    def first(self) -> bytes | BaseException:
        return self.queue.get()

    def chunks(self, first: bytes) -> Iterator[bytes]:
        item: bytes | BaseException = first
        while True:
            if isinstance(item, BaseException):
                raise item
            if item == self.END:
                return
            self.sha.update(item)
            self.size += len(item)
            yield item
            item = self.queue.get()


class SourceStep:
    """The source row of a copy: read (its history, under its lock), never changed."""

    name = "copy source"
    history = True

    def __init__(self) -> None:
        self.histories: dict[DbKey, Mapping[str, Entry]] = {}

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        for _, row in rows:
            self.histories[row.db.key] = histories.get(row.db.key, {})
        return [PlannedRow(index, row, "", RowState.NOTHING, "the copy's source: read, not changed", step=self.name)
                for index, row in rows]

    def describe(self, planned: PlannedRow) -> str:
        return "nothing: the copy's source (read, not changed)"

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        return Outcome(planned.index, planned.row, Status.SKIPPED, "the copy's source", step=self.name)


class CopyStep:
    """`copy-db`: the destination row's target replaced by a copy of `source`'s target."""

    name = "copy"
    history = True

    def __init__(self, source: ManifestRow, reads: SourceStep) -> None:
        self.source = source
        self.reads = reads
        self.histories: dict[DbKey, Mapping[str, Entry]] = {}

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        for _, row in rows:
            self.histories[row.db.key] = histories.get(row.db.key, {})
        return [PlannedRow(index, row, "", RowState.PENDING, f"copy of {self.source.db.target_label}", step=self.name)
                for index, row in rows]

    def describe(self, planned: PlannedRow) -> str:
        return f"replace {planned.row.db.target_label} with a copy of {self.source.db.target_label}"

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        draft = Draft(planned.index, planned.row, self.name)
        self._copy(planned, context, draft)
        return draft.outcome()

    def _copy(self, p: PlannedRow, context: StepContext, draft: Draft) -> None:
        source, row = self.source, p.row
        capability = dumper(engines.get(source.db.engine))
        try:
            session = context.deployment.session(source.runner)
            credentials = session.credentials(source.db)
            version = server_version(context, source, capability)
            tool = tool_version(session, capability)
            ledger = context.deployment.ledger(row)
        except DbUpdaterError as exc:
            draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
            return
        moment = datetime.now(timezone.utc)
        pipe = Pipe()
        dump_errors: list[str] = []
        outcome: dict[str, Result | BaseException] = {}

        def on_stderr(stream: str, line: str) -> None:
            if line.strip() and len(dump_errors) < KEEP_ERRORS:
                dump_errors.append(f"{source.db.target_label}: {line}")
            context.on_line(stream, line)

        def dump() -> None:
            command = capability.dump_command(source.db, credentials, lock_table=LOCK_TABLE,
                                              history_schema=context.options.history_schema)
            try:
                result = session.transport.stream(command, on_stdout=pipe.sink, on_stderr=on_stderr)
                outcome["dump"] = result
                if result.exited and result.code == 0:
                    pipe.put(Pipe.END)
                else:
                    pipe.put(_SourceFailed(f"{capability.dump_tool} on {source.db.target_label} exited with "
                                           f"{result.exit_code()}"))
            except _Stopped:
                outcome["dump"] = _Stopped()
            except BaseException as exc:  # handed to the destination's side, which reports it
                outcome["dump"] = exc
                with contextlib.suppress(_Stopped):
                    pipe.put(_SourceFailed(f"the dump of {source.db.target_label} failed: {exc}"))

        thread = threading.Thread(target=dump, name=f"dbupdater-copy {source.db.target_label}", daemon=True)
        thread.start()
        try:
            first = pipe.first()
            if isinstance(first, BaseException) or first == Pipe.END:
                thread.join()
                draft.status = Status.FAILED
                why = "the dump wrote nothing" if isinstance(first, bytes) else str(first)
                draft.reason = f"the copy did not start: {why}"
                draft.errors.extend(dump_errors)
                return
            head = head_of(self.reads.histories.get(source.db.key, {}))
            s = Sidecar(name=f"copy of {source.db.target_label}", target=source.db.target_label,
                        engine=source.db.engine, host=source.db.host, port=source.db.port,
                        database=source.db.database, taken_at=moment.isoformat(timespec="milliseconds"),
                        seconds=0.0, size=0, compression=magic_compression(first),
                        format=capability.dump_format, tool=capability.dump_tool, tool_version=tool,
                        server_version=version, history=head, dbupdater_version=__version__, sha256="-",
                        run_id=context.deployment.identity.run_id)
            script = f"copy from {source.db.target_label}"
            try:
                ledger.mark_running(script, "-", 1, self.histories.get(row.db.key, {}).get(script))
            except DbUpdaterError as exc:
                draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
                return
            applied(ledger, context, row, pipe.chunks(first), s, f"a copy of {source.db.target_label}", script, draft)
        finally:
            pipe.stopped.set()
            thread.join(timeout=30)
        draft.errors.extend(dump_errors)
        failed = outcome.get("dump")
        if isinstance(failed, TransportError) and draft.status is Status.APPLIED:
            draft.status, draft.reason = Status.UNREACHABLE, f"the source's connection failed: {failed}"
        if draft.status is Status.APPLIED:
            draft.reason = draft.reason.replace("restored a copy of", "copied", 1) + f" ({pipe.size:,} bytes streamed)"

"""Backups as a kind of step: the engine's dump tool runs on the target's runner (where its client is), its
stdout streams back over the runner's connection into the backup store, and a sidecar says what it is.

Nothing of a dump that failed, or was interrupted, looks complete: the store writes under a temporary name and
makes the backup complete (renamed, the multipart upload completed, then its sidecar) only after the tool
exited 0 and the SHA-256 of every byte is known. The run holds the target's lock while it dumps, so the
history head recorded in the sidecar (which scripts the backup holds) is the one the snapshot saw.

`BackupFirst` wraps another kind (`apply --backup-before`, a tier's `backup_before`): the first row of a
target that runs takes a backup first; when that fails, the row does not start and its target stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone

from .. import __version__
from ..backups import HeadEntry, Sidecar, Store, backup_name
from ..backups.store import StoreError, Upload
from ..engines import Engine
from ..engines import registry as engines
from ..engines.capabilities import Dumps, magic_compression
from ..execution.kinds import Histories, StepContext, StepKind
from ..execution.sessions import RunnerSession
from ..ledger import Entry
from ..ledger.records import LOCK_TABLE
from ..model.command import Ending
from ..model.errors import DbUpdaterError, UsageError
from ..model.outcome import Outcome, Status
from ..model.specs import DbKey, ManifestRow
from ..plan import PlannedRow, RowState
from ..transports import TransportError
from .draft import Draft

KEEP_ERRORS = 20  # stderr lines of a dump tool kept for the outcome
EXTENSIONS = {("sql", "zstd"): "sql.zst", ("sql", "gzip"): "sql.gz", ("sql", "none"): "sql",
              ("pg_dump custom", "zstd"): "pgdump.zst", ("pg_dump custom", "gzip"): "pgdump.gz",
              ("pg_dump custom", "none"): "pgdump"}


def dumper(engine: Engine) -> Dumps:
    """The engine's dump capability, or exit 2 naming the engine (nothing runs)."""
    if isinstance(engine, Dumps):
        return engine
    raise UsageError(f"backups of {engine.display} databases are not supported yet: its tools (Oracle Data Pump, "
                     "SQL Server BACKUP DATABASE) write on the database server and cannot be verified here; back "
                     f"it up with them directly (targets of engine {engine.display})")


def check_dumpable(rows: Sequence[ManifestRow]) -> None:
    """Every row's engine can be backed up, or exit 2 naming each engine that cannot, before anything runs."""
    refused = sorted({engines.get(row.db.engine).display for row in rows
                      if not isinstance(engines.get(row.db.engine), Dumps)})
    if refused:
        raise UsageError(f"backups of {', '.join(refused)} databases are not supported yet (their tools, Data Pump "
                         "and BACKUP DATABASE, write on the database server and cannot be verified here); nothing "
                         "was run")


def head_of(history: Mapping[str, Entry]) -> tuple[HeadEntry, ...]:
    """A target's history head as a sidecar keeps it: every script's latest entry, in the order they ran."""
    ordered = sorted(history.values(), key=lambda entry: entry.id)
    return tuple(HeadEntry(entry.script, entry.checksum, entry.checksum_version, entry.status) for entry in ordered)


class StoreSink:
    """The dump's stdout into the store: the upload begins at the first bytes (their magic number says which
    compression the runner had), and every later chunk is written as it comes (back-pressure: nothing more
    is read from the runner while a chunk is written)."""

    def __init__(self, store: Store, row: ManifestRow, moment: datetime, tool_format: str) -> None:
        self.store = store
        self.row = row
        self.moment = moment
        self.format = tool_format
        self.upload: Upload | None = None
        self.compression = "none"

    def __call__(self, data: bytes) -> None:
        if self.upload is None:
            self.compression = magic_compression(data)
            extension = EXTENSIONS.get((self.format, self.compression), "dump")
            db = self.row.db
            self.upload = self.store.begin(backup_name(db.engine, db.host, db.port, db.database, self.moment,
                                                       extension))
        self.upload.write(data)

    def abort(self) -> None:
        if self.upload is not None:
            self.upload.abort()


def tool_version(session: RunnerSession, command_engine: Dumps) -> str:
    lines: list[str] = []
    try:
        session.transport.run(command_engine.tool_version_command(), lambda stream, line: lines.append(line))
    except TransportError:
        return "unknown"
    return lines[0].strip() if lines else "unknown"


def server_version(context: StepContext, row: ManifestRow, capability: Dumps) -> str:
    channel = context.deployment.channel(row)
    d = channel.dialect
    rows = channel.rows(f"SELECT {d.json_row({'server_version': capability.server_version_sql()})}{d.from_dual};")
    return str(rows[0]["server_version"]) if rows else "unknown"


def take_backup(row: ManifestRow, context: StepContext, store: Store, history: Mapping[str, Entry],
                draft: Draft) -> Sidecar | None:
    """Dump the row's target into the store; the sidecar of the complete backup, or None with the draft saying
    why not. Ctrl-C (any exception) aborts the upload before it propagates: nothing half-written remains."""
    engine = engines.get(row.db.engine)
    capability = dumper(engine)
    try:
        session = context.deployment.session(row.runner)
        if session.transport.shell.platform != "posix":
            draft.status = Status.FAILED
            draft.reason = "backups need a POSIX runner (sh and zstd or gzip there); this runner is not one"
            return None
        credentials = session.credentials(row.db)
        version = server_version(context, row, capability)
        tool = tool_version(session, capability)
    except DbUpdaterError as exc:
        draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
        return None
    command = capability.dump_command(row.db, credentials, lock_table=LOCK_TABLE,
                                      history_schema=context.options.history_schema)
    moment = datetime.now(timezone.utc)
    started = time.monotonic()
    sink = StoreSink(store, row, moment, capability.dump_format)
    errors: list[str] = []

    def on_stderr(stream: str, line: str) -> None:
        if line.strip() and len(errors) < KEEP_ERRORS:
            errors.append(line)
        context.on_line(stream, line)

    try:
        result = session.transport.stream(command, on_stdout=sink, on_stderr=on_stderr)
    except StoreError as exc:
        sink.abort()
        draft.status, draft.reason = Status.FAILED, f"the backup store failed: {exc}; nothing was kept"
        return None
    except TransportError as exc:
        sink.abort()
        draft.status, draft.reason = Status.UNREACHABLE, f"the dump was cut off: {exc}; nothing was kept"
        return None
    except BaseException:
        sink.abort()
        raise
    draft.exit_code = result.exit_code()
    if not (result.exited and result.code == 0) or sink.upload is None:
        sink.abort()
        if result.ending is Ending.CLIENT_MISSING:
            why = f"{capability.dump_tool} (or sh) is not installed or not on PATH on the runner"
        elif result.ending is Ending.LOST:
            why = "the runner connection ended before the dump tool reported an exit status"
        elif result.exit_code() != 0:
            why = f"{capability.dump_tool} exited with {result.exit_code()}"
        else:
            why = f"{capability.dump_tool} wrote nothing"
        draft.status = Status.INTERRUPTED if context.deployment.cancelled else Status.FAILED
        draft.reason = f"the backup failed: {why}; nothing was kept"
        draft.errors.extend(errors)
        return None
    upload = sink.upload
    db = row.db
    sidecar = Sidecar(name=upload.name, target=db.target_label, engine=db.engine, host=db.host, port=db.port,
                      database=db.database, taken_at=moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                      seconds=round(time.monotonic() - started, 3), size=upload.size, sha256=upload.sha256,
                      compression=sink.compression, format=capability.dump_format, tool=capability.dump_tool,
                      tool_version=tool, server_version=version, history=head_of(history),
                      history_schema=context.options.history_schema, dbupdater_version=__version__,
                      run_id=context.deployment.identity.run_id)
    try:
        upload.commit(sidecar)
    except (OSError, StoreError) as exc:
        upload.abort()
        draft.status, draft.reason = Status.FAILED, f"the backup could not be completed in the store: {exc}"
        return None
    except BaseException:
        upload.abort()
        raise
    draft.warnings.extend(errors)  # a dump that succeeded and said something (a deprecation): shown, not fatal
    return sidecar


def said(sidecar: Sidecar, store: Store) -> str:
    return (f"backed up to {store.location}/{sidecar.name}: {sidecar.size:,} bytes in {sidecar.seconds:.1f}s, sha256 "
            f"{sidecar.sha256[:16]}..., history: {sidecar.head()}")


class DumpStep:
    """`backup`: one row per target (the command gives the first row of each); its history head is the one the
    Run read under the target's lock."""

    name = "backup"
    history = True

    def __init__(self, store: Store) -> None:
        self.store = store
        self.histories: dict[DbKey, Mapping[str, Entry]] = {}
        self.taken: list[Sidecar] = []
        self._lock = threading.Lock()

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        planned = []
        for index, row in rows:
            self.histories[row.db.key] = histories.get(row.db.key, {})
            planned.append(PlannedRow(index, row, "", RowState.PENDING, f"back up to {self.store.location}",
                                      step=self.name))
        return planned

    def describe(self, planned: PlannedRow) -> str:
        return f"back up {planned.row.db.target_label} to {self.store.location}"

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        row = planned.row
        draft = Draft(planned.index, row, self.name)
        sidecar = take_backup(row, context, self.store, self.histories.get(row.db.key, {}), draft)
        if sidecar is not None:
            with self._lock:
                self.taken.append(sidecar)
            draft.status, draft.reason = Status.APPLIED, said(sidecar, self.store)
        return draft.outcome()


class BackupFirst:
    """Another kind of step, with a backup of its target taken right before the target's first row that runs;
    a target whose backup failed does not start (its first row fails, saying why)."""

    def __init__(self, inner: StepKind, store: Store, state: BackupsBefore) -> None:
        self.inner = inner
        self.name = inner.name
        self.history = inner.history
        self.store = store
        self.state = state

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        for _, row in rows:
            self.state.histories[row.db.key] = histories.get(row.db.key, {})
        return self.inner.plan(rows, histories)

    def describe(self, planned: PlannedRow) -> str:
        return self.inner.describe(planned)

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        row = planned.row
        with self.state.lock:
            first = row.db.key not in self.state.done
            self.state.done.add(row.db.key)
        if first:
            draft = Draft(planned.index, row, self.name)
            sidecar = take_backup(row, context, self.store, self.state.histories.get(row.db.key, {}), draft)
            if sidecar is None:
                if draft.status is not Status.INTERRUPTED:
                    draft.status = Status.FAILED if draft.status is not Status.UNREACHABLE else draft.status
                draft.reason = f"not started: the backup before it failed ({draft.reason})"
                return draft.outcome()
            context.on_line("stdout", said(sidecar, self.store))
            with self.state.lock:
                self.state.taken.append(sidecar)
        return self.inner.run(planned, context)


class BackupsBefore:
    """What the BackupFirst wrappers of one run share: which targets were backed up, and their histories."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.done: set[DbKey] = set()
        self.histories: dict[DbKey, Mapping[str, Entry]] = {}
        self.taken: list[Sidecar] = []

"""Restores as a kind of step: a backup from the store streams over the runner's connection into the engine's
restoring client there (mysql, pg_restore), after its SHA-256 was checked against its sidecar.

The history then says what the database holds. A dump of a target whose history tables live in it carries
them (the lock table excepted, so the restoring run keeps its lock): the restored history is the backup's.
Where they live elsewhere (`--history-schema` in another MySQL database), the history is made to agree with
the backup's head: scripts applied since the backup are recorded `undone` (pending again), scripts the backup
holds are recorded applied. Either way an entry `restore <backup name>` records the restore itself: success,
or failed with why (a failed MySQL restore may have replaced part of the database; PostgreSQL restores in one
transaction, so a failed one changed nothing).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence

from ..backups import Sidecar, Store
from ..checksum import VERSION
from ..engines import registry as engines
from ..engines.capabilities import UNPACK_FAILED, Cleans
from ..execution.kinds import Histories, StepContext
from ..ledger import FAILED, SUCCESS, UNDONE, Entry, Ledger
from ..ledger.records import LOCK_TABLE
from ..model.command import Ending
from ..model.errors import DbUpdaterError
from ..model.outcome import Outcome, Status
from ..model.secret import redact
from ..model.specs import ManifestRow
from ..plan import RESTORE, PlannedRow, RowState
from ..transports import TransportError
from ..transports.base import LineSplitter
from .draft import Draft
from .dump import KEEP_ERRORS, dumper

PREFIX = RESTORE  # the history entry of a restore: `restore <backup name>` (plan reads it)
COPIED = "copy from "  # and of a copy (`steps.copy`): `copy from <target>`


def verify(store: Store, sidecar: Sidecar) -> str | None:
    """Why the backup's bytes are not what its sidecar says (size, SHA-256), or None: read once, streamed."""
    digest = hashlib.sha256()
    size = 0
    for chunk in store.read(sidecar.name):
        digest.update(chunk)
        size += len(chunk)
    if size != sidecar.size or digest.hexdigest() != sidecar.sha256:
        return (f"{store.location}/{sidecar.name} is not what its sidecar says ({size:,} bytes, sha256 "
                f"{digest.hexdigest()[:16]}...; the sidecar says {sidecar.size:,} bytes, {sidecar.sha256[:16]}...): "
                "it was changed or damaged; nothing was restored")
    return None


def drops(context: StepContext, row: ManifestRow, engine: Cleans) -> str:
    """The statements dropping what the target holds (its lock table excepted), run in the restore's own session
    first: the restored database is the backup's, not the backup's beside what was made since."""
    objects = context.deployment.channel(row).rows(engine.objects_sql(LOCK_TABLE, context.options.history_schema))
    return engine.drops_sql([(str(item["kind"]), str(item["name"])) for item in objects])


def stream_into(row: ManifestRow, context: StepContext, source: Iterable[bytes], compression: str,
                draft: Draft) -> bool:
    """Feed `source` (a backup's bytes) into the row's engine's restoring client on its runner; judged by its
    exit code (stderr lines are its errors). True when it succeeded."""
    engine = engines.get(row.db.engine)
    capability = dumper(engine)
    try:
        session = context.deployment.session(row.runner)
        first = ""
        if isinstance(engine, Cleans):
            sql = drops(context, row, engine)
            if sql:
                first = session.transport.shell.join(session.workdir, f"restore-{secrets.token_hex(6)}.sql")
                session.transport.put_bytes(sql.encode("utf-8"), first)
        command = capability.restore_command(row.db, session.credentials(row.db), compression=compression,
                                             first=first)
    except DbUpdaterError as exc:
        draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
        return False
    errors: list[str] = []

    def on_line(stream: str, line: str) -> None:
        if stream == "stderr" and line.strip() and len(errors) < KEEP_ERRORS:
            errors.append(line)
        context.on_line(stream, line)

    out = LineSplitter("stdout", on_line)
    try:
        result = session.transport.stream(command, stdin=source, on_stdout=out.feed, on_stderr=on_line)
    except TransportError as exc:
        draft.status, draft.reason = Status.UNREACHABLE, f"the connection was lost mid-restore: {exc}"
        return False
    except Exception as exc:  # the source failed (a copy's dump, a store's read): the client was killed first
        draft.status, draft.reason = Status.FAILED, f"its input failed mid-way ({exc})"
        draft.errors.extend(errors)
        return False
    finally:
        out.close()
    draft.exit_code = result.exit_code()
    draft.errors.extend(errors)
    if result.exited and result.code == 0:
        return True
    if result.exited and result.code == UNPACK_FAILED:
        why = "the backup's bytes were cut or corrupt on the way (the decompressor failed)"
    elif result.ending is Ending.CLIENT_MISSING:
        why = "the restoring client (or sh, zstd, gzip) is not installed or not on PATH on the runner"
    else:
        why = f"the restoring client exited with {result.exit_code()}"
    draft.status = Status.INTERRUPTED if context.deployment.cancelled else Status.FAILED
    draft.reason = why
    return False


def record(ledger: Ledger, script: str, checksum: str, status: str, note: str, reopen: Callable[[], None]) -> None:
    """Record `script` as `status` in the history, whatever the restore did to the table: the `running` row
    written before may be gone (the history was restored from the backup) or still there (kept elsewhere), and
    a failed MySQL restore may have dropped the table (it is made again, under the run's lock)."""
    try:
        ledger.mark_finished(script, status, note)
        latest = ledger.read().get(script)
    except DbUpdaterError:
        reopen()
        latest = ledger.read().get(script)
    if latest is not None and latest.run_id == ledger.identity.run_id and latest.status == status:
        return
    ledger.mark_running(script, checksum, VERSION, latest)
    ledger.mark_finished(script, status, note)


def agree(ledger: Ledger, sidecar: Sidecar, what: str) -> list[str]:
    """Make the history say what the restored database holds (the backup's head), where the restore did not
    bring the history along; what it changed, in words."""
    now = ledger.read()
    held = {entry.script: entry for entry in sidecar.history}
    changed: list[str] = []
    for script, entry in now.items():
        if script.startswith((PREFIX, COPIED)) or entry.status != SUCCESS:  # entries of restores are no scripts
            continue
        kept = held.get(script)
        if kept is None or kept.status != SUCCESS:
            ledger.mark_running(script, entry.checksum, entry.checksum_version, entry)
            ledger.mark_finished(script, UNDONE, f"not in {what}: pending again")
            changed.append(f"{script}: undone (not in the backup)")
    for script, kept in held.items():
        if kept.status != SUCCESS or script.startswith((PREFIX, COPIED)):
            continue
        current = now.get(script)
        if current is None or current.status != SUCCESS or current.checksum != kept.checksum:
            ledger.mark_running(script, kept.checksum, kept.checksum_version, current)
            ledger.mark_finished(script, SUCCESS, f"held by {what}")
            changed.append(f"{script}: applied (held by the backup)")
    return changed


class RestoreStep:
    """`restore`: the backup into one target (its own, or `--into` another of the same engine)."""

    name = "restore"
    history = True

    def __init__(self, store: Store, sidecar: Sidecar) -> None:
        self.store = store
        self.sidecar = sidecar
        self.histories: dict[tuple[str, str, int, str], Mapping[str, Entry]] = {}

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        planned = []
        for index, row in rows:
            self.histories[row.db.key] = histories.get(row.db.key, {})
            planned.append(PlannedRow(index, row, self.sidecar.sha256, RowState.PENDING,
                                      f"restore {self.sidecar.name}", step=self.name))
        return planned

    def describe(self, planned: PlannedRow) -> str:
        s = self.sidecar
        return (f"restore {s.name} (taken {s.taken_at} from {s.target}, {s.size:,} bytes; history: {s.head()}) "
                f"over {planned.row.db.target_label}")

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        row = planned.row
        draft = Draft(planned.index, row, self.name)
        self._restore(planned, context, draft)
        return draft.outcome()

    def _restore(self, p: PlannedRow, context: StepContext, draft: Draft) -> None:
        s, row = self.sidecar, p.row
        damaged = verify(self.store, s)
        if damaged is not None:
            draft.status, draft.reason = Status.FAILED, damaged
            return
        script = PREFIX + s.name
        try:
            ledger = context.deployment.ledger(row)
            ledger.mark_running(script, s.sha256, VERSION, self.histories.get(row.db.key, {}).get(script))
        except DbUpdaterError as exc:
            draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
            return
        applied(ledger, context, row, self.store.read(s.name), s, f"the backup {s.name}", script, draft)


def applied(ledger: Ledger, context: StepContext, row: ManifestRow, source: Iterable[bytes], s: Sidecar,
            what: str, script: str, draft: Draft) -> None:
    """Stream a backup into the row's target and record in its history how that went (a restore or a copy)."""
    ok = stream_into(row, context, source, s.compression, draft)

    def reopen() -> None:
        options = context.options
        ledger.open_locked(options.lock_lease, options.lock_timeout)

    try:
        if ok:
            record(ledger, script, s.sha256, SUCCESS, f"{what}, taken {s.taken_at} from {s.target}", reopen)
            changed = agree(ledger, s, what)
            draft.status = Status.APPLIED
            draft.reason = (f"restored {what} ({s.size:,} bytes, taken {s.taken_at} from {s.target}); the history "
                            f"now holds {s.head()}" + (f"; recorded: {'; '.join(changed)}" if changed else ""))
            return
        partly = ("nothing was changed (PostgreSQL restores in one transaction)" if row.db.engine == "postgresql"
                  else "the database may be partly restored: restore a backup again, or check it")
        draft.reason = f"the restore of {what} failed: {draft.reason}; {partly}"
        record(ledger, script, s.sha256, FAILED, redact(draft.reason)[:900], reopen)
    except DbUpdaterError as exc:
        draft.status = Status.UNREACHABLE if ok else draft.status
        draft.reason = f"{draft.reason}; recording it in the history failed: {exc}"

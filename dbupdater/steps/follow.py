"""`copy-db --follow` and `--detach` as kinds of step: the source's binary log read from its recorded position
and applied to the copy, until a person detaches it.

The log is read with mysql-replication, through a tunnel over the source runner's SSH connection (the database
is reached as the runner reaches it); changes are applied with psycopg through a tunnel over the destination
runner's connection. Passwords go from the manifest's resolved secrets to the drivers in memory only: never on
a command line, in an environment or in a message.

Exactly once: each batch of whole source transactions is one PostgreSQL transaction that also moves
`dbupdater_copy.follow`'s position (conversion/follow/position.py), so a follower stopped anywhere (Ctrl-C, a
killed process, a lost runner) continues from what committed. Following starts at the position recorded before
the copy read any table, so it first meets changes the copy already holds: every write is idempotent, and until
it passes the place where the log stood when following first started (`catch_up`), a change that breaks a
constraint only because another row is still behind is passed over (that row's own later change settles it).

A DDL statement on a followed table stops following with the statement and the table named, the position left
before it; once a person has changed the target to match, the next run continues past it. TRUNCATE is carried.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import re
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from ..conversion.follow import Change, Discard, Forget, Position, TableWriter, ends_transaction, structural
from ..conversion.follow import position as at
from ..conversion.model import ConversionPlan
from ..conversion.names import charset_name
from ..execution.kinds import Histories, Prepares, StepContext, StepKind
from ..model.errors import DbUpdaterError
from ..model.outcome import Outcome, Status
from ..model.secret import redact
from ..model.specs import ManifestRow
from ..plan import PlannedRow, RowState
from ..transports import TransportError, Tunnels
from .convert_position import VARIABLES, log_refusal
from .convert_state import DISCARDED_SCHEMA_COLUMN
from .draft import Draft
from .follow_reading import as_stored, check

if TYPE_CHECKING:
    import psycopg

HEARTBEAT = 1.0  # seconds: the source sends a heartbeat when it has nothing more, so stopping is noticed
COMMIT_EVERY = 1.0  # seconds a batch of whole transactions may wait before it is committed
BATCH = 2000  # row changes in one PostgreSQL transaction at most (a source transaction is never split)
REPORT_EVERY = 10.0  # seconds between progress lines while changes arrive
IDLE_REPORT_EVERY = 60.0  # seconds between them while nothing arrives (a follower may run for days)
MEASURE_EVERY = 5.0  # seconds between looks at where the source's log ends (bytes behind)
WAIT_DETACH = 0.5  # seconds between looks at a follower that was asked to detach
# Discarded rows are kept per source and target schema (convert_state.DISCARDED_SCHEMA_COLUMN; NULL: kept before
# rows named their schema). The follower makes sure the column is there: it may follow a copy an older build made.
DISCARDED = ("INSERT INTO dbupdater_copy.discarded_rows (source, target_schema, table_name, row_key, reason, "
             "row_text, copied_at) VALUES (%s, %s, %s, %s, %s, %s, now())")
FORGET_DISCARDED = ("DELETE FROM dbupdater_copy.discarded_rows WHERE source = %s AND (target_schema = %s OR "
                    "target_schema IS NULL) AND table_name = %s AND row_key = %s")
TRUNCATE_DISCARDED = ("DELETE FROM dbupdater_copy.discarded_rows WHERE source = %s AND (target_schema = %s OR "
                      "target_schema IS NULL) AND table_name = %s")
COUNT_DISCARDED = ("SELECT table_name, count(*) FROM dbupdater_copy.discarded_rows WHERE source = %s AND "
                   "(target_schema = %s OR target_schema IS NULL) GROUP BY 1")
_SAVEPOINT = re.compile(r"\s*(SAVEPOINT|ROLLBACK\s+(WORK\s+)?TO|RELEASE\s+SAVEPOINT)\b", re.I)

PlanOf = Callable[[StepContext], ConversionPlan]
Say = Callable[[str], None]


class FollowError(DbUpdaterError):
    """Following cannot start or go on, in words for the row's outcome."""


def source_name(row: ManifestRow) -> str:
    """How `dbupdater_copy` names a source (the copy's tables use the same words)."""
    return row.db.target_label


def server_id(source: ManifestRow, destination: ManifestRow, schema: str) -> int:
    """The follower's replica id on the source: the same for one copy across runs (the source ends an older
    connection that used it), apart from other copies' and from servers' small ids."""
    return (1 << 24) + zlib.crc32(f"{source_name(source)} {destination.db.target_label} {schema}".encode()) % (1 << 30)


@contextlib.contextmanager
def reached(context: StepContext, row: ManifestRow) -> Iterator[tuple[str, int]]:
    """The row's database as its runner reaches it, for a driver on this machine."""
    transport = context.deployment.session(row.runner).transport
    if not isinstance(transport, Tunnels):
        raise FollowError(f"runner {row.runner.label}: its transport ({row.runner.transport}) cannot carry a "
                          f"connection to {row.db.target_label}; following needs an SSH or local runner")
    with transport.tunnel(row.db.host, row.db.port) as address:
        yield address


def _password(row: ManifestRow) -> str:
    password = row.db.password.reveal() if row.db.password else ""
    if password:
        redact.add(password)
    return password


def mysql_settings(row: ManifestRow, address: tuple[str, int]) -> dict[str, Any]:
    return {"host": address[0], "port": address[1], "user": row.db.user, "password": _password(row),
            "charset": "utf8mb4", "connect_timeout": 15}


def mysql_connect(row: ManifestRow, address: tuple[str, int]) -> Any:
    import pymysql

    try:
        return pymysql.connect(**mysql_settings(row, address), autocommit=True)
    except pymysql.MySQLError as exc:
        raise FollowError(f"{row.db.target_label}: {redact(str(exc))}") from None


def postgres_connect(row: ManifestRow, address: tuple[str, int]) -> psycopg.Connection[Any]:
    import psycopg

    try:
        return psycopg.connect(host=address[0], port=address[1], user=row.db.user, password=_password(row),
                               dbname=row.db.database, connect_timeout=15, application_name="dbupdater follow")
    except psycopg.Error as exc:
        raise FollowError(f"{row.db.target_label}: {redact(str(exc))}") from None


def binary_log_status(mysql: Any, source: ManifestRow) -> Position:
    """Where the source's binary log ends now, after checking that it is one a follower can read."""
    with mysql.cursor() as cursor:
        cursor.execute("SHOW VARIABLES WHERE Variable_name IN (%s, %s, %s, %s)", VARIABLES)
        variables = {str(name): str(value) for name, value in cursor.fetchall()}
        why = log_refusal(source.db.target_label, source.db.user, variables, ("", 0))
        if why is not None:
            raise FollowError(why)
        try:
            cursor.execute("SHOW MASTER STATUS")
        except Exception as exc:  # MySQL 8.4 knows only the new words
            if "syntax" not in str(exc).lower():
                raise
            cursor.execute("SHOW BINARY LOG STATUS")
        row = cursor.fetchone()
    why = log_refusal(source.db.target_label, source.db.user, variables, None if row is None else ("", 0))
    if why is not None or row is None:
        raise FollowError(str(why))
    return Position.of(str(row[0]), int(row[1]))


def _key(source: ManifestRow, schema: str) -> tuple[str, str]:
    return source_name(source), schema


def _read(pg: psycopg.Connection[Any], source: ManifestRow, schema: str) -> tuple[Any, ...] | None:
    for statement in at.CREATE:
        pg.execute(statement)
    row = pg.execute(at.READ, _key(source, schema)).fetchone()
    pg.commit()
    return row


def copy_state(context: StepContext, source: ManifestRow, destination: ManifestRow, schema: str) -> str | None:
    """The follow row's state (None: no position recorded)."""
    with reached(context, destination) as pg_at:
        pg = postgres_connect(destination, pg_at)
        try:
            row = _read(pg, source, schema)
        finally:
            pg.close()
    return None if row is None else str(row[2])


class SourceText:
    """Text in a character set other than UTF-8, converted by the source server as the copy has it converted
    (values.Convert): one query per distinct value on the follower's connection to the source, the answers kept
    (values repeat). Python's codecs are not used: their tables and MySQL's differ on some bytes."""

    def __init__(self) -> None:
        self.mysql: Any = None
        self.convert = functools.lru_cache(maxsize=4096)(self._convert)

    def _convert(self, raw: bytes, charset: str) -> tuple[str, bool]:
        name = charset_name(charset)
        text = f"CONVERT(CONVERT(%s USING {name}) USING utf8mb4)"
        with self.mysql.cursor() as cursor:
            cursor.execute(f"SELECT {text}, CAST(CONVERT({text} USING {name}) AS BINARY) = %s", (raw, raw, raw))
            converted, same = cursor.fetchone()
        return str(converted), bool(same)


@dataclasses.dataclass
class _Progress:
    applied: int = 0  # row changes
    transactions: int = 0
    discarded: int = 0
    passed_over: int = 0  # changes that met a constraint while catching up
    lag: float | None = None
    behind: int | None = None
    said: float = 0.0  # when the last progress line was said
    said_applied: int = -1  # how many changes had been applied then


class Follower:
    """One run of following: opened, the loop, and how it ended (in `draft`)."""

    def __init__(self, source: ManifestRow, destination: ManifestRow, plan: ConversionPlan,
                 context: StepContext, draft: Draft, say: Say | None, *, detach: bool) -> None:
        self.source = source
        self.destination = destination
        self.plan = plan
        self.schema = plan.schema
        self.context = context
        self.draft = draft
        self._say = say
        self.detaching = detach
        self.text = SourceText()
        self.writers = {table.source.name: TableWriter(table, self.text.convert) for table in plan.tables
                        if table.followable}
        self.progress = _Progress()
        self.key = _key(source, schema=plan.schema)

    def say(self, text: str, *, ongoing: bool = False) -> None:
        """Progress at default verbosity (`ongoing`: where following stands, which the next replaces)."""
        self.context.notice(text, ongoing=ongoing)
        if self._say is not None:
            self._say(text)

    # --- opening ------------------------------------------------------------------------------------------

    def run(self) -> None:
        with reached(self.context, self.source) as mysql_at, reached(self.context, self.destination) as pg_at:
            pg = postgres_connect(self.destination, pg_at)
            try:
                if not self._lock(pg):
                    self._another_follower(pg, mysql_at)
                    return
                self._locked(pg, mysql_at)
            finally:
                pg.close()

    def _lock(self, pg: psycopg.Connection[Any]) -> bool:
        """This connection holds the one-follower lock (until it closes), or another follower does."""
        held = bool(pg.execute(at.LOCK, (at.lock_key(*self.key),)).fetchone()[0])  # type: ignore[index]
        pg.commit()
        return held

    def _another_follower(self, pg: psycopg.Connection[Any], mysql_at: tuple[str, int]) -> None:
        if not self.detaching:
            self.draft.status = Status.FAILED
            self.draft.reason = (f"another follower runs for {self.source.db.target_label} into schema {self.schema}"
                                 " (one at a time; `copy-db --detach` ends it)")
            return
        asked = pg.execute(at.ASK_DETACH, self.key).fetchone()
        pg.commit()
        if asked is None:
            row = _read(pg, self.source, self.schema)
            self.draft.status = Status.FAILED
            self.draft.reason = f"nothing to detach: following is {row[2] if row else 'not recorded'}"
            return
        self.say(f"asked the follower of {self.source.db.target_label} to detach: it applies the log up to its end,"
                 " resets the identities and stops")
        while True:
            row = _read(pg, self.source, self.schema)
            if row is None or row[2] in (at.DETACHED, at.STOPPED):
                break
            if self._stopping():
                self.draft.status = Status.INTERRUPTED
                self.draft.reason = "stopped waiting; the follower still detaches (state detaching)"
                return
            if self._lock(pg):  # the follower is gone before it detached: this run does it
                self.say("the follower ended before detaching: detaching here")
                self._locked(pg, mysql_at)
                return
            time.sleep(WAIT_DETACH)
        if row is not None and row[2] == at.DETACHED:
            self.draft.status = Status.APPLIED
            self.draft.reason = f"detached by its follower at {row[0]}:{row[1]}"
            self.say(self.draft.reason)
        else:
            self.draft.status = Status.FAILED
            self.draft.reason = f"the follower stopped before detaching: {row[6] if row else 'no state'}"

    def _locked(self, pg: psycopg.Connection[Any], mysql_at: tuple[str, int]) -> None:
        row = _read(pg, self.source, self.schema)
        if row is None or row[2] not in at.FOLLOWABLE:
            self.draft.status = Status.FAILED
            self.draft.reason = (f"{self.destination.db.target_label} holds no copy of {self.source.db.target_label}"
                                 f" in schema {self.schema} to follow" + (f" (it is {row[2]})" if row else "")
                                 + ": copy-db --follow copies first")
            return
        log_file, log_pos, state, catch_file, catch_pos, stopped_at, message = row
        start = Position.of(log_file, log_pos)
        unfollowed = [table for table in self.plan.tables if not table.followable]
        for table in unfollowed:
            self.say(f"not followed: {table.source.name} ({table.not_followed_reason or 'no primary key'}); "
                     "its copy stays as copied")
        unreadable = check()
        if unreadable:
            raise FollowError(unreadable)
        mysql = mysql_connect(self.source, mysql_at)
        self.text.mysql = mysql
        try:
            end = binary_log_status(mysql, self.source)
            catch_up = Position.of(catch_file, catch_pos) if catch_file else end
            if not catch_file:
                pg.execute(at.CATCH_UP, (end.log_file, end.log_pos, *self.key))
            if self.detaching or state == at.DETACHING:
                self.detaching = True
            pg.execute(at.SET_STATE, (at.DETACHING if self.detaching else at.FOLLOWING, message, stopped_at,
                                      *self.key))
            pg.commit()
            self.say(f"following {self.source.db.target_label} into {self.destination.db.target_label} schema "
                     f"{self.schema} from {start}: {len(self.writers)} table(s)"
                     + (f", catching up until {catch_up}" if start < catch_up else ""))
            acknowledged = int(stopped_at) if state == at.STOPPED and stopped_at is not None else None
            if acknowledged is not None:
                self.say(f"continuing past the statement that stopped following ({message}): the target is taken "
                         "as changed to match")
            _Loop(self, pg, mysql, start, catch_up, end if self.detaching else None, acknowledged).run()
        finally:
            mysql.close()

    def _stopping(self) -> bool:
        deployment = self.context.deployment
        flag = getattr(deployment, "interrupted", None)
        return bool(deployment.cancelled or (flag is not None and flag.is_set()))


class _Loop:
    """Events in, PostgreSQL transactions out: the follower's loop and its position."""

    def __init__(self, follower: Follower, pg: psycopg.Connection[Any], mysql: Any, start: Position,
                 catch_up: Position, end: Position | None, acknowledged: int | None) -> None:
        self.f = follower
        self.pg = pg
        self.mysql = mysql
        self.committed = start  # after the last group whose changes committed
        self.boundary = start  # after the last whole group read (committed at the next commit)
        self.catch_up = catch_up
        self.end = end  # detaching: the log's end when it was asked
        self.acknowledged = acknowledged
        self.in_group = False
        self.group_rows = False  # the group being read has changed rows (a statement in it does not end it)
        self.changes = 0  # row changes since the last commit
        self.last_commit = time.monotonic()
        self.measured = 0.0
        self.event_time: int | None = None
        self.source_end: Position | None = None
        # Rows of each table kept in discarded_rows (what a change of a row must forget first).
        exists = pg.execute("SELECT to_regclass('dbupdater_copy.discarded_rows') IS NOT NULL").fetchone()
        if exists and exists[0]:
            pg.execute(DISCARDED_SCHEMA_COLUMN)
        counted = pg.execute(COUNT_DISCARDED, (source_name(follower.source), follower.schema)).fetchall() \
            if exists and exists[0] else []
        pg.commit()
        self.discarded: dict[str, int] = {str(table): int(count) for table, count in counted}

    def run(self) -> None:
        from pymysqlreplication import BinLogStreamReader
        from pymysqlreplication.event import GtidEvent as MySQLGtidEvent
        from pymysqlreplication.event import HeartbeatLogEvent, MariadbGtidEvent, QueryEvent, XidEvent
        from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

        f = self.f
        settings = mysql_settings(f.source, (self.mysql.host, self.mysql.port))
        stream = BinLogStreamReader(
            connection_settings=settings, server_id=server_id(f.source, f.destination, f.schema),
            resume_stream=True, log_file=self.committed.log_file, log_pos=self.committed.log_pos, blocking=True,
            slave_heartbeat=HEARTBEAT, only_schemas=[f.source.db.database], only_tables=list(f.writers),
            only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, QueryEvent, XidEvent, HeartbeatLogEvent,
                         MariadbGtidEvent, MySQLGtidEvent], enable_logging=False)
        rows = (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)
        try:
            while True:
                if f._stopping():
                    self.pause()
                    return
                if self.detached():
                    return
                event = stream.fetchone()
                if event is None:
                    raise FollowError(f"{f.source.db.target_label} ended the binary log stream")
                here = Position.of(stream.log_file, event.packet.log_pos)
                if isinstance(event, (MariadbGtidEvent, MySQLGtidEvent)):
                    self.in_group = True
                elif isinstance(event, rows):
                    self.in_group = self.group_rows = True
                    self.apply(event)
                elif isinstance(event, XidEvent):
                    self.group_ended(here, event.timestamp)
                elif isinstance(event, QueryEvent):
                    if not self.query(event, here):
                        return
                elif isinstance(event, HeartbeatLogEvent) and not self.in_group:
                    # Everything before the heartbeat's place was sent: the log is read to its end.
                    beat = Position.of(str(event.ident), event.packet.log_pos)
                    self.boundary = max(self.boundary, beat)
                    self.source_end = beat
                    self.commit(idle=True)
                if not self.in_group and (self.changes >= BATCH or time.monotonic() - self.last_commit >= COMMIT_EVERY):
                    self.commit()
        except FollowError as exc:
            self.fail(str(exc))
        except Exception as exc:  # the driver's or the server's words, in the outcome
            self.fail(f"{type(exc).__name__}: {redact(str(exc))}")
        finally:
            stream.close()

    # --- events ---------------------------------------------------------------------------------------------

    def apply(self, event: Any) -> None:
        from pymysqlreplication.row_event import UpdateRowsEvent, WriteRowsEvent

        writer = self.f.writers.get(event.table)
        if writer is None:
            return
        catching_up = self.boundary < self.catch_up
        changes: list[Change] = []
        for row in as_stored(event).rows:
            if isinstance(event, WriteRowsEvent):
                changes += writer.inserted(row["values"], row.get("none_sources", {}), catching_up)
            elif isinstance(event, UpdateRowsEvent):
                changes += writer.updated(row["before_values"], row.get("before_none_sources", {}),
                                          row["after_values"], row.get("after_none_sources", {}), catching_up)
            else:
                changes += writer.deleted(row["values"], row.get("none_sources", {}))
        self.changes += len(event.rows)
        self.f.progress.applied += len(event.rows)
        self.execute(changes, catching_up)

    def execute(self, changes: Sequence[Change], catching_up: bool) -> None:
        import psycopg

        source = source_name(self.f.source)
        with self.pg.cursor() as cursor:
            for change in changes:
                if isinstance(change, Forget):
                    if self.discarded.get(change.table):  # most tables hold none: no statement for them
                        cursor.execute(FORGET_DISCARDED, (source, self.f.schema, change.table, change.key))
                        self.discarded[change.table] -= max(0, cursor.rowcount)
                elif isinstance(change, Discard):
                    self.f.progress.discarded += 1
                    self.discarded[change.table] = self.discarded.get(change.table, 0) + 1
                    cursor.execute(DISCARDED, (source, self.f.schema, change.table, change.key, change.reason,
                                               change.text))
                elif catching_up:
                    try:
                        with self.pg.transaction():  # a savepoint: one change passed over, not the batch
                            cursor.execute(change.sql, change.params)
                    except (psycopg.errors.ForeignKeyViolation, psycopg.errors.UniqueViolation):
                        self.f.progress.passed_over += 1
                else:
                    cursor.execute(change.sql, change.params)

    def group_ended(self, here: Position, timestamp: int) -> None:
        self.in_group = self.group_rows = False
        self.boundary = here
        self.event_time = timestamp
        self.f.progress.transactions += 1

    def query(self, event: Any, here: Position) -> bool:
        """A statement in the log; False when following stops at it."""
        text = str(event.query)
        if text.strip().upper() == "BEGIN":
            self.in_group = True
            return True
        if ends_transaction(text):
            self.group_ended(here, event.timestamp)
            return True
        if self.group_rows or _SAVEPOINT.match(text):
            return True  # a statement inside a transaction of rows (savepoints): the transaction goes on
        schema = event.schema.decode() if isinstance(event.schema, bytes) else str(event.schema)
        found = structural(text, schema, self.f.source.db.database, self.f.writers)
        if found is None:
            self.group_ended(here, event.timestamp)  # DDL of something not followed: a group of its own
            return True
        if found.truncate:
            self.commit()
            self.pg.execute(self.f.writers[found.table].truncate_sql)
            self.pg.execute(TRUNCATE_DISCARDED, (source_name(self.f.source), self.f.schema, found.table))
            self.discarded[found.table] = 0
            self.group_ended(here, event.timestamp)
            self.f.say(f"carried `{text.strip()}` as TRUNCATE ... RESTART IDENTITY on {found.table}")
            self.commit()
            return True
        if self.acknowledged is not None and here.log_pos == self.acknowledged:
            self.acknowledged = None
            self.group_ended(here, event.timestamp)
            self.commit()
            return True
        self.commit()  # whatever came before the statement stays applied
        words = " ".join(text.split())
        message = (f"`{words[:300]}` on followed table {found.table} at {self.boundary}: following stopped before "
                   "it. Change the target's table to match, then run copy-db --follow again: it continues past "
                   "this statement")
        self.pg.execute(at.SET_STATE, (at.STOPPED, message, here.log_pos, *self.f.key))
        self.pg.commit()
        self.f.draft.status = Status.FAILED
        self.f.draft.reason = message
        return False

    # --- positions ------------------------------------------------------------------------------------------

    def commit(self, idle: bool = False) -> None:
        """The batch and the position after it, in one transaction; the lag and the state with them."""
        progress = self.f.progress
        now = time.monotonic()
        if idle:
            progress.lag = 0.0
        elif self.event_time is not None:
            progress.lag = max(0.0, time.time() - self.event_time)
        if now - self.measured >= MEASURE_EVERY or idle:
            self.measured = now
            if not idle:
                self.source_end = binary_log_status(self.mysql, self.f.source)
        end = self.source_end
        progress.behind = (max(0, end.log_pos - self.boundary.log_pos) if end is not None
                           and end.log_file == self.boundary.log_file else None)
        state = self.pg.execute(at.ADVANCE, (self.boundary.log_file, self.boundary.log_pos, progress.lag,
                                             progress.behind, *self.f.key)).fetchone()
        self.pg.commit()
        self.committed = self.boundary
        self.changes = 0
        self.last_commit = now
        if state is not None and state[0] == at.DETACHING and not self.f.detaching:
            self.f.detaching = True
            self.end = binary_log_status(self.mysql, self.f.source)
            self.f.say(f"detaching: applying the log up to {self.end}, then resetting the identities")
        quiet = progress.applied == progress.said_applied
        if now - progress.said >= (IDLE_REPORT_EVERY if quiet else REPORT_EVERY):
            progress.said, progress.said_applied = now, progress.applied
            self.f.say(self.words(), ongoing=True)

    def words(self) -> str:
        p = self.f.progress
        lag = "?" if p.lag is None else f"{p.lag:.0f} s"
        behind = "" if p.behind is None else f", {p.behind:,} bytes behind"
        extra = (f", {p.discarded} discarded" if p.discarded else "") + (
            f", {p.passed_over} passed over while catching up" if p.passed_over else "")
        return (f"following {self.f.source.db.target_label}: at {self.committed}, {p.applied:,} row change(s) in "
                f"{p.transactions:,} transaction(s){extra}, lag {lag}{behind}")

    def detached(self) -> bool:
        """Detaching, and everything up to the log's end then is applied: the identities are reset."""
        if not self.f.detaching or self.in_group or self.end is None or self.committed < self.end:
            return False
        highest: dict[str, int] = {}
        with self.mysql.cursor() as cursor:
            cursor.execute("SELECT TABLE_NAME, AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = %s "
                           "AND AUTO_INCREMENT IS NOT NULL", (self.f.source.db.database,))
            for name, counter in cursor.fetchall():
                highest[str(name)] = int(counter)
        sequences = self.pg.execute(at.SEQUENCES, (self.f.schema,)).fetchall()
        for table, column, sequence in sequences:
            counter = highest.get(str(table), 1)
            self.pg.execute(at.reset_sequence_sql(self.f.schema, table, column), (sequence, sequence, counter))
        message = f"detached at {self.committed}"
        self.pg.execute(at.SET_STATE, (at.DETACHED, message, None, *self.f.key))
        self.pg.commit()
        self.f.say(self.words())
        self.f.draft.status = Status.APPLIED
        self.f.draft.reason = (f"followed {self.f.source.db.target_label} and detached at {self.committed}: "
                               f"{self.f.progress.applied:,} row change(s) applied, {len(sequences)} identity "
                               "sequence(s) set past the copied rows")
        self.f.say(self.f.draft.reason)
        return True

    def pause(self) -> None:
        self.pg.rollback()  # what did not commit is read again next time
        self.pg.execute(at.SET_STATE, (at.PAUSED, None, None, *self.f.key))
        self.pg.commit()
        self.f.say(self.words())
        self.f.draft.status = Status.INTERRUPTED
        self.f.draft.reason = (f"following stopped at {self.committed} (Ctrl-C): run copy-db --follow again to "
                               "continue from there")

    def fail(self, why: str) -> None:
        with contextlib.suppress(Exception):
            self.pg.rollback()
            self.pg.execute(at.SET_STATE, (at.STOPPED, why[:1000], None, *self.f.key))
            self.pg.commit()
        self.f.draft.status = Status.FAILED
        self.f.draft.reason = (f"following stopped at {self.committed}: {why}; what was applied before is recorded, "
                               "and a rerun continues from there")


class FollowStep:
    """`copy-db --follow` on a complete copy, or `--detach`: the destination row follows the source."""

    history = False

    def __init__(self, source: ManifestRow, plan_of: PlanOf, *, detach: bool = False,
                 say: Say | None = None) -> None:
        self.source = source
        self.plan_of = plan_of
        self.detach = detach
        self._say = say
        self.name = "detach" if detach else "follow"

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        return [PlannedRow(index, row, "", RowState.PENDING, self.describe_row(row), step=self.name)
                for index, row in rows]

    def describe_row(self, row: ManifestRow) -> str:
        if self.detach:
            return (f"detach the copy of {self.source.db.target_label}: the log applied to its end, identities reset"
                    " past the copied rows")
        return f"follow {self.source.db.target_label}'s binary log until copy-db --detach"

    def describe(self, planned: PlannedRow) -> str:
        return self.describe_row(planned.row)

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        draft = Draft(planned.index, planned.row, self.name)
        try:
            plan = self.plan_of(context)
            Follower(self.source, planned.row, plan, context, draft, self._say,
                     detach=self.detach).run()
        except (FollowError, TransportError) as exc:
            draft.status = Status.UNREACHABLE if isinstance(exc, TransportError) else Status.FAILED
            draft.reason = redact(str(exc))
        except Exception as exc:  # a driver's or a server's words: the row's outcome, never the run's end
            draft.status, draft.reason = Status.FAILED, f"following failed: {redact(str(exc))}"
        return draft.outcome()


class FollowAfter:
    """`copy-db --follow`: the copy first when it is not complete (its kind records the position before it reads
    any table and marks it complete: give it `convert_position.Positions(strict=True)`), then following. A copy
    that is complete is followed even when it could not carry some rows (they are in discarded_rows; the row
    still fails at the end)."""

    def __init__(self, copy: StepKind, follow: FollowStep, schema_of: Callable[[StepContext], str], *,
                 restart: bool = False) -> None:
        self.copy = copy
        self.follow = follow
        self.schema_of = schema_of
        self.restart = restart
        self.name = copy.name
        self.history = copy.history

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        planned = self.copy.plan(rows, histories)
        # A copy that is done still follows: the row runs whatever the copy's plan says of itself.
        return [p if p.state.runs or p.state.blocks else dataclasses.replace(p, state=RowState.PENDING)
                for p in planned]

    def describe(self, planned: PlannedRow) -> str:
        return f"{self.copy.describe(planned)}, then {self.follow.describe(planned)}"

    def prepare(self, planned: Sequence[PlannedRow], context: StepContext) -> None:
        if isinstance(self.copy, Prepares):
            self.copy.prepare(planned, context)

    def why_copy(self, source: ManifestRow, schema: str, state: str | None) -> str:
        if self.restart:
            return "--restart"
        if state is None:
            return (f"no position of a copy of {source.db.target_label} into schema {schema} is recorded (a copy made "
                    "without one, or none yet)")
        if state == at.COPYING:
            return "the copy did not finish: it resumes, keeping the tables it loaded"
        if state == at.DETACHED:
            return "the copy was detached: a new copy starts a new account"
        return f"the copy is {state}"

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        source, row = self.follow.source, planned.row
        try:
            schema = self.schema_of(context)
            state = None if self.restart else copy_state(context, source, row, schema)
            copied: Outcome | None = None
            if state not in at.FOLLOWABLE:
                context.notice(f"copying first: {self.why_copy(source, schema, state)}")
                copied = self.copy.run(planned, context)  # --restart: the copy records a new position
                if copy_state(context, source, row, schema) not in at.FOLLOWABLE:
                    return copied  # not complete: nothing to follow yet
        except TransportError as exc:
            return Outcome(planned.index, row, Status.UNREACHABLE, redact(str(exc)), step=self.name)
        except Exception as exc:  # FollowError, a driver's or a server's words
            return Outcome(planned.index, row, Status.FAILED, redact(str(exc)), step=self.name)
        followed = self.follow.run(planned, context)
        if copied is None:
            return followed.but(step=self.name)
        # Rows the copy could not carry keep the row failed even when following ends well (detached).
        status = Status.FAILED if copied.status is Status.FAILED and followed.status is Status.APPLIED \
            else followed.status
        return followed.but(step=self.name, status=status, reason=f"{copied.reason}; then {followed.reason}",
                            warnings=copied.warnings + followed.warnings, errors=copied.errors + followed.errors)


class FollowedSource:
    """The source row of `--follow` on a complete copy and of `--detach`: read through its own tunnel, never
    changed, and no history lock taken on either side (a detaching run must not wait for the follower's)."""

    name = "follow source"
    history = False

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        return [PlannedRow(index, row, "", RowState.NOTHING, "the source followed: read, not changed",
                           step=self.name) for index, row in rows]

    def describe(self, planned: PlannedRow) -> str:
        return "nothing: the source followed (its binary log read, nothing changed)"

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        return Outcome(planned.index, planned.row, Status.SKIPPED, "the source followed", step=self.name)

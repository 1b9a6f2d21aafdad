"""Copies across engines as a kind of step (`copy-db --from <mysql> --to <postgresql>`): the source's catalog
read through its own client and translated (`conversion`), the destination schema made, every table streamed
runner to runner `parallel` at a time (`convert_load`), then keys, indexes and foreign keys, and both sides'
checksums compared table by table. See docs/mysql-to-postgresql.md.

What is true at every moment is in the destination (`convert_state`): a rerun keeps the tables wholly loaded
with an unchanged DDL and loads the others again; the history entry `copy from <source> (mysql to
postgresql)` is `running` from before the first change until the copy is verified, so a copy that failed or
never finished leaves its target in doubt (`plan.failed_restore`) until a copy succeeds. Rows that could not be
carried are kept in `dbupdater_copy.discarded_rows` and fail the step loudly, while the copy itself is
complete (and recorded so).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from ..checksum import VERSION
from ..conversion.model import ConversionPlan, TablePlan, TranslationOptions
from ..engines import registry as engines
from ..engines.capabilities import ExportsRows, ImportsRows
from ..execution.kinds import StepContext
from ..ledger import FAILED, SUCCESS, Ledger, SqlChannel
from ..model.errors import DbUpdaterError, UsageError
from ..model.outcome import Outcome, Status
from ..model.secret import redact
from ..model.specs import ManifestRow
from ..plan import COPY, PlannedRow
from ..transports import TransportError
from .convert_load import CopyFailed, Sides, TableLoad, checksum_value, in_parallel, load_table
from .convert_state import (
    LEDGER_TABLES,
    LOADED,
    SCHEMA,
    Destination,
    State,
    TableState,
    as_json,
    foreign_keys_dropped,
    statement,
)
from .copy import CopyStep, SourceStep
from .draft import Draft

PAIRS = {("mysql", "postgresql")}  # the translation (`conversion`) writes MySQL's SQL and PostgreSQL's
TABLES_AT_ONCE = 4  # default --parallel of a copy across engines
RESERVED = ("public", SCHEMA, "information_schema")


@dataclass(frozen=True)
class Across:
    """What a copy across engines was asked: the destination schema, which tables, how zero dates go, how many
    tables at once, and whether to start over."""

    schema: str
    tables: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    zero_dates: str = "discard"
    parallel: int = TABLES_AT_ONCE
    restart: bool = False

    def translation(self) -> TranslationOptions:
        return TranslationOptions(schema=self.schema, tables=self.tables, exclude=self.exclude,
                                  zero_dates=self.zero_dates)


def check_pair(source: ManifestRow, destination: ManifestRow) -> None:
    """Exit 2 naming both engines unless this pair is one a copy across engines can do."""
    out, into = engines.get(source.db.engine), engines.get(destination.db.engine)
    if ((source.db.engine, destination.db.engine) not in PAIRS or not isinstance(out, ExportsRows)
            or not isinstance(into, ImportsRows)):
        raise UsageError(f"--from {source.db.target_label} ({out.display}) and --to {destination.db.target_label} "
                         f"({into.display}): copies go between databases of one engine, or from MySQL/MariaDB to "
                         "PostgreSQL; nothing was run")


def check_schema(name: str, history_schema: str | None) -> None:
    """Exit 2 for a destination schema the copy must not replace (it drops the schema whole)."""
    if not name or len(name.encode("utf-8")) > 63 or "\x00" in name:
        raise UsageError(f"--schema {name!r}: a PostgreSQL schema name has 1 to 63 bytes")
    if name in RESERVED or name.startswith("pg_") or name == history_schema:
        raise UsageError(f"--schema {name}: the copy replaces its schema whole, and {name} is not one to replace "
                         "(public, pg_*, information_schema, dbupdater_copy and the history schema are refused); "
                         "name another")


def read_plan(channel: SqlChannel, source: ManifestRow, across: Across) -> ConversionPlan:
    """The source's catalog through its own client, translated; this tool's history tables are never copied.
    UsageError when --tables or --exclude names no table."""
    from ..conversion.catalog import catalog_sql, read_catalog
    from ..conversion.translate import translate

    database = source.db.database
    schema = read_catalog(database, channel.rows(catalog_sql(database)))
    schema = replace(schema, tables=tuple(table for table in schema.tables if table.name not in LEDGER_TABLES))
    plan = translate(schema, across.translation())  # TranslationError (exit 2): a name that matches no table
    if not plan.tables:
        raise UsageError(f"nothing to copy: {database} has no table" + (
            " left by --tables / --exclude" if across.tables or across.exclude else ""))
    return plan


Planner = Callable[[SqlChannel, ManifestRow, Across], ConversionPlan]


class Positions(Protocol):
    """Where the source's binary log stood before the copy read any table, kept for `copy-db --follow`
    (steps/convert_position.py): the copy calls `start` before it changes anything and `done` once it is
    complete, so that a later --follow follows this copy instead of copying again. The copy knows nothing more
    of following. `source`: how the copy's state names the source."""

    def start(self, sides: Sides, source: str, schema: str, *, fresh: bool) -> tuple[bool, str]:
        """(whether a position is recorded, what was done in words); `fresh`: the copy starts over (--restart).
        Raises (a DbUpdaterError) when the copy must not go on without one."""
        ...

    def done(self, sides: Sides, source: str, schema: str) -> None: ...


def digests(plan: ConversionPlan) -> dict[str, str]:
    """Each table's DDL digest as the state keeps it (the translation's, which covers its types, DDL and how it
    is read; made here from its statements when a plan has none)."""
    return {table.name: table.ddl_sha256 or hashlib.sha256("\n".join(
        (*table.types_sql, table.create_sql, *table.after_load_sql, table.rows_sql)).encode("utf-8")).hexdigest()
        for table in plan.tables}


def plan_checksum(plan: ConversionPlan) -> str:
    """One digest of every table's translation (types, DDL, how it is read): the history's checksum of the
    copy, and what an approved saved plan holds (`ConvertStep.approved`)."""
    return hashlib.sha256("\n".join(sorted(digests(plan).values())).encode()).hexdigest()


def history_script(source: ManifestRow, destination: ManifestRow) -> str:
    """The destination's history entry of the copy (plan.COPY: its latest not a success: in doubt)."""
    return f"{COPY}{source.db.target_label} ({source.db.engine} to {destination.db.engine})"


class ConvertStep(CopyStep):
    """`copy-db` across engines: the destination row's schema `across.schema` replaced by a copy of the source
    row's database (planned as a same-engine copy is: its row runs, its history kept for the `running` row)."""

    def __init__(self, source: ManifestRow, reads: SourceStep, across: Across, planner: Planner = read_plan,
                 positions: Positions | None = None, approved: str | None = None) -> None:
        super().__init__(source, reads)
        self.across = across
        self.planner = planner
        self.positions = positions
        # The translation's checksum (`plan_checksum`) of an approved saved plan: the source's catalog is read
        # again when the copy starts, and a translation that differs is refused before anything is changed.
        self.approved = approved

    def describe(self, planned: PlannedRow) -> str:
        s, d = self.source.db, planned.row.db
        return (f"replace schema {self.across.schema} of {d.target_label} with a copy of {s.target_label} "
                f"({engines.get(s.engine).display} to {engines.get(d.engine).display})")

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        draft = Draft(planned.index, planned.row, self.name)
        Copy(self, planned.row, context, draft).run()
        return draft.outcome()


class Copy:
    """One copy across engines, as it goes (the step's state for one run)."""

    def __init__(self, step: ConvertStep, row: ManifestRow, context: StepContext, draft: Draft) -> None:
        self.step = step
        self.row = row
        self.context = context
        self.draft = draft
        self.script = history_script(step.source, row)
        self.ledger: Ledger | None = None
        self.complete = False  # every table loaded and both checksums equal: the history says success

    def say(self, line: str) -> None:
        """Progress shown at default verbosity (and kept in the run document)."""
        self.context.notice(line)

    def detail(self, line: str) -> None:
        """What -v shows besides (each table's checksums as both sides computed them)."""
        self.context.on_line("stdout", line)

    def run(self) -> None:
        draft, step = self.draft, self.step
        try:
            sides = Sides.open(self.context, step.source, self.row)
            plan = step.planner(self.context.deployment.channel(step.source), step.source, step.across)
            channel = self.context.deployment.channel(self.row)
            state = State(channel.dialect, step.source.db.target_label, step.across.schema)
            destination = self.destination(channel, state)
            self.ledger = self.context.deployment.ledger(self.row)
        except UsageError as exc:
            draft.status, draft.reason = Status.FAILED, f"not started: {exc}"
            return
        except DbUpdaterError as exc:
            draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
            return
        refused = self.refusal(destination)
        if refused:
            draft.status, draft.reason = Status.FAILED, f"not started: {refused}; nothing was changed"
            return
        if step.approved is not None and (now := plan_checksum(plan)) != step.approved:
            draft.status = Status.REFUSED
            draft.reason = (f"refused: the source's tables translate otherwise than in the approved plan (translation "
                            f"{now[:16]}, approved {step.approved[:16]}): its schema changed since; nothing was "
                            "changed. Save the plan again and have it approved")
            return
        recorded = False
        if step.positions is not None:
            try:
                recorded, said = step.positions.start(sides, state.source, step.across.schema,
                                                      fresh=step.across.restart)
                self.say(said)
                if recorded:  # a new position may have sent tables loaded before to load again
                    destination = self.destination(channel, state)
            except DbUpdaterError as exc:
                draft.status = Status.UNREACHABLE if isinstance(exc, TransportError) else Status.FAILED
                draft.reason = f"not started: {exc}; nothing was copied"
                return
        sums = digests(plan)
        checksum = plan_checksum(plan)
        try:
            self.ledger.mark_running(self.script, checksum, VERSION,
                                     step.histories.get(self.row.db.key, {}).get(self.script))
        except DbUpdaterError as exc:
            draft.status, draft.reason = Status.UNREACHABLE, f"not started: {exc}"
            return
        try:
            self.copy(sides, plan, state, destination, sums)
        except CopyFailed as exc:
            self.fail(exc.reason, exc.errors, exc.unreachable)
        except DbUpdaterError as exc:
            self.fail(f"the copy stopped: {exc}", unreachable=True)
        self.finish()
        if recorded and self.complete and step.positions is not None:
            try:
                step.positions.done(sides, state.source, step.across.schema)
            except DbUpdaterError as exc:  # the copy stands; a later --follow copies again first
                self.say(f"the copy is complete, but could not be marked so for a later --follow: {exc}")
        self.detail(draft.reason)

    @staticmethod
    def destination(channel: SqlChannel, state: State) -> Destination:
        """What the destination says before the copy (the state tables may not exist yet)."""
        facts = channel.rows(state.read_sql())
        known = channel.rows(state.tables_sql()) if facts and facts[0].get("state_exists") else []
        return State.destination(facts, known)

    def refusal(self, destination: Destination) -> str | None:
        schema = self.step.across.schema
        if destination.encoding.upper() not in ("UTF8", "UTF-8"):
            return (f"the destination database's encoding is {destination.encoding or 'unknown'}, not UTF8: text "
                    "from the source could not all be stored (create the database with ENCODING 'UTF8')")
        if destination.holds_ledger:
            return (f"schema {schema} of {self.row.db.target_label} holds this tool's history tables, and the copy "
                    "replaces the schema whole: choose another --schema")
        return None

    def fail(self, reason: str, errors: Sequence[str] = (), unreachable: bool = False) -> None:
        draft = self.draft
        if draft.status not in (Status.FAILED, Status.UNREACHABLE, Status.INTERRUPTED):
            if self.context.deployment.cancelled:
                draft.status = Status.INTERRUPTED
            else:
                draft.status = Status.UNREACHABLE if unreachable else Status.FAILED
            draft.reason = reason
        draft.errors.extend(errors[:20])

    def copy(self, sides: Sides, plan: ConversionPlan, state: State, destination: Destination,
             sums: dict[str, str]) -> None:
        across = self.step.across
        kept: dict[str, TableState] = {}
        if not across.restart:
            kept = {t.name: destination.tables[t.name] for t in plan.tables
                    if t.name in destination.tables and destination.tables[t.name].kept(sums[t.name])}
        loading = sorted((t for t in plan.tables if t.name not in kept), key=lambda t: -t.source.rows_estimate)
        if kept:
            wanted = {t.name for t in plan.tables}
            sides.sql(state.resume_sql(name for name in destination.tables if name not in wanted))
            again = [t.name for t in loading if t.name in destination.tables]
            new = [t.name for t in loading if t.name not in destination.tables]
            self.say(f"resumes: {len(kept)} table{'s' if len(kept) != 1 else ''} loaded before"
                     + (f"; {', '.join(again)} start{'s' if len(again) == 1 else ''} again" if again else "")
                     + (f"; new: {', '.join(new)}" if new else "") + ("; nothing to load" if not loading else ""))
        else:
            sides.sql(state.fresh_sql())
            self.say(f"schema {across.schema} made afresh: {len(plan.tables)} tables to load")
        if loading:
            sides.sql(state.pending_sql((t.name, sums[t.name]) for t in loading))

        ended = itertools.count(1)

        def work(table: TablePlan) -> TableLoad:
            load = load_table(sides, state, table, sums[table.name], self.context.on_line)
            done = f"{next(ended)} of {len(loading)} tables"
            if load.ok:
                equal = checksum_value(load.checksum) == checksum_value(load.source_checksum)
                self.say(f"{table.name}: {load.rows:,} rows, {load.discarded:,} discarded, checksum "
                         f"{'equal' if equal else 'DIFFERENT'}, {load.size:,} bytes in {load.seconds:.1f}s ({done})")
            else:
                self.say(f"{table.name}: failed ({done}): {load.reason}")
            return load

        loads = {load.table: load for load in in_parallel(work, loading, across.parallel,
                                                          lambda: self.context.deployment.cancelled)}
        failed = [load for load in loads.values() if not load.ok]
        if failed or len(loads) < len(loading):
            first = failed[0] if failed else None
            not_loaded = [t.name for t in loading if t.name not in loads or not loads[t.name].ok]
            why = f"{first.table}: {first.reason}" if first else "the run was stopped"
            self.fail(f"the copy stopped: {why}; not loaded: {', '.join(not_loaded)} (a rerun keeps the "
                      f"{len(kept) + len(loads) - len(failed)} tables loaded and loads these)",
                      [line for load in failed for line in load.errors],
                      unreachable=any(load.unreachable for load in failed))
            return
        self.after_load(sides, plan, state, kept)
        foreign = self.foreign_keys(sides, plan, state)
        self.verify(sides, plan, state, kept, loads, foreign)

    def parallel(self, work: Callable[[TablePlan], None], tables: Sequence[TablePlan]) -> list[CopyFailed]:
        """`work` on each table, `parallel` at a time; the failures (every table is tried)."""
        from ..execution.scheduler import parallel_map

        failures: list[CopyFailed] = []
        lock = threading.Lock()

        def one(table: TablePlan) -> None:
            try:
                work(table)
            except CopyFailed as exc:
                with lock:
                    failures.append(CopyFailed(f"{table.name}: {exc.reason}", exc.errors, exc.unreachable))

        parallel_map(one, list(tables), max(1, self.step.across.parallel))
        return failures

    def after_load(self, sides: Sides, plan: ConversionPlan, state: State, kept: Mapping[str, TableState]) -> None:
        """Keys, indexes, identities and comments of each table loaded and not yet indexed: one transaction per
        table with its state `indexed`, so a rerun never makes them twice."""
        tables = [t for t in plan.tables if t.name not in kept or kept[t.name].state == LOADED]

        def work(table: TablePlan) -> None:
            made = "".join(statement(sql) for sql in table.after_load_sql)
            sides.sql(f"SET client_min_messages = warning;\nBEGIN;\n{made}{state.indexed_sql(table.name)}COMMIT;\n")

        failures = self.parallel(work, tables)
        if failures:
            raise CopyFailed(f"keys and indexes could not be made: {failures[0].reason}",
                             tuple(line for f in failures for line in (f.reason, *f.errors)),
                             any(f.unreachable for f in failures))
        if tables:
            self.say(f"keys and indexes made on {len(tables)} table{'s' if len(tables) != 1 else ''}")

    def foreign_keys(self, sides: Sides, plan: ConversionPlan, state: State) -> list[str]:
        """Every foreign key made again NOT VALID (one transaction), then validated (a session per table, in
        parallel); each one that could not be validated (a row whose parent was not carried, or was never
        there), with why."""
        keys = [sql for table in plan.tables for sql in table.foreign_keys_sql]
        sides.sql("SET client_min_messages = warning;\nBEGIN;\n" + foreign_keys_dropped(state.d.literal(state.schema))
                  + "".join(statement(sql) for sql in keys) + "COMMIT;\n")
        invalid: list[str] = []
        lock = threading.Lock()

        def work(table: TablePlan) -> None:
            found = [line.replace("\t", ": ", 1) for line in sides.sql(state.invalid_sql(table.validate_sql)) if line]
            with lock:
                invalid.extend(found)

        failures = self.parallel(work, [t for t in plan.tables if t.validate_sql])
        if failures:
            raise CopyFailed(f"the foreign keys could not be validated: {failures[0].reason}", failures[0].errors,
                             any(f.unreachable for f in failures))
        if keys:
            self.say(f"foreign keys: {len(keys)} made, {len(keys) - len(invalid)} validated")
        return invalid

    def verify(self, sides: Sides, plan: ConversionPlan, state: State, kept: Mapping[str, TableState],
               loads: Mapping[str, TableLoad], foreign: list[str]) -> None:
        """Both sides' checksums of every table compared and recorded (the copy's was computed in its load's
        transaction; a table kept from before without one is read again); the step's outcome."""
        found = {name: load.checksum for name, load in loads.items() if load.checksum}
        found.update({name: table.checksum for name, table in kept.items() if table.checksum})
        lock = threading.Lock()

        def work(table: TablePlan) -> None:
            lines = [line for line in sides.sql(as_json(table.target_checksum_sql)) if line.startswith("{")]
            values = json.loads(lines[0]).values() if lines else ()
            with lock:
                found[table.name] = "\t".join("" if v is None else str(v) for v in values)

        failures = self.parallel(work, [t for t in plan.tables if t.name not in found])
        if failures:
            raise CopyFailed(f"the checksums could not be computed: {failures[0].reason}", failures[0].errors,
                             any(f.unreachable for f in failures))
        source = {name: (loads[name].source_checksum if name in loads else kept[name].source_checksum or "")
                  for name in found}
        equal = {name: checksum_value(found[name]) == checksum_value(source[name]) for name in found}
        sides.sql("BEGIN;\n" + "".join(state.checked_sql(name, found[name], equal[name]) for name in found)
                  + "COMMIT;\n")
        rows = discarded = size = 0
        for table in plan.tables:
            name = table.name
            load = loads.get(name)
            count, _ = checksum_value(found[name])
            dropped = load.discarded if load else (kept[name].discarded or 0)
            rows, discarded, size = rows + count, discarded + dropped, size + (load.size if load else 0)
            how = f"{load.seconds:.1f}s" if load else "loaded before"
            line = (f"{name}: {count:,} rows, {dropped:,} discarded, checksum {'equal' if equal[name] else 'DIFFERENT'}"
                    f" (source {source[name]!r}, copy {found[name]!r}), {how}")
            # A table loaded now was said when it loaded: only its checksums' texts are more (-v).
            (self.detail if load and load.checksum else self.say)(line)
        different = [name for name in found if not equal[name]]
        draft, across = self.draft, self.step.across
        summary = (f"{len(plan.tables)} tables of {self.step.source.db.target_label} into schema {across.schema}: "
                   f"{rows:,} rows, {size:,} bytes streamed, {discarded:,} discarded"
                   + (f" ({len(kept)} tables kept from before)" if kept else ""))
        if different:
            self.fail(f"the copy differs from the source: checksums differ for {', '.join(different)} ({summary})")
            return
        self.complete = True
        draft.status, draft.reason = Status.APPLIED, f"copied {summary}; every checksum equal"
        if discarded:
            draft.status = Status.FAILED
            draft.reason = (f"{draft.reason}, but {discarded:,} row{'s' if discarded != 1 else ''} could not be "
                            f"carried: see {state.discarded_where()} (zero dates: --zero-dates null carries them as "
                            "NULL where the column allows it)")
        if foreign:
            draft.status = Status.FAILED
            draft.reason += (f"; {len(foreign)} foreign key(s) stay NOT VALID (rows whose parent is not in the copy)")
            draft.errors.extend(foreign[:20])

    def finish(self) -> None:
        """The history says how it went: success for a complete, verified copy (even with rows not carried: the
        step still fails, loudly); failed otherwise, leaving the target in doubt."""
        draft, ledger = self.draft, self.ledger
        if ledger is None:
            return
        try:
            ledger.mark_finished(self.script, SUCCESS if self.complete else FAILED, redact(draft.reason)[:900])
        except DbUpdaterError as exc:
            draft.reason = f"{draft.reason}; recording it in the history failed: {exc}"
            if draft.status is Status.APPLIED:
                draft.status = Status.UNREACHABLE

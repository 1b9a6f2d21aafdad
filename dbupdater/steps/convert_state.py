"""The state of copies across engines, kept in the destination database itself (schema `dbupdater_copy`), so
a rerun, a person and `--follow` all read the same truth: which tables are wholly loaded with which DDL, what
the source's checksum of each was, which rows could not be carried.

A table's row moves `pending` (about to load, or cut off while loading: it starts again) -> `loaded` (its rows
committed, in the same transaction as the rows themselves) -> `indexed` (keys and indexes made, in the same
transaction as they) -> `verified` (both checksums equal) or `different`. Only a table `loaded` or further, with
the DDL it was loaded with unchanged, is kept by a rerun. See docs/mysql-to-postgresql.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..engines.dialect import Dialect
from ..ledger.records import HISTORY_TABLE, LOCK_TABLE, VERSION_TABLE

SCHEMA = "dbupdater_copy"
TABLES = f"{SCHEMA}.tables"
DISCARDED = f"{SCHEMA}.discarded_rows"
DISCARDED_COLUMNS = "(source, table_name, row_key, reason, row_text)"  # what ConversionPlan's discarded_sql writes
# The schema a discarded row was copied into: one source copied into two schemas of one database keeps two sets.
# The source's COPY lines do not carry it (they are the same whatever the schema): the column takes it from a
# setting of the load's transaction (`schema_setting`). NULL: a row kept before the column existed, which any
# copy of that source and table may forget.
SCHEMA_SETTING = "dbupdater.target_schema"
# Added only where it is missing: ALTER TABLE locks the table even when it skips, and another copy into another
# schema may be loading rows into it.
DISCARDED_SCHEMA_COLUMN = (
    "DO $dbupdater_column$ BEGIN IF NOT EXISTS (SELECT 1 FROM information_schema.columns WHERE table_schema = "
    f"'{SCHEMA}' AND table_name = 'discarded_rows' AND column_name = 'target_schema') THEN ALTER TABLE {DISCARDED} "
    f"ADD COLUMN target_schema text DEFAULT current_setting('{SCHEMA_SETTING}', true); END IF; END "
    "$dbupdater_column$;")


def schema_setting(d: Dialect, schema: str) -> str:
    """The statement that makes the discarded rows of this transaction's COPY carry `schema`."""
    return f"SET LOCAL {SCHEMA_SETTING} = {d.literal(schema)};\n"


def of_schema(d: Dialect, schema: str) -> str:
    """An SQL condition: a discarded row of a copy into `schema` (or one kept before rows named their schema)."""
    return f"(target_schema = {d.literal(schema)} OR target_schema IS NULL)"

PENDING, LOADED, INDEXED, VERIFIED, DIFFERENT = "pending", "loaded", "indexed", "verified", "different"
KEPT = (LOADED, INDEXED, VERIFIED)  # a rerun keeps these (when their DDL is unchanged)
LEDGER_TABLES = (HISTORY_TABLE, LOCK_TABLE, VERSION_TABLE)  # this tool's own: never copied, never dropped

# Safe to run again and concurrently with itself only under the destination's lock, which the run holds.
CREATE = f"""CREATE SCHEMA IF NOT EXISTS {SCHEMA};
CREATE TABLE IF NOT EXISTS {TABLES} (
  source text NOT NULL,
  target_schema text NOT NULL,
  table_name text NOT NULL,
  ddl_sha256 text NOT NULL,
  state text NOT NULL,
  "rows" bigint,
  discarded bigint,
  checksum text,
  source_checksum text,
  started_at timestamptz,
  finished_at timestamptz,
  PRIMARY KEY (source, target_schema, table_name)
);
CREATE TABLE IF NOT EXISTS {DISCARDED} (
  source text NOT NULL,
  table_name text NOT NULL,
  row_key text,
  reason text NOT NULL,
  row_text text,
  copied_at timestamptz NOT NULL DEFAULT now()
);
{DISCARDED_SCHEMA_COLUMN}
CREATE INDEX IF NOT EXISTS discarded_rows_of_copy ON {DISCARDED} (source, target_schema, table_name);
CREATE TABLE IF NOT EXISTS {SCHEMA}.follow (
  source text NOT NULL,
  target_schema text NOT NULL,
  log_file text,
  log_pos bigint,
  updated_at timestamptz,
  lag_seconds double precision,
  state text,
  PRIMARY KEY (source, target_schema)
);
"""


@dataclass(frozen=True)
class TableState:
    name: str
    ddl_sha256: str
    state: str
    rows: int | None = None
    discarded: int | None = None
    checksum: str | None = None
    source_checksum: str | None = None
    present: bool = True  # the table exists in the destination schema

    def kept(self, ddl_sha256: str) -> bool:
        """Whether a rerun keeps this table as it is (wholly loaded, with this DDL, still there)."""
        return self.state in KEPT and self.ddl_sha256 == ddl_sha256 and self.present and bool(self.source_checksum)


@dataclass(frozen=True)
class Destination:
    """What the destination database says before a copy: its encoding, the copy's state there, and whether the
    schema to replace holds this tool's own history (then it is never dropped)."""

    encoding: str
    tables: Mapping[str, TableState]
    holds_ledger: bool
    schema_exists: bool


class State:
    """SQL for the state tables of one copy (`source` into `schema`), in the destination's dialect."""

    def __init__(self, dialect: Dialect, source: str, schema: str) -> None:
        self.d = dialect
        self.source = source
        self.schema = schema
        self._key = f"source = {dialect.literal(source)} AND target_schema = {dialect.literal(schema)}"

    def _table(self, name: str) -> str:
        return f"{self._key} AND table_name = {self.d.literal(name)}"

    def qualified(self, name: str) -> str:
        return f"{self.d.ident(self.schema)}.{self.d.ident(name)}"

    def read_sql(self) -> str:
        """The database's encoding, whether the schema exists and holds the history tables, and every table's
        state (the state tables may be missing: a first copy)."""
        d, schema = self.d, self.d.literal(self.schema)
        ledger = ", ".join(d.literal(name) for name in LEDGER_TABLES)
        facts = {"encoding": "pg_encoding_to_char(encoding)",
                 "schema_exists": f"EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = {schema})",
                 "holds_ledger": f"EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                 f"WHERE n.nspname = {schema} AND c.relname IN ({ledger}))",
                 "state_exists": f"to_regclass({d.literal(TABLES)}) IS NOT NULL"}
        return f"SELECT {d.json_row(facts)} FROM pg_database WHERE datname = current_database();\n"

    def tables_sql(self) -> str:
        d = self.d
        present = "to_regclass(format('%I.%I', target_schema, table_name)) IS NOT NULL"
        fields = {"table_name": "table_name", "ddl_sha256": "ddl_sha256", "state": "state", "rows": '"rows"',
                  "discarded": "discarded", "checksum": "checksum", "source_checksum": "source_checksum",
                  "present": present}
        return f"SELECT {d.json_row(fields)} FROM {TABLES} WHERE {self._key};\n"

    @staticmethod
    def destination(facts: Sequence[Mapping[str, Any]], rows: Iterable[Mapping[str, Any]]) -> Destination:
        fact = facts[0] if facts else {}
        tables = {str(row["table_name"]): TableState(
            str(row["table_name"]), str(row["ddl_sha256"]), str(row["state"]), _int(row.get("rows")),
            _int(row.get("discarded")), row.get("checksum"), row.get("source_checksum"), bool(row.get("present")))
            for row in rows}
        return Destination(str(fact.get("encoding", "")), tables, bool(fact.get("holds_ledger")),
                           bool(fact.get("schema_exists")))

    def fresh_sql(self) -> str:
        """Start over: the schema dropped and made again (each table's load makes its types), this copy's state
        forgotten; one transaction."""
        s = self.d.ident(self.schema)
        forget = (f"DELETE FROM {TABLES} WHERE target_schema = {self.d.literal(self.schema)};\n"
                  f"DELETE FROM {DISCARDED} WHERE source = {self.d.literal(self.source)} AND "
                  f"{of_schema(self.d, self.schema)};\n")
        return ("SET client_min_messages = warning;\nBEGIN;\n" + CREATE + forget
                + f"DROP SCHEMA IF EXISTS {s} CASCADE;\nCREATE SCHEMA {s};\nCOMMIT;\n")

    def resume_sql(self, gone: Iterable[str]) -> str:
        """Resume: the foreign keys of the schema dropped (made again after the load: a table loaded again is
        dropped and made again, and no load may wait on another's table), and the tables no longer copied
        dropped with their state; one transaction."""
        schema = self.d.literal(self.schema)
        drops = "".join(f"DROP TABLE IF EXISTS {self.qualified(name)} CASCADE;\n"
                        f"DELETE FROM {TABLES} WHERE {self._table(name)};\n" for name in gone)
        return ("SET client_min_messages = warning;\nBEGIN;\n" + CREATE + drops + foreign_keys_dropped(schema)
                + "COMMIT;\n")

    def pending_sql(self, tables: Iterable[tuple[str, str]]) -> str:
        """Tables about to load (name, ddl_sha256): `pending` until their load commits."""
        values = ", ".join(
            f"({self.d.literal(self.source)}, {self.d.literal(self.schema)}, {self.d.literal(name)}, "
            f"{self.d.literal(sha)}, '{PENDING}', now())" for name, sha in tables)
        if not values:
            return ""
        return (f"INSERT INTO {TABLES} (source, target_schema, table_name, ddl_sha256, state, started_at) "
                f"VALUES {values} ON CONFLICT (source, target_schema, table_name) DO UPDATE SET ddl_sha256 = "
                f"EXCLUDED.ddl_sha256, state = EXCLUDED.state, started_at = EXCLUDED.started_at, \"rows\" = NULL, "
                "discarded = NULL, checksum = NULL, source_checksum = NULL, finished_at = NULL;\n")

    def loaded_sql(self, name: str, source_name: str, ddl_sha256: str, rows: int, source_checksum: str,
                   checksum_sql: str) -> str:
        """The table's row once its rows are in (inside the load's transaction): the count of its rows that were
        not carried (which name the source's table: `source_name`), the source's checksum, and the copy's,
        computed by `checksum_sql` over exactly the rows this transaction commits (while they are in cache)."""
        d = self.d
        discarded = (f"(SELECT count(*) FROM {DISCARDED} WHERE source = {d.literal(self.source)} AND "
                     f"table_name = {d.literal(source_name)} AND {of_schema(d, self.schema)})")
        return (f"INSERT INTO {TABLES} (source, target_schema, table_name, ddl_sha256, state, \"rows\", discarded, "
                f"checksum, source_checksum, started_at, finished_at) VALUES ({d.literal(self.source)}, "
                f"{d.literal(self.schema)}, {d.literal(name)}, {d.literal(ddl_sha256)}, '{LOADED}', {int(rows)}, "
                f"{discarded}, ({checksum_sql.strip().rstrip(';')}), {d.literal(source_checksum)}, now(), now()) "
                "ON CONFLICT (source, target_schema, table_name) DO UPDATE SET ddl_sha256 = EXCLUDED.ddl_sha256, "
                "state = EXCLUDED.state, \"rows\" = EXCLUDED.\"rows\", discarded = EXCLUDED.discarded, checksum = "
                "EXCLUDED.checksum, source_checksum = EXCLUDED.source_checksum, finished_at = EXCLUDED.finished_at;\n")

    def loaded_echo_sql(self, name: str, marker: str) -> str:
        """After the COMMIT: one line `<marker>\\t<discarded>\\t<checksum>` saying the table's load is committed."""
        return (f"SELECT {self.d.literal(marker)} || chr(9) || discarded || chr(9) || coalesce(checksum, '') "
                f"FROM {TABLES} WHERE {self._table(name)};\n")

    def indexed_sql(self, name: str) -> str:
        return f"UPDATE {TABLES} SET state = '{INDEXED}' WHERE {self._table(name)};\n"

    def checked_sql(self, name: str, checksum: str, equal: bool) -> str:
        state = VERIFIED if equal else DIFFERENT
        return (f"UPDATE {TABLES} SET checksum = {self.d.literal(checksum)}, state = '{state}' "
                f"WHERE {self._table(name)};\n")

    def invalid_sql(self, validations: Iterable[str]) -> str:
        """Foreign keys validated one by one in one session, each one that fails named with why (one line
        `<statement>\\t<error>`), the others validated all the same."""
        tag = "$dbupdater_validate$"
        blocks = "".join(
            f"DO {tag} BEGIN {statement(sql)} EXCEPTION WHEN OTHERS THEN INSERT INTO dbupdater_invalid VALUES "
            f"({self.d.literal(sql.strip().rstrip(';'))}, SQLERRM); END {tag};\n" for sql in validations)
        return ("SET client_min_messages = warning;\nCREATE TEMPORARY TABLE dbupdater_invalid (what text, why text);\n"
                + blocks + "SELECT what || chr(9) || why FROM dbupdater_invalid;\n")

    def discarded_where(self) -> str:
        """Where a person finds the rows not carried, as a query to paste."""
        return (f"SELECT * FROM {DISCARDED} WHERE source = {self.d.literal(self.source)} AND "
                f"target_schema = {self.d.literal(self.schema)}")


def foreign_keys_dropped(schema_literal: str) -> str:
    """A DO block dropping every foreign key of the tables of one schema (`schema_literal`, an SQL literal)."""
    return ("DO $dbupdater$ DECLARE r record; BEGIN FOR r IN SELECT conrelid::regclass AS t, conname FROM "
            f"pg_constraint WHERE contype = 'f' AND connamespace = (SELECT oid FROM pg_namespace WHERE nspname = "
            f"{schema_literal}) LOOP EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', r.t, r.conname); END LOOP; "
            "END $dbupdater$;\n")


def statement(sql: str) -> str:
    """One statement as a line of a script: its own `;` and newline."""
    text = sql.strip()
    return text + ("\n" if text.endswith(";") else ";\n")


def as_json(select: str) -> str:
    """A SELECT's rows as one JSON object per line, its columns in order (what the ledger's channel reads)."""
    return f"SELECT to_json(x) FROM ({select.strip().rstrip(';')}) AS x;\n"


def _int(value: Any) -> int | None:
    return None if value is None else int(value)

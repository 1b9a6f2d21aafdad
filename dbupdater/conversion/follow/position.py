"""Where following stands, kept in the destination: `dbupdater_copy.follow`, one row per (source, target
schema), written in the same PostgreSQL transaction as the changes it accounts for, so a change is applied
exactly once whatever stops the follower (Ctrl-C, a lost runner, a killed process): what committed is applied and
its position recorded; what did not is read again.

States: `copying` (the position recorded before the copy read any table; the copy is under way), `copied` (the
copy is complete, never followed), `following`, `paused` (stopped by Ctrl-C: a rerun continues), `stopped` (a
statement needs a person: `message` says which; a rerun continues past it), `detaching` (asked by `copy-db
--detach`), `detached` (the copy stands alone: its identities are past every copied row).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .statements import ident

SCHEMA = "dbupdater_copy"
TABLE = f"{SCHEMA}.follow"

COPYING, COPIED, FOLLOWING, PAUSED, STOPPED = "copying", "copied", "following", "paused", "stopped"
DETACHING, DETACHED = "detaching", "detached"
FOLLOWABLE = (COPIED, FOLLOWING, PAUSED, STOPPED, DETACHING)  # a complete copy, from its recorded position

_NUMBER = re.compile(r"(\d+)$")


@dataclass(frozen=True, order=True)
class Position:
    """A place in the source's binary log: the file and the offset of the next event to read. Files are
    numbered (`binlog.000042`): ordered by their number, then the offset."""

    number: int
    log_pos: int
    log_file: str

    @classmethod
    def of(cls, log_file: str, log_pos: int) -> Position:
        found = _NUMBER.search(log_file)
        return cls(int(found.group(1)) if found else 0, int(log_pos), log_file)

    def __str__(self) -> str:
        return f"{self.log_file}:{self.log_pos}"


CREATE = (f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}",
          f"CREATE TABLE IF NOT EXISTS {TABLE} ("
          "source text NOT NULL, target_schema text NOT NULL, log_file text NOT NULL, log_pos bigint NOT NULL, "
          "updated_at timestamptz NOT NULL DEFAULT now(), lag_seconds double precision, state text NOT NULL, "
          "behind_bytes bigint, catch_up_file text, catch_up_pos bigint, stopped_at bigint, message text, "
          "PRIMARY KEY (source, target_schema))",
          # The copy may have made the table with its first columns only.
          f"ALTER TABLE {TABLE} ADD COLUMN IF NOT EXISTS behind_bytes bigint, ADD COLUMN IF NOT EXISTS catch_up_file "
          "text, ADD COLUMN IF NOT EXISTS catch_up_pos bigint, ADD COLUMN IF NOT EXISTS stopped_at bigint, ADD COLUMN "
          "IF NOT EXISTS message text")

_WHERE = "WHERE source = %s AND target_schema = %s"

# The copy records where the log stood before it read any table. A copy resumed keeps the first position (every
# table it loads is younger than it); so does a copy whose following is under way. A copy after a detach starts
# a new account.
RECORD_START = (f"INSERT INTO {TABLE} (source, target_schema, log_file, log_pos, state) VALUES (%s, %s, %s, %s, "
                f"'{COPYING}') ON CONFLICT (source, target_schema) DO UPDATE SET log_file = EXCLUDED.log_file, "
                f"log_pos = EXCLUDED.log_pos, state = '{COPYING}', updated_at = now(), lag_seconds = NULL, "
                "behind_bytes = NULL, catch_up_file = NULL, catch_up_pos = NULL, stopped_at = NULL, message = NULL "
                f"WHERE {TABLE}.state = '{DETACHED}' RETURNING log_file, log_pos")
READ = (f"SELECT log_file, log_pos, state, catch_up_file, catch_up_pos, stopped_at, message FROM {TABLE} "
        f"{_WHERE}")
ADVANCE = (f"UPDATE {TABLE} SET log_file = %s, log_pos = %s, updated_at = now(), lag_seconds = %s, "
           f"behind_bytes = %s {_WHERE} RETURNING state")
SET_STATE = f"UPDATE {TABLE} SET state = %s, message = %s, stopped_at = %s, updated_at = now() {_WHERE}"
FORGET = f"DELETE FROM {TABLE} {_WHERE}"
COPY_DONE = f"UPDATE {TABLE} SET state = '{COPIED}', updated_at = now() {_WHERE} AND state = '{COPYING}'"
CATCH_UP = f"UPDATE {TABLE} SET catch_up_file = %s, catch_up_pos = %s {_WHERE}"
ASK_DETACH = (f"UPDATE {TABLE} SET state = '{DETACHING}', updated_at = now() {_WHERE} "
              f"AND state IN ({', '.join(repr(state) for state in FOLLOWABLE)}) RETURNING state")


def bind(sql: str, params: tuple[str | int | None, ...], literal: Callable[[str | int | None], str]) -> str:
    """One of the statements above with its parameters written as literals (`literal`: the destination
    dialect's), for a client rather than a driver."""
    values = iter(params)
    return _PLACEHOLDER.sub(lambda m: "%" if m.group(0) == "%%" else literal(next(values)), sql)


_PLACEHOLDER = re.compile(r"%[s%]")
# One follower per (source, target schema): a session lock its connection holds while it runs; `--detach` reads
# it to know whether a follower will do the detaching.
LOCK = "SELECT pg_try_advisory_lock(hashtext(%s))"


def lock_key(source: str, schema: str) -> str:
    return f"dbupdater follow {source} {schema}"


# Identity and serial columns of the target schema, with their sequences.
SEQUENCES = ("SELECT c.relname, a.attname, pg_get_serial_sequence(format('%%I.%%I', n.nspname, c.relname), "
             "a.attname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace JOIN pg_attribute a ON "
             "a.attrelid = c.oid WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT "
             "a.attisdropped AND pg_get_serial_sequence(format('%%I.%%I', n.nspname, c.relname), a.attname) IS "
             "NOT NULL ORDER BY 1, 2")


def reset_sequence_sql(schema: str, table: str, column: str) -> str:
    """The sequence past both the copied rows and MySQL's AUTO_INCREMENT counter, within the sequence's maximum
    (parameters: the sequence twice, then the counter, 1 when unknown): the next value is max + 1, or the
    counter, whichever is larger, as the copy's identity restart sets it (MySQL's counter of a bigint unsigned
    may be past PostgreSQL's bigint)."""
    highest = f"COALESCE((SELECT max({ident(column)})::numeric FROM {ident(schema)}.{ident(table)}), 0)"
    ceiling = "(SELECT seqmax FROM pg_sequence WHERE seqrelid = %s::regclass)"
    return f"SELECT setval(%s, LEAST({ceiling}, GREATEST({highest} + 1, %s::numeric, 1))::bigint, false)"

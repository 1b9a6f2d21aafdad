"""SQL primitives that differ between engines, so the ledger's statements are written once.

Values reach SQL only through `literal()`, which cannot be escaped out of whatever the server's settings
(MySQL: hex literals, immune to NO_BACKSLASH_ESCAPES; PostgreSQL: E'' strings, immune to
standard_conforming_strings).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod


class Dialect(ABC):
    now: str
    preamble: str = ""
    # What a SELECT of constants needs after its select list: Oracle before 23ai has no FROM-less SELECT.
    from_dual: str = ""
    # The UTF-8 character set every client session of the engine must run in (the engine's invocations ask
    # for it), and an expression giving the session's actual one, which the ledger checks on opening: a
    # server that overrides the client's choice would convert every script's text wrongly.
    session_charset: str
    session_charset_sql: str
    # The error a read of a never-created history table gives: such a database simply has no history yet.
    missing_table: re.Pattern[str]

    @abstractmethod
    def ident(self, name: str) -> str: ...

    @abstractmethod
    def literal_text(self, value: str) -> str: ...

    def literal(self, value: str | int | None) -> str:
        if value is None:
            return "NULL"
        if isinstance(value, int):
            return str(int(value))
        return self.literal_text(value)

    def table(self, schema: str | None, name: str) -> str:
        return f"{self.ident(schema)}.{self.ident(name)}" if schema else self.ident(name)

    @abstractmethod
    def plus_seconds(self, expression: str, seconds: int) -> str: ...

    @abstractmethod
    def duration_ms(self, since: str) -> str: ...

    @abstractmethod
    def text_time(self, expression: str) -> str:
        """A timestamp as 'YYYY-MM-DD HH:MM:SS' UTC text, the same on every engine."""

    @abstractmethod
    def json_row(self, fields: dict[str, str]) -> str: ...

    @abstractmethod
    def insert_ignore(self, table: str, values: dict[str, str]) -> str:
        """An insert that silently does nothing when the primary key exists: how the lock is taken."""

    @abstractmethod
    def insert_ignore_where(self, table: str, values: dict[str, str], condition: str) -> str:
        """The same, only when `condition` (an SQL boolean) holds."""

    @abstractmethod
    def table_missing(self, schema: str | None, name: str) -> str:
        """An SQL boolean: the table does not exist (yet)."""

    @abstractmethod
    def create_tables(self, schema: str | None, history: str, lock: str, versions: str,
                      before_history: str = "") -> str:
        """The ledger's three tables as this release makes them, each only if missing, safe to run
        concurrently: `versions` (one row per ledger schema version applied) first, then `before_history`
        (SQL that must see whether the history table existed), then history and lock."""

    def upgrades(self, history: str, lock: str) -> dict[int, tuple[str, ...]]:
        """Engine-specific SQL a ledger schema version needs besides the generic step (see ledger.schema)."""
        return {}

    def before_script(self, first: str, rest: str) -> str:
        """Ledger SQL made fit to run in the script's own session: committed, and the session left as it was."""
        return first + rest

    # --- exactly once, fencing, sessions (ledger version 3) ---------------------------------------------------
    # This session's id as text, and its database account, stored with a `running` row written in the script's
    # own session, so that a later run can ask the server whether that script's session still exists. None:
    # the engine records no session (a lock is then taken over only when its lease ends).
    session_sql: str | None = None
    user_sql: str = "NULL"
    # Text naming the server instance and the database a session is in, the same through any host name, alias
    # or address: how commands that write nothing (`plan`, `status`) tell two names of one database apart.
    # None: the engine cannot say (only `apply`'s target rows beside the lock can).
    server_identity: str | None = None

    def null_unless(self, condition: str, value: str) -> str:
        """`value` when the condition holds, else NULL: written into a NOT NULL column, the NULL makes the
        statement fail. That is how a `running` row refuses to go in, in the same statement that checks."""
        return f"CASE WHEN {condition} THEN {value} END"

    def count_where(self, table: str, condition: str) -> str:
        """A scalar subquery counting rows of `table`, fit for a statement that inserts into that table."""
        return f"(SELECT COUNT(*) FROM {table} WHERE {condition})"

    def insert_checked(self, table: str, values: dict[str, str]) -> str:
        """A one-row insert that fails (never silently skips) when a value meant for a NOT NULL column is
        NULL: every engine's INSERT ... SELECT does, whatever its settings."""
        return f"INSERT INTO {table} ({', '.join(values)}) SELECT {', '.join(values.values())}{self.from_dual};"

    def session_alive(self, row: str) -> str | None:
        """An SQL boolean: the session recorded in `row`.db_session (`row` names a history row in the
        enclosing query) still exists on the server, as far as this session can see. None: no way to tell."""
        return None

    def session_visible(self, row: str) -> str:
        """An SQL boolean: `session_alive` is authoritative for that row (its session was recorded, and this
        session may see it); without it, that the session is gone proves nothing."""
        return "1 = 0"

    def use_database(self, name: str) -> str | None:
        """A statement moving a session to another database of its server, so that one client call can open or
        release the ledgers of many databases (a fan-out over the databases of one server pays a call per
        server instead of one per database). None: a session serves one database (PostgreSQL, Oracle, SQL
        Server logins name theirs), and each ledger takes calls of its own."""
        return None

    def end_session(self, session: str) -> str | None:
        """SQL ending the session `session` (as `session_sql` wrote it) on the server, or None when the
        engine cannot: after a script timeout, when the client is gone but its statement still runs."""
        return None

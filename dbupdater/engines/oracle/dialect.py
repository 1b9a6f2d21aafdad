"""The Oracle dialect of the ledger: literals, time, JSON rows and the tables' DDL, as SQL*Plus must read it.

Ledger SQL reaches the server through sqlplus on stdin, so every value must be safe from two parsers: the
server's (quotes) and SQL*Plus's own line reader, which ends a statement at a line ending in `;`, at a blank
line, at `/` or `.` alone, and substitutes `&name` (sqlplus.md §4, §5, §9). `literal_text` therefore writes
only letters, digits and a few punctuation marks as themselves and everything else (quotes, `;`, `&`,
backslash, line breaks, non-ASCII) as UNISTR escapes, in short chunks so no input line grows long.

Identifiers are upper-cased and quoted: unquoted names are upper case in Oracle, and a quoted lower-case
name is a different object that unquoted SQL cannot find (ledger-idioms.md §1, Flyway's trap). Oracle has
no `CREATE TABLE IF NOT EXISTS` before 23ai and no `ON CONFLICT`, so creation ignores ORA-00955 and the
insert that takes the lock ignores DUP_VAL_ON_INDEX, in PL/SQL blocks: exactly one concurrent run wins.
Rows come back as JSON_OBJECT (Oracle 19c or later), one line each.
"""

from __future__ import annotations

import re

from ..dialect import Dialect

SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 _.,:/+=-@()")
CHUNK = 80  # source characters per UNISTR chunk: a chunk of escapes stays well under SQL*Plus's line limit


def unistr_escape(value: str) -> str:
    """The body of an UNISTR('...') literal: safe characters as they are, every other UTF-16 code unit as \\XXXX."""
    out = []
    for char in value:
        if char in SAFE:
            out.append(char)
            continue
        data = char.encode("utf-16-be")
        out.extend(f"\\{int.from_bytes(data[i:i + 2], 'big'):04X}" for i in range(0, len(data), 2))
    return "".join(out)


def _block(statement: str, ignore: str) -> str:
    """A PL/SQL block running `statement`, with the named exceptions ignored, ended by `/` on its own line."""
    return f"BEGIN\n  {statement}\nEXCEPTION WHEN {ignore} THEN NULL;\nEND;\n/"


def _ddl(sql: str, *codes: int) -> str:
    """DDL that may already have been done (by us earlier, or by a concurrent opener): ORA-`codes` ignored."""
    quoted = "'" + sql.replace("'", "''") + "'"
    condition = " AND ".join(f"SQLCODE != -{code}" for code in codes)
    return (f"BEGIN\n  EXECUTE IMMEDIATE {quoted};\nEXCEPTION WHEN OTHERS THEN\n  IF {condition} THEN RAISE; END IF;\n"
            "END;\n/")


class OracleDialect(Dialect):
    now = "SYSTIMESTAMP"
    from_dual = " FROM DUAL"
    session_charset = "AL32UTF8"
    # Oracle has no view of the client's character set a plain user may read (V$SESSION_CONNECT_INFO needs a
    # grant), so the session proves it: an é sent as UTF-8 bytes equals U+00E9 only if the client decodes
    # its input as AL32UTF8 (NLS_LANG, sqlplus.md §10). Otherwise the bytes it really received are shown.
    session_charset_sql = ("CASE WHEN TO_CHAR(UNISTR('\\00E9')) = '\u00e9' THEN 'AL32UTF8' "
                           "ELSE 'not AL32UTF8 (' || DUMP('\u00e9', 16) || ')' END")
    # The ledger's sessions print bare rows: no headings, feedback or page breaks, no wrapping (LINESIZE; the
    # 80-column wrap of sqlplus-ora-12514-wrapped-line.txt), CLOB rows shown whole; each statement committed
    # on its own (like MySQL's autocommit=1 for the tool's statements); blank lines never end a statement.
    preamble = ("SET HEADING OFF\nSET FEEDBACK OFF\nSET PAGESIZE 0\nSET NEWPAGE NONE\nSET LINESIZE 32767\n"
                "SET TRIMOUT ON\nSET TRIMSPOOL ON\nSET TAB OFF\nSET LONG 1000000\nSET LONGCHUNKSIZE 32767\n"
                "SET SERVEROUTPUT OFF\nSET SQLBLANKLINES ON\nSET AUTOCOMMIT ON\n")
    missing_table = re.compile(r"^ORA-00942:")

    def ident(self, name: str) -> str:
        return '"' + name.upper().replace('"', '""') + '"'

    def literal_text(self, value: str) -> str:
        if not value:
            return "NULL"  # Oracle's '' is NULL anyway
        chunks = [f"TO_CHAR(UNISTR('{unistr_escape(value[i:i + CHUNK])}'))" for i in range(0, len(value), CHUNK)]
        if len(chunks) == 1:
            return chunks[0]
        return "(\n" + "\n|| ".join(chunks) + ")"

    def plus_seconds(self, expression: str, seconds: int) -> str:
        return f"{expression} + NUMTODSINTERVAL({int(seconds)}, 'SECOND')"

    def duration_ms(self, since: str) -> str:
        span = f"({self.now} - {since})"
        return (f"(EXTRACT(DAY FROM {span}) * 86400000 + EXTRACT(HOUR FROM {span}) * 3600000 + "
                f"EXTRACT(MINUTE FROM {span}) * 60000 + ROUND(EXTRACT(SECOND FROM {span}) * 1000))")

    def text_time(self, expression: str) -> str:
        return f"TO_CHAR(SYS_EXTRACT_UTC({expression}), 'YYYY-MM-DD HH24:MI:SS')"

    def json_row(self, fields: dict[str, str]) -> str:
        # CLOB: a row longer than VARCHAR2's 4000 bytes (a long script path and note) would fail as ORA-40478.
        return ("JSON_OBJECT(" + ", ".join(f"'{key}' VALUE {value}" for key, value in fields.items())
                + " NULL ON NULL RETURNING CLOB)")

    def insert_ignore(self, table: str, values: dict[str, str]) -> str:
        return _block(f"INSERT INTO {table} ({', '.join(values)}) VALUES ({', '.join(values.values())});",
                      "DUP_VAL_ON_INDEX")

    def insert_ignore_where(self, table: str, values: dict[str, str], condition: str) -> str:
        return _block(f"INSERT INTO {table} ({', '.join(values)}) SELECT {', '.join(values.values())} FROM DUAL "
                      f"WHERE {condition};", "DUP_VAL_ON_INDEX")

    def table_missing(self, schema: str | None, name: str) -> str:
        owner = self.literal(schema.upper()) if schema else "SYS_CONTEXT('USERENV', 'CURRENT_SCHEMA')"
        return (f"NOT EXISTS (SELECT 1 FROM all_tables WHERE owner = {owner} "
                f"AND table_name = {self.literal(name.upper())})")

    # Recorded for a person to look up; whether it still runs would need V$SESSION, which an application
    # account is rarely granted: a lock is taken over when its lease ends, as before.
    session_sql = "SYS_CONTEXT('USERENV', 'SID')"
    user_sql = "USER"

    def upgrades(self, history: str, lock: str) -> dict[int, tuple[str, ...]]:
        # ORA-01430: the column exists (a second opener got there first).
        return {3: (_ddl(f"ALTER TABLE {history} ADD (db_session VARCHAR2(64 CHAR), db_user VARCHAR2(255 CHAR))",
                         1430),)}

    def before_script(self, first: str, rest: str) -> str:
        # Every statement on a line of its own (SQL*Plus reads `a; b;` as one statement), then committed:
        # the script's session has no autocommit.
        return "\n".join(part.strip() for part in (first, rest) if part.strip()) + "\nCOMMIT;"

    def create_tables(self, schema: str | None, history: str, lock: str, versions: str,
                      before_history: str = "") -> str:
        # A schema is a user in Oracle: --history-schema names one that exists (the tool creates no users).
        index = self.table(schema, "dbupdater_history_script")
        tz = "TIMESTAMP WITH TIME ZONE DEFAULT SYSTIMESTAMP NOT NULL"
        parts = [
            _ddl(f"CREATE TABLE {versions} (version NUMBER(10) PRIMARY KEY, applied_at {tz}, "
                 "tool_version VARCHAR2(32 CHAR))", 955),
            before_history.strip(),
            _ddl(f"CREATE TABLE {history} (id NUMBER(19) GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, "
                 "script VARCHAR2(1000 CHAR) NOT NULL, checksum CHAR(64) NOT NULL, "
                 "checksum_version NUMBER(5) NOT NULL, "
                 f"status VARCHAR2(16) NOT NULL, started_at {tz}, finished_at TIMESTAMP WITH TIME ZONE, "
                 "duration_ms NUMBER(19), runner_host VARCHAR2(255 CHAR), os_user VARCHAR2(128 CHAR), "
                 "tool_version VARCHAR2(32 CHAR), run_id VARCHAR2(64 CHAR) NOT NULL, note VARCHAR2(1000 CHAR), "
                 "db_session VARCHAR2(64 CHAR), db_user VARCHAR2(255 CHAR))", 955),
            # ORA-00955: the name is taken; ORA-01408: that column list is indexed already.
            _ddl(f"CREATE INDEX {index} ON {history} (script)", 955, 1408),
            _ddl(f"CREATE TABLE {lock} (name VARCHAR2(64 CHAR) PRIMARY KEY, run_id VARCHAR2(64 CHAR) NOT NULL, "
                 "host VARCHAR2(255 CHAR), pid NUMBER(10), os_user VARCHAR2(128 CHAR), "
                 f"acquired_at {tz}, heartbeat_at {tz}, expires_at {tz})", 955),
        ]
        return "\n".join(part for part in parts if part) + "\n"

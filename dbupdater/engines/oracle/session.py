"""The SQL*Plus session on stdin: what comes before the script (the credentials file) and after it.

`sqlplus -S -L /nolog` reads its whole session from stdin, as Sqitch drives it (sqlplus.md §1): nothing of
the login is on the command line or in the environment. The 0600 credentials file holds the session's
start, up to and including the CONNECT line; the bytes sent along hold the rest: the ledger's `running` row,
the marker, `@script`, the compilation check, `EXIT`.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ...model.errors import UnreachableError

if TYPE_CHECKING:
    from ...model.specs import DatabaseSpec

# Fixed exit codes: `EXIT SQL.SQLCODE` is taken modulo 256 on Unix, so ORA-01792 would exit 0 (sqlplus.md §3,
# sqitch#831). 4 and 9 are Sqitch's.
SQLERROR_EXIT = 4  # a SQL or PL/SQL error in the script (or in the ledger SQL)
OSERROR_EXIT = 9  # an operating-system error (a file sqlplus cannot write)
COMPILE_EXIT = 5  # the script left objects it compiled with errors (the USER_ERRORS check)
CONNECT_EXIT = 3  # the CONNECT failed, where sqlplus counts that as a SQL error
COMPILE_ERROR = -20901  # the check's RAISE_APPLICATION_ERROR code (written out in _compile_check)

# Option columns (EngineOption) and the values they take.
SID = "oracle_sid"
ALIAS = "oracle_alias"
WALLET = "oracle_wallet"
DEFINE = "oracle_define"
YES = ("yes", "true", "1", "y")
FLAGS = (*YES, "no", "false", "0", "n")
DEFINE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_$#]{0,127}$")
# A TNS alias or an EZConnect string: no blanks and no quote (it is written as it is on the CONNECT line).
ALIAS_TEXT = re.compile(r'^[^\s"]+$')
# What `@file` reads without misreading: SQL*Plus takes `$`, `@`, `?`, `%`, blanks specially in start-file
# names (sqlplus-sp2-0310-dollar-in-filename-exit0.txt, sqitch's _file_for_script), and appends `.sql` to a
# name with no extension. The tool names its uploads (execution.sessions: NNNNN-name with [A-Za-z0-9._-]).
SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./-]+/[A-Za-z0-9_.-]*\.[A-Za-z0-9_]+$")


def flag(db: DatabaseSpec, column: str) -> bool:
    return db.option(column).lower() in YES


def quoted(value: str) -> str:
    """A double-quoted CONNECT field, `"` doubled (Sqitch's `_script`, sqlplus.md §2)."""
    return '"' + value.replace('"', '""') + '"'


def identifier(db: DatabaseSpec) -> str:
    """The connect identifier: an alias as given, a SID in a full descriptor (EZConnect has no SID form), or
    EZConnect `//host:port/"service"` (the `database` column)."""
    if db.option(ALIAS):
        return db.option(ALIAS)
    if flag(db, SID):
        return (f"(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST={db.host})(PORT={db.port}))"
                f"(CONNECT_DATA=(SID={db.database})))")
    return f"//{db.host}:{db.port}/{quoted(db.database)}"


def connect_line(db: DatabaseSpec) -> str:
    if flag(db, WALLET):  # the wallet's credential for this alias; no password exists here at all
        return f"CONNECT /@{identifier(db)}"
    password = db.password.reveal() if db.password else ""
    if "\n" in password or "\r" in password or "\x00" in password:
        raise UnreachableError(f"{db.label}: the password holds a line break or NUL, which a SQL*Plus CONNECT line "
                               "cannot carry")
    return f"CONNECT {db.user}/{quoted(password)}@{identifier(db)}"


def defines(db: DatabaseSpec) -> list[tuple[str, str]]:
    """`oracle_define` as (name, value) pairs: `name=value` items separated by `;`."""
    pairs = []
    for item in db.option(DEFINE).split(";"):
        if item.strip():
            name, _, value = item.partition("=")
            pairs.append((name.strip(), value))
    return pairs


def check_define(value: str) -> str | None:
    for item in value.split(";"):
        if not item.strip():
            continue
        name, equals, _ = item.partition("=")
        if not equals or not DEFINE_NAME.match(name.strip()):
            return (f"{item.strip()!r} is not name=value (name: a letter, then letters, digits, _ $ #); items are "
                    "separated by ';'")
    return None


def substitution(db: DatabaseSpec) -> list[str]:
    """`SET DEFINE OFF` on its own line (on the line of a statement it does not apply, sqlplus.md §9), unless
    the manifest declares substitution variables: then DEFINE stays on with exactly those values."""
    pairs = defines(db)
    if not pairs:
        return ["SET DEFINE OFF"]
    return ["SET DEFINE ON", "SET VERIFY OFF", *(f'DEFINE {name} = "{value.replace(chr(34), chr(34) * 2)}"'
                                                for name, value in pairs)]


def prelude(db: DatabaseSpec) -> bytes:
    """The credentials file: settings, the error handlers, then the CONNECT line. WHENEVER comes before the
    CONNECT so a failed login ends the session instead of running the script unconnected (SP2-0640)."""
    lines = [
        "SET ECHO OFF",
        *substitution(db),
        f"WHENEVER OSERROR EXIT {OSERROR_EXIT}",
        f"WHENEVER SQLERROR EXIT {CONNECT_EXIT}",
        connect_line(db),
        f"WHENEVER SQLERROR EXIT {SQLERROR_EXIT} ROLLBACK",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


BIND = "dbupdater_since"


def _compile_check() -> str:
    """A real SQL error if objects the script compiled (LAST_DDL_TIME since it began) have errors in
    USER_ERRORS: "Warning: ... created with compilation errors." is no SQL error, and WHENEVER never fires on
    it (sqlplus.md §6); the check names the objects and their first errors."""
    return """DECLARE
  found VARCHAR2(1800);
BEGIN
  FOR e IN (SELECT e.type, e.name, e.line, e.position, e.text FROM user_errors e JOIN user_objects o
            ON o.object_name = e.name AND o.object_type = e.type
            WHERE e.attribute = 'ERROR' AND o.last_ddl_time >= TO_DATE(:dbupdater_since, 'YYYYMMDDHH24MISS')
            ORDER BY e.type, e.name, e.sequence) LOOP
    EXIT WHEN LENGTH(found) > 1500;
    found := found || CHR(10) || e.type || ' ' || e.name || ' line ' || e.line || '/' || e.position || ': '
             || SUBSTR(REPLACE(e.text, CHR(10), ' '), 1, 200);
  END LOOP;
  IF found IS NOT NULL THEN
    RAISE_APPLICATION_ERROR(-20901, 'dbupdater: the script left objects with compilation errors:' || found);
  END IF;
END;
/"""


def script_session(script_path: str, before: str, marker: str) -> bytes:
    """Everything after the CONNECT: the ledger row (committed), the marker, the script, the check, EXIT.

    The script may change settings and WHENEVER (its own `WHENEVER SQLERROR CONTINUE`): they are set again
    before the check. `EXIT` with no clause commits, as sqlplus does at the end of any script (§3).
    """
    if not SAFE_PATH.match(script_path):
        raise UnreachableError(f"the script's path on the runner {script_path!r} is not one SQL*Plus reads as "
                               "written (blanks, $, @, ? or % in it, or no extension): set TMPDIR on the runner to a "
                               "plain directory")
    lines = [
        "SET FEEDBACK OFF",
        f"VARIABLE {BIND} VARCHAR2(14)",
        f"EXECUTE :{BIND} := TO_CHAR(SYSDATE - 1 / 86400, 'YYYYMMDDHH24MISS')",
        *([before.strip()] if before.strip() else []),
        f"PROMPT {marker}",
        "SET FEEDBACK 6",
        f"@{script_path}",
        "SET TERMOUT ON",
        "SET ECHO OFF",
        "SET DEFINE OFF",
        "SET FEEDBACK OFF",
        f"WHENEVER OSERROR EXIT {OSERROR_EXIT}",
        f"WHENEVER SQLERROR EXIT {COMPILE_EXIT} ROLLBACK",
        _compile_check(),
        "EXIT",
    ]
    return ("\n".join(lines) + "\n").encode("utf-8")


LEDGER_END = b"\nEXIT\n"  # after the ledger's SQL: an explicit end, not the end of stdin

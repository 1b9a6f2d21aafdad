"""The binary log position a copy across engines records for `copy-db --follow`: where the source's log stood
before the copy read any table, and, once the copy is complete, that it is (conversion/follow/position.py: the
table and its states). It goes through the copy's own clients on the runners (the source's mysql, the
destination's psql, as the rows do): no tunnel and no driver, two short sessions.

A plain `copy-db` records it when it can, so that a later `--follow` follows the copy instead of copying again,
and otherwise goes on, saying why in one line (a source without a binary log, or not in ROW format, or a user
who may not read its position). `copy-db --follow` requires it: the copy does not start without one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..conversion.follow import position as at
from ..model.errors import DbUpdaterError
from ..model.outcome import Status
from ..model.secret import redact
from ..transports import TransportError
from .convert_load import CopyFailed, client_lines
from .convert_state import CREATE as STATE_CREATE
from .convert_state import TABLES

if TYPE_CHECKING:
    from .convert_load import Sides

VARIABLES = ("log_bin", "binlog_format", "binlog_row_image", "binlog_row_metadata")
STATUS_SQL = (f"SHOW VARIABLES WHERE Variable_name IN ({', '.join(repr(v) for v in VARIABLES)});\n"
              "SHOW MASTER STATUS;\n")
STATUS_SQL_84 = STATUS_SQL.replace("SHOW MASTER STATUS", "SHOW BINARY LOG STATUS")  # MySQL 8.4 knows only these
RELOAD = (f"UPDATE {TABLES} SET state = 'reload' WHERE source = %s AND target_schema = %s AND state IN ('loaded', "
          "'indexed', 'verified') AND EXISTS (SELECT 1 FROM recorded)")


class PositionError(DbUpdaterError):
    """The source's binary log position cannot be recorded, in words."""


def log_refusal(label: str, user: str, variables: Mapping[str, str], status: tuple[str, int] | None) -> str | None:
    """Why the source's binary log cannot be followed (None: it can): it must exist, in ROW format with whole
    rows and the columns named, and its position must be readable."""
    log_bin = variables.get("log_bin", "").upper()
    if log_bin not in ("ON", "1"):
        return (f"{label} writes no binary log (log_bin is off): following reads it; start the server with "
                "--log-bin --binlog-format=ROW --binlog-row-image=FULL --binlog-row-metadata=FULL")
    form, image = variables.get("binlog_format", "?"), variables.get("binlog_row_image", "?")
    if form.upper() != "ROW" or image.upper() != "FULL":
        return (f"{label}'s binary log is binlog_format={form}, binlog_row_image={image}: following needs ROW and "
                "FULL (whole rows, before and after)")
    metadata = variables.get("binlog_row_metadata", "unknown to this server")
    if metadata.upper() != "FULL":
        return (f"{label}'s binlog_row_metadata is {metadata}: following needs FULL (the log names the columns and "
                "lists enum and set members; MariaDB 10.5+, MySQL 8.0.1+: --binlog-row-metadata=FULL)")
    if status is None:
        return (f"{label} shows no binary log status: the user {user} needs BINLOG MONITOR (MariaDB) or "
                "REPLICATION CLIENT (MySQL)")
    return None


def _source_lines(sides: Sides, sql: str) -> tuple[list[str], list[str], bool]:
    """The source client's stdout lines for `sql`, its error lines, and whether it succeeded."""
    try:
        said = client_lines(sides.source_session, sides.export, sides.source_engine, sql)
    except TransportError as exc:
        raise PositionError(f"the source's runner connection failed: {exc}") from exc
    return said.lines, said.errors, said.verdict is Status.APPLIED


def source_position(sides: Sides) -> at.Position:
    """Where the source's binary log ends now (PositionError: why it cannot be followed)."""
    lines, errors, ok = _source_lines(sides, STATUS_SQL)
    if not ok and any("syntax" in line.lower() for line in errors):
        lines, errors, ok = _source_lines(sides, STATUS_SQL_84)
    db = sides.source.db
    variables: dict[str, str] = {}
    status: tuple[str, int] | None = None
    for line in lines:
        fields = line.split("\t")
        if len(fields) >= 2 and fields[0] in VARIABLES:
            variables[fields[0]] = fields[1]
        elif len(fields) >= 2 and fields[1].isdigit():
            status = (fields[0], int(fields[1]))
    why = log_refusal(db.target_label, db.user, variables, status if ok else None)
    if why is not None:
        raise PositionError(why + (f" ({' | '.join(errors[:2])})" if errors and not ok else ""))
    assert status is not None
    return at.Position.of(*status)


def _destination(sides: Sides, sql: str) -> list[str]:
    try:
        return sides.sql(sql)
    except CopyFailed as exc:
        raise PositionError(f"{exc.reason}: {' | '.join(exc.errors[:2])}" if exc.errors else exc.reason) from None


def record(sides: Sides, source: str, schema: str, *, forget: bool) -> str:
    """Record where the source's log stands, before the copy reads any table (kept when already recorded for a
    copy under way or followed; `forget`: the copy starts over, so a new one is recorded). A new position makes
    the tables the copy loaded before load again: they may be older than it. What was done, in words."""
    here = source_position(sides)
    literal = sides.destination_dialect.literal
    key = (source, schema)
    recorded = at.bind(at.RECORD_START, (*key, here.log_file, here.log_pos), literal)
    said = _destination(sides, "SET client_min_messages = warning;\nBEGIN;\n" + STATE_CREATE
                        + "".join(f"{sql};\n" for sql in at.CREATE)
                        + (f"{at.bind(at.FORGET, key, literal)};\n" if forget else "")
                        + f"WITH recorded AS ({recorded}), reloaded AS ({at.bind(RELOAD, key, literal)}) "
                        "SELECT 'recorded' || chr(9) || log_file || chr(9) || log_pos FROM recorded;\n"
                        + at.bind(f"SELECT 'kept' || chr(9) || log_file || chr(9) || log_pos || chr(9) || state FROM "
                                  f"{at.TABLE} WHERE source = %s AND target_schema = %s", key, literal)
                        + ";\nCOMMIT;\n")
    fields = next((line.split("\t") for line in said if line.startswith(("recorded\t", "kept\t"))), [])
    if fields and fields[0] == "recorded":
        return f"following will start at {here}, where the binary log stood before the copy"
    if len(fields) >= 4:
        return f"following will start at {fields[1]}:{fields[2]} ({fields[3]}), recorded before"
    raise PositionError(f"the destination did not say where following starts: {' | '.join(said[:3])}")


class Positions:
    """convert.Positions through the copy's clients. `strict` (copy-db --follow): a position that cannot be
    recorded stops the copy before it changes anything. Otherwise (a plain copy-db) the copy goes on without one,
    saying why in one line; a later --follow then copies again first."""

    def __init__(self, *, strict: bool) -> None:
        self.strict = strict

    def start(self, sides: Sides, source: str, schema: str, *, fresh: bool) -> tuple[bool, str]:
        try:
            return True, record(sides, source, schema, forget=fresh)
        except PositionError as exc:
            if self.strict:
                raise
            return False, (f"no binary log position recorded for a later copy-db --follow (it would copy again "
                           f"first): {redact(str(exc))}")

    def done(self, sides: Sides, source: str, schema: str) -> None:
        literal = sides.destination_dialect.literal
        _destination(sides, f"{at.bind(at.COPY_DONE, (source, schema), literal)};\n")

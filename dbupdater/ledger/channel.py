"""SQL through a target's own client on its runner, rows back: the ledger's channel, and anyone's who needs
to ask a database something (readiness today; backups and copies next).

The controller may have no route to the database at all, so everything goes the way scripts go. SQL goes in
on stdin; each result row comes back as one JSON object per line, which survives any value a script path or
host name can hold.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..engines import Engine, OutputLog
from ..model.command import Client
from ..model.outcome import Status
from .records import LedgerError

if TYPE_CHECKING:
    from ..model.specs import DatabaseSpec
    from ..transports import Transport


class SqlChannel:
    def __init__(self, transport: Transport, engine: Engine, db: DatabaseSpec, credentials_path: str,
                 client: Client | None = None) -> None:
        self.transport = transport
        self.client = client or Client(platform=transport.shell.platform)
        self.engine = engine
        self.db = db
        self.credentials_path = credentials_path
        self.dialect = engine.dialect

    def _call(self, sql: str) -> tuple[list[dict[str, Any]], Status, str, OutputLog]:
        """Run SQL (after the dialect's preamble): the JSON rows it printed, the engine's verdict and why, and
        the client's other output."""
        rows: list[str] = []
        log = OutputLog(self.engine)

        def collect(stream: str, line: str) -> None:
            if stream == "stdout" and line.startswith("{"):
                rows.append(line)
            else:  # sqlplus and sqlcmd write their errors on stdout
                log.feed(stream, line)

        command = self.engine.adapt(self.engine.ledger_command(self.db, self.credentials_path), self.client)
        result = self.transport.run(command.with_stdin((self.dialect.preamble + sql).encode("utf-8")), collect)
        verdict, reason = self.engine.verdict(result, log)
        return [json.loads(row) for row in rows], verdict, reason, log

    def rows(self, sql: str, *, missing_ok: bool = False) -> list[dict[str, Any]]:
        """Run SQL (after the dialect's preamble); every stdout line that is a JSON object is a row.

        With missing_ok, an error that a table does not exist (a database the tool never touched) ends the
        call quietly, returning the rows printed before it.
        """
        rows, verdict, reason, log = self._call(sql)
        if verdict is Status.UNREACHABLE:
            raise LedgerError(f"{self.db.label}: {reason}: {' | '.join(log.errors[-3:])}")
        if verdict is Status.FAILED and not (
                missing_ok and any(self.dialect.missing_table.search(line) for line in log.errors)):
            raise LedgerError(f"{self.db.label}: the history table could not be used: "
                              f"{' | '.join(log.errors[-3:]) or reason}")
        return rows

    def rows_before_error(self, sql: str) -> list[dict[str, Any]]:
        """The rows SQL printed up to its first error, whatever the verdict: for a call made of independent
        parts, each ending with a row that says it completed (ledger/together.py); whoever reads them does
        again, on its own, any part that did not complete, and gets its own error there."""
        return self._call(sql)[0]

    def ping(self) -> None:
        """Log in and run a trivial query; raises LedgerError if it cannot."""
        self.rows(f"SELECT 1{self.dialect.from_dual};")

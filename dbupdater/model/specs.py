"""What a manifest row says: where the client runs, which database it logs in to, which script it runs.

Specs are values: equal runner specs share one connection for the whole run, and a database is known by its
`key` (engine, host, port, name), whoever logs in. Engine- and transport-specific settings (an Oracle service
name, a SQL Server instance, WinRM's HTTPS flag) ride in `options`, named as the plugin declares them, so
this module needs to know no engine and no transport.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .secret import Secret

DbKey = tuple[str, str, int, str]
"""(engine, host, port, database): the database itself, what a ledger and its lock belong to."""

Options = tuple[tuple[str, str], ...]
"""(name, value) pairs in a fixed order, so specs stay hashable."""

DEFAULT_SSH_PORT = 22


def option(options: Options, name: str, default: str = "") -> str:
    for key, value in options:
        if key == name:
            return value
    return default


@dataclass(frozen=True)
class RunnerSpec:
    """Where the client runs. Equal specs share one connection for the whole run."""

    transport: str
    host: str
    port: int
    user: str
    password: Secret | None = field(default=None, compare=False)
    key_file: Path | None = None
    key_data: Secret | None = field(default=None, compare=False)  # a private key read from Vault or env
    options: Options = ()

    @property
    def label(self) -> str:
        """user@host[:port]; a runner without a host (this machine) is called by its transport's name."""
        if not self.host:
            return self.transport
        port = "" if self.port in (0, DEFAULT_SSH_PORT) else f":{self.port}"
        return f"{self.user}@{self.host}{port}" if self.user else f"{self.host}{port}"

    def option(self, name: str, default: str = "") -> str:
        return option(self.options, name, default)


@dataclass(frozen=True)
class DatabaseSpec:
    engine: str
    host: str
    port: int
    user: str
    database: str
    password: Secret | None = field(default=None, compare=False)
    options: Options = ()

    @property
    def label(self) -> str:
        return f"{self.engine} {self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def key(self) -> DbKey:
        """The database itself, whoever logs in: what a ledger and its lock belong to."""
        return (self.engine, self.host, self.port, self.database)

    @property
    def target_label(self) -> str:
        return f"{self.engine}://{self.host}:{self.port}/{self.database}"

    def option(self, name: str, default: str = "") -> str:
        return option(self.options, name, default)


@dataclass(frozen=True)
class ManifestRow:
    line: int
    runner: RunnerSpec
    db: DatabaseSpec
    script: Path
    script_label: str
    # The script's identity in the ledger: its path relative to the manifest's folder.
    script_id: str = ""
    repeatable: bool = False
    single_transaction: bool = False
    # The script file's encoding (a canonical codec name): it reaches the runner converted to UTF-8.
    encoding: str = "utf-8"
    # Seconds the script may run before it is cancelled on the server and the row fails (None: --script-timeout).
    script_timeout: float | None = None
    # The script holds nothing but white space: recorded as applied without starting a client.
    blank: bool = False
    # What the row does (manifest column `step`): "sql", "pause" or "command".
    step: str = "sql"
    # A script run right after this one on the same target, to check it (manifest column `verify_script`), and
    # its path relative to the manifest's folder.
    verify: Path | None = None
    verify_id: str = ""
    # What `revert` runs to take this row's change back (manifest column `undo_script`; for a command step, an
    # executable too), and its path relative to the manifest's folder.
    undo: Path | None = None
    undo_id: str = ""


@dataclass
class Manifest:
    source: str
    base_dir: Path
    rows: list[ManifestRow]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def first_row_per_database(rows: Iterable[ManifestRow]) -> list[ManifestRow]:
    """The first row naming each database, in manifest order: its runner is the way in for one-off calls."""
    first: dict[DbKey, ManifestRow] = {}
    for row in rows:
        first.setdefault(row.db.key, row)
    return list(first.values())


def targets(rows: list[ManifestRow]) -> dict[DbKey, list[int]]:
    """Row positions per database, in order of first appearance: a target's rows run in this order."""
    grouped: dict[DbKey, list[int]] = {}
    for position, row in enumerate(rows):
        grouped.setdefault(row.db.key, []).append(position)
    return grouped

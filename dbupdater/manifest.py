"""Parse and validate a manifest into typed rows.

The whole manifest is checked before anything runs, and every problem is reported at once with its line
and column: a deployment that stops at row 7 of 9 because row 8 had a typo is the failure mode we exist to
prevent.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from . import scriptfile, secrets
from .engines import ALIASES, DEFAULT_PORTS, ENGINES, PLANNED
from .errors import ManifestError, Problem
from .secrets import Secret

REQUIRED = (
    "sql_runner_host",
    "sql_runner_userid",
    "sql_runner_password",
    "database_type",
    "database_host",
    "database_userid",
    "database_password",
    "port",
    "database",
    "sql_script_to_run",
)
OPTIONAL = ("sql_runner_port", "sql_runner_key_file", "transport", "repeatable", "single_transaction", "encoding")
# The legacy form: everything but database_type, which the port then decides.
LEGACY_OPTIONAL = ("database_type",)
# Cells that may be empty: authentication falls back to keys/agent, databases may trust the runner.
MAY_BE_EMPTY = {"sql_runner_password", "database_password", "database_type", "sql_runner_port",
                "sql_runner_key_file", "transport", "repeatable", "single_transaction", "encoding"}
BOOLEANS = {"": False, "no": False, "false": False, "0": False, "n": False,
            "yes": True, "true": True, "1": True, "y": True}
PASSWORD_COLUMNS = ("sql_runner_password", "database_password")
TRANSPORTS = {"ssh": "ssh", "local": "local"}
PLANNED_TRANSPORTS = {"winrm": "WinRM"}
LOCAL_ONLY_OPTIONAL = {"sql_runner_host", "sql_runner_userid"}
HOST = re.compile(r"^(?!-)[A-Za-z0-9._:%\[\]-]+$")
DEFAULT_SSH_PORT = 22


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

    @property
    def label(self) -> str:
        if self.transport == "local":
            return "local"
        port = "" if self.port == DEFAULT_SSH_PORT else f":{self.port}"
        return f"{self.user}@{self.host}{port}"


@dataclass(frozen=True)
class DatabaseSpec:
    engine: str
    host: str
    port: int
    user: str
    database: str
    password: Secret | None = field(default=None, compare=False)

    @property
    def label(self) -> str:
        return f"{self.engine} {self.user}@{self.host}:{self.port}/{self.database}"

    @property
    def key(self) -> tuple[str, str, int, str]:
        """The database itself, whoever logs in: what a ledger and its lock belong to."""
        return (self.engine, self.host, self.port, self.database)

    @property
    def target_label(self) -> str:
        return f"{self.engine}://{self.host}:{self.port}/{self.database}"


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
    encoding: str = scriptfile.DEFAULT


@dataclass
class Manifest:
    source: str
    base_dir: Path
    rows: list[ManifestRow]
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def first_row_per_database(rows: Iterable[ManifestRow]) -> list[ManifestRow]:
    """The first row naming each database, in manifest order: its runner is the way in for one-off calls."""
    first: dict[tuple[str, str, int, str], ManifestRow] = {}
    for row in rows:
        first.setdefault(row.db.key, row)
    return list(first.values())


def load(path: Path, script_encoding: str = scriptfile.DEFAULT) -> Manifest:
    """Read a manifest CSV: every cell as text, UTF-8 with or without BOM, cells and names trimmed.

    The csv module rather than pandas: a manifest is a few hundred rows of text, and importing pandas
    cost 150 ms of every run's start.
    """
    source = str(path)
    records: list[tuple[int, list[str]]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle, strict=True)
            line = 1
            for cells in reader:
                records.append((line, [cell.strip() for cell in cells]))
                line = reader.line_num + 1  # a quoted cell may span lines: the next record starts after it
    except FileNotFoundError:
        raise ManifestError(source, [Problem("file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(source, [Problem(f"cannot read the file as UTF-8 CSV: {exc}")]) from None
    except csv.Error as exc:
        raise ManifestError(source, [Problem(f"not a well-formed CSV: {exc}", line)]) from None
    if not records:
        raise ManifestError(source, [Problem("the file is empty")])
    (_, header), body = records[0], records[1:]
    ragged = [Problem(f"line {line} has {len(cells)} fields but the header has {len(header)}", line)
              for line, cells in body if len(cells) > len(header)]
    if ragged:
        raise ManifestError(source, ragged)
    return parse(source, path.resolve().parent, header, [(line, cells) for line, cells in body if any(cells)],
                 script_encoding)


def from_mapping(source: str, base_dir: Path, cells: Mapping[str, str],
                 script_encoding: str = scriptfile.DEFAULT) -> Manifest:
    """A one-row manifest from named fields (the single-script entry point), validated the same way."""
    header = list(cells)
    return parse(source, base_dir, header, [(1, [cells[name].strip() for name in header])], script_encoding)


def parse(source: str, base_dir: Path, header: list[str], rows: Iterable[tuple[int, list[str]]],
          script_encoding: str = scriptfile.DEFAULT) -> Manifest:
    problems: list[Problem] = []
    try:
        default_encoding = scriptfile.codec(script_encoding)
    except scriptfile.EncodingError as exc:
        raise ManifestError(source, [Problem(f"--script-encoding: {exc}")]) from None
    scans: dict[tuple[Path, str], str | None] = {}  # a script named by many rows is read once
    notes: list[str] = []
    columns = _check_header(header, problems)
    rows = list(rows)
    if problems:
        raise ManifestError(source, problems)
    if not rows:
        raise ManifestError(source, [Problem("the manifest has no rows")])
    legacy = "database_type" not in columns
    if legacy:
        notes.append("no database_type column: engines are inferred from the database port "
                     "(3306 MySQL, 5432 PostgreSQL, 1521 Oracle, 1433 SQL Server)")
    parsed: list[ManifestRow] = []
    seen: dict[tuple[str, ...], int] = {}
    plain: list[int] = []
    for line, cells in rows:
        values = {name: cells[index] if index < len(cells) else "" for name, index in columns.items()}
        if any(values.get(c) and not secrets.is_reference(values[c]) for c in PASSWORD_COLUMNS):
            plain.append(line)
        key = tuple(cells)
        if key in seen:
            problems.append(Problem(f"exact duplicate of line {seen[key]}", line))
            continue
        seen[key] = line
        row = _parse_row(line, values, base_dir, problems, default_encoding, scans)
        if row is not None:
            parsed.append(row)
    if problems:
        raise ManifestError(source, problems)
    warnings = []
    if plain:
        shown = ", ".join(map(str, plain[:10])) + (", ..." if len(plain) > 10 else "")
        warnings.append(f"plain passwords in the manifest (line{'s' if len(plain) > 1 else ''} {shown}): anyone who "
                        "can read the file has them; use vault:MOUNT/PATH#KEY or env:VAR references instead")
    return Manifest(source, base_dir, parsed, notes, warnings)


def _check_header(header: list[str], problems: list[Problem]) -> dict[str, int]:
    columns: dict[str, int] = {}
    known = set(REQUIRED) | set(OPTIONAL)
    for index, name in enumerate(header):
        if not name:
            problems.append(Problem(f"header cell {index + 1} is empty", 1))
        elif name in columns:
            problems.append(Problem("column appears twice in the header", 1, name))
        elif name not in known:
            hint = _closest(name, known)
            problems.append(Problem("unknown column" + (f" (did you mean {hint}?)" if hint else ""), 1, name))
        else:
            columns[name] = index
    for name in REQUIRED:
        if name not in columns and name not in LEGACY_OPTIONAL:
            problems.append(Problem("required column is missing", 1, name))
    return columns


def _closest(name: str, known: set[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name.lower(), sorted(known), n=1, cutoff=0.75)
    return found[0] if found else None


def _port(value: str, line: int, column: str, problems: list[Problem]) -> int | None:
    if not value.isdigit() or not 1 <= int(value) <= 65535:
        problems.append(Problem(f"{value!r} is not a port number (1-65535)", line, column))
        return None
    return int(value)


def _engine(values: dict[str, str], port: int | None, line: int, problems: list[Problem]) -> str | None:
    given = values.get("database_type", "")
    if not given:
        if port is None:
            return None
        inferred = DEFAULT_PORTS.get(port)
        if inferred is None:
            problems.append(Problem(f"no database_type and port {port} is not a default port to infer it "
                                    "from; add a database_type column", line, "database_type"))
            return None
        name = inferred
    else:
        name = ALIASES.get(given.lower().replace(" ", ""), "")
        if not name:
            accepted = "MySQL, MariaDB, PostgreSQL, Postgres"
            problems.append(Problem(f"unknown engine {given!r}; accepted: {accepted}", line, "database_type"))
            return None
    if name in PLANNED:
        problems.append(Problem(f"{PLANNED[name]} is not supported yet", line, "database_type"))
        return None
    return name if name in ENGINES else None


def _secret(values: dict[str, str], column: str, base_dir: Path, line: int,
            problems: list[Problem]) -> Secret | None:
    cell = values.get(column, "")
    if not cell:
        return None
    try:
        return secrets.resolve(cell, base_dir)
    except secrets.ReferenceError_ as exc:
        problems.append(Problem(str(exc), line, column))
        return None


def _key(cell: str, base_dir: Path, line: int, problems: list[Problem]) -> tuple[Path | None, Secret | None]:
    """A key file path, or (from env: or vault:) the private key itself in PEM/OpenSSH text."""
    if not cell:
        return None, None
    if cell.startswith("file:"):
        cell = cell[5:]
    elif secrets.is_reference(cell):
        try:
            value = secrets.resolve(cell, base_dir)
        except secrets.ReferenceError_ as exc:
            problems.append(Problem(str(exc), line, "sql_runner_key_file"))
            return None, None
        if value.reveal().lstrip().startswith("-----BEGIN"):
            return None, value
        cell = value.reveal()
    path = _path(cell, base_dir)
    if not os.access(path, os.R_OK) or not path.is_file():
        problems.append(Problem(f"key file {path} does not exist or is not readable", line, "sql_runner_key_file"))
    return path, None


def _path(cell: str, base_dir: Path) -> Path:
    path = Path(cell).expanduser()
    return path if path.is_absolute() else base_dir / path


def _encoding(values: dict[str, str], default: str, line: int, problems: list[Problem]) -> str | None:
    cell = values.get("encoding", "")
    if not cell:
        return default
    try:
        return scriptfile.codec(cell)
    except scriptfile.EncodingError as exc:
        problems.append(Problem(str(exc), line, "encoding"))
        return None


def _parse_row(line: int, values: dict[str, str], base_dir: Path, problems: list[Problem], default_encoding: str,
               scans: dict[tuple[Path, str], str | None]) -> ManifestRow | None:
    before = len(problems)
    transport = values.get("transport", "").lower() or "ssh"
    if transport in PLANNED_TRANSPORTS:
        problems.append(Problem(f"the {PLANNED_TRANSPORTS[transport]} transport is not supported yet", line,
                                "transport"))
    elif transport not in TRANSPORTS:
        problems.append(Problem(f"unknown transport {transport!r}; accepted: ssh, local", line, "transport"))
    for name, value in values.items():
        if "\x00" in value or "\n" in value or "\r" in value:
            problems.append(Problem("contains a NUL or line break", line, name))
        elif not value and name not in MAY_BE_EMPTY and not (transport == "local" and name in LOCAL_ONLY_OPTIONAL):
            problems.append(Problem("is empty", line, name))
    for column in ("sql_runner_host", "database_host"):
        value = values.get(column, "")
        if value and not HOST.match(value):
            problems.append(Problem(f"{value!r} is not a host name or address", line, column))
    db_port = _port(values["port"], line, "port", problems) if values.get("port") else None
    runner_port = DEFAULT_SSH_PORT
    if values.get("sql_runner_port"):
        runner_port = _port(values["sql_runner_port"], line, "sql_runner_port", problems) or DEFAULT_SSH_PORT
    engine = _engine(values, db_port, line, problems)
    runner_password = _secret(values, "sql_runner_password", base_dir, line, problems)
    db_password = _secret(values, "database_password", base_dir, line, problems)
    key_file, key_data = _key(values.get("sql_runner_key_file", ""), base_dir, line, problems)
    encoding = _encoding(values, default_encoding, line, problems)
    script_cell = values.get("sql_script_to_run", "")
    script = _path(script_cell, base_dir)
    if script_cell:
        if not script.is_file():
            problems.append(Problem(f"script {script_cell} not found (looked at {script})", line,
                                    "sql_script_to_run"))
        elif not os.access(script, os.R_OK):
            problems.append(Problem(f"script {script_cell} is not readable", line, "sql_script_to_run"))
        elif encoding is not None:
            scan = (script, encoding)
            if scan not in scans:
                try:
                    scans[scan] = scriptfile.check(script, encoding)
                except OSError as exc:
                    scans[scan] = f"cannot be read: {exc.strerror}"
            if scans[scan] is not None:
                hint = "" if values.get("encoding") else (
                    "; if the file is in another encoding, declare it in the encoding column or with --script-encoding")
                problems.append(Problem(f"script {script_cell} {scans[scan]}{hint}", line, "sql_script_to_run"))
    flags = {}
    for column in ("repeatable", "single_transaction"):
        value = values.get(column, "").lower()
        if value not in BOOLEANS:
            problems.append(Problem(f"{values[column]!r} is not yes/no/true/false/1/0", line, column))
        flags[column] = BOOLEANS.get(value, False)
    if flags["single_transaction"] and engine and not ENGINES[engine].transactional_ddl:
        problems.append(Problem(f"{ENGINES[engine].display} commits DDL implicitly, so a script cannot run as one "
                                "transaction", line, "single_transaction"))
    if len(problems) > before or engine is None or db_port is None or encoding is None:
        return None
    runner = RunnerSpec(transport, values.get("sql_runner_host", "") if transport != "local" else "localhost",
                        runner_port, values.get("sql_runner_userid", ""), runner_password, key_file, key_data)
    db = DatabaseSpec(engine, values["database_host"], db_port, values["database_userid"], values["database"],
                      db_password)
    script_id = Path(os.path.relpath(script, base_dir)).as_posix()
    return ManifestRow(line, runner, db, script, script_cell, script_id, flags["repeatable"],
                       flags["single_transaction"], encoding)

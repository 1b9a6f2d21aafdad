"""Validating a manifest's rows into typed `ManifestRow`s; every problem is collected, none stops the check."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable
from pathlib import Path

from .. import scriptfile
from ..engines import registry as engines
from ..engines.base import HOST  # a runner's host; a database's host is its engine's to judge (check_host)
from ..engines.registry import Planned
from ..model.durations import parse_duration
from ..model.errors import ManifestError, Problem, UnresolvedReference
from ..model.secret import Secret
from ..model.specs import DEFAULT_SSH_PORT, DatabaseSpec, Manifest, ManifestRow, RunnerSpec
from ..transports import registry as transports
from . import columns as cols
from .references import References, is_reference


def parse(source: str, base_dir: Path, header: list[str], rows: Iterable[tuple[int, list[str]]],
          script_encoding: str = scriptfile.DEFAULT, references: References | None = None, *,
          strict: bool = False) -> Manifest:
    problems: list[Problem] = []
    refs = references or References()
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
        notes.append(f"no database_type column: engines are inferred from the database port ({engines.legacy_ports()})")
    parsed: list[ManifestRow] = []
    seen: dict[tuple[str, ...], int] = {}
    plain: list[int] = []
    for line, cells in rows:
        values = {name: cells[index] if index < len(cells) else "" for name, index in columns.items()}
        if any(values.get(c) and not is_reference(values[c]) for c in cols.PASSWORD_COLUMNS):
            plain.append(line)
        key = tuple(cells)
        if key in seen:
            problems.append(Problem(f"exact duplicate of line {seen[key]}", line))
            continue
        seen[key] = line
        row = _parse_row(line, values, base_dir, problems, default_encoding, scans, refs, strict)
        if row is not None:
            parsed.append(row)
    if problems:
        raise ManifestError(source, problems)
    blank = list(dict.fromkeys(row.script_label for row in parsed if row.blank))
    if blank:
        shown = ", ".join(blank[:5]) + (f" and {len(blank) - 5} more" if len(blank) > 5 else "")
        notes.append(f"{len(blank)} blank script(s) (empty or white space only) are recorded as applied without "
                     f"starting a client: {shown}; --strict refuses them")
    warnings = []
    if plain:
        shown = ", ".join(map(str, plain[:10])) + (", ..." if len(plain) > 10 else "")
        warnings.append(f"plain passwords in the manifest (line{'s' if len(plain) > 1 else ''} {shown}): anyone who "
                        "can read the file has them; use vault:MOUNT/PATH#KEY or env:VAR references instead")
    return Manifest(source, base_dir, parsed, notes, warnings)


def _check_header(header: list[str], problems: list[Problem]) -> dict[str, int]:
    columns: dict[str, int] = {}
    known = cols.known()
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
    for name in cols.REQUIRED:
        if name not in columns and name not in cols.LEGACY_OPTIONAL:
            problems.append(Problem("required column is missing", 1, name))
    return columns


def _closest(name: str, known: set[str]) -> str | None:
    import difflib

    found = difflib.get_close_matches(name.lower(), sorted(known), n=1, cutoff=0.75)
    return found[0] if found else None


def _port(value: str, line: int, column: str, problems: list[Problem]) -> int | None:
    # ASCII digits only: str.isdigit() also takes superscripts (int() then fails) and full-width digits (int()
    # reads them as 3306).
    if not (value.isascii() and value.isdigit() and len(value) <= 5) or not 1 <= int(value) <= 65535:
        problems.append(Problem(f"{value!r} is not a port number (1-65535)", line, column))
        return None
    return int(value)


def _engine(values: dict[str, str], port: int | None, line: int, problems: list[Problem]) -> str | None:
    given = values.get("database_type", "")
    if not given:
        if port is None:
            return None
        found = engines.for_port(port)
        if found is None:
            problems.append(Problem(f"no database_type and port {port} is not a default port to infer it "
                                    "from; add a database_type column", line, "database_type"))
            return None
    else:
        found = engines.find(given)
        if found is None:
            problems.append(Problem(f"unknown engine {given!r}; accepted: {engines.accepted()}", line,
                                    "database_type"))
            return None
    if isinstance(found, Planned):
        problems.append(Problem(f"{found.display} is not supported yet", line, "database_type"))
        return None
    return found.name


def _secret(values: dict[str, str], column: str, base_dir: Path, line: int, problems: list[Problem],
            refs: References) -> Secret | None:
    cell = values.get(column, "")
    if not cell:
        return None
    try:
        return refs.resolve(cell, base_dir)
    except UnresolvedReference as exc:
        problems.append(Problem(str(exc), line, column))
        return None


def _key(cell: str, base_dir: Path, line: int, problems: list[Problem],
         refs: References) -> tuple[Path | None, Secret | None]:
    """A key file path, or (from env: or vault:) the private key itself in PEM/OpenSSH text."""
    if not cell:
        return None, None
    if cell.startswith("file:"):
        cell = cell[5:]
    elif is_reference(cell):
        try:
            value = refs.resolve(cell, base_dir)
        except UnresolvedReference as exc:
            problems.append(Problem(str(exc), line, "sql_runner_key_file"))
            return None, None
        if value.reveal().lstrip().startswith("-----BEGIN"):
            return None, value
        cell = value.reveal()
    path = _path(cell, base_dir)
    if not refs.reads:  # validate --without-secrets: a CI job given no secrets has no key files either
        return path, None
    wrong = _regular_file(path)
    if wrong or not os.access(path, os.R_OK):
        problems.append(Problem(f"key file {path} {wrong or 'is not readable'}", line, "sql_runner_key_file"))
    return path, None


def _path(cell: str, base_dir: Path) -> Path:
    try:
        path = Path(cell).expanduser()
    except RuntimeError:  # ~someone without a home directory: the name as it is
        path = Path(cell)
    return path if path.is_absolute() else base_dir / path


def _regular_file(path: Path) -> str | None:
    """Why the path is not a readable regular file (following symlinks), or None. Never blocks: a FIFO or
    a device is refused by its type, before anything opens it."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "does not exist"
    except (OSError, ValueError) as exc:  # ENAMETOOLONG, ELOOP, ENOTDIR, EACCES; a NUL in the path
        return f"cannot be used: {getattr(exc, 'strerror', None) or exc}"
    if not stat.S_ISREG(mode):
        kind = "a directory" if stat.S_ISDIR(mode) else "a FIFO, socket or device"
        return f"is not a regular file but {kind}"
    return None


def _outside(script: Path) -> str | None:
    """A script that is a symbolic link must point into the folder it sits in (that folder's own links
    followed): a link to /etc/shadow would otherwise be uploaded, and echoed in error output."""
    try:
        written = Path(os.path.normpath(script.absolute()))  # '..' taken as written, links not followed
        resolved, folder = written.resolve(), written.parent.resolve()
    except (OSError, RuntimeError):
        return "cannot be resolved"
    if not resolved.is_relative_to(folder):
        return f"is a symbolic link to {resolved}, outside {folder}: copy the script in instead"
    return None


def _encoding(values: dict[str, str], default: str, line: int, problems: list[Problem]) -> str | None:
    cell = values.get("encoding", "")
    if not cell:
        return default
    try:
        return scriptfile.codec(cell)
    except scriptfile.EncodingError as exc:
        problems.append(Problem(str(exc), line, "encoding"))
        return None


def _timeout(values: dict[str, str], line: int, problems: list[Problem]) -> float | None:
    cell = values.get("script_timeout", "")
    if not cell:
        return None
    try:
        return parse_duration(cell)
    except ValueError as exc:
        problems.append(Problem(str(exc), line, "script_timeout"))
        return None


def _transport(values: dict[str, str], line: int, problems: list[Problem]) -> transports.TransportKind | None:
    name = values.get("transport", "").lower() or transports.default().name
    kind = transports.find(name)
    if kind is not None and not kind.supported:
        problems.append(Problem(f"the {kind.display} transport is not supported yet", line, "transport"))
    elif kind is None:
        accepted = ", ".join(k.name for k in transports.kinds().values() if k.supported)
        problems.append(Problem(f"unknown transport {name!r}; accepted: {accepted}", line, "transport"))
    return kind if kind is not None and kind.supported else None


def _parse_row(line: int, values: dict[str, str], base_dir: Path, problems: list[Problem], default_encoding: str,
               scans: dict[tuple[Path, str], str | None], refs: References, strict: bool = False) -> ManifestRow | None:
    before = len(problems)
    blank = False
    step = values.get("step", "").lower() or "sql"
    if step not in cols.STEPS:
        problems.append(Problem(f"unknown step {values['step']!r}; accepted: {', '.join(cols.STEPS)}", line, "step"))
    kind = _transport(values, line, problems)
    needs_host = kind is None or kind.needs_host
    # A kind that reads its own configuration (SSH) takes the user and port from it when the row leaves them empty.
    configured = kind is not None and kind.login_from_config
    optional_plugin_columns = cols.plugin_columns()  # an engine's or transport's own columns may be empty
    for name, value in values.items():
        if "\x00" in value or "\n" in value or "\r" in value:
            problems.append(Problem("contains a NUL or line break", line, name))
        elif not value and name not in cols.MAY_BE_EMPTY and name not in optional_plugin_columns and not (
                not needs_host and name in cols.HOST_COLUMNS) and not (configured and name == "sql_runner_userid"):
            problems.append(Problem("is empty", line, name))
    runner_host = values.get("sql_runner_host", "")
    if runner_host and not HOST.match(runner_host):
        problems.append(Problem(f"{runner_host!r} is not a host name or address", line, "sql_runner_host"))
    db_port = _port(values["port"], line, "port", problems) if values.get("port") else None
    # Port 0: none given, the kind's configuration (or its default) decides when it connects.
    default_runner_port = 0 if configured else kind.default_port if kind is not None and kind.default_port \
        else DEFAULT_SSH_PORT
    runner_port = default_runner_port
    if values.get("sql_runner_port"):
        runner_port = _port(values["sql_runner_port"], line, "sql_runner_port", problems) or default_runner_port
    engine = _engine(values, db_port, line, problems)
    db_host = values.get("database_host", "")
    if db_host and engine is not None:
        wrong = engines.get(engine).check_host(db_host)
        if wrong:
            problems.append(Problem(wrong, line, "database_host"))
    elif db_host and not HOST.match(db_host):
        problems.append(Problem(f"{db_host!r} is not a host name or address", line, "database_host"))
    runner_password = _secret(values, "sql_runner_password", base_dir, line, problems, refs)
    db_password = _secret(values, "database_password", base_dir, line, problems, refs)
    key_file, key_data = _key(values.get("sql_runner_key_file", ""), base_dir, line, problems, refs)
    encoding = _encoding(values, default_encoding, line, problems)
    if step == "command":  # an executable is copied byte for byte, never read as text
        if values.get("encoding"):
            problems.append(Problem("a command step's file is copied byte for byte: leave encoding empty", line,
                                    "encoding"))
        encoding = scriptfile.RAW
    script_cell = values.get("sql_script_to_run", "")
    script = _path(script_cell, base_dir)
    files = _Files(base_dir, line, problems, scans, bool(values.get("encoding")))
    scanned = files.check(script_cell, "sql_script_to_run", encoding) if script_cell else None
    blank = scanned is scriptfile.BLANK and step == "sql"  # a pause may have no message
    if blank and strict:
        problems.append(Problem(f"script {script_cell} {scriptfile.BLANK} (--strict refuses blank scripts)",
                                line, "sql_script_to_run"))
    verify_cell = values.get("verify_script", "")
    verify = _path(verify_cell, base_dir) if verify_cell else None
    if verify_cell and step != "sql":
        problems.append(Problem(f"a {step} step has no verify script (only sql steps do)", line, "verify_script"))
    elif verify_cell:
        files.check(verify_cell, "verify_script", encoding)
    undo_cell = values.get("undo_script", "")
    undo = _path(undo_cell, base_dir) if undo_cell else None
    if undo_cell and step == "pause":
        problems.append(Problem("a pause has nothing to undo", line, "undo_script"))
    elif undo_cell:
        files.check(undo_cell, "undo_script", encoding)  # a command's undo is an executable too (RAW)
    flags = {}
    for column in ("repeatable", "single_transaction"):
        value = values.get(column, "").lower()
        if value not in cols.BOOLEANS:
            problems.append(Problem(f"{values[column]!r} is not yes/no/true/false/1/0", line, column))
        flags[column] = cols.BOOLEANS.get(value, False)
    db_options = _engine_options(values, engine, line, problems)
    script_timeout = _timeout(values, line, problems)
    if flags["single_transaction"] and step != "sql":
        problems.append(Problem(f"a {step} step is not SQL: it cannot run as one transaction", line,
                                "single_transaction"))
    elif flags["single_transaction"] and engine and not engines.get(engine).transactional_ddl:
        problems.append(Problem(f"{engines.get(engine).display} commits DDL implicitly, so a script cannot run as "
                                "one transaction", line, "single_transaction"))
    if len(problems) > before or engine is None or db_port is None or encoding is None or kind is None:
        return None
    runner_options = tuple((column, values[column]) for column in kind.columns if values.get(column))
    runner = RunnerSpec(kind.name, runner_host if kind.needs_host else "", runner_port if kind.needs_host else 0,
                        values.get("sql_runner_userid", "") if kind.needs_host else "", runner_password, key_file,
                        key_data, runner_options)
    db = DatabaseSpec(engine, db_host, db_port, values["database_userid"], values["database"], db_password,
                      db_options)
    script_id = Path(os.path.relpath(script, base_dir)).as_posix()
    return ManifestRow(line, runner, db, script, script_cell, script_id, flags["repeatable"],
                       flags["single_transaction"], encoding, script_timeout, blank, step, verify,
                       _relative(verify, base_dir), undo, _relative(undo, base_dir))


def _relative(path: Path | None, base_dir: Path) -> str:
    """A file's identity in the ledger: its path relative to the manifest's folder."""
    return "" if path is None else Path(os.path.relpath(path, base_dir)).as_posix()


class _Files:
    """A row's files checked where they are named (a script, a verify script): a readable regular file inside
    its folder, text in its declared encoding; each file read once however many rows name it."""

    def __init__(self, base_dir: Path, line: int, problems: list[Problem], scans: dict[tuple[Path, str], str | None],
                 declared: bool) -> None:
        self.base_dir, self.line, self.problems, self.scans, self.declared = base_dir, line, problems, scans, declared

    def check(self, cell: str, column: str, encoding: str | None) -> str | None:
        """The problem found and listed, `scriptfile.BLANK` for a blank text file (not listed), or None."""
        path = _path(cell, self.base_dir)
        wrong = _regular_file(path)
        if wrong == "does not exist":
            return self._problem(f"script {cell} not found (looked at {path})", column)
        if wrong or (wrong := _outside(path)):
            return self._problem(f"script {cell} {wrong}", column)
        if not os.access(path, os.R_OK):
            return self._problem(f"script {cell} is not readable", column)
        if encoding is None or encoding == scriptfile.RAW:
            return None
        scan = (path, encoding)
        if scan not in self.scans:
            try:
                self.scans[scan] = scriptfile.check(path, encoding)
            except OSError as exc:
                self.scans[scan] = f"cannot be read: {exc.strerror}"
        found = self.scans[scan]
        if found is None or found is scriptfile.BLANK:
            return found
        hint = "" if self.declared else (
            "; if the file is in another encoding, declare it in the encoding column or with --script-encoding")
        return self._problem(f"script {cell} {found}{hint}", column)

    def _problem(self, text: str, column: str) -> str:
        self.problems.append(Problem(text, self.line, column))
        return text


def _engine_options(values: dict[str, str], engine: str | None, line: int,
                    problems: list[Problem]) -> tuple[tuple[str, str], ...]:
    """The cells of columns the row's engine declares; another engine's column set on this row is a problem."""
    declared = {option.column: option for e in engines.engines().values() for option in e.options}
    mine = {option.column for option in engines.get(engine).options} if engine else set()
    found = []
    for column, option in declared.items():
        value = values.get(column, "")
        if not value or engine is None:
            continue
        if column not in mine:
            problems.append(Problem(f"{engines.get(engine).display} does not read this column", line, column))
        elif option.choices and value.lower() not in option.choices:
            problems.append(Problem(f"{value!r} is not one of {', '.join(option.choices)}", line, column))
        elif wrong := engines.get(engine).check_option(column, value):
            problems.append(Problem(wrong, line, column))
        else:
            found.append((column, value))
    return tuple(found)

"""A stub engine over SQLite and a fake transport that plays its client in-process: the real core runs on them.

Both are ordinary plugins, registered through the public registries by a fixture (`installed`) and removed
after the test, with no edit anywhere under `dbupdater/`:

- **StubEngine** ("stubdb", also "stub"): a real `Engine` whose dialect (`SQLiteDialect`) writes SQL that
  Python's sqlite3 runs (json_object, INSERT OR IGNORE, strftime times). Its client is `stubdb`; the password
  reaches it as a variable set from the 0600 credentials file (`Command.env_files`), the script on stdin from
  the copied file, and the ledger's `running` row either in the script's own session (`--before=SQL` plus the
  started marker, like psql's `-c`) or, with `share_session = False`, in a call of its own.
- **FakeTransport** (kind "fake"; needs a runner host, so runners are told apart): renders every command with
  the real `PosixShell` (kept in `Harness.command_lines`: what a runner's process list would show), then plays
  the `stubdb` client. A ledger call (`--ledger`) runs its stdin SQL against the target's SQLite file and
  prints every result row on stdout, tab separated, as `mysql --batch` would (the ledger's JSON rows are one
  column each); an error goes to stderr as `ERROR:  ...` and ends the call with exit 1. A script call reads the
  copied script as directives, one per line (`--` lines and blank lines are ignored):

  ok                      a statement that succeeds
  sql STATEMENT           runs STATEMENT on the target's database, in the script's session
  echo TEXT               TEXT on stdout
  warn TEXT               `WARNING:  TEXT` on stderr: a warning, the script still succeeds
  stderr TEXT             TEXT on stderr as it is: an unexpected line, the script fails even with exit 0
  fail [MESSAGE]          `ERROR:  MESSAGE` on stderr, exit 1; nothing after it runs
  exit STATUS             ends with this raw shell status (127: client missing, 130: killed by SIGINT, ...)
  sleep SECONDS           a statement that takes this long; `interrupt()` cancels it (ERROR, exit 1)
  hang                    a statement that never ends by itself (a safety limit of HANG_LIMIT s fails it)
  ignore-interrupts       from here on `interrupt()` cancels nothing (only the connection closing ends it)
  lose                    this command's channel drops: no exit status (Ending.LOST); the runner stays usable
  lose-runner             the runner goes away: this command is LOST and every later call to it fails
  transport-error         the transport raises TransportError while the script runs
  signal NAME             sets the harness event NAME (to order scripts of different targets)
  wait NAME               waits for the harness event NAME (at most WAIT_LIMIT s, else fails)
  meet NAME N             waits until N scripts are at `meet NAME` at once (a barrier; fails after WAIT_LIMIT s)
  wait-stopped            waits until the run's scheduler starts nothing new (after a failure or a Ctrl-C)
  ctrlc                   the operator presses Ctrl-C: SIGINT to the main thread, once it waits in the run
  sigterm                 the controller gets SIGTERM (main thread), once it waits in the run

  The harness records the order in which scripts began (`ran`), how many ran at once per runner (`peak`),
  every copy (`uploads`), every `interrupt()`, and lets a test break things: unreachable runners, a missing
  client, a refused login, a failing `running` row.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO, Any, TypeVar

from dbupdater.engines import registry as engine_registry
from dbupdater.engines.base import STARTED_MARKER, Delivery, Engine, OutputLog, Severity
from dbupdater.engines.dialect import Dialect
from dbupdater.events import Event
from dbupdater.execution.hooks import RunHook
from dbupdater.execution.options import RunOptions
from dbupdater.model.command import Command, RemoteFile, Result, Signal
from dbupdater.model.outcome import RunResult, Status
from dbupdater.model.specs import DatabaseSpec, Manifest, RunnerSpec
from dbupdater.plan import PlannedRow
from dbupdater.transports import registry as transport_registry
from dbupdater.transports.base import LineSplitter, OutputHandler, Transport, TransportError
from dbupdater.transports.registry import TransportKind
from dbupdater.transports.shells import PosixShell

from ..conftest import write_manifest

DB_HOST = "db1"
DB_PORT = 7000
RUNNER_USER = "deploy"
PASSWORD = "Stub-pw'$(id);\"x"  # a plain manifest password: it must never reach a command line
PASSWORD_VARIABLE = "STUBDB_PASSWORD"
WAIT_LIMIT = 5.0
HANG_LIMIT = 10.0
NO_STATUS = -1  # what a transport hands the shell when no exit status came back
NOW = "strftime('%Y-%m-%d %H:%M:%f', 'now')"
T = TypeVar("T")


# --- the stub engine --------------------------------------------------------------------------------------------


class SQLiteDialect(Dialect):
    """The ledger's SQL for SQLite: times as 'YYYY-MM-DD HH:MM:SS.SSS' UTC text, which sorts as it compares.

    A history schema (`--history-schema`) is not supported: SQLite would need an ATTACHed database.
    """

    now = NOW
    session_charset = "UTF-8"
    session_charset_sql = "(SELECT encoding FROM pragma_encoding)"
    missing_table = re.compile(r"no such table")

    def ident(self, name: str) -> str:
        return '"' + name.replace('"', '""') + '"'

    def literal_text(self, value: str) -> str:
        return "'" + value.replace("'", "''") + "'"  # SQLite has no backslash escapes

    def plus_seconds(self, expression: str, seconds: int) -> str:
        return f"strftime('%Y-%m-%d %H:%M:%f', {expression}, '{int(seconds):+d} seconds')"

    def duration_ms(self, since: str) -> str:
        return f"CAST(ROUND((julianday({self.now}) - julianday({since})) * 86400000) AS INTEGER)"

    def text_time(self, expression: str) -> str:
        return f"strftime('%Y-%m-%d %H:%M:%S', {expression})"

    def json_row(self, fields: dict[str, str]) -> str:
        return "json_object(" + ", ".join(f"'{key}', {value}" for key, value in fields.items()) + ")"

    def insert_ignore(self, table: str, values: dict[str, str]) -> str:
        return f"INSERT OR IGNORE INTO {table} ({', '.join(values)}) VALUES ({', '.join(values.values())});"

    def insert_ignore_where(self, table: str, values: dict[str, str], condition: str) -> str:
        return (f"INSERT OR IGNORE INTO {table} ({', '.join(values)}) SELECT {', '.join(values.values())} "
                f"WHERE {condition};")

    def upgrades(self, history: str, lock: str) -> dict[int, tuple[str, ...]]:
        return {3: (f"ALTER TABLE {history} ADD COLUMN db_session TEXT NULL;",
                    f"ALTER TABLE {history} ADD COLUMN db_user TEXT NULL;")}

    def table_missing(self, schema: str | None, name: str) -> str:
        master = f"{self.ident(schema)}.sqlite_master" if schema else "sqlite_master"
        return f"NOT EXISTS (SELECT 1 FROM {master} WHERE type = 'table' AND name = {self.literal(name)})"

    def create_tables(self, schema: str | None, history: str, lock: str, versions: str,
                      before_history: str = "") -> str:
        return f"""
CREATE TABLE IF NOT EXISTS {versions} (
  version INTEGER PRIMARY KEY,
  applied_at TEXT NOT NULL DEFAULT ({NOW}),
  tool_version TEXT NULL
);
{before_history}
CREATE TABLE IF NOT EXISTS {history} (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  script TEXT NOT NULL,
  checksum TEXT NOT NULL,
  checksum_version INTEGER NOT NULL,
  status TEXT NOT NULL,
  started_at TEXT NOT NULL DEFAULT ({NOW}),
  finished_at TEXT NULL,
  duration_ms INTEGER NULL,
  runner_host TEXT NULL,
  os_user TEXT NULL,
  tool_version TEXT NULL,
  run_id TEXT NOT NULL,
  note TEXT NULL,
  db_session TEXT NULL,
  db_user TEXT NULL
);
CREATE INDEX IF NOT EXISTS dbupdater_history_script ON {history} (script);
CREATE TABLE IF NOT EXISTS {lock} (
  name TEXT PRIMARY KEY,
  run_id TEXT NOT NULL,
  host TEXT NULL,
  pid INTEGER NULL,
  os_user TEXT NULL,
  acquired_at TEXT NOT NULL DEFAULT ({NOW}),
  heartbeat_at TEXT NOT NULL DEFAULT ({NOW}),
  expires_at TEXT NOT NULL DEFAULT ({NOW})
);
"""


class StubEngine(Engine):
    name = "stubdb"
    display = "StubDB"
    display_names = ("StubDB",)
    aliases = ("stub",)
    default_port = DB_PORT
    client = "stubdb"
    dialect = SQLiteDialect()
    credentials_via = Delivery.ENV_FROM_FILE
    transactional_ddl = True

    def __init__(self, *, share_session: bool = True) -> None:
        self.share_session = share_session

    def credentials(self, db: DatabaseSpec) -> bytes:
        return ((db.password.reveal() if db.password else "") + "\n").encode("utf-8")

    def _argv(self, db: DatabaseSpec, *options: str) -> tuple[str, ...]:
        return (self.client, f"--host={db.host}", f"--port={db.port}", f"--user={db.user}",
                f"--database={db.database}", f"--charset={self.dialect.session_charset}", *options)

    def _command(self, argv: tuple[str, ...], credentials_path: str, **extra: Any) -> Command:
        return Command(argv, env=(("STUBDB_APPNAME", "dbupdater"),),
                       env_files=((PASSWORD_VARIABLE, credentials_path),), **extra)

    def command(self, db: DatabaseSpec, script_path: str, credentials_path: str, *,
                single_transaction: bool = False, before: str = "") -> Command:
        options = ["--single-transaction"] if single_transaction else []
        if before:
            options.append(f"--before={before}")
        return self._command(self._argv(db, *options), credentials_path, stdin=(RemoteFile(script_path),),
                             started_marker=STARTED_MARKER if before else None)

    def shares_session(self, single_transaction: bool) -> bool:
        return self.share_session and not single_transaction

    def ledger_command(self, db: DatabaseSpec, credentials_path: str) -> Command:
        return self._command(self._argv(db, "--ledger"), credentials_path)

    def classify_stderr(self, line: str, previous: Severity | None) -> Severity:
        if not line.strip():
            return previous or Severity.INFO
        if line.startswith(("ERROR:", "FATAL:")):
            return Severity.ERROR
        if line.startswith(("WARNING:", "NOTICE:")):
            return Severity.WARNING
        return Severity.ERROR

    def judge(self, result: Result, log: OutputLog) -> tuple[Status, str]:
        if result.exit_code() == 2:
            return Status.UNREACHABLE, "cannot connect to or log in to the database"
        return self.judge_exit(result, log)


# --- the fake transport -----------------------------------------------------------------------------------------


def split_statements(sql: str) -> Iterator[str]:
    """SQL text as single statements, the way a client reads its input (quotes and triggers respected)."""
    buffer = ""
    for piece in sql.split(";"):
        buffer += piece + ";"
        if sqlite3.complete_statement(buffer):
            if buffer.strip(" \t\r\n;"):
                yield buffer
            buffer = ""
    if buffer.strip(" \t\r\n;"):
        yield buffer


@dataclass(eq=False)
class _Call:
    """One command running on a fake runner."""

    command: Command | None = None
    interrupted: bool = False
    lost: bool = False
    wake: threading.Event = field(default_factory=threading.Event)


class FakeTransport(Transport):
    shell = PosixShell()

    def __init__(self, harness: Harness, spec: RunnerSpec) -> None:
        self.harness = harness
        self.spec = spec
        self.label = spec.label
        self.dead = False
        self.closed = False
        self.dirs: list[Path] = []
        self._guard = threading.Lock()
        self._running: set[_Call] = set()

    def _usable(self) -> None:
        if self.dead or self.closed:
            raise TransportError(f"runner {self.label} went away: the connection is closed")

    def _inside(self, remote: str) -> Path:
        path = Path(remote)
        if not any(path.parent == directory for directory in self.dirs):
            raise TransportError(f"{remote} is not in a private directory of {self.label}")
        return path

    def run(self, command: Command, on_output: OutputHandler) -> Result:
        line, _ = self.shell.render(command)  # what the runner's shell would get, for the record
        self.harness.record_command(self.label, line)
        self._usable()
        call = _Call(command)
        with self._guard:
            self._running.add(call)
        out, err = LineSplitter("stdout", on_output), LineSplitter("stderr", on_output)
        try:
            status = _Client(self.harness, self, call, out, err).run(command)
        finally:
            out.close()
            err.close()
            with self._guard:
                self._running.discard(call)
        return self.shell.interpret(status)

    def interrupt(self, command: Command | None = None, signal: Signal = Signal.INT) -> None:
        with self._guard:
            calls = [call for call in self._running if command is None or call.command is command]
        self.harness.count_interrupt(self.label)
        for call in calls:
            call.interrupted = True
            call.wake.set()

    def put_stream(self, source: IO[bytes], size: int, remote: str, name: str) -> None:
        self._usable()
        fd = os.open(self._inside(remote), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            shutil.copyfileobj(source, handle)
        self.harness.record_upload(self.label, remote, name)

    def put_bytes(self, data: bytes, remote: str) -> None:
        self._usable()
        fd = os.open(self._inside(remote), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

    def get(self, remote: str, local: Path) -> None:
        self._usable()
        fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as target, self._inside(remote).open("rb") as source:
            shutil.copyfileobj(source, target)

    def make_private_dir(self) -> str:
        self._usable()
        root = self.harness.root / "runners" / self.spec.host
        root.mkdir(parents=True, exist_ok=True)
        path = Path(tempfile.mkdtemp(prefix="dbupdater.", dir=root))  # 0700, as mktemp -d makes it
        self.dirs.append(path)
        self.harness.record_private_dir(path)
        return str(path)

    def remove(self, *paths: str) -> None:
        self._usable()
        for remote in paths:
            path = Path(remote)
            if path in self.dirs:
                shutil.rmtree(path)
            else:
                self._inside(remote).unlink(missing_ok=True)

    def close(self) -> None:
        self.closed = True
        with self._guard:
            calls = list(self._running)
        for call in calls:  # the connection is gone: what still runs reports no exit status
            call.lost = True
            call.wake.set()


class _Client:
    """The `stubdb` client, run in-process for one command on a fake runner."""

    def __init__(self, harness: Harness, transport: FakeTransport, call: _Call, out: LineSplitter,
                 err: LineSplitter) -> None:
        self.harness = harness
        self.transport = transport
        self.call = call
        self._out = out
        self._err = err

    def out(self, text: str) -> None:
        self._out.feed((text + "\n").encode("utf-8"))

    def err(self, text: str) -> None:
        self._err.feed((text + "\n").encode("utf-8"))

    def run(self, command: Command) -> int:
        h = self.harness
        program = command.argv[0]
        if program != StubEngine.client or program in h.missing_clients:
            self.err(f"sh: 1: {program}: not found")
            return 127
        options: dict[str, str] = {}
        for argument in command.argv[1:]:
            name, _, value = argument.removeprefix("--").partition("=")
            options[name] = value
        env = dict(command.env)
        for name, path in command.env_files:  # as the shell's NAME="$(cat -- path)" would
            env[name] = Path(path).read_text(encoding="utf-8").rstrip("\n")
        database = options["database"]
        expected = h.passwords.get(database)
        if database in h.refuse_login or (expected is not None and env.get(PASSWORD_VARIABLE) != expected):
            self.err(f'FATAL:  password authentication failed for user "{options["user"]}"')
            return 2
        stdin = b"".join(part if isinstance(part, bytes) else Path(part.path).read_bytes() for part in command.stdin)
        connection = h.connect_database(database, options["host"], int(options["port"]))
        try:
            if "ledger" in options:
                return self.ledger(connection, stdin.decode("utf-8"))
            script = command.stdin[0]
            assert isinstance(script, RemoteFile), command
            return self.script(connection, command, options, h.script_name(script.path), stdin.decode("utf-8"))
        finally:
            connection.close()

    def ledger(self, connection: sqlite3.Connection, sql: str) -> int:
        for statement in split_statements(sql):
            try:
                rows = connection.execute(statement).fetchall()
            except sqlite3.Error as exc:
                self.err(f"ERROR:  {exc}")
                return 1
            for row in rows:
                self.out("\t".join("NULL" if value is None else str(value) for value in row))
        return 0

    def script(self, connection: sqlite3.Connection, command: Command, options: dict[str, str], name: str,
               text: str) -> int:
        h = self.harness
        database = options["database"]
        with h.running(self.transport.label):
            if "before" in options:
                if name in h.fail_before:
                    self.err("ERROR:  could not write the history row (simulated)")
                    return 2
                for statement in split_statements(options["before"]):
                    try:
                        connection.execute(statement)
                    except sqlite3.Error as exc:
                        self.err(f"ERROR:  {exc}")
                        return 2
                assert command.started_marker is not None
                self.out(command.started_marker)
            h.record_start(database, name)
            single = "single-transaction" in options
            if single:
                connection.execute("BEGIN")
            status = self.directives(connection, text)
            if single:
                connection.execute("COMMIT" if status == 0 else "ROLLBACK")
            return status

    def directives(self, connection: sqlite3.Connection, text: str) -> int:
        h = self.harness
        ignoring = False
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("--"):
                continue
            word, _, rest = line.partition(" ")
            rest = rest.strip()
            ended: int | None = None
            if word == "ok":
                pass
            elif word == "sql":
                try:
                    connection.execute(rest)
                except sqlite3.Error as exc:
                    self.err(f"ERROR:  {exc}")
                    return 1
            elif word == "echo":
                self.out(rest)
            elif word == "warn":
                self.err(f"WARNING:  {rest}")
            elif word == "stderr":
                self.err(rest)
            elif word == "fail":
                self.err(f"ERROR:  {rest or 'the script failed'}")
                return 1
            elif word == "exit":
                return int(rest)
            elif word in ("sleep", "hang"):
                ended = self.pause(float(rest) if word == "sleep" else None, ignoring)
            elif word == "ignore-interrupts":
                ignoring = True
            elif word == "lose":
                return NO_STATUS
            elif word == "lose-runner":
                self.transport.dead = True
                return NO_STATUS
            elif word == "transport-error":
                raise TransportError(f"runner {self.transport.label} went away: the fake connection failed")
            elif word == "signal":
                h.event(rest).set()
            elif word == "wait":
                if not h.event(rest).wait(WAIT_LIMIT):
                    self.err(f"ERROR:  fake: gave up waiting for {rest}")
                    return 1
            elif word == "meet":
                name, _, parties = rest.partition(" ")
                try:
                    h.barrier(name, int(parties)).wait(WAIT_LIMIT)
                except threading.BrokenBarrierError:
                    self.err(f"ERROR:  fake: fewer than {parties} scripts met at {name}")
                    return 1
            elif word == "wait-stopped":
                if not h.wait_until_stopped():
                    self.err("ERROR:  fake: the run never stopped starting scripts")
                    return 1
            elif word == "ctrlc":
                h.press(signal.SIGINT)
            elif word == "sigterm":
                h.press(signal.SIGTERM)
            else:
                self.err(f"ERROR:  fake: unknown directive {word!r}")
                return 1
            if ended is not None:
                return ended
        return 0

    def pause(self, seconds: float | None, ignoring: bool) -> int | None:
        """A statement taking `seconds` (None: forever): None when it completed, else how the client ended."""
        call = self.call
        deadline = time.monotonic() + (HANG_LIMIT if seconds is None else seconds)
        while True:
            if call.lost or self.harness.abort.is_set():
                return NO_STATUS
            if call.interrupted and not ignoring:
                self.err("ERROR:  canceling statement due to user request")
                return 1
            left = deadline - time.monotonic()
            if left <= 0:
                if seconds is None:
                    self.err(f"ERROR:  fake: still hanging after {HANG_LIMIT:g}s")
                    return 1
                return None
            call.wake.wait(min(left, 0.1))
            if ignoring and not call.lost:
                call.wake.clear()


class FakeKind(TransportKind):
    name = "fake"
    display = "fake runner"
    needs_host = True

    def __init__(self, harness: Harness) -> None:
        self.harness = harness

    def open(self, spec: RunnerSpec, options: Any) -> Transport:
        return self.harness.open_transport(spec)


# --- the harness: what a test sees and controls -----------------------------------------------------------------


class Harness:
    def __init__(self, root: Path, engine: StubEngine | None = None) -> None:
        self.root = root
        self.root.mkdir(parents=True, exist_ok=True)
        self.engine = engine or StubEngine()
        self.lock = threading.Lock()
        self.ran: list[tuple[str, str]] = []  # (database, script) as each script began
        self.command_lines: list[tuple[str, str]] = []  # (runner, rendered command line)
        self.uploads: list[tuple[str, str]] = []  # (runner, script file name) per copy
        self.upload_names: dict[str, str] = {}  # remote path -> script file name
        self.private_dirs: list[Path] = []
        self.transports: list[FakeTransport] = []
        self.interrupts: dict[str, int] = defaultdict(int)  # runner -> interrupt() calls
        self.active: dict[str, int] = defaultdict(int)  # runner -> scripts running now
        self.peak: dict[str, int] = defaultdict(int)  # runner -> most scripts running at once
        self.peak_total = 0
        self.active_total = 0
        self.unreachable_runners: set[str] = set()
        self.missing_clients: set[str] = set()
        self.refuse_login: set[str] = set()  # database names
        self.passwords: dict[str, str] = {}  # database -> the only password it accepts
        self.fail_before: set[str] = set()  # script names whose `running` row, written in their session, fails
        self.abort = threading.Event()
        self.interrupted_frames: list[FrameType] = []
        self._events: dict[str, threading.Event] = defaultdict(threading.Event)
        self._barriers: dict[str, threading.Barrier] = {}

    # --- recording ---

    def record_command(self, runner: str, line: str) -> None:
        with self.lock:
            self.command_lines.append((runner, line))

    def record_upload(self, runner: str, remote: str, name: str) -> None:
        with self.lock:
            self.uploads.append((runner, name))
            self.upload_names[remote] = name

    def record_private_dir(self, path: Path) -> None:
        with self.lock:
            self.private_dirs.append(path)

    def record_start(self, database: str, script: str) -> None:
        with self.lock:
            self.ran.append((database, script))

    def count_interrupt(self, runner: str) -> None:
        with self.lock:
            self.interrupts[runner] += 1

    def script_name(self, remote: str) -> str:
        with self.lock:
            return self.upload_names.get(remote, Path(remote).name)

    @contextlib.contextmanager
    def running(self, runner: str) -> Iterator[None]:
        with self.lock:
            self.active[runner] += 1
            self.active_total += 1
            self.peak[runner] = max(self.peak[runner], self.active[runner])
            self.peak_total = max(self.peak_total, self.active_total)
        try:
            yield
        finally:
            with self.lock:
                self.active[runner] -= 1
                self.active_total -= 1

    def ran_on(self, database: str) -> list[str]:
        with self.lock:
            return [script for db, script in self.ran if db == database]

    def leftover_dirs(self) -> list[Path]:
        return [path for path in self.private_dirs if path.exists()]

    # --- runners and databases ---

    def open_transport(self, spec: RunnerSpec) -> FakeTransport:
        if spec.host in self.unreachable_runners:
            raise TransportError(f"runner {spec.label} unreachable: Connection refused")
        transport = FakeTransport(self, spec)
        with self.lock:
            self.transports.append(transport)
        return transport

    def database_path(self, database: str, host: str = DB_HOST, port: int = DB_PORT) -> Path:
        digest = hashlib.sha256(f"{host}\0{port}\0{database}".encode()).hexdigest()[:12]
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", database)[:40]
        return self.root / "databases" / f"{safe}-{digest}.sqlite"

    def connect_database(self, database: str, host: str = DB_HOST, port: int = DB_PORT) -> sqlite3.Connection:
        path = self.database_path(database, host, port)
        path.parent.mkdir(parents=True, exist_ok=True)
        return sqlite3.connect(path, timeout=WAIT_LIMIT, isolation_level=None, check_same_thread=False)

    def query(self, database: str, sql: str) -> list[tuple[Any, ...]]:
        connection = self.connect_database(database)
        try:
            return connection.execute(sql).fetchall()
        finally:
            connection.close()

    def tables(self, database: str) -> set[str]:
        return {name for (name,) in self.query(database, "SELECT name FROM sqlite_master WHERE type = 'table'")}

    def history(self, database: str) -> list[tuple[str, str]]:
        if "dbupdater_history" not in self.tables(database):
            return []
        return [(script, status) for script, status in
                self.query(database, "SELECT script, status FROM dbupdater_history ORDER BY id")]

    def expire_lock(self, database: str) -> None:
        """Time passes: a lock left by a run that died is past its lease."""
        self.query(database, "UPDATE dbupdater_lock SET expires_at = '2000-01-01 00:00:00.000'")

    # --- synchronisation ---

    def event(self, name: str) -> threading.Event:
        with self.lock:
            return self._events[name]

    def barrier(self, name: str, parties: int) -> threading.Barrier:
        with self.lock:
            return self._barriers.setdefault(name, threading.Barrier(parties))

    def wait_until_stopped(self) -> bool:
        """From a script's thread: until the run's scheduler starts nothing new (found on this thread's stack,
        in the executor's walk that called the transport; the run announces no such moment itself)."""
        executor = _caller_self("walk", "executor.py")
        if executor is None:
            return False
        deadline = time.monotonic() + WAIT_LIMIT
        while not executor.scheduler.stopped:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    def on_sigint(self, signum: int, frame: FrameType | None) -> None:
        """The SIGINT handler tests install (Python's own, plus a note of where it landed)."""
        if frame is not None:
            self.interrupted_frames.append(frame)
        raise KeyboardInterrupt

    def press(self, sig: signal.Signals, *, in_executor: bool = True) -> None:
        """A signal to the controller, as a terminal or CI sends it: to the main thread, once it waits for the
        run's scripts in the scheduler (and, after an earlier Ctrl-C, has gone back to waiting). A SIGINT
        returns once it was handled. `in_executor=False`: any Scheduler.run will do (a scheduler's own test)."""
        deadline = time.monotonic() + WAIT_LIMIT
        while not self._main_waits_in_run(in_executor):
            if time.monotonic() > deadline:
                raise AssertionError("the main thread never waited for the run's scripts")
            time.sleep(0.002)
        main = threading.main_thread().ident
        assert main is not None
        delivered = len(self.interrupted_frames)
        signal.pthread_kill(main, sig)
        # Signals pending at once are handled once: a second Ctrl-C waits until the first one landed.
        while sig == signal.SIGINT and len(self.interrupted_frames) == delivered:
            if time.monotonic() > deadline:
                raise AssertionError("SIGINT never reached the handler tests install (see conftest.harness)")
            time.sleep(0.002)

    def _main_waits_in_run(self, in_executor: bool) -> bool:
        frame = sys._current_frames().get(threading.main_thread().ident or 0)
        if frame is None or frame.f_code.co_name != "wait" or not frame.f_code.co_filename.endswith("threading.py"):
            return False
        if any(frame is seen for seen in self.interrupted_frames):
            return False  # still in the wait the last signal interrupted
        scheduler = frame.f_back
        if scheduler is None or (scheduler.f_code.co_name, Path(scheduler.f_code.co_filename).name) != (
                "run", "scheduler.py"):
            return False
        executor = scheduler.f_back
        return not in_executor or (executor is not None and (
            executor.f_code.co_name, Path(executor.f_code.co_filename).name) == ("run", "executor.py"))

    def settle(self) -> None:
        """Wait until no script runs on any fake runner (after a run that left some behind)."""
        deadline = time.monotonic() + WAIT_LIMIT
        while self.active_total and time.monotonic() < deadline:
            time.sleep(0.005)

    def close(self) -> None:
        self.abort.set()
        for barrier in list(self._barriers.values()):
            barrier.abort()
        self.settle()
        self.interrupted_frames.clear()


def _caller_self(function: str, filename: str) -> Any:
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == function and Path(frame.f_code.co_filename).name == filename:
            return frame.f_locals.get("self")
        frame = frame.f_back
    return None


# --- registration -----------------------------------------------------------------------------------------------


@contextlib.contextmanager
def installed(harness: Harness) -> Iterator[Harness]:
    """The stub engine and the fake transport kind in the registries while the block runs."""
    engine_registry.engines()  # the real plugins first, as a run would find them
    transport_registry.kinds()
    engine_registry.register(harness.engine)
    try:
        transport_registry.register(FakeKind(harness))
        try:
            yield harness
        finally:
            transport_registry.unregister(FakeKind.name)
    finally:
        engine_registry.unregister(harness.engine.name)


# --- a repository with a manifest, and a reporter that keeps every event -----------------------------------------

HEADER = ["sql_runner_host", "sql_runner_userid", "sql_runner_password", "database_type", "database_host",
          "database_userid", "database_password", "port", "database", "sql_script_to_run", "transport",
          "repeatable", "single_transaction"]


@dataclass
class Repo:
    """A folder with a manifest of stubdb rows on fake runners, and its scripts."""

    dir: Path
    rows: list[dict[str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def script(self, name: str, *directives: str) -> str:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in directives), encoding="utf-8")
        return name

    def row(self, database: str, script: str, runner: str = "runner1", **cells: str) -> None:
        self.rows.append({
            "sql_runner_host": runner, "sql_runner_userid": RUNNER_USER, "sql_runner_password": "",
            "database_type": StubEngine.display, "database_host": DB_HOST, "database_userid": "app",
            "database_password": PASSWORD, "port": str(DB_PORT), "database": database, "sql_script_to_run": script,
            "transport": FakeKind.name, **cells,
        })

    def write(self, name: str = "manifest.csv", header: list[str] | None = None) -> Path:
        return write_manifest(self.dir / name, header or HEADER, self.rows)

    def load(self) -> Manifest:
        from dbupdater.manifest import load

        return load(self.write())


class RecordingReporter:
    """Every event, in order (events come from worker threads too)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._lock = threading.Lock()

    def handle(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: type[T]) -> list[T]:
        with self._lock:
            return [event for event in self.events if isinstance(event, kind)]


def walk(manifest: Manifest, options: RunOptions, reporter: Any, hooks: Iterable[RunHook] = (),
         command: str = "apply") -> tuple[list[PlannedRow], RunResult]:
    """One run's plan and result through the Run, with the apply kind of step (no after-hooks, no RunFinished)."""
    from dbupdater.execution.kinds import every_row
    from dbupdater.execution.run import Invocation, Run
    from dbupdater.steps import ExecStep, ScriptStep

    kind = ExecStep() if command == "exec" else ScriptStep()
    return Run(manifest, Invocation(command), options, reporter, every_row(kind), hooks).walk()

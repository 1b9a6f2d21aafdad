"""How the conformance suite reaches each registered engine: its peer.

A peer opens a fresh database for one test, writes scripts in its engine's SQL that leave a mark, fail, warn
or store text, and observes what happened. Two kinds:

- `RigPeer`: the rig's real server (MariaDB for `mysql`, PostgreSQL), reached by the rig's first runner over
  SSH with the real native client. Everything is observed in the server.
- `ReplayPeer`: no server can run here (Oracle, SQL Server). A replay client from tests/replay/ goes first on
  the rig's runners' PATH for the test and answers with recorded real outputs of ../shared/clients/samples;
  it records what it was given, which is what the suite observes. It keeps no tables, so it cannot hold the
  ledger: the peer says so (`limits()`), and those cases are skipped with that reason.

An engine registered without a peer fails the suite (`missing_peer`): add one to `PEERS` below.
"""

from __future__ import annotations

import abc
import contextlib
import enum
import hashlib
import json
import re
import secrets
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, NamedTuple

import pytest

from dbupdater.engines import registry
from environment_creators.info import RigInfo
from environment_creators.rig import Rig

from ..conftest import HEADER, ROOT, Target, Workspace, new_target, write_manifest

SAMPLES = ROOT.parent / "shared" / "clients" / "samples"
REPLAYS = ROOT / "tests" / "replay"
MARK = re.compile(r"INSERT INTO cf_marks \(name\) VALUES \('([^']*)'\)")
TEXT_ROW = re.compile(r"INSERT INTO cf_text \(id, v\) VALUES \(1, '([^']*)'\)")
# Where the rig's runners look for programs besides the replay bin (sshd's SetEnv PATH, environment_creators).
RUNNER_PATH = ("/usr/local/bin", "/usr/bin", "/bin")


class Capability(enum.Enum):
    """What a behaviour needs of a peer beyond running a script through the client."""

    LEDGER = "the ledger (history, plan, drift, in doubt, resolve)"
    SECOND_SESSION = "a second run while the first holds the lock"
    WARNINGS = "a script the client answers with warnings only"


class Expected(NamedTuple):
    """A script and a line of the client's output it must draw."""

    text: str
    shown: str


@dataclass(frozen=True)
class Missing:
    """A manifest row whose runner has no client for the engine: cells to set, the columns they need, and the
    controller's environment for the run."""

    cells: dict[str, str]
    columns: list[str]
    env: dict[str, str] = field(default_factory=dict)


class Database(abc.ABC):
    """One fresh database of a peer, for one test: a folder with a manifest, scripts in the engine's SQL, and
    what can be observed of them."""

    columns: list[str] = HEADER

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rows: list[dict[str, str]] = []

    # --- the manifest ----------------------------------------------------------------------------------------

    def add(self, name: str, text: str, **cells: str) -> Path:
        """A script file and its manifest row (at the end); the file's path."""
        path = self.folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        self.rows.append(self.row(name, **cells))
        return path

    def manifest(self, columns: list[str] | None = None) -> Path:
        return write_manifest(self.folder / "manifest.csv", columns or self.columns, self.rows)

    @abc.abstractmethod
    def row(self, script: str, **cells: str) -> dict[str, str]:
        """A manifest row running `script` on this database through the peer's runner."""

    @property
    def secrets(self) -> list[str]:
        """Values no output may show besides the rig's own (conftest.secret_values)."""
        return []

    # --- scripts in the engine's SQL -------------------------------------------------------------------------

    @abc.abstractmethod
    def mark(self, name: str) -> str:
        """A script that succeeds and leaves the mark `name` where `marks()` sees it."""

    @abc.abstractmethod
    def failing(self) -> Expected:
        """A script that fails with an error of the server or the client, and the error line it shows."""

    def warning(self) -> Expected:
        """A script that draws warnings only (it succeeds), and a warning line it shows."""
        raise NotImplementedError(Capability.WARNINGS)

    @abc.abstractmethod
    def store_text(self, text: str) -> str:
        """A script that stores `text` where `stored_text()` finds it."""

    def gate(self) -> str:
        """A script that waits until `open_gate()` (in the server), then succeeds."""
        raise NotImplementedError(Capability.SECOND_SESSION)

    def open_gate(self) -> None:
        raise NotImplementedError(Capability.SECOND_SESSION)

    # --- observations ----------------------------------------------------------------------------------------

    @abc.abstractmethod
    def marks(self) -> list[str]:
        """The marks the scripts left, in the order they ran, once per run of a script."""

    @abc.abstractmethod
    def stored_text(self) -> str:
        """The text `store_text` stored, as far as the peer can follow it (decoded strictly as UTF-8)."""

    @abc.abstractmethod
    def ledger_traces(self) -> list[str]:
        """Anything the ledger left or asked for (tables in the server, calls to the client): none after `exec`."""

    def history(self) -> list[tuple[str, str, str]]:
        """(script, status, checksum) of every history row, oldest first."""
        raise NotImplementedError(Capability.LEDGER)

    def stage_running(self, script: str) -> None:
        """Leave `script` `running` in the history, as a run killed mid-script would."""
        raise NotImplementedError(Capability.LEDGER)

    @abc.abstractmethod
    def client_missing(self) -> contextlib.AbstractContextManager[Missing]:
        """While open, a row with these cells reaches a runner on which the engine's client is not installed."""


class Peer(abc.ABC):
    """How tests reach one registered engine."""

    engine: str  # the registry's name
    reached: str  # in words, for reports and skip reasons

    @abc.abstractmethod
    def database(self, rig: Rig, info: RigInfo, folder: Path) -> contextlib.AbstractContextManager[Database]:
        """A fresh database for one test, gone afterwards."""

    def limits(self) -> Mapping[Capability, str]:
        """What this peer cannot honour, each with the reason (the cases that need it are skipped with it)."""
        return {}

    def why_not(self, capability: Capability) -> str | None:
        reason = self.limits().get(capability)
        return None if reason is None else f"{self.reached} cannot offer {capability.value}: {reason}"


# --- the rig's servers ----------------------------------------------------------------------------------------


class RigDatabase(Database):
    def __init__(self, folder: Path, rig: Rig, info: RigInfo, target: Target) -> None:
        super().__init__(folder)
        self.rig, self.info, self.target = rig, info, target
        self.mysql = target.engine == "mysql"
        auto = "INT AUTO_INCREMENT" if self.mysql else "SERIAL"
        # As the app user, who runs the scripts (PostgreSQL: a table the admin made would not be the app's).
        self.as_app(f"CREATE TABLE cf_marks (id {auto} PRIMARY KEY, name VARCHAR(100) NOT NULL);\n"
                    "CREATE TABLE cf_gate (n INT);\n")

    def as_app(self, sql: str) -> str:
        if self.mysql:
            return self.rig.mysql_exec(sql, self.target.name, admin=False)
        return self.rig.psql_exec(sql, self.target.name, admin=False)

    def row(self, script: str, **cells: str) -> dict[str, str]:
        return Workspace(self.folder, self.info).row(self.target, script, 1, **cells)

    def mark(self, name: str) -> str:
        return f"INSERT INTO cf_marks (name) VALUES ('{name}');\n"

    def failing(self) -> Expected:
        shown = "ERROR 1064 (42000) at line 2" if self.mysql else 'syntax error at or near "SELEC"'
        return Expected("SELECT 1;\nSELEC broken;\n", shown)

    def warning(self) -> Expected:
        return Expected(self.target.warning() + "\n", "Division by 0" if self.mysql else "WARNING:  heads up")

    def store_text(self, text: str) -> str:
        column = "VARCHAR(200) CHARACTER SET utf8mb4" if self.mysql else "TEXT"
        return (f"CREATE TABLE cf_text (id INT PRIMARY KEY, v {column});\n"
                f"INSERT INTO cf_text (id, v) VALUES (1, '{text}');\n")

    def gate(self) -> str:
        # Each poll is a statement of its own, so it sees the row `open_gate` commits.
        if self.mysql:
            return ("DELIMITER //\nBEGIN NOT ATOMIC WHILE (SELECT COUNT(*) FROM cf_gate) = 0 DO DO SLEEP(0.05); "
                    "END WHILE; END //\nDELIMITER ;\n")
        return "DO $$ BEGIN WHILE NOT EXISTS (SELECT 1 FROM cf_gate) LOOP PERFORM pg_sleep(0.05); END LOOP; END $$;\n"

    def open_gate(self) -> None:
        self.as_app("INSERT INTO cf_gate (n) VALUES (1);\n")

    def marks(self) -> list[str]:
        return [name for (name,) in self.target.rows("SELECT name FROM cf_marks ORDER BY id")]

    def stored_text(self) -> str:
        sql = ("SELECT HEX(v) FROM cf_text WHERE id = 1" if self.mysql
               else "SELECT encode(convert_to(v, 'UTF8'), 'hex') FROM cf_text WHERE id = 1")
        ((hexed,),) = self.target.rows(sql)
        return bytes.fromhex(hexed).decode("utf-8")

    def ledger_traces(self) -> list[str]:
        return sorted(table for table in self.target.tables() if table.startswith("dbupdater"))

    def history(self) -> list[tuple[str, str, str]]:
        if "dbupdater_history" not in self.ledger_traces():
            return []  # not opened yet
        rows = self.target.rows("SELECT script, status, checksum FROM dbupdater_history ORDER BY id")
        return [(script, status, checksum) for script, status, checksum in rows]

    def stage_running(self, script: str) -> None:
        """A copy of the script's latest history row, `running`, of a run that is gone."""
        where = "table_schema = DATABASE()" if self.mysql else "table_schema = 'public'"
        names = [name for (name,) in self.target.rows(
            f"SELECT column_name FROM information_schema.columns WHERE {where} "
            "AND table_name = 'dbupdater_history' ORDER BY ordinal_position")]
        changed = {"status": "'running'", "finished_at": "NULL", "duration_ms": "NULL",
                   "run_id": "'conformance-gone'", "note": "NULL"}
        kept = [name for name in names if name != "id"]
        values = ", ".join(changed.get(name, name) for name in kept)
        self.as_app(f"INSERT INTO dbupdater_history ({', '.join(kept)}) SELECT {values} FROM dbupdater_history "
                    f"WHERE id = (SELECT MAX(id) FROM (SELECT id FROM dbupdater_history WHERE script = '{script}') "
                    "AS latest);\n")

    @contextlib.contextmanager
    def client_missing(self) -> Iterator[Missing]:
        # The rig's SSH runners have mysql and psql installed system-wide: the runner without one is this
        # machine itself (transport local) with a PATH that holds no client; the shell's 127 is real.
        yield Missing({"transport": "local", "database_host": "127.0.0.1"}, [*HEADER, "transport"],
                      {"PATH": "/nonexistent"})


class RigPeer(Peer):
    def __init__(self, engine: str, reached: str) -> None:
        self.engine, self.reached = engine, reached

    @contextlib.contextmanager
    def database(self, rig: Rig, info: RigInfo, folder: Path) -> Iterator[Database]:
        target = new_target(rig, info, self.engine, f"cf_{secrets.token_hex(4)}")
        try:
            yield RigDatabase(folder, rig, info, target)
        finally:
            target.drop()


# --- replay clients ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One invocation the replay client recorded: the script it ran (None for a ledger call)."""

    script: bytes | None


class ReplayDatabase(Database):
    """A database name no server holds; the replay client answers for it and records what it was given."""

    def __init__(self, folder: Path, info: RigInfo, peer: ReplayPeer) -> None:
        super().__init__(folder)
        self.info, self.peer = info, peer
        self.bin = Path(info.replay_bin)
        self.logs = Path(tempfile.mkdtemp(prefix=f"dbu-conformance-{peer.client}-"))
        self.logs.chmod(0o1777)  # the runner user writes its records here; sticky: none removes another's
        self.installed: list[Path] = []

    def install(self) -> None:
        self.installed = self.peer.install(self.bin, self.logs)

    def uninstall(self) -> None:
        for path in self.installed:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        self.installed = []

    def close(self) -> None:
        self.uninstall()
        shutil.rmtree(self.logs, ignore_errors=True)

    def row(self, script: str, **cells: str) -> dict[str, str]:
        runner = self.info.runners[0]
        return {"sql_runner_host": runner.host, "sql_runner_userid": self.info.runner_user,
                "sql_runner_password": self.info.runner_password, "sql_runner_port": str(runner.port),
                "sql_runner_key_file": "", **self.peer.cells, "sql_script_to_run": script, **cells}

    @property
    def secrets(self) -> list[str]:
        return [self.peer.cells["database_password"]]

    def mark(self, name: str) -> str:
        return f"INSERT INTO cf_marks (name) VALUES ('{name}');\n{self.peer.batch_end}"

    def failing(self) -> Expected:
        sample, shown = self.peer.failure
        return Expected(f"-- replay: {sample}\nSELECT 1{self.peer.from_dual};\n{self.peer.batch_end}", shown)

    def store_text(self, text: str) -> str:
        return f"INSERT INTO cf_text (id, v) VALUES (1, '{text}');\n{self.peer.batch_end}"

    def scripts(self) -> list[bytes]:
        return [call.script for call in self.peer.calls(self.logs) if call.script is not None]

    def marks(self) -> list[str]:
        found: list[str] = [name for script in self.scripts() for name in MARK.findall(script.decode("utf-8"))]
        return found

    def stored_text(self) -> str:
        # No server: the client's copy of the script is as far as the text can be followed.
        found: list[str] = [text for script in self.scripts() for text in TEXT_ROW.findall(script.decode("utf-8"))]
        assert len(found) == 1, found
        return found[0]

    def ledger_traces(self) -> list[str]:
        return [f"a {self.peer.client} call without a script" for call in self.peer.calls(self.logs)
                if call.script is None]

    @contextlib.contextmanager
    def client_missing(self) -> Iterator[Missing]:
        """Without the replay, the runners have no such client at all."""
        real = [f"{folder}/{self.peer.client}" for folder in RUNNER_PATH if Path(folder, self.peer.client).exists()]
        if real:
            pytest.skip(f"{self.peer.reached}: a real {self.peer.client} is installed on the runners ({real[0]})")
        self.uninstall()
        yield Missing({}, self.columns)


@dataclass(frozen=True)
class Answers:
    """What a replay peer's scripts say: the database's manifest cells (a server no one runs), a recorded
    failing output and a line of it the tool must show, and the warnings-only output no sample holds."""

    cells: dict[str, str]
    failure: tuple[str, str]
    no_warnings: str
    batch_end: str = ""  # what ends a batch (sqlcmd's GO)
    from_dual: str = ""


class ReplayPeer(Peer):
    client: ClassVar[str]

    def __init__(self, engine: str, answers: Answers) -> None:
        self.engine, self.answers = engine, answers
        self.cells, self.failure = answers.cells, answers.failure
        self.batch_end, self.from_dual = answers.batch_end, answers.from_dual
        self.reached = f"{registry.get(engine).display} (replay {self.client} on the rig's SSH runner)"

    def limits(self) -> Mapping[Capability, str]:
        live = (f"the replay {self.client} answers with recorded outputs and keeps no tables, so there is no "
                f"history, lock or plan to read; tests/live/test_live_{self.engine}.py runs this against a real "
                f"server (DBU_LIVE_{self.engine.upper()})")
        return {Capability.LEDGER: live,
                Capability.SECOND_SESSION: f"a second session needs a real server holding the lock; {live}",
                Capability.WARNINGS: f"no recorded {self.client} output of a script with warnings only "
                                     f"({self.answers.no_warnings}) is in ../shared/clients/samples; the verdict on "
                                     f"such lines is checked offline in tests/unit/test_{self.engine}_engine.py"}

    @abc.abstractmethod
    def install(self, bin_dir: Path, logs: Path) -> list[Path]:
        """Put the replay client (and what it reads) into the runners' replay bin; what to remove after."""

    @abc.abstractmethod
    def calls(self, logs: Path) -> list[Call]:
        """The invocations the replay recorded, in order."""

    @contextlib.contextmanager
    def database(self, rig: Rig, info: RigInfo, folder: Path) -> Iterator[Database]:
        if not SAMPLES.is_dir():
            pytest.skip(f"{self.reached}: the recorded outputs the replay answers with are absent ({SAMPLES})")
        database = ReplayDatabase(folder, info, self)
        try:
            database.install()
            yield database
        finally:
            database.close()


def copy_executable(source: Path, target: Path) -> Path:
    shutil.copyfile(source, target)
    target.chmod(0o755)
    return target


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(0o644)
    return path


class SqlplusReplay(ReplayPeer):
    client = "sqlplus"

    def install(self, bin_dir: Path, logs: Path) -> list[Path]:
        samples = bin_dir / "sqlplus-samples"
        shutil.copytree(SAMPLES, samples, dirs_exist_ok=True)
        for path in [samples, *samples.iterdir()]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        return [copy_executable(REPLAYS / "sqlplus", bin_dir / "sqlplus"),
                write_config(bin_dir / "sqlplus.logdir", f"{logs}\n"), samples]

    def calls(self, logs: Path) -> list[Call]:
        found = []
        for call in sorted(logs.glob("call-*"), key=lambda path: int(path.name.split("-")[1])):
            scripts = sorted(call.glob("script*.sql"))
            found.append(Call(scripts[0].read_bytes() if scripts else None))
        return found


class SqlcmdReplay(ReplayPeer):
    client = "sqlcmd"

    def install(self, bin_dir: Path, logs: Path) -> list[Path]:
        config = json.dumps({"log_dir": str(logs), "samples": str(SAMPLES)})
        return [copy_executable(REPLAYS / "sqlcmd", bin_dir / "sqlcmd"), write_config(bin_dir / "sqlcmd.json", config)]

    def calls(self, logs: Path) -> list[Call]:
        found = []
        for record in sorted(logs.glob("*.json"), key=lambda path: int(path.stem)):
            inputs = json.loads(record.read_text(encoding="utf-8"))["inputs"]
            copy = logs / f"{record.stem}-input0.sql"
            found.append(Call(copy.read_bytes() if inputs != ["/dev/stdin"] and copy.exists() else None))
        return found


# --- the registry of peers --------------------------------------------------------------------------------------

PEERS: dict[str, Peer] = {peer.engine: peer for peer in (
    RigPeer("mysql", "MySQL/MariaDB (the rig's MariaDB through its SSH runner)"),
    RigPeer("postgresql", "PostgreSQL (the rig's PostgreSQL through its SSH runner)"),
    SqlplusReplay("oracle", Answers(
        {"database_type": "Oracle", "database_host": "oracle.example", "database_userid": "app",
         "database_password": "cf-Or@'\"$(id);x", "port": "1521", "database": "ORCLPDB1"},
        ("sqlplus-docs-whenever-sqlerror-ora-00904.txt", "ORA-00904"),
        "SP2-0804..0814: '... created with compilation warnings'", from_dual=" FROM dual")),
    SqlcmdReplay("sqlserver", Answers(
        {"database_type": "SQLServer", "database_host": "mssql1.example", "database_userid": "app",
         "database_password": "cf-Sq1'$(id);\"x #z", "port": "1433", "database": "shop"},
        ("sqlcmd-odbc-msg208-stdin-prompts.txt odbc", "Invalid object name 'ORDERLINES'"),
        "a message of level 10 or less, 'Sqlcmd: Warning:'", batch_end="GO\n")),
)}


def peer_for(engine: str, needed: Iterable[Capability] = ()) -> Peer:
    """The engine's peer. Fails the case when there is none; skips it, with the peer's reason, when the peer
    cannot honour what the case needs."""
    found = PEERS.get(engine)
    if found is None:
        pytest.fail(missing_peer(engine), pytrace=False)
    for capability in needed:
        reason = found.why_not(capability)
        if reason is not None:
            pytest.skip(reason)
    return found


def missing_peer(engine: str) -> str:
    return (f"engine {engine!r} is registered but has no conformance peer, so nothing proves it behaves like the "
            "others. Add one to PEERS in tests/conformance/peers.py: a RigPeer if the rig can run its server "
            "(environment_creators/), else a ReplayPeer with a replay client in tests/replay/ answering recorded "
            "real outputs (declare in `limits()`, with the reason, what it cannot honour).")


def sha256(path: Path) -> str:
    """Checksum version 1 of a file without a BOM or CRLF (README: SHA-256 of the content)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()

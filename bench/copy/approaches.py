"""The ways to copy a MySQL database into PostgreSQL, each timed from process start to exit (the floor, copy-db's
own SQL without SSH or the controller, is in floor.py).

- the tool: ``remote_database_updater.py copy-db --from <mysql target> --to <postgresql target> --yes`` with a
  two-row manifest (key auth, passwords as ``file:`` references), run here; its clients run on the runner and the
  rows stream through this process. Its peak RSS (wait4) is the controller's memory.
- pgloader (Debian's package), run *on* the runner (its network namespace, as the runner user), so its network
  path to both servers is the one the tool's clients have; a load file (0600, removed after) holds the two
  connection strings, nothing else: pgloader's defaults (its own workers and concurrency, create tables and
  indexes, foreign keys, reset sequences); and again with ``WITH prefetch rows = 10000``, pgloader's remedy when
  its defaults exhaust its heap (they do on the generated database's rows of a few kB).
- pg_chameleon (PyPI, in its own virtualenv), also on the runner as the runner user, with a private HOME holding
  its configuration (0600). ``create_replica_schema`` and ``add_source`` are set-up (not timed); only
  ``init_replica`` is timed. Its configuration is the shipped example's except where the example cannot work on
  this data: the MySQL connection in utf8mb4 (the example's utf8 is MariaDB's 3-byte utf8mb3 and turns 4-byte
  characters into '?'), and copy_mode direct (copy_mode file opens its CSV with Python's codec of that same name,
  and Python knows no 'utf8mb4'), log_dest stdout (runs in the foreground rather than as a daemon).

Every approach writes into a freshly created PostgreSQL database (owned by the rig's app user, the user every
approach connects as on both servers).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from ..measure import Proc, run_timed
from ..testbed import Testbed, owner_group, write_private
from .data import Source
from .floor import FLOOR, prepare

ROOT = Path(__file__).resolve().parent.parent.parent
CHAMELEON_VENV = Path("/tmp/chameleon-venv")
CHAMELEON = CHAMELEON_VENV / "bin" / "chameleon"
TOOL = "dbupdater copy-db"
PGLOADER = "pgloader"
# pgloader's defaults hold 100,000 prefetched rows per reader: on rows of a few kB (the generated database's
# documents) SBCL's heap is exhausted and pgloader dies. Its documented remedy is fewer prefetched rows.
PGLOADER_PREFETCH = "pgloader, prefetch rows = 10000"
PG_CHAMELEON = "pg_chameleon init_replica"
APPROACHES = (FLOOR, TOOL, PGLOADER, PGLOADER_PREFETCH, PG_CHAMELEON)
TIMEOUT = 3600.0
ERROR_RXS = (re.compile(r"fatal|exhausted|killed", re.IGNORECASE),  # what ended it, before what it met on the way
             re.compile(r"error|exception|denied|refused", re.IGNORECASE))


class NotAvailable(Exception):
    """The approach cannot run here; the message says why (shown in the results)."""


def install_pgloader() -> str | None:
    """Debian's pgloader when missing (as bench/backup.py installs mydumper); why not, or None."""
    if shutil.which("pgloader") is None:
        subprocess.run(["apt-get", "install", "-y", "-q", "pgloader"], check=False, capture_output=True)
    return None if shutil.which("pgloader") else "pgloader is not installed and apt-get install pgloader failed"


def install_chameleon() -> str | None:
    """pg_chameleon from PyPI into its own virtualenv (never the project's .venv); why not, or None. The
    virtualenv's interpreter must be one the runner user may run: Debian's, not one under root's home."""
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else (shutil.which("python3") or sys.executable)
    interpreter = CHAMELEON_VENV / "bin" / "python3"
    if CHAMELEON.exists() and not interpreter.resolve().is_relative_to(Path(python).resolve().parent):
        shutil.rmtree(CHAMELEON_VENV)
    if not CHAMELEON.exists():
        for argv in ([python, "-m", "venv", str(CHAMELEON_VENV)],
                     [str(CHAMELEON_VENV / "bin" / "pip"), "install", "-q", "pg-chameleon"]):
            proc = subprocess.run(argv, check=False, capture_output=True, text=True)
            if proc.returncode != 0:
                return f"installing pg_chameleon failed: {' '.join(argv[-2:])}: {proc.stderr.strip()[-300:]}"
    return None


@dataclass(frozen=True)
class Target:
    """One copy: the MySQL database read and the PostgreSQL database written."""

    source: Source
    dest: str


class Approaches:
    """Set-up (untimed) and the timed run of each approach, on runner 1 of the bench's rig."""

    def __init__(self, bed: Testbed, logs: Path, parallel: int | None) -> None:
        self.bed = bed
        self.logs = logs
        self.parallel = parallel
        self.home = bed.runner_dir / "chameleon"
        self.runs = 0

    # --- shared ----------------------------------------------------------------------------------------------

    def fresh_destination(self, dest: str) -> None:
        self.bed.rig.drop_postgres_database(dest)
        self.bed.rig.create_postgres_database(dest, owner=self.bed.info.postgres.app_user)

    def _log(self, name: str) -> Path:
        self.runs += 1
        return self.logs / f"{self.runs:02d}-{name.split()[0]}.log"

    def _on_runner(self, argv: list[str]) -> list[str]:
        return [*self.bed.runner_prefix(1), *argv]

    def _checked(self, proc: Proc, what: str, success: str | None = None) -> Proc:
        text = proc.log.read_text(encoding="utf-8", errors="replace")
        if self.bed.leaked(text):
            raise RuntimeError(f"{what}: a password appeared in its output ({proc.log})")
        failed = proc.code != 0 or proc.timed_out or (success is not None and success not in text)
        if failed:
            lines = text.strip().splitlines()
            # The line that says what went wrong (the last error-like one), then the output's tail.
            telling = next((line for rx in ERROR_RXS for line in reversed(lines) if rx.search(line)),
                           lines[-1] if lines else "")
            tail = "\n".join(lines[-6:])
            timed_out = " (timed out)" if proc.timed_out else ""
            raise RuntimeError(self.bed.redact(f"{what} exited with {proc.code}{timed_out}: {telling.strip()}\n{tail}"))
        return proc

    def clean_source(self, database: str) -> None:
        """Drop the tables dbupdater keeps its history in, should a run of the tool have left them in the source:
        every approach copies the same tables (pgloader cannot even create one of them, see the README)."""
        rig = self.bed.rig
        names = rig.mysql_exec(f"SELECT table_name FROM information_schema.tables WHERE table_schema = '{database}' "
                               "AND table_name LIKE 'dbupdater\\_%'").split()
        if names:
            rig.mysql_exec("DROP TABLE " + ", ".join(f"`{database}`.`{name}`" for name in names))

    def run(self, approach: str, target: Target) -> Proc:
        """Set up, then the timed run; RuntimeError (with the output's tail) when it fails."""
        self.clean_source(target.source.database)
        self.fresh_destination(target.dest)
        if approach == FLOOR:
            return self.floor(target)
        if approach == TOOL:
            return self.tool(target)
        if approach == PGLOADER:
            return self.pgloader(target)
        if approach == PGLOADER_PREFETCH:
            return self.pgloader(target, options="\n  WITH prefetch rows = 10000")
        return self.chameleon(target)

    # --- the floor -------------------------------------------------------------------------------------------

    def floor(self, target: Target) -> Proc:
        argv = prepare(self.bed, target.source.database, target.dest, self.parallel)
        try:
            proc = run_timed(argv, self._log("floor"), timeout=TIMEOUT)
        finally:
            shutil.rmtree(self.bed.runner_dir / "floor", ignore_errors=True)
        return self._checked(proc, FLOOR)

    # --- the tool ----------------------------------------------------------------------------------------------

    def tool(self, target: Target) -> Proc:
        info, runner, work = self.bed.info, self.bed.runner(1), self.bed.work
        passwords = {engine: write_private(work / f"{engine}-password", db.app_password + "\n")
                     for engine, db in (("mysql", info.mysql), ("postgresql", info.postgres))}
        (work / "noop.sql").write_text("SELECT 1;\n", encoding="utf-8")
        manifest = work / "copy.csv"
        rows = [("MySQL", info.mysql.app_user, passwords["mysql"], info.mysql.port, target.source.database),
                ("PostgreSQL", info.postgres.app_user, passwords["postgresql"], info.postgres.port, target.dest)]
        manifest.write_text(
            "sql_runner_host,sql_runner_userid,sql_runner_password,sql_runner_port,sql_runner_key_file,"
            "database_type,database_host,database_userid,database_password,port,database,sql_script_to_run\n" +
            "".join(f"{runner.host},{info.runner_user},,{runner.port},{info.runner_key_file},{engine},"
                    f"{self.bed.db_host},{user},file:{password},{port},{database},noop.sql\n"
                    for engine, user, password, port, database in rows), encoding="utf-8")
        argv = [sys.executable, str(ROOT / "remote_database_updater.py"), "copy-db", "-f", str(manifest),
                "--from", target.source.database, "--to", target.dest, "--yes", "--known-hosts", info.known_hosts,
                "--color", "never", "-q", "--no-report"]
        if self.parallel:
            argv += ["--parallel", str(self.parallel)]
        proc = run_timed(argv, self._log(TOOL), timeout=TIMEOUT, cwd=work)
        return self._checked(proc, TOOL)

    # --- pgloader --------------------------------------------------------------------------------------------

    def pgloader(self, target: Target, options: str = "") -> Proc:
        if shutil.which("pgloader") is None:
            raise NotAvailable("pgloader is not installed (apt-get install pgloader)")
        info, host = self.bed.info, self.bed.db_host
        my, pg = info.mysql, info.postgres
        load = self.bed.runner_dir / "copy.load"
        root = self.bed.runner_dir / "pgloader"
        shutil.rmtree(root, ignore_errors=True)
        # The rig's passwords are URL-safe tokens: no escaping needed inside the connection strings.
        write_private(load, f"LOAD DATABASE\n"
                            f"  FROM mysql://{my.app_user}:{my.app_password}@{host}:{my.port}/{target.source.database}\n"
                            f"  INTO pgsql://{pg.app_user}:{pg.app_password}@{host}:{pg.port}/{target.dest}"
                            f"?sslmode=disable{options};\n", owner=self.bed.runner_uid)
        try:
            proc = run_timed(self._on_runner(["pgloader", "--root-dir", str(root), str(load)]),
                             self._log(PGLOADER), timeout=TIMEOUT)
        finally:
            load.unlink(missing_ok=True)
            shutil.rmtree(root, ignore_errors=True)
        return self._checked(proc, PGLOADER + options.replace("\n  WITH", ","))

    # --- pg_chameleon ----------------------------------------------------------------------------------------

    def _chameleon(self, command: str, log: Path, *, source: bool = True) -> Proc:
        argv = ["env", f"HOME={self.home}", str(CHAMELEON), command, "--config", "bench"]
        if source:
            argv += ["--source", "mysql"]
        return run_timed(self._on_runner(argv), log, timeout=TIMEOUT)

    def _chameleon_config(self, target: Target) -> None:
        info, host = self.bed.info, self.bed.db_host
        my, pg = info.mysql, info.postgres
        folder = self.home / ".pg_chameleon"
        config = {
            "pid_dir": str(folder / "pid"), "log_dir": str(folder / "logs"), "log_dest": "stdout",
            "log_level": "info", "log_days_keep": 10, "rollbar_key": "", "rollbar_env": "",
            "type_override": {"tinyint(1)": {"override_to": "boolean", "override_tables": ["*"]}},
            "pg_conn": {"host": host, "port": str(pg.port), "user": pg.app_user, "password": pg.app_password,
                        "database": target.dest, "charset": "utf8"},
            "sources": {"mysql": {
                "db_conn": {"host": host, "port": str(my.port), "user": my.app_user, "password": my.app_password,
                            "charset": "utf8mb4", "connect_timeout": 10},
                "schema_mappings": {target.source.database: target.source.database},
                "limit_tables": [], "skip_tables": [], "grant_select_to": [], "lock_timeout": "120s",
                "my_server_id": 100, "replica_batch_size": 10000, "replay_max_rows": 10000,
                "batch_retention": "1 day", "copy_max_memory": "300M", "copy_mode": "direct",
                "out_dir": str(self.home / "out"), "sleep_loop": 1, "on_error_replay": "continue",
                "on_error_read": "continue", "auto_maintenance": "disabled", "gtid_enable": False, "type": "mysql",
                "skip_events": {"insert": [], "delete": [], "update": []}, "keep_existing_schema": False,
                "net_read_timeout": 600}},
            "fillfactor": {},
        }
        # YAML is a superset of JSON: the file pg_chameleon reads with PyYAML, written without a YAML library.
        write_private(folder / "configuration" / "bench.yml", json.dumps(config, indent=2) + "\n",
                      owner=self.bed.runner_uid)

    def chameleon(self, target: Target) -> Proc:
        if not CHAMELEON.exists():
            raise NotAvailable(f"pg_chameleon is not installed in {CHAMELEON_VENV}")
        uid = self.bed.runner_uid
        if not (self.home / ".pg_chameleon" / "configuration").is_dir():
            self.home.mkdir(mode=0o700, exist_ok=True)
            os.chown(self.home, uid, owner_group(uid))
            self._checked(self._chameleon("set_configuration_files", self._log("chameleon-setup"), source=False),
                          "chameleon set_configuration_files")
        (self.home / "out").mkdir(exist_ok=True)
        os.chown(self.home / "out", uid, owner_group(uid))
        self._chameleon_config(target)
        self._checked(self._chameleon("create_replica_schema", self._log("chameleon-schema"), source=False),
                      "chameleon create_replica_schema")
        self._checked(self._chameleon("add_source", self._log("chameleon-source")), "chameleon add_source")
        proc = self._chameleon("init_replica", self._log(PG_CHAMELEON))
        return self._checked(proc, PG_CHAMELEON, success="init replica for source mysql is complete")

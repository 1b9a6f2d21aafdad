"""A private PostgreSQL cluster run as the ``postgres`` system user, never the Debian default cluster.

Authentication is scram-sha-256 everywhere (socket included), so every login, the rig's own included,
uses a password from a 0600 PGPASSFILE. The ``app`` role's password is sent as a SCRAM verifier computed
here, so its cleartext never appears in SQL text or the server log.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from pathlib import Path

from .errors import RigError
from .info import DbInfo
from .layout import Layout
from .system import (
    clean_env,
    find_pids,
    log,
    make_dir,
    pid_runs,
    port_free,
    read_pid,
    run,
    tail,
    terminate,
    write_file,
)

SAMPLE_DATABASE = "zipcodes"


def scram_verifier(password: str, *, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 secret PostgreSQL stores, in the form ``ALTER ROLE ... PASSWORD`` accepts."""
    salt = os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _pgpass_field(value: str) -> str:
    return value.replace("\\", "\\\\").replace(":", "\\:")


def _conf_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


class Postgres:
    def __init__(self, layout: Layout, db: DbInfo, bin_dir: Path, listen_addresses: list[str],
                 client_networks: list[str]) -> None:
        self.layout = layout
        self.db = db
        self.bin_dir = bin_dir
        self.listen_addresses = listen_addresses
        self.client_networks = client_networks

    # --- lifecycle ---------------------------------------------------------------------------------------

    def ensure(self, *, timeout: float = 30) -> None:
        self._ensure_initialised()
        self._write_config()
        self._write_client_files()
        self._ensure_running(timeout)
        self._ensure_accounts()

    def _as_postgres(self, *args: str | Path, timeout: float = 60) -> None:
        run(["runuser", "-u", "postgres", "--", *[str(a) for a in args]], cwd=self.layout.postgres,
            timeout=timeout)

    def is_running(self) -> bool:
        data = self.layout.postgres_data
        return pid_runs(read_pid(data / "postmaster.pid"), str(data))

    def stop(self) -> None:
        data = self.layout.postgres_data
        if self.is_running():
            try:
                self._as_postgres(self.bin_dir / "pg_ctl", "-D", data, "-m", "fast", "-w", "-t", "20", "-s",
                                  "stop", timeout=30)
            except RigError as exc:
                log.warning("PostgreSQL: pg_ctl stop failed (%s); killing it", exc)
        terminate(self.leftover_pids(), timeout=10)

    def leftover_pids(self) -> list[int]:
        return find_pids(rf"postgres -D {re.escape(str(self.layout.postgres_data))}( |$)")

    # --- steps -------------------------------------------------------------------------------------------

    def _ensure_initialised(self) -> None:
        lay = self.layout
        make_dir(lay.postgres)
        make_dir(lay.postgres_run, mode=0o755, owner="postgres")
        if (lay.postgres_data / "PG_VERSION").exists():
            return
        log.info("PostgreSQL: initialising %s", lay.postgres_data)
        make_dir(lay.postgres_data, mode=0o700, owner="postgres")
        pwfile = lay.postgres / "initdb.pw"
        write_file(pwfile, self.db.admin_password + "\n", mode=0o600, owner="postgres")
        try:
            self._as_postgres(self.bin_dir / "initdb", "-D", lay.postgres_data, "-U", self.db.admin_user,
                              "--auth=scram-sha-256", f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C.UTF-8",
                              "--no-sync", timeout=120)
        finally:
            pwfile.unlink(missing_ok=True)

    def _write_config(self) -> None:
        lay = self.layout
        settings = {
            "port": str(self.db.port),
            "listen_addresses": _conf_string(",".join(self.listen_addresses)),
            "unix_socket_directories": _conf_string(str(lay.postgres_run)),
            "password_encryption": "'scram-sha-256'",
            "max_connections": "200",
            "shared_buffers": "32MB",
            # A disposable test cluster: durability buys nothing and costs seconds per test run.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "log_line_prefix": "'%m [%p] %q%u@%d '",
        }
        write_file(lay.postgres_data / "rig.conf",
                   "# written by environment_creators; the rig's private settings\n"
                   + "".join(f"{k} = {v}\n" for k, v in settings.items()), mode=0o600, owner="postgres")
        conf = lay.postgres_data / "postgresql.conf"
        text = conf.read_text()
        if "include 'rig.conf'" not in text:
            write_file(conf, text + "\ninclude 'rig.conf'\n", mode=0o600, owner="postgres")
        hba = ["# written by environment_creators: passwords (scram-sha-256) only, from known networks",
               "local all all scram-sha-256",
               *(f"host all all {net} scram-sha-256" for net in self.client_networks)]
        write_file(lay.postgres_data / "pg_hba.conf", "\n".join(hba) + "\n", mode=0o600, owner="postgres")

    def _ensure_running(self, timeout: float) -> None:
        if self.is_running():
            return
        for address in self.listen_addresses:
            if not port_free(address, self.db.port):
                raise RigError(f"PostgreSQL port {address}:{self.db.port} is already in use; pick another "
                               "--base-port")
        log.info("PostgreSQL: starting on port %s (%s)", self.db.port, ", ".join(self.listen_addresses))
        lay = self.layout
        try:
            self._as_postgres(self.bin_dir / "pg_ctl", "-D", lay.postgres_data, "-l", lay.postgres_log, "-w",
                              "-t", str(int(timeout)), "-s", "start", timeout=timeout + 10)
        except RigError as exc:
            raise RigError(f"{exc}\n{tail(lay.postgres_log)}") from exc

    def _ensure_accounts(self) -> None:
        app = quote_ident(self.db.app_user)
        self.exec(f"""
SET client_min_messages = warning;
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = {quote_literal(self.db.app_user)}) THEN
    CREATE ROLE {app} LOGIN CREATEDB;
  END IF;
END $$;
ALTER ROLE {app} WITH LOGIN CREATEDB NOSUPERUSER PASSWORD {quote_literal(scram_verifier(self.db.app_password))};
""")
        self.create_database(SAMPLE_DATABASE, owner=self.db.app_user)
        self.exec("SELECT 1", admin=False)

    def _write_client_files(self) -> None:
        for admin in (True, False):
            user = self.db.admin_user if admin else self.db.app_user
            password = self.db.admin_password if admin else self.db.app_password
            write_file(self.layout.pgpass(admin=admin),
                       f"*:{self.db.port}:*:{_pgpass_field(user)}:{_pgpass_field(password)}\n", mode=0o600)

    # --- use ---------------------------------------------------------------------------------------------

    def exec(self, sql: str, database: str = "postgres", *, admin: bool = True) -> str:
        user = self.db.admin_user if admin else self.db.app_user
        env = clean_env({"PGPASSFILE": str(self.layout.pgpass(admin=admin)), "PGCONNECT_TIMEOUT": "5"})
        proc = run([self.bin_dir / "psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-h", self.db.host,
                    "-p", str(self.db.port), "-U", user, "-d", database], input=sql, env=env, check=False,
                   timeout=600)
        if proc.returncode != 0:
            raise RigError(f"psql ({'admin' if admin else 'app'}) failed: {proc.stderr.strip()}")
        return proc.stdout

    def create_database(self, name: str, owner: str) -> None:
        exists = self.exec(f"SELECT 1 FROM pg_database WHERE datname = {quote_literal(name)}").strip()
        if not exists:
            self.exec(f"CREATE DATABASE {quote_ident(name)} OWNER {quote_ident(owner)}")

    def drop_database(self, name: str) -> None:
        self.exec(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")

    def healthy(self) -> bool:
        if not self.is_running():
            return False
        try:
            self.exec("SELECT 1")
        except RigError:
            return False
        return True


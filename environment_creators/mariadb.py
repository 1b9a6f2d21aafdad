"""A private MariaDB server: own data dir, socket and port, never the system service or its config.

Setup runs over the unix socket as the OS root user (unix_socket auth, no password needed); everything
else, including the rig's own ``mysql_exec``, logs in with a password over TCP the way the tool does.
Passwords reach the server only as mysql_native_password hashes inside SQL on stdin.
"""

from __future__ import annotations

import hashlib
import re

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
    spawn_detached,
    tail,
    terminate,
    wait_for,
    write_file,
)

MARIADBD = "/usr/sbin/mariadbd"
SAMPLE_DATABASE = "zipcodes"


def native_password_hash(password: str) -> str:
    """The mysql_native_password hash, so the cleartext never appears in SQL text or server logs."""
    return "*" + hashlib.sha1(hashlib.sha1(password.encode()).digest()).hexdigest().upper()


def quote_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def quote_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class MariaDb:
    def __init__(self, layout: Layout, db: DbInfo, bind_addresses: list[str]) -> None:
        self.layout = layout
        self.db = db
        self.bind_addresses = bind_addresses

    # --- lifecycle ---------------------------------------------------------------------------------------

    def ensure(self, *, timeout: float = 30) -> None:
        self._ensure_initialised()
        self._write_client_files()
        self._ensure_running(timeout)
        self._ensure_accounts()

    def is_running(self) -> bool:
        return pid_runs(read_pid(self.layout.mariadb_pid), f"--datadir={self.layout.mariadb_data}")

    def stop(self) -> None:
        terminate(self.leftover_pids(), timeout=20)

    def leftover_pids(self) -> list[int]:
        return find_pids(rf"mariadbd .*--datadir={re.escape(str(self.layout.mariadb_data))}( |$)")

    # --- steps -------------------------------------------------------------------------------------------

    def _ensure_initialised(self) -> None:
        lay = self.layout
        make_dir(lay.mariadb)
        make_dir(lay.mariadb_run, mode=0o750, owner="mysql")
        if (lay.mariadb_data / "mysql").is_dir():
            return
        log.info("MariaDB: initialising %s", lay.mariadb_data)
        make_dir(lay.mariadb_data, mode=0o700, owner="mysql")
        run(["mariadb-install-db", "--no-defaults", "--user=mysql", f"--datadir={lay.mariadb_data}",
             "--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve",
             "--innodb-log-file-size=8M"], cwd=lay.mariadb, timeout=120)

    def _server_args(self) -> list[str]:
        lay = self.layout
        return [MARIADBD, "--no-defaults", "--user=mysql", f"--datadir={lay.mariadb_data}",
                f"--socket={lay.mariadb_socket}", f"--pid-file={lay.mariadb_pid}", f"--port={self.db.port}",
                f"--bind-address={','.join(self.bind_addresses)}", f"--log-error={lay.mariadb_log}",
                "--skip-name-resolve", "--character-set-server=utf8mb4", "--collation-server=utf8mb4_unicode_ci",
                "--innodb-log-file-size=8M", "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2",
                "--max-connections=300", f"--tmpdir={lay.mariadb_run}"]

    def _ensure_running(self, timeout: float) -> None:
        lay = self.layout
        if not self.is_running():
            for address in self.bind_addresses:
                if not port_free(address, self.db.port):
                    raise RigError(f"MariaDB port {address}:{self.db.port} is already in use; pick another "
                                   "--base-port")
            log.info("MariaDB: starting on port %s (%s)", self.db.port, ", ".join(self.bind_addresses))
            lay.mariadb_pid.unlink(missing_ok=True)
            spawn_detached(self._server_args(), lay.mariadb / "mariadbd.out", cwd=lay.mariadb)

        def died() -> str | None:
            if lay.mariadb_pid.exists() and not self.is_running():
                return f"mariadbd exited; see {lay.mariadb_log}:\n{tail(lay.mariadb_log)}"
            return None

        wait_for(self._socket_ready, timeout=timeout, what=f"MariaDB on {lay.mariadb_socket}", failed=died)

    def _socket_sql(self, sql: str, *, check: bool = True) -> str:
        """As OS root over the socket: works before any password exists."""
        return run(["mysql", "--no-defaults", f"--socket={self.layout.mariadb_socket}", "--user=root", "--batch",
                    "--skip-column-names"], input=sql, check=check, timeout=30).stdout

    def _socket_ready(self) -> bool:
        if not self.layout.mariadb_socket.exists():
            return False
        return run(["mysql", "--no-defaults", f"--socket={self.layout.mariadb_socket}", "--user=root",
                    "--connect-timeout=2", "-e", "SELECT 1"], check=False, timeout=10).returncode == 0

    def _ensure_accounts(self) -> None:
        """Idempotent: (re)sets both passwords and grants, creates the sample database."""
        admin = native_password_hash(self.db.admin_password)
        app = native_password_hash(self.db.app_password)
        admin_user, app_user = quote_string(self.db.admin_user), quote_string(self.db.app_user)
        self._socket_sql(f"""
ALTER USER {admin_user}@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING '{admin}';
CREATE USER IF NOT EXISTS {admin_user}@'%' IDENTIFIED BY PASSWORD '{admin}';
ALTER USER {admin_user}@'%' IDENTIFIED BY PASSWORD '{admin}';
GRANT ALL PRIVILEGES ON *.* TO {admin_user}@'%' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS {app_user}@'%' IDENTIFIED BY PASSWORD '{app}';
ALTER USER {app_user}@'%' IDENTIFIED BY PASSWORD '{app}';
GRANT ALL PRIVILEGES ON *.* TO {app_user}@'%';
CREATE DATABASE IF NOT EXISTS {SAMPLE_DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
""")
        for admin_flag in (True, False):
            self.exec("SELECT 1", admin=admin_flag)

    def _write_client_files(self) -> None:
        for admin in (True, False):
            user = self.db.admin_user if admin else self.db.app_user
            password = self.db.admin_password if admin else self.db.app_password
            write_file(self.layout.mariadb_cnf(admin=admin),
                       f'[client]\nuser="{user}"\npassword="{password}"\nhost={self.db.host}\n'
                       f"port={self.db.port}\nprotocol=tcp\n", mode=0o600)

    # --- use ---------------------------------------------------------------------------------------------

    def exec(self, sql: str, database: str | None = None, *, admin: bool = True) -> str:
        cmd = ["mysql", f"--defaults-extra-file={self.layout.mariadb_cnf(admin=admin)}", "--batch",
               "--skip-column-names"]
        if database:
            cmd.append(database)
        proc = run(cmd, input=sql, env=clean_env(), check=False, timeout=600)
        if proc.returncode != 0:
            raise RigError(f"mysql ({'admin' if admin else 'app'}) failed: {proc.stderr.strip()}")
        return proc.stdout

    def healthy(self) -> bool:
        if not self.is_running():
            return False
        try:
            self.exec("SELECT 1")
        except RigError:
            return False
        return True


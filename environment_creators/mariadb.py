"""A private MariaDB server: own data dir, socket and port, never the system service or its config.

Setup runs over the unix socket as the OS root user (unix_socket auth, no password needed); everything
else, including the rig's own ``mysql_exec``, logs in with a password over TCP the way the tool does.
Passwords reach the server only as mysql_native_password hashes inside SQL on stdin.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import RigError
from .info import DbInfo
from .layout import MariaDbPaths
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


@dataclass(frozen=True)
class Charset:
    """A character set with the collation to pair it with (server defaults, a database's defaults)."""

    name: str
    collation: str


UTF8MB4 = Charset("utf8mb4", "utf8mb4_unicode_ci")
# What servers set up long ago still default to; the rig's second MariaDB has it, so tests can show that
# UTF-8 text survives a server whose defaults would mangle it.
LATIN1 = Charset("latin1", "latin1_swedish_ci")


class MariaDb:
    """One private mariadbd; the rig runs two (the main one and the latin1 one), differing only in these
    parameters, so both are set up, reached and stopped the same way."""

    def __init__(self, paths: MariaDbPaths, db: DbInfo, bind_addresses: list[str], *,
                 server_charset: Charset = UTF8MB4, client_charset: str | None = None,
                 sample_database: str | None = SAMPLE_DATABASE, label: str = "MariaDB",
                 binary_log: bool = False) -> None:
        """``client_charset`` pins the character set of the rig's own ``mysql`` sessions. Left None, the client
        takes it from the locale (utf8mb3 under C.UTF-8, latin1 under C), which the main instance has always
        done; on a latin1 server that would make what the rig reads back depend on the machine.
        ``binary_log``: the server writes a binary log in ROW format with full row images and column metadata,
        as a source that `copy-db --follow` reads must (a server running without one is restarted)."""
        self.paths = paths
        self.db = db
        self.bind_addresses = bind_addresses
        self.server_charset = server_charset
        self.client_charset = client_charset
        self.sample_database = sample_database
        self.label = label
        # Once a server of this rig would not come up with its binary log, it is not asked again (each try costs
        # the whole wait) until `down` removes the instance's folder with the reason in it.
        self.binary_log = binary_log and not paths.binary_log_failure.exists()
        self._last_probe = ""

    # --- lifecycle ---------------------------------------------------------------------------------------

    def ensure(self, *, timeout: float = 60) -> None:
        self._ensure_initialised()
        self._write_client_files()
        try:
            # With its binary log the server is up in about two seconds here; a machine where it is not within
            # 30 goes on without one rather than spend a minute on every rig of the suite.
            self._ensure_running(min(timeout, 30) if self.binary_log else timeout)
        except RigError as exc:
            if not self.binary_log:
                raise
            # Only `copy-db --follow` and its tests need the binary log: a machine where the server will not come
            # up with one still gets a server, and the reason is kept for those tests to skip with.
            log.warning("%s did not come up with its binary log; starting it without one: %s", self.label, exc)
            self.stop()
            self.binary_log = False
            self._ensure_running(timeout)
            write_file(self.paths.binary_log_failure, f"{exc}\n", mode=0o644)
        self._ensure_accounts()

    def is_running(self) -> bool:
        return pid_runs(read_pid(self.paths.pid), f"--datadir={self.paths.data}")

    def stop(self) -> None:
        terminate(self.leftover_pids(), timeout=20)

    def leftover_pids(self) -> list[int]:
        return find_pids(rf"mariadbd .*--datadir={re.escape(str(self.paths.data))}( |$)")

    # --- steps -------------------------------------------------------------------------------------------

    def _ensure_initialised(self) -> None:
        paths = self.paths
        make_dir(paths.dir)
        make_dir(paths.run, mode=0o750, owner="mysql")
        if (paths.data / "mysql").is_dir():
            return
        log.info("%s: initialising %s", self.label, paths.data)
        make_dir(paths.data, mode=0o700, owner="mysql")
        run(["mariadb-install-db", "--no-defaults", "--user=mysql", f"--datadir={paths.data}",
             "--auth-root-authentication-method=socket", "--skip-test-db", "--skip-name-resolve",
             "--innodb-log-file-size=8M"], cwd=paths.dir, timeout=120)

    def _server_args(self) -> list[str]:
        paths, charset = self.paths, self.server_charset
        return [MARIADBD, "--no-defaults", "--user=mysql", f"--datadir={paths.data}",
                f"--socket={paths.socket}", f"--pid-file={paths.pid}", f"--port={self.db.port}",
                f"--bind-address={','.join(self.bind_addresses)}", f"--log-error={paths.log}",
                "--skip-name-resolve", f"--character-set-server={charset.name}",
                f"--collation-server={charset.collation}",
                "--innodb-log-file-size=8M", "--innodb-buffer-pool-size=64M", "--innodb-flush-log-at-trx-commit=2",
                "--max-connections=300", f"--tmpdir={paths.run}", *self._binary_log_args()]

    def _binary_log_args(self) -> list[str]:
        """What a binary log reader needs: every change as rows (ROW), whole rows before and after (FULL
        image), column names and types in the log itself (FULL metadata, so a reader maps values to columns
        without asking the catalog, which may have changed since). Small files, expired after two hours, so
        the rig's large loads (bench) do not fill the disk."""
        if not self.binary_log:
            return []
        return ["--log-bin=binlog", "--server-id=1", "--binlog-format=ROW", "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL", "--max-binlog-size=64M", "--binlog-expire-logs-seconds=7200"]

    def _binary_log_missing(self) -> bool:
        """Running without the binary log it should write (started before the rig asked for one)."""
        if not self.binary_log:
            return False
        return self._socket_sql("SELECT @@log_bin", check=False).strip() != "1"

    def _ensure_running(self, timeout: float) -> None:
        paths = self.paths
        if self.is_running() and self._binary_log_missing():
            log.info("%s: restarting with its binary log", self.label)
            self.stop()
        if not self.is_running():
            if leftovers := self.leftover_pids():
                # One still shutting down (its pid file already gone) holds the data dir's InnoDB lock: a new
                # server would wait on that lock for 100 s without a word on its socket.
                log.info("%s: stopping leftover mariadbd %s first", self.label, leftovers)
                terminate(leftovers, timeout=30)
            for address in self.bind_addresses:
                if not port_free(address, self.db.port):
                    raise RigError(f"{self.label} port {address}:{self.db.port} is already in use; pick another "
                                   "--base-port")
            log.info("%s: starting on port %s (%s)", self.label, self.db.port, ", ".join(self.bind_addresses))
            paths.pid.unlink(missing_ok=True)
            spawn_detached(self._server_args(), paths.out, cwd=paths.dir)

        misses = 0

        def died() -> str | None:
            # A server refusing an option exits before it writes its pid file: no process with our data dir for
            # a second in a row (not one miss, which an exec under load can cause) is a death too.
            nonlocal misses
            misses = 0 if self.leftover_pids() else misses + 1
            if (paths.pid.exists() and not self.is_running()) or misses >= 10:
                return "mariadbd exited"
            return None

        try:
            wait_for(self._socket_ready, timeout=timeout, what=f"{self.label} on {paths.socket}", failed=died)
        except RigError as exc:
            raise RigError(f"{exc}\n{self._why_not_ready()}") from exc

    def _why_not_ready(self) -> str:
        """What a machine we cannot log in to must say when the server never answered (a CI machine): whether
        the process lives, what the last probe answered, and the ends of both logs."""
        paths = self.paths
        pids = self.leftover_pids()
        state = f"pids {pids}" if pids else "no mariadbd process"
        return (f"{state}; socket {'exists' if paths.socket.exists() else 'missing'}; last probe: "
                f"{self._last_probe or '(none)'}\n{paths.log}:\n{tail(paths.log, 25)}\n"
                f"{paths.out}:\n{tail(paths.out, 10)}")

    def _socket_sql(self, sql: str, *, check: bool = True) -> str:
        """As OS root over the socket: works before any password exists."""
        return run(["mysql", "--no-defaults", f"--socket={self.paths.socket}", "--user=root", "--batch",
                    "--skip-column-names"], input=sql, check=check, timeout=30).stdout

    def _socket_ready(self) -> bool:
        if not self.paths.socket.exists():
            return False
        probe = run(["mysql", "--no-defaults", f"--socket={self.paths.socket}", "--user=root",
                     "--connect-timeout=2", "-e", "SELECT 1"], check=False, timeout=10)
        self._last_probe = f"exit {probe.returncode}: {probe.stderr.strip()}"
        return probe.returncode == 0

    def _ensure_accounts(self) -> None:
        """Idempotent: (re)sets both passwords and grants, creates the sample database (if this instance has
        one)."""
        admin = native_password_hash(self.db.admin_password)
        app = native_password_hash(self.db.app_password)
        admin_user, app_user = quote_string(self.db.admin_user), quote_string(self.db.app_user)
        sample = ""
        if self.sample_database:
            sample = (f"CREATE DATABASE IF NOT EXISTS {quote_ident(self.sample_database)} "
                      "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n")
        self._socket_sql(f"""
ALTER USER {admin_user}@'localhost' IDENTIFIED VIA unix_socket OR mysql_native_password USING '{admin}';
CREATE USER IF NOT EXISTS {admin_user}@'%' IDENTIFIED BY PASSWORD '{admin}';
ALTER USER {admin_user}@'%' IDENTIFIED BY PASSWORD '{admin}';
GRANT ALL PRIVILEGES ON *.* TO {admin_user}@'%' WITH GRANT OPTION;
CREATE USER IF NOT EXISTS {app_user}@'%' IDENTIFIED BY PASSWORD '{app}';
ALTER USER {app_user}@'%' IDENTIFIED BY PASSWORD '{app}';
GRANT ALL PRIVILEGES ON *.* TO {app_user}@'%';
{sample}""")
        for admin_flag in (True, False):
            self.exec("SELECT 1", admin=admin_flag)

    def _write_client_files(self) -> None:
        charset = f"default-character-set={self.client_charset}\n" if self.client_charset else ""
        for admin in (True, False):
            user = self.db.admin_user if admin else self.db.app_user
            password = self.db.admin_password if admin else self.db.app_password
            write_file(self.paths.cnf(admin=admin),
                       f'[client]\nuser="{user}"\npassword="{password}"\nhost={self.db.host}\n'
                       f"port={self.db.port}\nprotocol=tcp\n{charset}", mode=0o600)

    # --- use ---------------------------------------------------------------------------------------------

    def exec(self, sql: str, database: str | None = None, *, admin: bool = True) -> str:
        cmd = ["mysql", f"--defaults-extra-file={self.paths.cnf(admin=admin)}", "--batch",
               "--skip-column-names"]
        if database:
            cmd.append(database)
        proc = run(cmd, input=sql, env=clean_env(), check=False, timeout=600)
        if proc.returncode != 0:
            raise RigError(f"mysql ({'admin' if admin else 'app'}) failed: {proc.stderr.strip()}")
        return proc.stdout

    def healthy(self, *, admin: bool = True) -> bool:
        """``admin=False`` also proves the accounts step finished: the app user is made after the admin."""
        if not self.is_running():
            return False
        try:
            self.exec("SELECT 1", admin=admin)
        except RigError:
            return False
        return not self._binary_log_missing()



CHARSET_NAME_RX = re.compile(r"[A-Za-z0-9_]{1,64}")


class MariaDbEndpoint:
    """An extra MariaDB as a test uses it: the address runners (and so manifests) name, the shared
    credentials, and admin SQL to set up and inspect its databases. Handed out by the rig, never made by
    tests, so its lifecycle stays with the rig."""

    def __init__(self, server: MariaDb, host: str) -> None:
        self._server = server
        self.host = host

    def __repr__(self) -> str:
        return f"MariaDbEndpoint(host={self.host!r}, port={self.port}, server_charset={self.server_charset.name!r})"

    @property
    def port(self) -> int:
        return self._server.db.port

    @property
    def db(self) -> DbInfo:
        """Users and passwords (the main MariaDB's), and the address to reach it from this machine."""
        return self._server.db

    @property
    def server_charset(self) -> Charset:
        return self._server.server_charset

    def defaults_file(self, *, admin: bool = True) -> Path:
        """0600 ``[client]`` option file for ``mysql --defaults-extra-file`` (utf8mb4 sessions)."""
        return self._server.paths.cnf(admin=admin)

    def exec(self, sql: str, database: str | None = None, *, admin: bool = True) -> str:
        """Run SQL with the native ``mysql`` client over TCP; stdout, or RigError carrying stderr."""
        return self._server.exec(sql, database, admin=admin)

    def create_database(self, name: str, charset: str = "utf8mb4", collation: str | None = None) -> None:
        """Without IF NOT EXISTS: an existing database may have other defaults, and a test about character
        sets must not run silently against those. No collation: the character set's default one."""
        for value in (charset, collation):
            if value is not None and not CHARSET_NAME_RX.fullmatch(value):
                raise RigError(f"not a character set or collation name: {value!r}")
        clause = f"CHARACTER SET {charset}" + (f" COLLATE {collation}" if collation else "")
        self.exec(f"CREATE DATABASE {quote_ident(name)} {clause}")

    def drop_database(self, name: str) -> None:
        self.exec(f"DROP DATABASE IF EXISTS {quote_ident(name)}")

    def is_running(self) -> bool:
        return self._server.is_running()

    def stop(self) -> None:
        """Stop the server, keeping its data; the rig's next request starts it again."""
        self._server.stop()

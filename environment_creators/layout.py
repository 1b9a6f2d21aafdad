"""Where everything of one rig lives on disk; one place so ``up`` and ``down`` cannot disagree."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
SQL_DIR = Path(__file__).resolve().parent / "src" / "sql"
# Directory names under the rig root; ``down`` removes exactly these (with the other pieces' directories).
MARIADB_DIR = "mariadb"
MARIADB_LATIN1_DIR = "mariadb-latin1"


@dataclass(frozen=True)
class MariaDbPaths:
    """One MariaDB instance's files, all below ``dir``, so instances never share a socket, pid file or log."""

    dir: Path

    @property
    def data(self) -> Path:
        return self.dir / "data"

    @property
    def run(self) -> Path:
        """Owned by the mysql user: socket, pid file and error log."""
        return self.dir / "run"

    @property
    def socket(self) -> Path:
        return self.run / "mariadbd.sock"

    @property
    def pid(self) -> Path:
        return self.run / "mariadbd.pid"

    @property
    def log(self) -> Path:
        return self.run / "mariadbd.err"

    @property
    def binary_log_failure(self) -> Path:
        """Why the server runs without the binary log it was asked for (absent when it has one)."""
        return self.dir / "binary-log-failure.txt"

    @property
    def out(self) -> Path:
        """mariadbd's own stdout/stderr: what it says before its error log is open."""
        return self.dir / "mariadbd.out"

    def cnf(self, *, admin: bool) -> Path:
        return self.dir / ("admin.cnf" if admin else "app.cnf")


@dataclass(frozen=True)
class Layout:
    root: Path

    @property
    def rig_json(self) -> Path:
        return self.root / "rig.json"

    @property
    def lock(self) -> Path:
        return self.root / ".lock"

    # MariaDB: the main instance, and the latin1 one started only when a test asks for it
    def mariadb_instance(self, dirname: str) -> MariaDbPaths:
        return MariaDbPaths(self.root / dirname)

    @property
    def mariadb(self) -> MariaDbPaths:
        return self.mariadb_instance(MARIADB_DIR)

    @property
    def mariadb_latin1(self) -> MariaDbPaths:
        return self.mariadb_instance(MARIADB_LATIN1_DIR)

    # PostgreSQL
    @property
    def postgres(self) -> Path:
        return self.root / "postgres"

    @property
    def postgres_data(self) -> Path:
        return self.postgres / "data"

    @property
    def postgres_run(self) -> Path:
        """Owned by the postgres user: the unix socket directory and the server log."""
        return self.postgres / "run"

    @property
    def postgres_log(self) -> Path:
        return self.postgres_run / "postgres.log"

    def pgpass(self, *, admin: bool) -> Path:
        return self.postgres / ("admin.pgpass" if admin else "app.pgpass")

    # SSH runners
    @property
    def ssh(self) -> Path:
        return self.root / "ssh"

    @property
    def client_key(self) -> Path:
        return self.ssh / "id_ed25519"

    @property
    def authorized_keys(self) -> Path:
        return self.ssh / "authorized_keys"

    @property
    def known_hosts(self) -> Path:
        return self.ssh / "known_hosts"

    def runner_dir(self, index: int) -> Path:
        return self.ssh / f"runner{index}"

    @property
    def replay_bin(self) -> Path:
        """First on every runner's PATH (sshd's SetEnv): tests put replay clients here (sqlplus, sqlcmd) for
        servers that cannot run on the rig. Empty otherwise, so the real clients are found as usual."""
        return self.ssh / "replay-bin"

    def sshd_config(self, index: int) -> Path:
        return self.runner_dir(index) / "sshd_config"

    def host_key(self, index: int) -> Path:
        return self.runner_dir(index) / "ssh_host_ed25519_key"

    def sshd_pid(self, index: int) -> Path:
        return self.runner_dir(index) / "sshd.pid"

    def sshd_log(self, index: int) -> Path:
        return self.runner_dir(index) / "sshd.log"

    # OpenBao (dev mode: no data directory, everything is in memory)
    @property
    def openbao(self) -> Path:
        return self.root / "openbao"

    @property
    def openbao_config(self) -> Path:
        """Only the pid file setting; its path in the command line also identifies our server process."""
        return self.openbao / "server.hcl"

    @property
    def openbao_pid(self) -> Path:
        return self.openbao / "openbao.pid"

    @property
    def openbao_log(self) -> Path:
        return self.openbao / "openbao.log"

    @property
    def openbao_token(self) -> Path:
        """0600 copy of the root token for shell scripts (``VAULT_TOKEN="$(cat ...)"``)."""
        return self.openbao / "token"

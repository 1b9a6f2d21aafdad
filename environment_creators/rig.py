"""The local rig: private MariaDB and PostgreSQL servers, SSH runner hosts and an OpenBao (Vault API) server
on one Linux machine.

Used by people trying the tool without infrastructure (``bin/bring_up.sh``) and by the test suite, so
both exercise the same real pieces: native clients, real sshd, password and key authentication, host key
checking, ``vault:`` references resolved against a real Vault API. Everything is private to the rig's root
directory and ports; system services are never touched.

    python -m environment_creators.rig up|down|info|status|vault-env [--name N] [--root DIR] [--runners K]
                                                                     [--subnet-index I] [--base-port P]

``vault-env`` prints ``VAULT_ADDR=...`` and ``VAULT_TOKEN_FILE=...`` lines (shell-quoted where needed), never
the token itself.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import logging
import os
import re
import secrets
import shlex
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import bastion, ephemeral_ports, network, openbao, prerequisites, s3
from . import runners as hosts
from .errors import RigError
from .info import DbInfo, Mode, RigInfo, RunnerInfo
from .layout import MARIADB_DIR, MARIADB_LATIN1_DIR, PROJECT_DIR, Layout
from .mariadb import LATIN1, MariaDb, MariaDbEndpoint
from .mariadb import quote_ident as mysql_ident
from .openbao import OpenBao
from .postgres import Postgres
from .system import ensure_traversable, log, make_dir, port_free, remove_tree, sshd_answers

__all__ = ["DbInfo", "Rig", "RigError", "RigInfo", "RunnerInfo"]

MODE_ENV = "DBU_RIG_MODE"
# Interface names are limited to 15 characters: "<name>-r<NN>h" and "<name>-br0" must fit.
NAME_RX = re.compile(r"[a-z][a-z0-9_]{0,9}")
MAX_RUNNERS = 50
# Below the kernel's ephemeral range (32768 and up by default: ephemeral_ports.py), clear of well-known ports.
DEFAULT_BASE_PORT = 27300
# Only what ``up`` creates; ``down`` refuses to wipe a root holding anything else.
OWN_ENTRIES = {"rig.json", "rig.json.tmp", ".lock", MARIADB_DIR, MARIADB_LATIN1_DIR, "postgres", "ssh", "openbao",
               s3.DIR}
# rig.json fields added with OpenBao: a rig brought up before that gets them on its next ``up``.
VAULT_FIELDS = ("vault_addr", "vault_token", "vault_token_file", "vault_role_id", "vault_role", "vault_policy",
                "vault_prefix", "vault_kv2_mount", "vault_kv1_mount")


def _secret() -> str:
    return secrets.token_urlsafe(24)


class Rig:
    """One named rig. Cheap to construct; nothing happens until ``up``."""

    def __init__(self, name: str = "dbu", root: Path | None = None, runners: int = 2, subnet_index: int = 0,
                 base_port: int = DEFAULT_BASE_PORT) -> None:
        if not NAME_RX.fullmatch(name):
            raise RigError(f"rig name {name!r}: use 1-10 lowercase letters, digits or '_', starting with a letter")
        if not 1 <= runners <= MAX_RUNNERS:
            raise RigError(f"runners must be between 1 and {MAX_RUNNERS}, not {runners}")
        if not 0 <= subnet_index <= 255:
            raise RigError(f"subnet_index must be between 0 and 255, not {subnet_index}")
        if not 1024 <= base_port <= 65535 - 10 - MAX_RUNNERS:
            raise RigError(f"base_port {base_port} leaves no room for the rig's ports")
        self.name = name
        self.root = Path(root).resolve() if root else PROJECT_DIR / ".rig" / name
        self.runners = runners
        self.subnet_index = subnet_index
        self.base_port = base_port
        self.layout = Layout(self.root)

    def __repr__(self) -> str:
        return f"Rig(name={self.name!r}, root={str(self.root)!r})"

    # Ports: MariaDB base+1, PostgreSQL base+2, OpenBao base+3 (and its cluster port base+4, which dev mode
    # always opens one above the API port), the latin1 MariaDB base+5 (only once asked for), loopback-mode
    # sshd i at base+10+i, moto's S3 server base+6 (only once asked for).
    @property
    def ports(self) -> range:
        """Every port the rig may listen on (the loopback-mode runners' included, whatever the mode)."""
        return range(self.base_port + 1, self.base_port + 11 + self.runners)

    def _ephemeral_clash(self) -> str | None:
        """Why the rig's ports are unsafe to start servers on, or None."""
        span = ephemeral_ports.clash(self.ports)
        if span is None:
            return None
        first, last = span
        return (f"ports {self.ports.start}-{self.ports.stop - 1} (--base-port {self.base_port}) overlap the "
                f"kernel's ephemeral port range {first}-{last} ({ephemeral_ports.PORT_RANGE}): any program's outgoing "
                "connection may take one of them just before a rig server starts on it. Pick a --base-port of at "
                f"most {first - 1 - len(self.ports)} (the default is {DEFAULT_BASE_PORT}), or reserve the ports "
                "(sysctl net.ipv4.ip_local_reserved_ports)")

    @property
    def mysql_port(self) -> int:
        return self.base_port + 1

    @property
    def postgres_port(self) -> int:
        return self.base_port + 2

    @property
    def vault_port(self) -> int:
        return self.base_port + 3

    @property
    def latin1_mysql_port(self) -> int:
        return self.base_port + 5

    @property
    def s3_port(self) -> int:
        return self.base_port + 6

    def s3(self, *, timeout: float = 60) -> s3.S3Endpoint:
        """moto's S3-compatible server on 127.0.0.1:base+6, started on first use (`environment_creators/s3.py`);
        ``down`` stops it with the rest."""
        server = s3.MotoS3(self.root, self.s3_port)
        if not server.healthy():
            with self._locked():
                return server.ensure(timeout=timeout)
        return s3.S3Endpoint(server.url)

    @property
    def runner_user(self) -> str:
        return f"{self.name}_runner"

    # --- up ----------------------------------------------------------------------------------------------

    def up(self) -> RigInfo:
        """Bring everything up (or complete a partial rig) and wait until every piece accepts logins."""
        started = time.monotonic()
        # Refused before anything starts; a rig already running on such ports is left running (its servers
        # hold their ports already), with a warning, and refused once it needs a server started again.
        clash = self._ephemeral_clash()
        if clash and not self.layout.rig_json.exists():
            raise RigError(clash)
        pg_bin = prerequisites.check()
        make_dir(self.root)
        ensure_traversable(self.root)
        with self._locked():
            if self.layout.rig_json.exists():
                info = self._check_same_settings(self.info())
                if self._healthy(info, pg_bin):
                    if clash:
                        log.warning("rig %s: %s", self.name, clash)
                    log.info("rig %s is already up (%s mode)", self.name, info.mode)
                    return info
                if clash:
                    raise RigError(clash)
                self._preflight(info, pg_bin)
            else:
                info = self._plan(self._choose_mode(), None)
                try:
                    self._preflight(info, pg_bin)
                except RigError:
                    self._remove_root()  # nothing was created yet but the empty root
                    raise
            info.save(self.layout.rig_json)
            self._build(info, pg_bin)
        log.info("rig %s is up (%s mode) in %.1fs", self.name, info.mode, time.monotonic() - started)
        return info

    def _build(self, info: RigInfo, pg_bin: Path) -> None:
        lay = self.layout
        if info.mode == "netns":
            network.ensure(self.name, self.subnet_index, len(info.runners))
        hosts.ensure_user(info.runner_user, info.runner_password, self.name)
        hosts.ensure_client_key(lay, self.name)
        for index, runner in enumerate(info.runners, start=1):
            hosts.ensure_host_key(lay, index)
            hosts.write_sshd_config(lay, index, runner, info.runner_user)
        hosts.write_known_hosts(lay, info.runners)
        with ThreadPoolExecutor(max_workers=3 + len(info.runners), thread_name_prefix="rig-up") as pool:
            jobs = [pool.submit(self._mariadb(info).ensure), pool.submit(self._postgres(info, pg_bin).ensure),
                    pool.submit(self._openbao(info).ensure),
                    *(pool.submit(hosts.start_sshd, lay, i, r) for i, r in enumerate(info.runners, start=1))]
            errors = [exc for job in jobs if (exc := job.exception()) is not None]
        if errors:
            raise RigError("rig up failed (run down to clean up):\n" + "\n".join(f"- {e}" for e in errors))

    def _preflight(self, info: RigInfo, pg_bin: Path) -> None:
        """Catch clashes (ports, subnet, a foreign user) before anything is created."""
        problems = []
        if info.mode == "netns":
            try:
                network.check_subnet_unused(self.name, self.subnet_index)
            except RigError as exc:
                problems.append(str(exc))
        wanted = []
        if not self._mariadb(info).is_running():
            wanted.append(("MariaDB", info.mysql.port))
        if not self._postgres(info, pg_bin).is_running():
            wanted.append(("PostgreSQL", info.postgres.port))
        bao = self._openbao(info)
        if not bao.is_running():
            wanted += [("OpenBao", bao.port), ("OpenBao cluster", bao.port + 1)]
        for index, runner in enumerate(info.runners, start=1):
            if runner.netns is None and not hosts.sshd_running(self.layout, index):
                wanted.append((f"runner {index} sshd", runner.port))
        problems += [f"{what} port 127.0.0.1:{port} is already in use; pick another --base-port"
                     for what, port in wanted if not port_free("127.0.0.1", port)]
        if not hosts.user_ok(info.runner_user, self.name) and hosts.user_exists(info.runner_user):
            problems.append(f"system user {info.runner_user} exists but was not created by rig {self.name!r}; "
                            "remove it or pick another --name")
        if problems:
            raise RigError("cannot bring the rig up:\n" + "\n".join(f"- {p}" for p in problems))

    def _choose_mode(self) -> Mode:
        wanted = os.environ.get(MODE_ENV, "").strip().lower()
        if wanted == "loopback":
            return "loopback"
        if wanted not in ("", "netns"):
            raise RigError(f"{MODE_ENV}={wanted!r}: use netns or loopback")
        ok, why = network.netns_supported(self.name)
        if ok:
            return "netns"
        if wanted == "netns":
            raise RigError(f"{MODE_ENV}=netns but network namespaces do not work here: {why}")
        log.warning("network namespaces unavailable (%s); using loopback mode", why)
        return "loopback"

    def _plan(self, mode: Mode, previous: RigInfo | None) -> RigInfo:
        """The rig's shape; secrets are reused from ``previous`` so a re-plan can be compared with it."""
        if mode == "netns":
            runners = [RunnerInfo(network.netns_name(self.name, i), network.runner_address(self.subnet_index, i),
                                  22, network.netns_name(self.name, i)) for i in range(1, self.runners + 1)]
            db_host = network.bridge_address(self.subnet_index)
        else:
            runners = [RunnerInfo(f"{self.name}-r{i}", "127.0.0.1", self.base_port + 10 + i, None)
                       for i in range(1, self.runners + 1)]
            db_host = "127.0.0.1"

        def db(port: int, admin_user: str, old: DbInfo | None) -> DbInfo:
            return DbInfo(port=port, admin_user=admin_user, admin_password=old.admin_password if old else _secret(),
                          app_user="app", app_password=old.app_password if old else _secret())

        return RigInfo(
            name=self.name, root=str(self.root), mode=mode, known_hosts=str(self.layout.known_hosts),
            runner_user=self.runner_user,
            runner_password=previous.runner_password if previous else _secret(),
            runner_key_file=str(self.layout.client_key), runners=runners, db_host_for_runners=db_host,
            replay_bin=str(self.layout.replay_bin),
            mysql=db(self.mysql_port, "root", previous.mysql if previous else None),
            postgres=db(self.postgres_port, "postgres", previous.postgres if previous else None),
            vault_addr=f"http://127.0.0.1:{self.vault_port}",
            vault_token=previous.vault_token if previous and previous.vault_token else _secret(),
            vault_token_file=str(self.layout.openbao_token),
            # Chosen here rather than by OpenBao so it is known before the server runs and survives a reseed.
            vault_role_id=previous.vault_role_id if previous and previous.vault_role_id else str(uuid.uuid4()),
            vault_role=openbao.ROLE, vault_policy=openbao.POLICY, vault_prefix=openbao.prefix(self.name),
            vault_kv2_mount=openbao.KV2_MOUNT, vault_kv1_mount=openbao.KV1_MOUNT)

    def _check_same_settings(self, info: RigInfo) -> RigInfo:
        """The planned info (equal to ``info``, or ``info`` plus OpenBao settings for an older rig.json)."""
        planned = self._plan(info.mode, info)
        current = info.to_dict()
        if not info.vault_token:
            current.update({k: v for k, v in planned.to_dict().items() if k in VAULT_FIELDS})
        if planned.to_dict() != current:
            raise RigError(f"rig {self.name} at {self.root} already exists with other settings "
                           f"({len(info.runners)} runner(s), MariaDB port {info.mysql.port}, runners reach the "
                           f"databases at {info.db_host_for_runners}, OpenBao {info.vault_addr or 'none'}); "
                           "run down first")
        return planned

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down of the same rig (e.g. parallel pytest workers sharing one)."""
        fd = os.open(self.layout.lock, os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    # --- down --------------------------------------------------------------------------------------------

    def down(self) -> None:
        """Stop and remove everything this rig created; safe when partly up or already down."""
        if os.geteuid() != 0:
            raise RigError("the rig must be taken down as root")
        started = time.monotonic()
        if self.root.is_dir():
            with self._locked():
                self._down()
        else:
            self._down()
        log.info("rig %s is down (%.1fs)", self.name, time.monotonic() - started)

    def _down(self) -> None:
        lay = self.layout
        try:
            info: RigInfo | None = self.info()
        except RigError:
            info = None
        indices = set(range(1, (len(info.runners) if info else self.runners) + 1))
        indices |= {int(p.name[6:]) for p in lay.ssh.glob("runner*") if p.name[6:].isdigit()}
        for index in sorted(indices):
            hosts.stop_sshd(lay, index)
        openbao.stop(lay)
        # The port from rig.json (base+1 is MariaDB's): `down` may be run without the rig's --base-port.
        s3.MotoS3(self.root, info.mysql.port + 5 if info else self.s3_port).stop()
        network.teardown(self.name)
        placeholder = DbInfo(port=0, admin_user="", admin_password="", app_user="", app_password="")
        pg_bin = prerequisites.postgres_bin_dir() or Path("/usr/lib/postgresql/15/bin")
        with ThreadPoolExecutor(max_workers=3, thread_name_prefix="rig-down") as pool:
            jobs = [pool.submit(MariaDb(lay.mariadb, placeholder, []).stop),
                    pool.submit(MariaDb(lay.mariadb_latin1, placeholder, []).stop),
                    pool.submit(Postgres(lay, placeholder, pg_bin, [], []).stop)]
            for job in jobs:
                job.result()
        hosts.delete_user(self.runner_user, self.name)
        self._remove_root()

    def _remove_root(self) -> None:
        if not self.root.exists():
            return
        foreign = sorted(p.name for p in self.root.iterdir() if p.name not in OWN_ENTRIES)
        for name in OWN_ENTRIES:
            remove_tree(self.root / name)
        if foreign:
            log.warning("kept %s: it holds files the rig did not create (%s)", self.root, ", ".join(foreign))
            return
        self.root.rmdir()
        default_parent = PROJECT_DIR / ".rig"
        if self.root.parent == default_parent and not any(default_parent.iterdir()):
            default_parent.rmdir()

    # --- inspection --------------------------------------------------------------------------------------

    def info(self) -> RigInfo:
        try:
            return RigInfo.load(self.layout.rig_json)
        except FileNotFoundError:
            raise RigError(f"rig {self.name} is not up: no {self.layout.rig_json}") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise RigError(f"{self.layout.rig_json} is unreadable ({exc}); run down and up again") from exc

    def status(self) -> dict[str, bool]:
        """Health of each piece, for ``status`` and for deciding whether ``up`` has anything to do."""
        info = self.info()
        pg_bin = prerequisites.postgres_bin_dir()
        result = {"mariadb": self._mariadb(info).healthy(),
                  "postgres": pg_bin is not None and self._postgres(info, pg_bin).healthy(),
                  "openbao": self._openbao(info).healthy()}
        for index, runner in enumerate(info.runners, start=1):
            result[runner.name] = (hosts.sshd_running(self.layout, index)
                                   and sshd_answers(runner.host, runner.port))
        return result

    def _healthy(self, info: RigInfo, pg_bin: Path) -> bool:
        if not all(self.status().values()):
            return False
        try:
            self._mariadb(info).exec("SELECT 1", admin=False)
            self._postgres(info, pg_bin).exec("SELECT 1", admin=False)
        except RigError:
            return False
        # Dev mode is in memory: a server restarted behind our back answers but holds nothing.
        return (self._openbao(info).seeded() and hosts.user_ok(info.runner_user, self.name)
                and Path(info.known_hosts).exists())

    # --- runners -----------------------------------------------------------------------------------------

    def _runner(self, index: int) -> RunnerInfo:
        runners = self.info().runners
        if not 1 <= index <= len(runners):
            raise RigError(f"runner {index} does not exist; this rig has runners 1..{len(runners)}")
        return runners[index - 1]

    def stop_runner(self, index: int) -> None:
        """Make runner ``index`` go away: its sshd, every session and (netns) everything in its namespace."""
        runner = self._runner(index)
        extra = network.netns_pids(runner.netns) if runner.netns else []
        hosts.stop_sshd(self.layout, index, extra_pids=extra)

    def start_runner(self, index: int) -> None:
        hosts.start_sshd(self.layout, index, self._runner(index))

    def bastion(self) -> bastion.BastionInfo:
        """A bastion and a runner reachable only through it (netns mode), started on first use; ``down`` removes
        them with the rest (environment_creators/bastion.py)."""
        info = self.info()
        with self._locked():  # parallel workers asking at once start one of each
            return bastion.ensure(self.layout, info, self.name, self.subnet_index)

    # --- databases ---------------------------------------------------------------------------------------

    def _bind_addresses(self, info: RigInfo) -> list[str]:
        return ["127.0.0.1"] + ([info.db_host_for_runners] if info.mode == "netns" else [])

    def _mariadb(self, info: RigInfo) -> MariaDb:
        return MariaDb(self.layout.mariadb, info.mysql, self._bind_addresses(info), binary_log=True)

    def _latin1_mariadb_server(self, info: RigInfo) -> MariaDb:
        """The main MariaDB's users and passwords, so the suite's secret scanning already covers them."""
        return MariaDb(self.layout.mariadb_latin1, replace(info.mysql, port=self.latin1_mysql_port),
                       self._bind_addresses(info), server_charset=LATIN1, client_charset="utf8mb4",
                       sample_database=None, label="MariaDB (latin1)")

    def latin1_mariadb(self, *, timeout: float = 60) -> MariaDbEndpoint:
        """A second MariaDB whose server defaults are latin1, for tests that UTF-8 text survives servers set
        up long ago. Started on first use rather than by ``up``: few tests need it and ``up`` stays quick;
        once running, a call costs one login. ``down`` stops and removes it with the rest."""
        info = self.info()
        server = self._latin1_mariadb_server(info)
        if not server.healthy(admin=False):
            with self._locked():  # parallel workers asking at once start one server
                server.ensure(timeout=timeout)
        return MariaDbEndpoint(server, info.db_host_for_runners)

    def _postgres(self, info: RigInfo, pg_bin: Path | None = None) -> Postgres:
        networks = ["127.0.0.1/32"]
        if info.mode == "netns":
            networks.append(str(network.subnet(self.subnet_index)))
        bin_dir = pg_bin or prerequisites.postgres_bin_dir()
        if bin_dir is None:
            raise RigError("PostgreSQL is not installed: apt-get install -y postgresql")
        return Postgres(self.layout, info.postgres, bin_dir, self._bind_addresses(info), networks)

    def _openbao(self, info: RigInfo) -> OpenBao:
        return OpenBao(self.layout, info)

    def mysql_exec(self, sql: str, database: str | None = None, *, admin: bool = True) -> str:
        """Run SQL with the native ``mysql`` client over TCP; stdout, or RigError carrying stderr."""
        return self._mariadb(self.info()).exec(sql, database, admin=admin)

    def psql_exec(self, sql: str, database: str = "postgres", *, admin: bool = True) -> str:
        """Run SQL with the native ``psql`` client over TCP; stdout, or RigError carrying stderr."""
        return self._postgres(self.info()).exec(sql, database, admin=admin)

    def create_mysql_database(self, name: str) -> None:
        """Create (if missing) a utf8mb4 database; the app user's global grants cover it."""
        self.mysql_exec(f"CREATE DATABASE IF NOT EXISTS {mysql_ident(name)} "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")

    def drop_mysql_database(self, name: str) -> None:
        self.mysql_exec(f"DROP DATABASE IF EXISTS {mysql_ident(name)}")

    def create_postgres_database(self, name: str, owner: str = "app") -> None:
        """Create (if missing) a database owned by ``owner``, so the app role can build schemas in it."""
        self._postgres(self.info()).create_database(name, owner)

    def drop_postgres_database(self, name: str) -> None:
        """Drop, disconnecting any session still using it."""
        self._postgres(self.info()).drop_database(name)

    # --- client files, for tests and scripts that call the native clients themselves ------------------------

    def mysql_defaults_file(self, *, admin: bool = True) -> Path:
        """0600 ``[client]`` option file for ``mysql --defaults-extra-file``."""
        return self.layout.mariadb.cnf(admin=admin)

    def pgpass_file(self, *, admin: bool = True) -> Path:
        """0600 file for ``PGPASSFILE``."""
        return self.layout.pgpass(admin=admin)

    # --- OpenBao -----------------------------------------------------------------------------------------

    def vault_client(self, token: str | None = None) -> Any:
        """An hvac client for the rig's OpenBao, with the root token unless another token is given."""
        return self._openbao(self.info()).client(token)

    def vault_secret_id(self) -> str:
        """A fresh AppRole secret_id for ``info().vault_role`` (pair it with ``info().vault_role_id``)."""
        return self._openbao(self.info()).new_secret_id()

    def vault_env(self) -> dict[str, str]:
        """What a shell script needs to reach the rig's OpenBao; the token stays in its 0600 file."""
        info = self.info()
        if not info.vault_addr:
            raise RigError(f"rig {self.name} has no OpenBao yet; run up again")
        return {"VAULT_ADDR": info.vault_addr, "VAULT_TOKEN_FILE": info.vault_token_file}


# --- CLI ---------------------------------------------------------------------------------------------------

def _summary(info: RigInfo) -> str:
    lines = [f"rig {info.name} ({info.mode} mode), root {info.root}",
             f"  MariaDB     127.0.0.1:{info.mysql.port}  (runners use {info.db_host_for_runners})",
             f"  PostgreSQL  127.0.0.1:{info.postgres.port}  (runners use {info.db_host_for_runners})"]
    lines += [f"  runner {r.name:<10} {r.host}:{r.port}" + (f"  netns {r.netns}" if r.netns else "")
              for r in info.runners]
    lines += [f"  runner user {info.runner_user}, key {info.runner_key_file}",
              f"  known_hosts {info.known_hosts}",
              f"  OpenBao     {info.vault_addr}  (dev mode; root token in {info.vault_token_file}, mode 0600)",
              f"  secrets     {info.vault_kv2_mount}/ (KV v2) and {info.vault_kv1_mount}/ (KV v1) at "
              f"{info.vault_prefix}/{{runner,mysql,postgres}}; AppRole {info.vault_role} role_id "
              f"{info.vault_role_id}",
              f"  passwords   {Path(info.root) / 'rig.json'} (mode 0600)"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m environment_creators.rig",
                                     description="Private databases and SSH runner hosts for dbupdater.")
    parser.add_argument("command", choices=["up", "down", "info", "status", "vault-env"])
    parser.add_argument("--name", default="dbu")
    parser.add_argument("--root", type=Path, default=None, help="rig directory (default: <project>/.rig/NAME)")
    parser.add_argument("--runners", type=int, default=2)
    parser.add_argument("--subnet-index", type=int, default=0, help="runners live in 10.231.I.0/24")
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT,
                        help="first of the rig's ports, all below the kernel's ephemeral range (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="rig: %(message)s", stream=sys.stderr)
    try:
        rig = Rig(args.name, args.root, args.runners, args.subnet_index, args.base_port)
        if args.command == "up":
            print(_summary(rig.up()))
        elif args.command == "down":
            rig.down()
        elif args.command == "info":
            print(json.dumps(rig.info().to_dict(passwords=False), indent=2))
        elif args.command == "vault-env":
            for key, value in rig.vault_env().items():
                print(f"{key}={shlex.quote(value)}")
        else:
            health = rig.status()
            for piece, ok in health.items():
                print(f"{piece:<12} {'up' if ok else 'DOWN'}")
            return 0 if all(health.values()) else 1
    except RigError as exc:
        print(f"rig: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

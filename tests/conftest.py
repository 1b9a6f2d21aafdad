"""Fixtures over the real rig: sshd runners in network namespaces, MariaDB and PostgreSQL.

The rig is brought up once per session under its own name, ports and subnet, so it coexists with a rig a
user brought up with bin/bring_up.sh. `DBU_KEEP_RIG=1` leaves it running for the next session.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import glob
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _worker_rig() -> None:
    """Under pytest-xdist (bin/run_tests.sh runs two workers) each worker brings up a rig of its own: the first
    the usual one (`dbt`, or the one DBU_TEST_RIG_* name), the others `<name><N>` 10*N subnets and 20*N ports
    further. Set in the environment, so the tests that read the rig's name and every process they start agree."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    if not worker.startswith("gw"):
        return
    # xdist sets COLUMNS=80 and LINES=24 in its workers; the tool's output then wraps where a test runs it
    # in one process does not (its width without a terminal is COLUMNS, else 200).
    for variable in ("COLUMNS", "LINES"):
        os.environ.pop(variable, None)
    index = int(worker[2:])
    if index:
        name = os.environ.get("DBU_TEST_RIG_NAME", "dbt")
        subnet = int(os.environ.get("DBU_TEST_RIG_SUBNET", "1"))
        port = int(os.environ.get("DBU_TEST_RIG_PORT", "27400"))
        os.environ.update(DBU_TEST_RIG_NAME=f"{name}{index}", DBU_TEST_RIG_SUBNET=str(subnet + 10 * index),
                          DBU_TEST_RIG_PORT=str(port + 20 * index))
        os.environ.pop("DBU_TEST_RIG_ROOT", None)  # the fixture derives it from the name


_worker_rig()
CORPUS = ROOT.parent / "shared" / "corpus"
HEADER = ["sql_runner_host", "sql_runner_userid", "sql_runner_password", "sql_runner_port", "sql_runner_key_file",
          "database_type", "database_host", "database_userid", "database_password", "port", "database",
          "sql_script_to_run"]


@pytest.fixture(scope="session")
def rig():  # type: ignore[no-untyped-def]
    if os.geteuid() != 0:
        pytest.skip("the rig needs root (runner users, network namespaces, private servers)")
    from environment_creators.rig import Rig

    # Overridable so that two suites (or two people) on one machine can each have their own rig.
    name = os.environ.get("DBU_TEST_RIG_NAME", "dbt")
    root = Path(os.environ.get("DBU_TEST_RIG_ROOT", "/tmp/dbupdater-test-rig" + ("" if name == "dbt" else "-" + name)))
    handle = Rig(name=name, root=root, runners=2, subnet_index=int(os.environ.get("DBU_TEST_RIG_SUBNET", "1")),
                 base_port=int(os.environ.get("DBU_TEST_RIG_PORT", "27400")))
    try:
        handle.up()
    except Exception as exc:
        # Every rig test then errors with this at its set-up, and a CI log shows only its end: bin/run_tests.sh
        # prints this file last (RigError texts hold server log tails, never a password).
        if failures := os.environ.get("DBU_RIG_FAILURES"):
            with open(failures, "a", encoding="utf-8") as out:
                out.write(f"== rig {name} did not come up: {exc}\n")
        raise
    yield handle
    if os.environ.get("DBU_KEEP_RIG") != "1":
        handle.down()


@pytest.fixture(scope="session")
def info(rig):  # type: ignore[no-untyped-def]
    return rig.info()


@pytest.fixture
def binary_log(rig) -> None:  # type: ignore[no-untyped-def]
    """For the tests of `copy-db --follow`: the rig's MariaDB writes its binary log, or the test is skipped with
    the reason the rig wrote when the server would not come up with one (environment_creators/mariadb.py)."""
    if rig.mysql_exec("SELECT @@log_bin").strip() != "1":
        failure = rig.layout.mariadb.binary_log_failure
        reason = failure.read_text().strip() if failure.exists() else "no reason recorded"
        pytest.skip(f"the rig's MariaDB runs without its binary log here: {reason}")


@dataclass
class Target:
    """A fresh, empty database on one of the rig's servers, with the SQL dialect a test needs."""

    rig: object
    engine: str
    name: str
    host: str
    port: int
    user: str
    password: str = field(repr=False)  # a failing test prints its arguments: never a rig password
    admin_user: str
    admin_password: str = field(repr=False)

    @property
    def database_type(self) -> str:
        return {"mysql": "MySQL", "postgresql": "PostgreSQL"}[self.engine]

    def create(self) -> Target:
        (self.rig.create_mysql_database if self.engine == "mysql"  # type: ignore[attr-defined]
         else self.rig.create_postgres_database)(self.name)  # type: ignore[attr-defined]
        return self

    def drop(self) -> None:
        (self.rig.drop_mysql_database if self.engine == "mysql"  # type: ignore[attr-defined]
         else self.rig.drop_postgres_database)(self.name)  # type: ignore[attr-defined]

    def sibling(self, name: str) -> Target:
        """Another fresh database on the same server, with the same logins (the caller drops it)."""
        return dataclasses.replace(self, name=name).create()

    def query(self, sql: str) -> str:
        if self.engine == "mysql":
            return self.rig.mysql_exec(sql, self.name)  # type: ignore[attr-defined,no-any-return]
        return self.rig.psql_exec(sql, self.name)  # type: ignore[attr-defined,no-any-return]

    def rows(self, sql: str) -> list[list[str]]:
        """Result rows as lists of text (mysql separates with tabs, psql -A with bars)."""
        return [line.replace("|", "\t").split("\t") for line in self.query(sql).splitlines() if line]

    def tables(self) -> set[str]:
        if self.engine == "mysql":
            out = self.query("SHOW TABLES")
        else:
            out = self.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {line.strip() for line in out.splitlines() if line.strip()}

    def sleep(self, seconds: float) -> str:
        return f"SELECT SLEEP({seconds});" if self.engine == "mysql" else f"SELECT pg_sleep({seconds});"

    def warning(self) -> str:
        """A statement the server answers with a warning or notice, not an error."""
        if self.engine == "mysql":
            return "DROP TABLE IF EXISTS no_such_table_here;\nSELECT 1/0;"
        return "DROP TABLE IF EXISTS no_such_table_here;\nDO $$ BEGIN RAISE WARNING 'heads up'; END $$;"

    def stderr_line(self, text: str) -> str:
        """A client command that writes a plain line on stderr and succeeds (both clients have `\\!`)."""
        return f"\\! echo {text} 1>&2\n"


def new_target(rig, info, engine: str, name: str | None = None) -> Target:  # type: ignore[no-untyped-def]
    """A fresh, empty database on the rig's server for `engine`, logged in to as the app user (the caller
    drops it, or uses `fresh_targets`)."""
    db = info.mysql if engine == "mysql" else info.postgres
    return Target(rig, engine, name or f"t_{secrets.token_hex(4)}", info.db_host_for_runners, db.port, db.app_user,
                  db.app_password, db.admin_user, db.admin_password).create()


@contextlib.contextmanager
def fresh_targets(rig, info, engines: Iterable[str], name: str | None = None) -> Iterator[list[Target]]:  # type: ignore[no-untyped-def]
    """One fresh database per engine named, in that order (all called `name` when given), dropped afterwards."""
    made: list[Target] = []
    try:
        for engine in engines:
            made.append(new_target(rig, info, engine, name))
        yield made
    finally:
        for target in made:
            target.drop()


@pytest.fixture(params=["mysql", "postgresql"])
def target(request, rig, info) -> Iterator[Target]:  # type: ignore[no-untyped-def]
    with fresh_targets(rig, info, [request.param]) as (made,):
        yield made


@dataclass
class Workspace:
    """A folder holding a manifest and its scripts, like a user's repository."""

    dir: Path
    info: object
    rows: list[dict[str, str]] = field(default_factory=list, repr=False)  # the rows hold passwords

    def script(self, name: str, text: str) -> str:
        path = self.dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return name

    def row(self, target: Target, script: str, runner: int = 1, **overrides: str) -> dict[str, str]:
        info = self.info
        spec = info.runners[runner - 1]  # type: ignore[attr-defined]
        row = {
            "sql_runner_host": spec.host,
            "sql_runner_userid": info.runner_user,  # type: ignore[attr-defined]
            "sql_runner_password": info.runner_password,  # type: ignore[attr-defined]
            "sql_runner_port": str(spec.port),
            "sql_runner_key_file": "",
            "database_type": target.database_type,
            "database_host": target.host,
            "database_userid": target.user,
            "database_password": target.password,
            "port": str(target.port),
            "database": target.name,
            "sql_script_to_run": script,
        }
        row.update(overrides)
        self.rows.append(row)
        return row

    def write(self, name: str = "manifest.csv", header: list[str] | None = None) -> Path:
        return write_manifest(self.dir / name, header or HEADER, self.rows)


def write_manifest(path: Path, columns: list[str], rows: list[dict[str, str]]) -> Path:
    """A manifest CSV with these columns, a row per dict (missing cells empty)."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in rows:
            writer.writerow([row.get(column, "") for column in columns])
    return path


@pytest.fixture
def workspace(tmp_path, info) -> Workspace:  # type: ignore[no-untyped-def]
    return Workspace(tmp_path, info)


def secret_values(info) -> list[str]:  # type: ignore[no-untyped-def]
    values = [info.runner_password, info.mysql.app_password, info.mysql.admin_password, info.postgres.app_password,
              info.postgres.admin_password, info.vault_token]
    key = Path(info.runner_key_file).read_text(encoding="utf-8")
    return [value for value in values if value] + [line for line in key.splitlines() if len(line) > 40]


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


@pytest.fixture
def run_tool(info):  # type: ignore[no-untyped-def]
    """Run an entry point as users do, in a subprocess; every run is checked for leaked secrets."""

    def run(*args: str, script: str = "remote_database_updater.py", known_hosts: bool = True,
            env: dict[str, str] | None = None, timeout: float = 300) -> Result:
        argv = [sys.executable, str(ROOT / script), *args, "--color", "never"]
        if known_hosts:
            argv += ["--known-hosts", info.known_hosts]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                              env={**os.environ, **(env or {})})
        result = Result(proc.returncode, proc.stdout, proc.stderr)
        for value in secret_values(info):
            assert value not in result.text, "a secret value appeared in the tool's output"
        return result

    return run


@pytest.fixture(autouse=True)
def _redactor_per_test() -> Iterator[None]:
    """Every secret a test's in-process code registers is masked for the rest of the process (as in a real
    run): without this, a fuzzer's random password `app` or `3306` would mask ordinary words in later tests."""
    from dbupdater.model.secret import redact

    saved = redact.values()
    yield
    redact.restore(saved)


@pytest.fixture(scope="session")
def s3(rig):  # type: ignore[no-untyped-def]
    """The rig's S3-compatible server (moto's, started on first use): the AWS environment that reaches it."""
    return rig.s3().env()


def process_texts() -> list[str]:
    """The command line and environment of every process on the machine (runners share our PID space)."""
    texts = []
    for proc in glob.glob("/proc/[0-9]*"):
        for name in ("cmdline", "environ"):
            try:
                texts.append(Path(proc, name).read_bytes().replace(b"\0", b" ").decode("utf-8", "replace"))
            except OSError:
                continue
    return texts


def run_sampled(argv: list[str], secrets: list[str], seen: Callable[[str], bool], *, deadline: float = 90.0,
                interval: float = 0.1) -> tuple[int, str, int]:
    """Run the tool while every process's argv and environment is read every `interval` s: no secret may
    appear there, nor in its output. Returns its exit code, its output, and how many samples caught something
    `seen` names (the client or command the check is about): none means the sampling proved nothing."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    caught = 0
    ends = time.monotonic() + deadline
    while proc.poll() is None and time.monotonic() < ends:
        texts = process_texts()
        caught += any(seen(text) for text in texts)
        for text in texts:
            for secret in secrets:
                assert secret not in text, "a password is visible in a process's argv or environment"
        time.sleep(interval)
    out, _ = proc.communicate(timeout=60)
    for secret in secrets:
        assert secret not in out, "a password is in the tool's output"
    return proc.returncode, out, caught

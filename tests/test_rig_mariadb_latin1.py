"""The rig's second MariaDB, whose server defaults are latin1: started on demand, reachable from the runners,
and stopped and removed with the rig.

Tests that UTF-8 text survives servers with legacy defaults build on it, so this file pins what they rely
on: the server really defaults to latin1, the rig's own sessions read text back as utf8mb4, and databases
get exactly the character set asked for. The stop test runs last in file order and starts the server again.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from environment_creators.mariadb import MariaDbEndpoint
from environment_creators.system import find_pids, port_free

TEXT = "Zürich € 東京 😀"


def _pids(root: Path) -> list[int]:
    return find_pids(rf"mariadbd .*--datadir={root}/mariadb-latin1/data( |$)")


@pytest.fixture
def latin1(rig: Any) -> MariaDbEndpoint:
    endpoint: MariaDbEndpoint = rig.latin1_mariadb()
    return endpoint


@pytest.fixture
def database(latin1: MariaDbEndpoint) -> Iterator[str]:
    name = f"l_{secrets.token_hex(4)}"
    latin1.create_database(name)
    yield name
    latin1.drop_database(name)


def _schema_charset(latin1: MariaDbEndpoint, name: str) -> list[str]:
    return latin1.exec("SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA "
                       f"WHERE SCHEMA_NAME = '{name}'").split()


def test_started_on_demand_with_latin1_defaults(rig: Any, latin1: MariaDbEndpoint) -> None:
    assert latin1.port == rig.base_port + 5
    assert latin1.host == rig.info().db_host_for_runners
    assert latin1.exec("SELECT @@character_set_server, @@collation_server").split() == ["latin1",
                                                                                        "latin1_swedish_ci"]
    assert (Path(rig.root) / "mariadb-latin1" / "data" / "mysql").is_dir()
    assert rig.mysql_exec("SELECT @@character_set_server").strip() == "utf8mb4", "the main MariaDB changed"


def test_repeated_call_is_quick_and_reuses_the_server(rig: Any, latin1: MariaDbEndpoint) -> None:
    before = _pids(rig.root)
    started = time.monotonic()
    again = rig.latin1_mariadb()
    assert time.monotonic() - started < 2
    assert again.port == latin1.port
    assert _pids(rig.root) == before and len(before) == 1


def test_same_users_as_the_main_mariadb(rig: Any, latin1: MariaDbEndpoint) -> None:
    main = rig.info().mysql
    assert (latin1.db.admin_user, latin1.db.admin_password) == (main.admin_user, main.admin_password)
    assert (latin1.db.app_user, latin1.db.app_password) == (main.app_user, main.app_password)
    assert latin1.exec("SELECT CURRENT_USER()", admin=False).strip() == f"{main.app_user}@%"
    for admin in (True, False):
        assert latin1.defaults_file(admin=admin).stat().st_mode & 0o777 == 0o600
    assert main.admin_password not in repr(latin1)


def test_runners_reach_it(rig: Any, latin1: MariaDbEndpoint) -> None:
    info = rig.info()
    runner = info.runners[0]
    if runner.netns is None:
        pytest.skip("loopback mode: runners share this machine's addresses")
    proc = subprocess.run(["ip", "netns", "exec", runner.netns, "mysql",
                           f"--defaults-extra-file={latin1.defaults_file(admin=False)}", f"--host={latin1.host}",
                           "--batch", "--skip-column-names", "-e", "SELECT @@character_set_server"],
                          capture_output=True, text=True, timeout=30, env={"PATH": os.environ["PATH"]})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "latin1"


def test_create_and_drop_database(latin1: MariaDbEndpoint) -> None:
    utf8, legacy, bare = (f"l_{secrets.token_hex(4)}" for _ in range(3))
    try:
        latin1.create_database(utf8)
        latin1.create_database(legacy, charset="latin1")
        latin1.exec(f"CREATE DATABASE {bare}")
        assert _schema_charset(latin1, utf8)[0] == "utf8mb4"
        assert _schema_charset(latin1, legacy) == ["latin1", "latin1_swedish_ci"]
        assert _schema_charset(latin1, bare) == ["latin1", "latin1_swedish_ci"], "server defaults not in effect"
        with pytest.raises(Exception, match="exists"):
            latin1.create_database(utf8, charset="latin1")
        with pytest.raises(Exception, match="not a character set"):
            latin1.create_database("x", charset="latin1; DROP DATABASE mysql")
    finally:
        for name in (utf8, legacy, bare):
            latin1.drop_database(name)
    for name in (utf8, legacy, bare):
        assert _schema_charset(latin1, name) == []


def test_rig_sessions_read_utf8_back_unchanged(latin1: MariaDbEndpoint, database: str) -> None:
    """What later tests compare against: without the pinned client charset this depends on the locale."""
    latin1.exec(f"CREATE TABLE t (v VARCHAR(50)); INSERT INTO t VALUES ('{TEXT}');", database)
    assert latin1.exec("SELECT v FROM t", database).rstrip("\n") == TEXT
    assert latin1.exec("SELECT HEX(v) FROM t", database).strip() == TEXT.encode().hex().upper()


def test_stop_and_start_again(rig: Any, latin1: MariaDbEndpoint, database: str) -> None:
    latin1.stop()
    assert not latin1.is_running()
    assert _pids(rig.root) == []
    assert port_free("127.0.0.1", latin1.port)
    again = rig.latin1_mariadb()
    assert again.is_running()
    assert database in again.exec("SHOW DATABASES").split(), "the data directory did not survive a restart"


def test_down_stops_and_removes_it() -> None:
    """On a small rig of its own: taking the shared rig down would pull it from under every other test."""
    if os.geteuid() != 0:
        pytest.skip("the rig needs root (runner users, network namespaces, private servers)")
    from environment_creators.rig import Rig

    root = Path("/tmp/dbupdater-test-rig-latin1")
    own = Rig(name="dbl", root=root, runners=1, subnet_index=7, base_port=27800)
    try:
        own.up()
        endpoint = own.latin1_mariadb()
        assert endpoint.port == 27805
        assert len(_pids(root)) == 1
    finally:
        own.down()
    assert _pids(root) == []
    assert port_free("127.0.0.1", 27805)
    assert not root.exists()

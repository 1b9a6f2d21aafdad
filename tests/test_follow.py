"""copy-db --follow / --detach on the rig: MariaDB's binary log read through a tunnel over the source runner's SSH
connection, applied to PostgreSQL through a tunnel over the destination runner's.

The copy itself is made here the way the copy makes it (the translation's DDL, its COPY rows through the
native clients, the position recorded before the rows are read), so `copy-db --follow` finds it complete and
follows at once; every command is sampled: no password in any process's argv or environment, nor in the
output."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from dbupdater.conversion.catalog import catalog_sql, read_catalog
from dbupdater.conversion.follow.position import CREATE
from dbupdater.conversion.model import ConversionPlan, TranslationOptions
from dbupdater.conversion.translate import translate
from tests.conftest import ROOT, Target, Workspace, fresh_targets, process_texts, run_sampled, secret_values

pytestmark = pytest.mark.usefixtures("binary_log")  # skipped, with the rig's reason, without one

SCHEMA = "copied"
SOURCE_DDL = """
CREATE TABLE items (
  id int unsigned NOT NULL AUTO_INCREMENT PRIMARY KEY,
  code varchar(20) NOT NULL UNIQUE,
  body blob, kind enum('a','b','c'), tags set('x','y','z'), price decimal(10,2), at datetime(3),
  stamp timestamp(6) NULL, flags bit(5), note text
);
CREATE TABLE nokey (v int, w varchar(5));
INSERT INTO items (code, body, kind, tags, price, at, stamp, flags, note) VALUES
  ('a1', 0x00ff10, 'a', 'x,z', 12.50, '2024-01-02 03:04:05.678', '2024-06-01 12:00:00.123456', b'10101', 'héllo'),
  ('a2', NULL, NULL, '', NULL, NULL, NULL, NULL, 'tab\\there');
INSERT INTO nokey VALUES (1, 'one');
"""
WAIT = 60.0  # seconds at most for the follower to catch up (a bound on a broken test, never a speed claim)


def wait_for(what: str, check: Callable[[], bool], follower: Follower | None = None) -> None:
    ends = time.monotonic() + WAIT
    while time.monotonic() < ends:
        if check():
            return
        if follower is not None and not follower.thread.is_alive():
            raise AssertionError(f"the follower ended while waiting for {what}: {follower.result}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}: {copy_row_of(follower)}")


def copy_row_of(follower: Follower | None) -> str:
    return "" if follower is None else str(follower.copy.follow_row())


class Copy:
    """A MariaDB source, its copy in a PostgreSQL schema, and the manifest naming both."""

    def __init__(self, rig: Any, info: Any, source: Target, target: Target, workspace: Workspace) -> None:
        self.rig, self.info, self.source, self.target = rig, info, source, target
        workspace.script("x.sql", "SELECT 1;\n")
        workspace.row(source, "x.sql", runner=1)
        workspace.row(target, "x.sql", runner=2)
        self.manifest = workspace.write()
        self.secrets = secret_values(info)

    def my(self, sql: str) -> str:
        return self.source.query(sql)

    def pg(self, sql: str) -> str:
        return self.rig.psql_exec(sql, self.target.name, admin=False)  # type: ignore[no-any-return]

    def plan(self) -> ConversionPlan:
        out = self.my(catalog_sql(self.source.name))
        rows = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return translate(read_catalog(self.source.name, rows), TranslationOptions(schema=SCHEMA))

    def raw(self, sql: str) -> str:
        """mysql's output unescaped (--raw), as the copy reads rows."""
        return subprocess.run(["mysql", f"--defaults-extra-file={self.rig.mysql_defaults_file(admin=False)}",
                               "--batch", "--skip-column-names", "--raw", self.source.name],
                              input=f"SET NAMES utf8mb4; SET time_zone = '+00:00';\n{sql};\n", capture_output=True,
                              text=True, check=True).stdout

    def master(self) -> tuple[str, int]:
        file, pos = self.my("SHOW MASTER STATUS").split("\t")[:2]
        return file, int(pos)

    def make(self, meanwhile: str = "") -> ConversionPlan:
        """The copy as the copy makes it: the position first, then the DDL and the rows (`meanwhile`: changes
        made on the source between the two, which the copy holds and the follower meets again)."""
        plan = self.plan()
        file, pos = self.master()
        if meanwhile:
            self.my(meanwhile)
        script = [*CREATE, *plan.types_sql, *(t.create_sql for t in plan.tables)]
        self.pg(f"CREATE SCHEMA {SCHEMA};\n" + ";\n".join(script) + ";\n"
                "CREATE TABLE dbupdater_copy.discarded_rows (source text, table_name text, row_key text, "
                "reason text, row_text text, copied_at timestamptz);\n"
                f"INSERT INTO dbupdater_copy.follow (source, target_schema, log_file, log_pos, state) VALUES "
                f"('mysql://{self.source.host}:{self.source.port}/{self.source.name}', '{SCHEMA}', '{file}', {pos}, "
                "'copied');")
        for table in plan.tables:
            data = self.raw(table.rows_sql)
            self.pg(f"{table.copy_sql};\n{data}\\.\n" + "".join(f"{sql}\n" for sql in table.after_load_sql))
        return plan

    def checksums(self, plan: ConversionPlan, name: str) -> tuple[str, str]:
        table = plan.table(name)
        return self.raw(table.source_checksum_sql).strip(), self.pg(table.target_checksum_sql).strip()

    def follow_row(self) -> dict[str, str]:
        out = self.pg("SELECT log_file, log_pos, state, coalesce(lag_seconds::text, ''), coalesce(message, '') "
                      "FROM dbupdater_copy.follow")
        values = out.strip().split("|")
        return dict(zip(("file", "pos", "state", "lag", "message"), values, strict=True))

    def caught_up(self) -> bool:
        row = self.follow_row()
        file, pos = self.master()
        return row["state"] == "following" and row["file"] == file and int(row["pos"]) >= pos and row["lag"] == "0"

    def argv(self, mode: str) -> list[str]:
        return [sys.executable, str(ROOT / "remote_database_updater.py"), "copy-db", "-f", str(self.manifest),
                "--from", self.source.name, "--to", self.target.name, "--schema", SCHEMA, f"--{mode}", "--yes", "-v",
                "--color", "never", "--known-hosts", self.info.known_hosts]

    @staticmethod
    def talks(text: str) -> bool:
        return "copy-db" in text

    def run(self, mode: str) -> tuple[int, str]:
        code, out, caught = run_sampled(self.argv(mode), self.secrets, self.talks, deadline=WAIT * 2)
        assert caught, "the sampling never saw the follower"
        return code, out


@pytest.fixture
def copy(rig, info, workspace: Workspace) -> Iterator[Copy]:  # type: ignore[no-untyped-def]
    with fresh_targets(rig, info, ["mysql", "postgresql"]) as (source, target):
        made = Copy(rig, info, source, target, workspace)
        made.my(SOURCE_DDL)
        yield made


class Follower:
    """The follower in the background, sampled the whole time; `result` once it ended."""

    def __init__(self, copy: Copy) -> None:
        self.copy = copy
        self.result: tuple[int, str] | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.result = self.copy.run("follow")

    def pid(self) -> int:
        marker = str(self.copy.manifest)
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                text = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if "copy-db" in text and marker in text and " --follow" in text:
                return int(proc.name)
        raise AssertionError("the follower is not running")

    def ended(self) -> tuple[int, str]:
        self.thread.join(timeout=WAIT * 2)
        assert self.result is not None
        return self.result


def test_follow_applies_changes_restarts_without_loss_stops_at_ddl_and_detaches(copy: Copy) -> None:
    # While the copy ran, a unique code moved from one row to another: meeting those changes again, the first
    # row takes the code back for a moment from the row the copy already has it on.
    plan = copy.make("INSERT INTO items (id, code) VALUES (10, 'q'); UPDATE items SET code = 'w' WHERE id = 10; "
                     "INSERT INTO items (id, code) VALUES (11, 'q');")
    assert not plan.table("nokey").followable
    before = copy.checksums(plan, "items")
    assert before[0] == before[1]

    follower = Follower(copy)
    wait_for("the follower to catch up", copy.caught_up, follower)
    copy.my("INSERT INTO items (code, body, kind, tags, price, at, stamp, flags, note) VALUES "
            "('b1', 0xdeadbeef00, 'c', 'y', -3.25, '1999-12-31 23:59:59.999', '2038-01-01 00:00:00', b'11111', "
            "'line\\nbreak');"
            "UPDATE items SET tags = 'x,y,z', price = 99.99 WHERE code = 'a1';"
            "UPDATE items SET id = 100, kind = 'b' WHERE code = 'a2';"
            "DELETE FROM items WHERE code = 'b1';"
            "INSERT INTO items (code, kind) VALUES ('c1', 'a'), ('c2', 'b');"
            "INSERT INTO nokey VALUES (2, 'two');")
    wait_for("the changes to arrive", copy.caught_up, follower)
    source_sum, target_sum = copy.checksums(plan, "items")
    assert source_sum == target_sum and source_sum != before[0]
    assert copy.pg(f"SELECT count(*) FROM {SCHEMA}.nokey").strip() == "1"  # not followed: as copied

    # Killed in the middle of a stream of transactions, then started again: nothing twice, nothing lost.
    writes = threading.Thread(target=lambda: [copy.my(f"INSERT INTO items (code) VALUES ('k{n}')")
                                              for n in range(60)])
    writes.start()
    wait_for("some of the stream to arrive", lambda: int(copy.pg(
        f"SELECT count(*) FROM {SCHEMA}.items WHERE code LIKE 'k%'").strip()) >= 5, follower)
    os.kill(follower.pid(), signal.SIGKILL)
    code, out = follower.ended()
    assert code == -signal.SIGKILL, out
    assert "not followed: nokey" in out
    writes.join()
    follower = Follower(copy)
    wait_for("the follower to catch up again", copy.caught_up, follower)
    assert copy.checksums(plan, "items")[0] == copy.checksums(plan, "items")[1]
    assert copy.pg(f"SELECT count(*) FROM {SCHEMA}.items WHERE code LIKE 'k%'").strip() == "60"

    # DDL on a followed table stops following before it, naming it; once the target matches, a rerun goes on.
    copy.my("ALTER TABLE items ADD COLUMN extra int")
    code, out = follower.ended()
    assert code != 0
    assert "ALTER TABLE items ADD COLUMN extra int" in out and "followed table items" in out, out
    assert copy.follow_row()["state"] == "stopped"
    copy.pg(f"ALTER TABLE {SCHEMA}.items ADD COLUMN extra integer")
    plan = copy.plan()
    follower = Follower(copy)
    copy.my("INSERT INTO items (code, extra) VALUES ('after', 7)")
    wait_for("the follower to continue past the statement", copy.caught_up, follower)
    assert copy.pg(f"SELECT extra FROM {SCHEMA}.items WHERE code = 'after'").strip() == "7"
    assert copy.checksums(plan, "items")[0] == copy.checksums(plan, "items")[1]

    # --detach from another process: the follower applies to the end, resets the identities, exits 0.
    copy.my("INSERT INTO items (code) VALUES ('last')")
    code, out = copy.run("detach")
    assert code == 0, out
    assert "detached by its follower" in out
    code, out = follower.ended()
    assert code == 0, out
    assert "detached at" in out and "identity sequence(s) set past the copied rows" in out
    assert copy.follow_row()["state"] == "detached"
    assert copy.pg(f"SELECT count(*) FROM {SCHEMA}.items WHERE code = 'last'").strip() == "1"
    highest = int(copy.my("SELECT max(id) FROM items").strip())
    new_id = copy.pg(f"INSERT INTO {SCHEMA}.items (code) VALUES ('pg') RETURNING id").strip()
    assert int(new_id) == max(highest + 1, int(copy.my(
        f"SELECT AUTO_INCREMENT FROM information_schema.TABLES WHERE TABLE_SCHEMA = '{copy.source.name}' "
        "AND TABLE_NAME = 'items'").strip()))


def test_the_tunnel_reaches_only_its_endpoint_through_the_runner_and_closes_with_the_block(info) -> None:  # type: ignore[no-untyped-def]
    import pymysql

    from dbupdater.model.secret import Secret
    from dbupdater.model.specs import RunnerSpec
    from dbupdater.transports import Tunnels, open_transport
    from dbupdater.transports.ssh import SSHOptions

    runner = info.runners[0]
    spec = RunnerSpec("ssh", runner.host, runner.port, info.runner_user, Secret(info.runner_password))
    transport = open_transport(spec, {"ssh": SSHOptions(Path(info.known_hosts))})
    try:
        assert isinstance(transport, Tunnels)
        with transport.tunnel(info.db_host_for_runners, info.mysql.port) as (host, port):
            assert host == "127.0.0.1"
            connection = pymysql.connect(host=host, port=port, user=info.mysql.app_user,
                                         password=info.mysql.app_password)
            with connection.cursor() as cursor:
                cursor.execute("SELECT USER()")
                seen_as = cursor.fetchone()[0]
            connection.close()
        # The server saw the runner, not this machine: the connection went through the runner's sshd.
        assert seen_as.endswith("@" + (runner.host if info.mode == "netns" else "127.0.0.1"))
        with pytest.raises(OSError):
            import socket

            socket.create_connection((host, port), timeout=5).close()
    finally:
        transport.close()
    assert not any(f"127.0.0.1:{port}" in text for text in process_texts())


def test_detach_without_a_follower_applies_the_log_itself_truncate_included(copy: Copy) -> None:
    plan = copy.make()
    copy.my("INSERT INTO items (code) VALUES ('x1'); TRUNCATE items; INSERT INTO items (code, kind) VALUES ('x2', 'c')")
    code, out = copy.run("detach")
    assert code == 0, out
    assert "carried `TRUNCATE items` as TRUNCATE ... RESTART IDENTITY on items" in out
    assert copy.follow_row()["state"] == "detached"
    assert copy.checksums(plan, "items")[0] == copy.checksums(plan, "items")[1]
    assert copy.pg(f"INSERT INTO {SCHEMA}.items (code) VALUES ('pg') RETURNING id").strip() == "2"
    code, out = copy.run("detach")  # once is enough: a detached copy is not followed again
    assert code != 0 and "(it is detached)" in out, out

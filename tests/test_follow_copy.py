"""copy-db --follow when the copy is not complete yet, on the rig, through the command line: it copies first, from
a binary log position recorded before any table is read, so changes made on the source while a table is being
copied and after the copy all arrive; `--restart --follow` copies afresh from a new position and follows; and a
plain copy-db records the position too, so that a later --follow follows it without copying again."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dbupdater.conversion.catalog import catalog_sql, read_catalog
from dbupdater.conversion.model import ConversionPlan, TranslationOptions
from dbupdater.conversion.translate import translate
from dbupdater.steps.convert_load import SOURCE_SESSION
from tests.conftest import ROOT, Target, Workspace, fresh_targets, secret_values

pytestmark = pytest.mark.usefixtures("binary_log")  # skipped, with the rig's reason, without one

SCHEMA = "copied"
WAIT = 90.0  # seconds at most for a copy or the follower (a bound on a broken test, never a speed claim)
ROWS = 150000


class Pair:
    """A MariaDB source with a big and a small table, an empty PostgreSQL destination, the manifest naming both."""

    def __init__(self, rig: Any, info: Any, source: Target, target: Target, manifest: Path) -> None:
        self.rig, self.info, self.source, self.target, self.manifest = rig, info, source, target, manifest

    def my(self, sql: str) -> str:
        return self.source.query(sql)

    def pg(self, sql: str) -> str:
        return self.rig.psql_exec(sql, self.target.name)  # type: ignore[no-any-return]

    def argv(self, *options: str) -> list[str]:
        return [sys.executable, str(ROOT / "remote_database_updater.py"), "copy-db", "-f", str(self.manifest),
                "--from", self.source.name, "--to", self.target.name, "--schema", SCHEMA, "--yes", "--color",
                "never", "--no-report", "--known-hosts", self.info.known_hosts, *options]

    def start(self, *options: str) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(*options), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def run(self, *options: str) -> tuple[int, str]:
        done = subprocess.run(self.argv(*options), capture_output=True, text=True, timeout=WAIT * 2)
        out = done.stdout + done.stderr
        for secret in secret_values(self.info):
            assert secret not in out
        return done.returncode, out

    def plan(self) -> ConversionPlan:
        rows = [json.loads(line) for line in self.my(catalog_sql(self.source.name)).splitlines()
                if line.startswith("{")]
        schema = read_catalog(self.source.name, rows)
        tables = tuple(t for t in schema.tables if not t.name.startswith("dbupdater_"))
        return translate(type(schema)(schema.database, tables), TranslationOptions(schema=SCHEMA))

    def same(self) -> bool:
        """Every table's checksum on both sides, each computed by its own server, equal."""
        for table in self.plan().tables:
            mine = subprocess.run(["mysql", f"--defaults-extra-file={self.rig.mysql_defaults_file()}", "--batch",
                                   "--skip-column-names", "--raw", self.source.name],
                                  input=SOURCE_SESSION + table.source_checksum_sql + ";\n", capture_output=True,
                                  text=True, check=True).stdout.strip()
            if mine != self.pg(table.target_checksum_sql).strip():
                return False
        return True

    def follow_row(self) -> dict[str, Any]:
        if "dbupdater_copy" not in self.pg("SELECT nspname FROM pg_namespace"):
            return {}
        out = self.pg("SELECT coalesce(json_agg(f), '[]') FROM dbupdater_copy.follow f").strip()
        rows = json.loads(out)
        return rows[0] if rows else {}

    def caught_up(self) -> bool:
        row = self.follow_row()
        file, pos = self.my("SHOW MASTER STATUS").split("\t")[:2]
        return bool(row) and row["state"] == "following" and row["log_file"] == file \
            and row["log_pos"] >= int(pos) and row["lag_seconds"] == 0

    def wait(self, what: str, check: Any, process: subprocess.Popen[str] | None = None) -> None:
        ends = time.monotonic() + WAIT
        while not check():
            if process is not None and process.poll() is not None:
                raise AssertionError(f"the command ended before {what}: {process.communicate()[0]}")
            assert time.monotonic() < ends, f"timed out waiting for {what}: {self.follow_row()}"
            time.sleep(0.1)

    def detach(self, follower: subprocess.Popen[str]) -> str:
        code, out = self.run("--detach")
        assert code == 0, out
        said, _ = follower.communicate(timeout=WAIT)
        assert follower.returncode == 0, said
        for secret in secret_values(self.info):
            assert secret not in said
        return said


@pytest.fixture
def pair(rig: Any, info: Any, workspace: Workspace) -> Iterator[Pair]:
    with fresh_targets(rig, info, ["mysql", "postgresql"]) as (source, target):
        source.query(f"CREATE TABLE big (id INT PRIMARY KEY, c VARCHAR(40)); INSERT INTO big SELECT seq, MD5(seq) "
                     f"FROM seq_1_to_{ROWS}; CREATE TABLE small (id INT PRIMARY KEY, label VARCHAR(20)); "
                     "INSERT INTO small VALUES (1, 'one'), (2, 'two'), (3, 'three'); ANALYZE TABLE big, small")
        workspace.script("x.sql", "SELECT 1;\n")
        workspace.row(source, "x.sql", runner=1)
        workspace.row(target, "x.sql", runner=2)
        yield Pair(rig, info, source, target, workspace.write())


def copying_big(pair: Pair) -> bool:
    out = pair.pg("SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy WHERE "
                  "datname = current_database()").strip()
    return int(out or 0) > 1000


def test_follow_copies_first_and_changes_made_during_and_after_the_copy_arrive_then_restart(pair: Pair) -> None:
    follower = pair.start("--follow", "--parallel", "1")  # one table at a time: big first (the larger)
    try:
        pair.wait("the big table being copied", lambda: copying_big(pair), follower)
        # While big is being copied (its snapshot taken), small not yet read: both sets of changes must arrive.
        pair.my("UPDATE big SET c = 'during' WHERE id IN (1, 150000); DELETE FROM big WHERE id = 2; "
                "INSERT INTO small VALUES (10, 'during'); UPDATE small SET label = 'changed' WHERE id = 1")
        pair.wait("following to catch up", pair.caught_up, follower)
        pair.my("INSERT INTO big VALUES (200000, 'after'); DELETE FROM small WHERE id = 2")
        pair.wait("the changes after the copy", lambda: pair.caught_up() and pair.pg(
            f"SELECT count(*) FROM {SCHEMA}.big WHERE id = 200000").strip() == "1", follower)
        assert pair.same()
        assert pair.pg(f"SELECT c FROM {SCHEMA}.big WHERE id IN (1, 2, 150000) ORDER BY id").split() == [
            "during", "during"]
        first = pair.follow_row()

        # Stopped (Ctrl-C), the copy damaged meanwhile on the destination, changes on the source: --restart
        # --follow records a new position, copies afresh and follows.
        follower.send_signal(signal.SIGINT)
        out, _ = follower.communicate(timeout=WAIT)
        assert follower.returncode != 0 and pair.follow_row()["state"] == "paused", out
        assert "copying first: no position of a copy" in out and "big: 149,999 rows" not in out
        assert f"big: {ROWS:,} rows, 0 discarded, checksum equal" in out  # the copy as it was read, said by default
        pair.pg(f"DELETE FROM {SCHEMA}.small; UPDATE {SCHEMA}.big SET c = 'damaged'")
        pair.my("UPDATE small SET label = 'before restart' WHERE id = 3")
        follower = pair.start("--restart", "--follow")
        pair.wait("following after the restart", pair.caught_up, follower)
        pair.my("INSERT INTO small VALUES (20, 'after restart')")
        pair.wait("a change after the restart", lambda: pair.caught_up() and pair.pg(
            f"SELECT count(*) FROM {SCHEMA}.small WHERE id = 20").strip() == "1", follower)
        assert pair.same()
        again = pair.follow_row()
        assert (again["log_file"], again["log_pos"]) > (first["log_file"], first["log_pos"])
        said = pair.detach(follower)
        assert "copying first: --restart" in said and "made afresh" in said
    finally:
        if follower.poll() is None:
            follower.kill()


def test_a_plain_copy_records_the_position_so_a_later_follow_does_not_copy_again(pair: Pair) -> None:
    # A row the copy cannot carry fails the command, but the copy is complete: it is followed as it is.
    pair.my("SET sql_mode = ''; CREATE TABLE events (id INT PRIMARY KEY, at DATE); "
            "INSERT INTO events VALUES (1, '0000-00-00'), (2, '2024-02-29')")
    code, out = pair.run()
    assert code == 1 and "1 row could not be carried" in out, out
    assert "following will start at " in out  # the position, recorded before any table was read
    row = pair.follow_row()
    assert row["state"] == "copied", row
    pair.my("UPDATE small SET label = 'after the copy' WHERE id = 1; INSERT INTO big VALUES (300000, 'x')")
    follower = pair.start("--follow")
    try:
        pair.wait("following", pair.caught_up, follower)
        assert pair.same()
        said = pair.detach(follower)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert "copying first" not in said and "tables to load" not in said, said
    assert f"from {row['log_file']}:{row['log_pos']}" in said
    assert pair.pg("SELECT row_key FROM dbupdater_copy.discarded_rows").split() == ["1"]

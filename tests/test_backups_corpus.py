"""Backups of real-world databases on the rig: Sakila (MySQL: routines, triggers, views) and Pagila
(PostgreSQL: partitions, functions, COPY data) backed up, damaged, restored and compared table by table; and a
dump of about 200 MB that passes the controller with flat memory."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import CORPUS, ROOT, Target, Workspace

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the shared corpus is absent ({CORPUS})")


def only_backup(run_tool, manifest: Path) -> str:  # type: ignore[no-untyped-def]
    result = run_tool("backups", "-f", str(manifest), "--output", "json", known_hosts=False)
    (backup,) = json.loads(result.out)["backups"]
    return str(backup["name"])


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_sakila_backup_delete_restore_checksums_routines_triggers(workspace: Workspace, target: Target, run_tool,
                                                                 rig) -> None:
    workspace.row(target, str(CORPUS / "mysql" / "sakila-schema.sql"))
    workspace.row(target, str(CORPUS / "mysql" / "sakila-data.sql"))
    try:
        assert run_tool("-f", str(workspace.write()), timeout=600).code == 0
        sakila = Workspace(workspace.dir / "sakila", workspace.info)
        sakila.dir.mkdir()
        sakila.row(target, sakila.script("noop.sql", "SELECT 1;\n"), database="sakila",
                   database_userid=target.admin_user, database_password=target.admin_password)
        manifest = sakila.write()
        tables = rig.mysql_exec("SELECT table_name FROM information_schema.tables WHERE table_schema = 'sakila' AND "
                                "table_type = 'BASE TABLE' AND table_name NOT LIKE 'dbupdater%'", "sakila").split()

        def state() -> tuple[str, str, str]:
            sums = rig.mysql_exec("CHECKSUM TABLE " + ", ".join(tables), "sakila")
            routines = rig.mysql_exec("SELECT routine_type, routine_name, MD5(routine_definition) FROM information_"
                                      "schema.routines WHERE routine_schema = 'sakila' ORDER BY 2", "sakila")
            triggers = rig.mysql_exec("SELECT trigger_name, MD5(action_statement) FROM information_schema.triggers "
                                      "WHERE trigger_schema = 'sakila' ORDER BY 1", "sakila")
            return sums, routines, triggers

        before = state()
        assert len(before[2].splitlines()) == 6 and before[1].strip()
        made = run_tool("backup", "-f", str(manifest), timeout=600)
        assert made.code == 0, made.text
        rig.mysql_exec("SET FOREIGN_KEY_CHECKS = 0; DELETE FROM payment WHERE payment_id > 100; DELETE FROM rental "
                       "WHERE rental_id > 500; DROP TRIGGER ins_film; DROP PROCEDURE film_in_stock", "sakila")
        assert state() != before
        restored = run_tool("restore", only_backup(run_tool, manifest), "-f", str(manifest), "--yes", timeout=600)
        assert restored.code == 0, restored.text
        assert state() == before
    finally:
        rig.mysql_exec("DROP DATABASE IF EXISTS sakila")


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_pagila_backup_delete_restore_counts_and_hashes(workspace: Workspace, target: Target, run_tool) -> None:
    for name in ("pagila-schema.sql", "pagila-data.sql"):
        workspace.row(target, str(CORPUS / "postgres" / name), database_userid=target.admin_user,
                      database_password=target.admin_password)
    manifest = workspace.write()
    assert run_tool("-f", str(manifest), timeout=600).code == 0
    tables = [row[0] for row in target.rows(
        "SELECT format('%I.%I', schemaname, tablename) FROM pg_tables WHERE schemaname = 'public' AND tablename NOT "
        "LIKE 'dbupdater%' ORDER BY 1")]

    def state() -> list[list[str]]:
        return sorted(target.rows(" UNION ALL ".join(
            f"SELECT '{table}', COUNT(*)::text, md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) "
            f"FROM {table} t" for table in tables)))

    before = state()
    assert len(tables) > 15
    made = run_tool("backup", "-f", str(manifest), timeout=600)
    assert made.code == 0, made.text
    target.query("DELETE FROM payment WHERE payment_id > 100; DELETE FROM film_actor WHERE actor_id > 10")
    assert state() != before
    restored = run_tool("restore", only_backup(run_tool, manifest), "-f", str(manifest), "--yes", timeout=600)
    assert restored.code == 0, restored.text
    assert state() == before


def peak_rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_a_200_mb_dump_passes_with_flat_controller_memory(workspace: Workspace, target: Target, info, run_tool) -> None:
    # Text pg_dump's zlib can barely shrink: hex of random bytes (16 bytes of entropy per 32 characters).
    app = target.rig.psql_exec  # type: ignore[attr-defined]
    app("CREATE TABLE big (id INT, a TEXT)", target.name, admin=False)
    app("INSERT INTO big SELECT g, md5(random()::text) || md5(random()::text) || md5(random()::text) || "
        "md5(random()::text) FROM generate_series(1, 3200000) g", target.name, admin=False)
    workspace.row(target, workspace.script("001.sql", "SELECT 1;\n"))
    manifest = workspace.write()
    argv = [sys.executable, str(ROOT / "remote_database_updater.py"), "backup", "-f", str(manifest), "--known-hosts",
            info.known_hosts, "--color", "never", "-q"]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, peak_rss_kib(proc.pid))
        time.sleep(0.05)
    out, _ = proc.communicate()
    assert proc.returncode == 0, out
    name = only_backup(run_tool, manifest)
    size = (workspace.dir / "backups" / name).stat().st_size
    assert size > 200 * 1024 * 1024, f"the dump is {size} bytes: the test proves less than it says"
    assert 0 < peak < 150 * 1024, f"controller peak RSS {peak} KiB for a {size}-byte dump"
    print(f"dump {size / 1048576:.0f} MiB, controller peak RSS {peak / 1024:.0f} MiB")


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_copy_db_of_a_large_database_streams_with_flat_memory_and_nothing_on_disk(workspace: Workspace,
                                                                                 target: Target, info) -> None:
    target.query("CREATE TABLE big (id INT PRIMARY KEY, a CHAR(32), b CHAR(32), c CHAR(32), d CHAR(32))")
    target.query("INSERT INTO big SELECT seq, MD5(RAND()), MD5(RAND()), MD5(RAND()), MD5(RAND()) "
                 "FROM seq_1_to_1200000")
    copy = target.sibling(target.name + "_copy")
    try:
        workspace.row(target, workspace.script("001.sql", "SELECT 1;\n"))
        workspace.row(copy, "001.sql", runner=2)
        manifest = workspace.write()
        argv = [sys.executable, str(ROOT / "remote_database_updater.py"), "copy-db", "-f", str(manifest), "--from",
                target.name, "--to", copy.name, "--yes", "--known-hosts", info.known_hosts, "--color", "never", "-q"]
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, peak_rss_kib(proc.pid))
            time.sleep(0.05)
        out, _ = proc.communicate()
        assert proc.returncode == 0, out
        assert copy.rows("CHECKSUM TABLE big")[0][1] == target.rows("CHECKSUM TABLE big")[0][1]
        assert 0 < peak < 150 * 1024, f"controller peak RSS {peak} KiB"
        assert not (workspace.dir / "backups").exists()  # streamed runner to runner: no copy on disk here
        print(f"copy-db: controller peak RSS {peak / 1024:.0f} MiB")
    finally:
        copy.drop()

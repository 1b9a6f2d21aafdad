"""copy-db from MySQL (MariaDB) to PostgreSQL on the real rig, through the command line as users run it: Sakila
copied whole and verified table by table, --plan DIR changing nothing, rows that cannot be carried kept aside
and failing the command, a copy killed mid-table resumed to an identical copy, bad input refused before
anything runs, and no password in any process's argv or environment."""

from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .conftest import CORPUS, ROOT, Target, Workspace, fresh_targets, run_sampled, secret_values

SAKILA_TABLES = 16


def pg(target: Target, sql: str) -> list[list[str]]:
    return target.rows(sql)


def two_targets(workspace: Workspace, source: Target, destination: Target, **source_cells: str) -> Path:
    workspace.script("noop.sql", "SELECT 1;\n")
    workspace.row(source, "noop.sql", runner=1, **source_cells)
    workspace.row(destination, "noop.sql", runner=2)
    return workspace.write()


def copy(run_tool: Any, manifest: Path, source: str, destination: str, *args: str, verbose: bool = True) -> Any:
    return run_tool("copy-db", "-f", str(manifest), "--from", source, "--to", destination, "--yes",
                    *(("-v",) if verbose else ()), "--no-report", *args)


def states(target: Target) -> dict[str, list[str]]:
    rows = pg(target, "SELECT table_name, state, (checksum = source_checksum)::text, \"rows\", discarded "
                      "FROM dbupdater_copy.tables ORDER BY 1")
    return {row[0]: row[1:] for row in rows}


def latest_copy(target: Target) -> list[str]:
    return pg(target, "SELECT script, status FROM dbupdater_history WHERE script LIKE 'copy from %' "
                      "ORDER BY id DESC LIMIT 1")[0]


@pytest.fixture(scope="module")
def sakila(rig: Any, info: Any) -> Iterator[Target]:
    """Sakila in the rig's MariaDB (its schema file names its database), as the admin, who owns it."""
    if not CORPUS.is_dir():
        pytest.skip(f"the shared corpus is absent ({CORPUS})")
    for name in ("sakila-schema.sql", "sakila-data.sql"):
        rig.mysql_exec((CORPUS / "mysql" / name).read_text(encoding="utf-8"))
    db = info.mysql
    yield Target(rig, "mysql", "sakila", info.db_host_for_runners, db.port, db.admin_user, db.admin_password,
                 db.admin_user, db.admin_password)
    rig.mysql_exec("DROP DATABASE IF EXISTS sakila")


def test_sakila_is_copied_whole_verified_and_usable(sakila: Target, workspace: Workspace, rig: Any, info: Any,
                                                   run_tool: Any) -> None:
    with fresh_targets(rig, info, ["postgresql"]) as (destination,):
        manifest = two_targets(workspace, sakila, destination)
        result = copy(run_tool, manifest, "sakila", destination.name, verbose=False)
        assert result.code == 0, result.text
        assert f"copied {SAKILA_TABLES} tables of {sakila.engine}://" in result.text, result.text
        found = states(destination)
        assert len(found) == SAKILA_TABLES
        assert all(state == "verified" and equal == "true" for state, equal, _, _ in found.values()), found
        # Each side counted by its own server.
        mine = sakila.rows(" UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM `{t}`" for t in sorted(found)))
        theirs = pg(destination, " UNION ALL ".join(f"(SELECT '{t}', count(*) FROM sakila.\"{t}\")"
                                                    for t in sorted(found)))
        assert mine == theirs == [[table, rows] for table, (_, _, rows, _) in found.items()]
        for table, (_, _, rows, discarded) in found.items():  # each table's result as it is done, without -v
            assert discarded == "0"
            assert f"{table}: {int(rows):,} rows, 0 discarded, checksum equal, " in result.text
        assert f"of {SAKILA_TABLES} tables)" in result.text and "(source '" not in result.text  # both sums: -v

        # The identity goes on after the copied rows.
        assert pg(destination, "INSERT INTO sakila.actor (first_name, last_name) VALUES ('NEW', 'ACTOR') "
                               "RETURNING actor_id") == [["201"]]
        # enum, set (an array of an enum, members in definition order), decimal, datetime, blob.
        assert sakila.rows("SELECT rating, special_features FROM film WHERE film_id = 2") == [
            ["G", "Trailers,Deleted Scenes"]]
        assert pg(destination, "SELECT rating::text, special_features::text FROM sakila.film WHERE film_id = 2") == [
            ["G", '{Trailers,"Deleted Scenes"}']]
        assert pg(destination, "SELECT pg_typeof(rating)::text FROM sakila.film LIMIT 1") == [["sakila.film_rating"]]
        assert sakila.rows("SELECT SUM(amount), MIN(amount), MAX(amount) FROM payment") == pg(
            destination, "SELECT sum(amount), min(amount), max(amount) FROM sakila.payment")
        assert sakila.rows("SELECT DATE_FORMAT(rental_date, '%Y-%m-%d %H:%i:%s') FROM rental WHERE rental_id = 42") \
            == pg(destination, "SELECT to_char(rental_date, 'YYYY-MM-DD HH24:MI:SS') FROM sakila.rental "
                               "WHERE rental_id = 42")
        picture = sakila.rows("SELECT LENGTH(picture), MD5(picture) FROM staff WHERE staff_id = 1")
        assert picture[0][0] != "NULL" and int(picture[0][0]) > 0
        assert pg(destination, "SELECT length(picture), md5(picture) FROM sakila.staff WHERE staff_id = 1") == picture

        assert latest_copy(destination) == [f"copy from {sakila.engine}://{sakila.host}:{sakila.port}/sakila "
                                            "(mysql to postgresql)", "success"]


def test_plan_dir_writes_the_review_and_changes_nothing(sakila: Target, workspace: Workspace, rig: Any, info: Any,
                                                       run_tool: Any) -> None:
    with fresh_targets(rig, info, ["postgresql"]) as (destination,):
        manifest = two_targets(workspace, sakila, destination)
        folder = workspace.dir / "review"
        result = run_tool("copy-db", "-f", str(manifest), "--from", "sakila", "--to", destination.name, "--plan",
                          str(folder), "--schema", "shop", "--exclude", "film_text")
        assert result.code == 0, result.text
        assert f"{SAKILA_TABLES - 1} tables of sakila into schema shop" in result.text
        assert "nothing was run on the destination" in result.text
        schema = (folder / "schema.sql").read_text(encoding="utf-8")
        assert 'CREATE TABLE "shop"."payment"' in schema and '"film_text"' not in schema
        assert "film_text" in (folder / "not-carried.txt").read_text(encoding="utf-8")
        assert "rewards_report" in (folder / "mysql-objects.sql").read_text(encoding="utf-8")
        assert pg(destination, "SELECT count(*) FROM pg_namespace WHERE nspname IN ('shop', 'dbupdater_copy')") \
            == [["0"]]
        assert pg(destination, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [["0"]]


@pytest.fixture
def small(rig: Any, info: Any) -> Iterator[tuple[Target, Target]]:
    """A small MariaDB database, one of its rows not carriable (a zero date), and an empty PostgreSQL one."""
    with fresh_targets(rig, info, ["mysql", "postgresql"]) as (source, destination):
        source.query("SET sql_mode = ''; CREATE TABLE events (id INT PRIMARY KEY, at DATE NULL, note VARCHAR(20)); "
                     "INSERT INTO events VALUES (1, '2024-02-29', 'leap'), (2, '0000-00-00', 'zero'), "
                     "(3, NULL, 'none'); CREATE TABLE tags (id INT PRIMARY KEY, label VARCHAR(10)); "
                     "INSERT INTO tags VALUES (1, 'one')")
        yield source, destination


def test_a_row_that_cannot_be_carried_is_kept_aside_and_fails_the_command(small: tuple[Target, Target],
                                                                          workspace: Workspace, run_tool: Any) -> None:
    source, destination = small
    manifest = two_targets(workspace, source, destination)
    result = copy(run_tool, manifest, source.name, destination.name, "--schema", "copied")
    assert result.code == 1, result.text
    assert "1 row could not be carried" in result.text and "dbupdater_copy.discarded_rows" in result.text
    assert pg(destination, "SELECT table_name, row_key, reason FROM dbupdater_copy.discarded_rows") == [
        ["events", "2", "at: zero date"]]
    assert pg(destination, "SELECT id, at FROM copied.events ORDER BY id") == [["1", "2024-02-29"], ["3", ""]]
    assert states(destination)["events"] == ["verified", "true", "2", "1"]
    assert latest_copy(destination)[1] == "success"  # the copy is complete: what it did not carry is said

    again = copy(run_tool, manifest, source.name, destination.name, "--schema", "copied", "--zero-dates", "null")
    assert again.code == 0, again.text
    assert "resumes: 1 table loaded before; events starts again" in again.text  # its reading changed
    assert pg(destination, "SELECT id, at FROM copied.events ORDER BY id") == [["1", "2024-02-29"], ["2", ""],
                                                                               ["3", ""]]
    assert pg(destination, "SELECT count(*) FROM dbupdater_copy.discarded_rows") == [["0"]]


def test_one_source_copied_into_two_schemas_keeps_each_copys_discarded_rows(small: tuple[Target, Target],
                                                                           workspace: Workspace,
                                                                           run_tool: Any) -> None:
    """The discarded rows name the schema they were copied into: starting one copy again forgets its own, and
    each copy counts its own."""
    source, destination = small
    manifest = two_targets(workspace, source, destination)
    for schema in ("first", "second"):
        result = copy(run_tool, manifest, source.name, destination.name, "--schema", schema)
        assert result.code == 1 and "1 row could not be carried" in result.text, result.text
    assert pg(destination, "SELECT target_schema, table_name, row_key FROM dbupdater_copy.discarded_rows "
                           "ORDER BY 1") == [["first", "events", "2"], ["second", "events", "2"]]
    assert pg(destination, "SELECT target_schema, discarded FROM dbupdater_copy.tables WHERE table_name = 'events' "
                           "ORDER BY 1") == [["first", "1"], ["second", "1"]]

    again = copy(run_tool, manifest, source.name, destination.name, "--schema", "first", "--restart",
                 "--zero-dates", "null")
    assert again.code == 0, again.text
    assert pg(destination, "SELECT target_schema, row_key FROM dbupdater_copy.discarded_rows") == [["second", "2"]]
    assert pg(destination, "SELECT count(*) FROM second.events") == [["2"]]

    # A table an older build made, without the column: the next copy adds it, and forgets the rows kept before it.
    destination.query("ALTER TABLE dbupdater_copy.discarded_rows DROP COLUMN target_schema")
    older = copy(run_tool, manifest, source.name, destination.name, "--schema", "second", "--restart")
    assert older.code == 1, older.text
    assert pg(destination, "SELECT target_schema, row_key FROM dbupdater_copy.discarded_rows") == [["second", "2"]]


def test_bad_input_is_refused_before_anything_runs(small: tuple[Target, Target], workspace: Workspace,
                                                   run_tool: Any) -> None:
    source, destination = small
    other = source.sibling(source.name + "_b")
    try:
        manifest = two_targets(workspace, source, destination)
        workspace.row(other, "noop.sql", runner=2)
        manifest = workspace.write()
        unknown = copy(run_tool, manifest, source.name, destination.name, "--tables", "events,nope")
        assert unknown.code == 2 and "--tables" in unknown.text and "nope" in unknown.text, unknown.text
        backwards = copy(run_tool, manifest, destination.name, source.name)
        assert backwards.code == 2, backwards.text
        assert "PostgreSQL" in backwards.text and "MySQL/MariaDB" in backwards.text
        same = copy(run_tool, manifest, source.name, other.name, "--schema", "x")
        assert same.code == 2 and "--schema" in same.text, same.text
        public = copy(run_tool, manifest, source.name, destination.name, "--schema", "public")
        assert public.code == 2 and "--schema public" in public.text, public.text
        # Nothing was made on the destination, not even the history.
        assert pg(destination, "SELECT count(*) FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN "
                               "('public', 'information_schema')") == [["0"]]
        assert pg(destination, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [["0"]]
    finally:
        other.drop()


def test_a_copy_killed_mid_table_is_in_doubt_then_resumes_to_an_identical_copy(workspace: Workspace, rig: Any,
                                                                                info: Any) -> None:
    import psycopg

    with fresh_targets(rig, info, ["mysql", "postgresql"]) as (source, destination):
        source.query("CREATE TABLE big (id INT PRIMARY KEY, c VARCHAR(40), d DATETIME(3)); "
                     "INSERT INTO big SELECT seq, LEFT(MD5(seq), 8 + seq % 24), '2020-01-01' + INTERVAL seq SECOND "
                     "FROM seq_1_to_300000; "
                     "CREATE TABLE one (id INT PRIMARY KEY, big_id INT, FOREIGN KEY (big_id) REFERENCES big (id)); "
                     "INSERT INTO one VALUES (1, 7), (2, 299999); CREATE TABLE two (id INT PRIMARY KEY); "
                     "INSERT INTO two VALUES (1), (2), (3); ANALYZE TABLE big, one, two")
        manifest = two_targets(workspace, source, destination)
        base = [sys.executable, str(ROOT / "remote_database_updater.py"), "copy-db", "-f", str(manifest), "--from",
                source.name, "--to", destination.name, "--yes", "--known-hosts", info.known_hosts, "--color",
                "never", "--no-report", "--lock-lease", "3"]
        db = info.postgres
        watch = psycopg.connect(host=db.host, port=db.port, user=db.admin_user, password=db.admin_password,
                                dbname=destination.name, autocommit=True)
        proc = subprocess.Popen(base, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            mid_table = False
            ends = time.monotonic() + 120
            while proc.poll() is None and time.monotonic() < ends and not mid_table:
                copying = watch.execute("SELECT coalesce(max(tuples_processed), 0) FROM pg_stat_progress_copy WHERE "
                                        "datname = current_database()").fetchone()
                loaded = watch.execute("SELECT count(*) FROM dbupdater_copy.tables WHERE state = 'loaded'").fetchone() \
                    if watch.execute("SELECT to_regclass('dbupdater_copy.tables')").fetchone() != (None,) else (0,)
                mid_table = bool(copying and copying[0] > 1000 and loaded and loaded[0] == 2)
                time.sleep(0.02)
            assert proc.poll() is None, "the copy ended before it could be killed mid-table"
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        # The table being loaded is not there at all; the others are wholly loaded; the target is in doubt.
        for _ in range(100):  # the destination's session rolls back once its input ends
            if watch.execute("SELECT count(*) FROM pg_stat_progress_copy WHERE datname = current_database()"
                             ).fetchone() == (0,):
                break
            time.sleep(0.1)
        assert watch.execute(f"SELECT to_regclass('{source.name}.big')").fetchone() == (None,)
        found = {row[0]: row[1] for row in watch.execute("SELECT table_name, state FROM dbupdater_copy.tables")}
        assert found == {"big": "pending", "one": "loaded", "two": "loaded"}, found
        watch.close()
        assert latest_copy(destination)[1] == "running"
        plan = subprocess.run([sys.executable, str(ROOT / "remote_database_updater.py"), "plan", "-f", str(manifest),
                               "--known-hosts", info.known_hosts, "--color", "never", "--no-report", "--output",
                               "json"], capture_output=True, text=True, timeout=120)
        assert plan.returncode == 5, plan.stdout + plan.stderr
        doubt = [row for row in json.loads(plan.stdout)["plan"]["rows"] if row["state"] == "in doubt"]
        assert len(doubt) == 1 and doubt[0]["detail"].startswith("its latest copy did not succeed"), doubt

        # The rerun (sampled: no password in any argv or environment) waits for the killed run's lease (3 s),
        # keeps what was loaded and ends identical.
        code, out, caught = run_sampled([*base[:-2], "-v"], secret_values(info),
                                        lambda text: "--max-allowed-packet=1G" in text or "--tuples-only" in text,
                                        deadline=300, interval=0.2)
        assert code == 0, out
        assert caught, "no mysql or psql of the copy was seen running: the sampling proved nothing"
        assert "resumes: 2 tables loaded before; big starts again" in out
        assert "big: 300,000 rows, 0 discarded, checksum equal" in out
        assert all(state[:2] == ["verified", "true"] for state in states(destination).values())
        assert pg(destination, f"SELECT count(*) FROM {source.name}.big") == [["300000"]]
        for key in (1, 150000, 300000):  # spot checks, each side reading its own copy
            assert pg(destination, f"SELECT c, to_char(d, 'YYYY-MM-DD HH24:MI:SS.MS') FROM {source.name}.big "
                                   f"WHERE id = {key}") == source.rows(
                f"SELECT c, LEFT(DATE_FORMAT(d, '%Y-%m-%d %H:%i:%s.%f'), 23) FROM big WHERE id = {key}")
        assert latest_copy(destination)[1] == "success"
        cleared = subprocess.run(plan.args, capture_output=True, text=True, timeout=120)
        assert cleared.returncode == 0, cleared.stdout + cleared.stderr  # a copy that succeeded clears the doubt


def test_a_destination_not_in_utf8_or_a_tier_that_requires_approval_is_refused(small: tuple[Target, Target],
                                                                              workspace: Workspace, rig: Any,
                                                                              run_tool: Any) -> None:
    source, destination = small
    latin = dataclasses.replace(destination, name=destination.name + "_latin1")
    rig.psql_exec(f"CREATE DATABASE {latin.name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0 "
                  f"OWNER {destination.user}")
    try:
        manifest = two_targets(workspace, source, latin)
        refused = copy(run_tool, manifest, source.name, latin.name)
        assert refused.code == 1, refused.text
        assert "encoding is LATIN1, not UTF8" in refused.text and "nothing was changed" in refused.text
        assert pg(latin, "SELECT count(*) FROM pg_namespace WHERE nspname IN ('dbupdater_copy', "
                         f"'{source.name}')") == [["0"]]

        config = workspace.dir / "environments.toml"
        config.write_text(f'[prod]\nmanifest = "{manifest.name}"\nrecord_state = false\nrequire_approval = true\n',
                          encoding="utf-8")
        tier = run_tool("copy-db", "--environment", "prod", "--config", str(config), "--from", source.name, "--to",
                        latin.name, "--yes", "--no-report")
        assert tier.code == 5 and "requires an approved plan" in tier.text, tier.text
    finally:
        latin.drop()

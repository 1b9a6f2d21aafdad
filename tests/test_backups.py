"""Backups, restores and copies on the real rig: the engines' own dump tools on the rig's SSH runners, streamed
into a folder store or an S3-compatible bucket (moto's server), restored and copied back; the history says
what each database holds; no password anywhere."""

from __future__ import annotations

import gzip
import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import ROOT, Target, Workspace, run_sampled, secret_values

TOOLS = ("dbupdater-dump", "dbupdater-restore", "pg_dump")  # what the sampling must see running at least once


def seed(target: Target, rows: int = 50) -> None:
    if target.engine == "mysql":
        target.query("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), price DECIMAL(8,2)) ENGINE=InnoDB")
        target.query("INSERT INTO items SELECT seq, CONCAT('item ', seq), seq * 1.5 FROM seq_1_to_" + str(rows))
        target.query("CREATE TRIGGER items_name BEFORE INSERT ON items FOR EACH ROW SET NEW.name = UPPER(NEW.name)")
        target.query("CREATE PROCEDURE item_count() SELECT COUNT(*) FROM items")
    else:  # as the app user, who owns what it backs up and restores
        app = target.rig.psql_exec  # type: ignore[attr-defined]
        app("CREATE TABLE items (id INT PRIMARY KEY, name TEXT, price NUMERIC(8,2))", target.name, admin=False)
        app(f"INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, {rows}) g", target.name,
            admin=False)
        app("CREATE FUNCTION item_count() RETURNS bigint LANGUAGE sql AS 'SELECT COUNT(*) FROM items'", target.name,
            admin=False)


def fingerprint(target: Target) -> list[list[str]]:
    if target.engine == "mysql":
        return [row[1:] for row in target.rows("CHECKSUM TABLE items")]  # without the database's name
    return target.rows("SELECT COUNT(*), md5(string_agg(i::text, ',' ORDER BY id)) FROM items i")


def backups_json(run_tool, *args: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    result = run_tool("backups", *args, "--output", "json", known_hosts=False)
    assert result.code == 0, result.text
    return json.loads(result.out)  # type: ignore[no-any-return]


def test_backup_then_restore_gives_the_same_data_and_history(workspace: Workspace, target: Target, run_tool,
                                                             info) -> None:
    seed(target)
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE applied_one (id INT);\n"))
    manifest = workspace.write()
    assert run_tool("-f", str(manifest)).code == 0
    before = fingerprint(target)

    made = run_tool("backup", "-f", str(manifest))
    assert made.code == 0, made.text
    listed = backups_json(run_tool, "-f", str(manifest))
    (backup,) = listed["backups"]
    assert backup["target"] == f"{target.engine}://{target.host}:{target.port}/{target.name}"
    assert backup["history_head"] == ["001.sql"]
    assert listed["incomplete"] == []
    folder = workspace.dir / "backups"
    sidecar = json.loads((folder / (backup["name"] + ".json")).read_text())
    assert sidecar["size"] == (folder / backup["name"]).stat().st_size > 0
    assert sidecar["tool"] in ("mysqldump", "pg_dump") and sidecar["server_version"]
    for secret in secret_values(info):
        assert secret not in (folder / (backup["name"] + ".json")).read_text()
        assert secret not in backup["name"]

    target.query("DELETE FROM items WHERE id > 10")
    target.query("DROP TABLE applied_one")
    assert fingerprint(target) != before
    refused = run_tool("restore", backup["name"], "-f", str(manifest))
    assert refused.code == 2 and "--yes" in refused.text  # no terminal, no --yes: nothing runs
    restored = run_tool("restore", backup["name"], "-f", str(manifest), "--yes")
    assert restored.code == 0, restored.text
    assert fingerprint(target) == before
    assert "applied_one" in target.tables()
    plan = run_tool("plan", "-f", str(manifest))
    assert plan.code == 0 and "0 script(s) to apply" in plan.text, plan.text
    history = target.rows("SELECT script, status FROM dbupdater_history ORDER BY id")
    assert history[-1] == [f"restore {backup['name']}", "success"]


def test_copy_db_between_two_databases_then_plan_on_the_copy(workspace: Workspace, target: Target, run_tool,
                                                            rig, info) -> None:
    seed(target, rows=200)
    copy = target.sibling(target.name + "_copy")
    try:
        first = workspace.script("001.sql", "CREATE TABLE applied_one (id INT);\n")
        second = workspace.script("002.sql", "CREATE TABLE applied_two (id INT);\n")
        workspace.row(target, first)
        workspace.row(copy, first, runner=2)
        manifest = workspace.write()
        assert run_tool("-f", str(manifest)).code == 0  # both hold 001
        workspace.row(target, second)
        workspace.row(copy, second, runner=2)
        manifest = workspace.write()

        # The source moves on: 002 applied there only (a manifest of the source alone).
        solo = Workspace(workspace.dir / "solo", info)
        solo.dir.mkdir()
        solo.script("001.sql", "CREATE TABLE applied_one (id INT);\n")
        solo.script("002.sql", "CREATE TABLE applied_two (id INT);\n")
        solo.row(target, "001.sql")
        solo.row(target, "002.sql")
        assert run_tool("-f", str(solo.write())).code == 0

        copied = run_tool("copy-db", "-f", str(manifest), "--from", target.name, "--to", copy.name, "--yes")
        assert copied.code == 0, copied.text
        assert fingerprint(copy) == fingerprint(target)
        assert {"applied_one", "applied_two"} <= copy.tables()
        plan = run_tool("plan", "-f", str(manifest), "--output", "json")
        assert plan.code == 0, plan.text
        document = json.loads(plan.out)
        states = {(row["database"], row["script"]): row["state"] for row in document["plan"]["rows"]} \
            if "plan" in document else {}
        if states:
            assert all(state == "applied" for state in states.values()), states
        assert "0 script(s) to apply" in plan.text or not states
    finally:
        copy.drop()


def test_copy_db_refuses_bad_names_before_anything(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("001.sql", "SELECT 1;\n"))
    manifest = workspace.write()
    same = run_tool("copy-db", "-f", str(manifest), "--from", target.name, "--to", target.name, "--yes")
    assert same.code == 2 and "one database" in same.text
    unknown = run_tool("copy-db", "-f", str(manifest), "--from", target.name, "--to", "nope", "--yes")
    assert unknown.code == 2 and "--to nope" in unknown.text


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_an_interrupted_dump_leaves_nothing_listed_as_complete(workspace: Workspace, target: Target, run_tool,
                                                             info) -> None:
    target.query("CREATE TABLE big (id INT PRIMARY KEY, a CHAR(32), b CHAR(32))")
    target.query("INSERT INTO big SELECT seq, MD5(seq), MD5(seq + 1) FROM seq_1_to_1500000")
    workspace.row(target, workspace.script("001.sql", "SELECT 1;\n"))
    manifest = workspace.write()
    folder = workspace.dir / "backups"
    for how in (signal.SIGKILL, signal.SIGTERM):
        argv = [sys.executable, str(ROOT / "remote_database_updater.py"), "backup", "-f", str(manifest),
                "--known-hosts", info.known_hosts, "--color", "never"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60
        while not list(folder.glob(".*.partial")) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert proc.poll() is None, "the dump finished before it could be interrupted"
        proc.send_signal(how)
        proc.wait(timeout=60)
        listed = backups_json(run_tool, "-f", str(manifest))
        assert listed["backups"] == [], listed
        if how is signal.SIGTERM:  # the run ended by itself: its temporary file is gone too
            assert not list(folder.glob(".*.partial"))
        else:  # killed outright: what it left is named incomplete, never a backup
            assert listed["incomplete"] and all("partial" in name for name in listed["incomplete"])
            for leftover in folder.glob(".*.partial"):
                leftover.unlink()


def test_no_password_in_any_argv_environment_file_or_backup(workspace: Workspace, target: Target, info) -> None:
    seed(target, rows=400000)
    workspace.row(target, workspace.script("001.sql", "SELECT 1;\n"))
    manifest = workspace.write()
    secrets = secret_values(info)
    seen_tool = False
    for command in (["backup"], ["restore", "LATEST", "--yes"]):
        if command[0] == "restore":
            command[1] = sorted(p.name for p in (workspace.dir / "backups").iterdir()
                                if not p.name.endswith(".json"))[-1]
        argv = [sys.executable, str(ROOT / "remote_database_updater.py"), *command, "-f", str(manifest),
                "--known-hosts", info.known_hosts, "--color", "never"]
        code, out, caught = run_sampled(argv, secrets, lambda text: any(tool in text for tool in TOOLS),
                                        deadline=600, interval=0.05)
        assert code == 0, out
        seen_tool = seen_tool or bool(caught)
    assert seen_tool, "no dump or restore tool was seen running: the sampling proved nothing"
    for path in workspace.dir.rglob("*"):
        if path.is_file() and path.suffix != ".csv":
            data = path.read_bytes()
            for secret in secrets:
                assert secret.encode() not in data, f"a password is in {path}"


def test_a_backup_in_the_s3_compatible_store_restored_from_there(workspace: Workspace, target: Target, run_tool,
                                                                 s3) -> None:
    import boto3

    bucket = f"dbu-{target.name.replace('_', '-')}"
    boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"], aws_access_key_id=s3["AWS_ACCESS_KEY_ID"],
                 aws_secret_access_key=s3["AWS_SECRET_ACCESS_KEY"], region_name=s3["AWS_DEFAULT_REGION"]
                 ).create_bucket(Bucket=bucket)
    seed(target, rows=3000)
    workspace.row(target, workspace.script("001.sql", "SELECT 1;\n"))
    manifest = workspace.write()
    before = fingerprint(target)
    store = f"s3://{bucket}/nightly"
    env = {**s3, "AWS_SECRET_ACCESS_KEY": "env:DBU_TEST_S3_SECRET", "DBU_TEST_S3_SECRET": s3["AWS_SECRET_ACCESS_KEY"]}
    made = run_tool("backup", "-f", str(manifest), "--backup-dir", store, env=env)
    assert made.code == 0, made.text
    listed = json.loads(run_tool("backups", "--backup-dir", store, "--output", "json", known_hosts=False,
                                 env=env).out)
    (backup,) = listed["backups"]
    target.query("DELETE FROM items")
    restored = run_tool("restore", backup["name"], "-f", str(manifest), "--backup-dir", store, "--yes", env=env)
    assert restored.code == 0, restored.text
    assert fingerprint(target) == before
    assert not (workspace.dir / "backups").exists()  # nothing went to the folder store


def test_apply_backup_before_takes_one_backup_per_target_before_its_first_pending_script(
        workspace: Workspace, target: Target, run_tool) -> None:
    seed(target)
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE before_one (id INT);\n"))
    manifest = workspace.write()
    assert run_tool("-f", str(manifest)).code == 0
    workspace.row(target, workspace.script("002.sql", "CREATE TABLE before_two (id INT);\n"))
    workspace.row(target, workspace.script("003.sql", "CREATE TABLE before_three (id INT);\n"))
    manifest = workspace.write()
    applied = run_tool("-f", str(manifest), "--backup-before")
    assert applied.code == 0, applied.text
    (backup,) = backups_json(run_tool, "-f", str(manifest))["backups"]
    assert backup["history_head"] == ["001.sql"]  # taken before 002 ran
    again = run_tool("-f", str(manifest), "--backup-before")  # nothing pending: no backup
    assert again.code == 0 and len(backups_json(run_tool, "-f", str(manifest))["backups"]) == 1

    # The backup restores the database as it was before 002 and 003, and the history says they are pending.
    restored = run_tool("restore", backup["name"], "-f", str(manifest), "--yes")
    assert restored.code == 0, restored.text
    assert "before_two" not in target.tables()  # objects made since the backup are dropped first
    plan = run_tool("plan", "-f", str(manifest))
    assert plan.code == 0 and "2 script(s) to apply" in plan.text, plan.text


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_a_target_whose_backup_failed_does_not_start(workspace: Workspace, target: Target, run_tool, info) -> None:
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE never_made (id INT);\n"))
    manifest = workspace.write()
    fake = Path(info.replay_bin) / "mysqldump"
    fake.write_text("#!/bin/sh\necho 'mysqldump: Got error: 2013: Lost connection' >&2\nexit 2\n", encoding="utf-8")
    fake.chmod(0o755)
    try:
        result = run_tool("-f", str(manifest), "--backup-before")
    finally:
        fake.unlink()
    assert result.code == 1, result.text
    assert "the backup before it failed" in result.text and "Lost connection" in result.text
    assert "never_made" not in target.tables()
    listed = backups_json(run_tool, "-f", str(manifest))
    assert listed["backups"] == [] and listed["incomplete"] == []


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_a_restore_into_a_tier_that_requires_approval_is_refused_without_a_plan(workspace: Workspace, target: Target,
                                                                               run_tool) -> None:
    seed(target)
    workspace.row(target, workspace.script("001.sql", "SELECT 1;\n"))
    manifest = workspace.write()
    assert run_tool("backup", "-f", str(manifest)).code == 0
    (backup,) = backups_json(run_tool, "-f", str(manifest))["backups"]
    (workspace.dir / "environments.toml").write_text(
        f'[prod]\nmanifest = "{manifest.name}"\nrecord_state = false\nrequire_approval = true\n', encoding="utf-8")
    target.query("DELETE FROM items")
    refused = run_tool("restore", backup["name"], "--environment", "prod", "--config",
                       str(workspace.dir / "environments.toml"), "--yes")
    assert refused.code == 5, refused.text
    assert "requires an approved plan" in refused.text
    assert target.rows("SELECT COUNT(*) FROM items") == [["0"]]  # nothing was restored


def forged(workspace: Workspace, target: Target, run_tool, make, **changes: str) -> tuple[Path, dict, str]:  # type: ignore[no-untyped-def,type-arg]
    """A real backup of the seeded target, and beside it a backup whose bytes are `make(real bytes)` with a
    sidecar that vouches for exactly them (so only the restore itself can find what is wrong with them)."""
    seed(target)
    workspace.row(target, workspace.script("001.sql", "SELECT 1;\n"))
    manifest = workspace.write()
    assert run_tool("backup", "-f", str(manifest)).code == 0
    (real,) = backups_json(run_tool, "-f", str(manifest))["backups"]
    folder = workspace.dir / "backups"
    data = make((folder / real["name"]).read_bytes())
    name = real["name"].replace("--", "--forged-", 1)
    (folder / name).write_bytes(data)
    meta = json.loads((folder / (real["name"] + ".json")).read_text())
    meta.update(name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest(), **changes)
    (folder / (name + ".json")).write_text(json.dumps(meta))
    return manifest, real, name


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_a_restore_that_fails_half_way_is_reported_and_recorded_failed(workspace: Workspace, target: Target,
                                                                       run_tool) -> None:
    # SQL that fails after a first statement ran.
    sql = b"CREATE TABLE restored_half (id INT);\nTHIS IS NOT SQL;\nCREATE TABLE never (id INT);\n"
    manifest, real, name = forged(workspace, target, run_tool, lambda data: gzip.compress(sql), compression="gzip")
    folder = workspace.dir / "backups"
    result = run_tool("restore", name, "-f", str(manifest), "--yes")
    assert result.code == 1, result.text
    assert "the restore of the backup" in result.text and "may be partly restored" in result.text
    assert "restored_half" in target.tables() and "never" not in target.tables()
    history = target.rows("SELECT script, status FROM dbupdater_history ORDER BY id")
    assert history[-1] == [f"restore {name}", "failed"]
    # Nothing runs on a database that may be partly restored, until a restore succeeds.
    refused = run_tool("-f", str(manifest))
    assert refused.code == 5 and "in doubt" in refused.out, refused.text

    # A backup whose bytes changed after it was taken is refused before anything is touched.
    (folder / real["name"]).write_bytes((folder / real["name"]).read_bytes()[:-1] + b"!")
    damaged = run_tool("restore", real["name"], "-f", str(manifest), "--yes")
    assert damaged.code == 1 and "is not what its sidecar says" in damaged.text


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_a_cut_postgresql_restore_changes_nothing_and_is_recorded_failed(workspace: Workspace, target: Target,
                                                                        run_tool) -> None:
    # The first half of a real dump.
    manifest, _, name = forged(workspace, target, run_tool, lambda data: data[: len(data) // 2])
    target.query("DELETE FROM items WHERE id > 5")
    target.query("CREATE TABLE made_since (id INT)")
    before = fingerprint(target)
    result = run_tool("restore", name, "-f", str(manifest), "--yes")
    assert result.code == 1, result.text
    assert "cut or corrupt" in result.text and "nothing was changed" in result.text
    assert fingerprint(target) == before and "made_since" in target.tables()  # rolled back, drops included
    history = target.rows("SELECT script, status FROM dbupdater_history ORDER BY id")
    assert history[-1] == [f"restore {name}", "failed"]


def test_with_the_history_elsewhere_a_restore_makes_the_history_agree_with_the_backup(
        workspace: Workspace, target: Target, run_tool, rig) -> None:
    schema = f"{target.name}_meta"
    if target.engine == "mysql":  # another database: the dump does not carry the history
        rig.create_mysql_database(schema)
    seed(target)
    try:
        workspace.row(target, workspace.script("001.sql", "CREATE TABLE first_one (id INT);\n"))
        manifest = workspace.write()
        assert run_tool("-f", str(manifest), "--history-schema", schema).code == 0
        assert run_tool("backup", "-f", str(manifest), "--history-schema", schema).code == 0
        (backup,) = backups_json(run_tool, "-f", str(manifest))["backups"]
        assert backup["history_head"] == ["001.sql"]
        workspace.row(target, workspace.script("002.sql", "CREATE TABLE second_one (id INT);\n"))
        manifest = workspace.write()
        assert run_tool("-f", str(manifest), "--history-schema", schema).code == 0
        restored = run_tool("restore", backup["name"], "-f", str(manifest), "--history-schema", schema, "--yes")
        assert restored.code == 0, restored.text
        assert "second_one" not in target.tables()
        plan = run_tool("plan", "-f", str(manifest), "--history-schema", schema)
        assert plan.code == 0 and "1 script(s) to apply" in plan.text, plan.text
        again = run_tool("-f", str(manifest), "--history-schema", schema)
        assert again.code == 0 and "second_one" in target.tables(), again.text
    finally:
        if target.engine == "mysql":
            rig.drop_mysql_database(schema)


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_on_a_terminal_the_operator_types_the_database_name_having_seen_what_is_overwritten(
        workspace: Workspace, target: Target, run_tool, info) -> None:
    import os

    import pexpect

    seed(target)
    workspace.row(target, workspace.script("001.sql", "SELECT 1;\n"))
    manifest = workspace.write()
    assert run_tool("backup", "-f", str(manifest)).code == 0
    (backup,) = backups_json(run_tool, "-f", str(manifest))["backups"]
    target.query("DELETE FROM items")
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    for answer, code in (("shop", 5), (target.name, 0)):
        argv = [str(ROOT / "remote_database_updater.py"), "restore", backup["name"], "-f", str(manifest),
                "--known-hosts", info.known_hosts]
        child = pexpect.spawn(sys.executable, argv, cwd=str(ROOT), env=environ, dimensions=(50, 200),
                              encoding="utf-8", codec_errors="replace", timeout=120)
        child.expect("will be overwritten")  # what is replaced, before the question
        child.expect(f"Type the database's name \\({target.name}\\) to go on: ")
        child.sendline(answer)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == code, child.before
        assert (target.rows("SELECT COUNT(*) FROM items") == [["0"]]) is (code != 0)


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_a_tier_with_backup_before_backs_up_before_apply(workspace: Workspace, target: Target, run_tool) -> None:
    seed(target)
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE tiered (id INT);\n"))
    manifest = workspace.write()
    tiers = workspace.dir / "environments.toml"
    tiers.write_text(f'[qa]\nmanifest = "{manifest.name}"\nrecord_state = false\nbackup_before = true\n',
                     encoding="utf-8")
    applied = run_tool("apply", "--environment", "qa", "--config", str(tiers))
    assert applied.code == 0, applied.text
    (backup,) = backups_json(run_tool, "-f", str(manifest))["backups"]
    assert backup["history_head"] == []  # taken before 001 ran
    assert "tiered" in target.tables()

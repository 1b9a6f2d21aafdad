"""Backups offline: the folder store's atomic writes, sidecars, names, the engines' dump and restore commands
(no secret in argv or env), and the refusals that come before anything runs (exit 2)."""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest

from dbupdater import cli
from dbupdater.backups import FolderStore, HeadEntry, Sidecar, backup_name, open_store
from dbupdater.backups.sidecar import slug_of
from dbupdater.engines import registry as engines
from dbupdater.engines.capabilities import COMPRESSED_DUMP, DECOMPRESSED_RESTORE, Cleans, Dumps, magic_compression
from dbupdater.model.errors import ExitCode
from dbupdater.model.secret import Secret
from dbupdater.model.specs import DatabaseSpec

SECRET = "p@ss\"w'o#r\\d;$(id)"


def sidecar(name: str, size: int = 3, sha: str = "x", target: str = "mysql://h:3306/shop") -> Sidecar:
    return Sidecar(name=name, target=target, engine="mysql", host="h", port=3306, database="shop",
                   taken_at="2026-12-07T09:00:00.000Z", seconds=1.0, size=size, sha256=sha, compression="zstd",
                   format="sql", tool="mysqldump", tool_version="10.19", server_version="10.11",
                   history=(HeadEntry("001.sql", "abc", 1, "success"), HeadEntry("002.sql", "def", 1, "failed")))


def test_a_folder_backup_is_complete_only_after_commit_and_an_abort_leaves_nothing(tmp_path: Path) -> None:
    store = FolderStore(tmp_path / "backups")
    upload = store.begin("a--1.sql.zst")
    upload.write(b"abc")
    assert store.names() == ([], ["a--1.sql.zst (partial)"])  # a temporary name: never a backup
    upload.commit(sidecar("a--1.sql.zst", 3, upload.sha256))
    assert store.names() == (["a--1.sql.zst"], [])
    assert b"".join(store.read("a--1.sql.zst")) == b"abc"
    assert store.find("a--1.sql.zst").sha256 == upload.sha256 == \
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    aborted = store.begin("a--2.sql.zst")
    aborted.write(b"half")
    aborted.abort()
    assert store.names() == (["a--1.sql.zst"], [])
    assert (tmp_path / "backups" / "a--1.sql.zst").stat().st_mode & 0o777 == 0o600
    store.delete("a--1.sql.zst")
    assert store.names() == ([], [])


def test_bytes_without_a_sidecar_are_incomplete_and_cannot_be_restored(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "x--1.sql.gz").write_bytes(b"1")
    store = open_store(folder)
    assert store.names() == ([], ["x--1.sql.gz"])
    with pytest.raises(Exception, match="incomplete"):
        store.find("x--1.sql.gz")
    with pytest.raises(Exception, match="no backup 'nope'"):
        store.find("nope")


def test_sidecar_round_trip_and_head() -> None:
    made = sidecar("n")
    back = Sidecar.from_bytes(made.to_bytes(), "here")
    assert back == made and back.applied == ["001.sql"] and back.head() == "1 script(s), last 001.sql"
    with pytest.raises(ValueError, match="here: not a backup sidecar"):
        Sidecar.from_bytes(b'{"version": 99}', "here")


def test_names_say_target_and_utc_time_and_nothing_else() -> None:
    moment = datetime(2026, 12, 7, 9, 30, 1, 250000, tzinfo=timezone.utc)
    name = backup_name("postgresql", "db 1.example", 5432, "shop/../x", moment, "dump")
    assert name == "postgresql-db_1.example-5432-shop_.._x--20261207T093001.250Z.dump"
    assert slug_of(name) == "postgresql-db_1.example-5432-shop_.._x"
    assert open_store("s3://bucket/some/prefix/").location == "s3://bucket/some/prefix"


def test_compression_is_read_from_the_first_bytes() -> None:
    assert magic_compression(b"\x28\xb5\x2f\xfd...") == "zstd"
    assert magic_compression(b"\x1f\x8b\x08") == "gzip"
    assert magic_compression(b"PGDMP") == "none"


@pytest.mark.parametrize("engine", ["mysql", "postgresql"])
def test_dump_and_restore_commands_carry_no_secret(engine: str) -> None:
    implementation = engines.get(engine)
    assert isinstance(implementation, Dumps) and isinstance(implementation, Cleans)
    db = DatabaseSpec(engine, "db1", 3306, "app", "shop", Secret(SECRET))
    for command in (implementation.dump_command(db, "/tmp/d/login1.cred", lock_table="dbupdater_lock"),
                    implementation.restore_command(db, "/tmp/d/login1.cred", compression="zstd", first="/tmp/d/x.sql")):
        text = " ".join(command.argv) + " ".join(f"{k}={v}" for k, v in command.env)
        assert SECRET not in text and "p@ss" not in text
        assert "login1.cred" in text  # the credentials file, as the clients get it
    dump = implementation.dump_command(db, "/c", lock_table="dbupdater_lock").argv
    if engine == "mysql":
        assert dump[:3] == ("sh", "-c", COMPRESSED_DUMP)
        assert {"--single-transaction", "--routines", "--triggers", "--events"} <= set(dump)
        assert "--ignore-table=shop.dbupdater_lock" in dump and dump[-1] == "shop"
        assert dump[4] == "mysqldump" and dump[5] == "--defaults-extra-file=/c"
    else:
        assert dump[:3] == ("sh", "-c", COMPRESSED_DUMP) and dump[4] == "pg_dump"
        assert {"--format=custom", "--compress=0", "--exclude-table=*.dbupdater_lock"} <= set(dump)


@pytest.mark.parametrize("engine", ["oracle", "sqlserver"])
def test_engines_without_dumps_are_named_and_nothing_runs(engine: str, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert not isinstance(engines.get(engine), Dumps)
    (tmp_path / "1.sql").write_text("SELECT 1 FROM DUAL;\n")
    kind, port = {"oracle": ("Oracle", 1521), "sqlserver": ("SQLServer", 1433)}[engine]
    (tmp_path / "m.csv").write_text(
        "sql_runner_host,sql_runner_userid,sql_runner_password,database_type,database_host,database_userid,"
        f"database_password,port,database,sql_script_to_run\nrunner1,deploy,,{kind},db1,app,,{port},shop,1.sql\n")
    code = cli.main(["backup", "-f", str(tmp_path / "m.csv"), "--color", "never"])
    assert code == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "not supported yet" in err and engines.get(engine).display in err and "nothing was run" in err
    assert cli.main(["apply", "-f", str(tmp_path / "m.csv"), "--backup-before", "--color", "never"]) == ExitCode.USAGE


def sh(script: str, *args: str, data: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(["sh", "-c", script, "test", *args], input=data, capture_output=True, timeout=30,
                          check=False)


def test_the_dump_pipeline_exits_with_the_tools_status_and_the_restore_pipeline_refuses_a_cut_input() -> None:
    good = sh(COMPRESSED_DUMP, "printf", "hello")
    assert good.returncode == 0 and magic_compression(good.stdout) in ("zstd", "gzip")
    failed = sh(COMPRESSED_DUMP, "sh", "-c", "printf half; exit 3")
    assert failed.returncode == 3  # the compressor's success does not hide the tool's failure
    how = magic_compression(good.stdout)
    back = sh(DECOMPRESSED_RESTORE, how, "", "cat", data=good.stdout)
    assert back.returncode == 0 and back.stdout == b"hello"
    cut = sh(DECOMPRESSED_RESTORE, how, "", "cat", data=good.stdout[: len(good.stdout) // 2])
    assert cut.returncode == 97  # the client took what came, but the input was cut: never a success


def test_backups_lists_and_prunes_per_target(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = FolderStore(tmp_path / "backups")
    for target, times in (("mysql://h:3306/a", 3), ("mysql://h:3306/b", 1)):
        for number in range(times):
            name = f"{target.rsplit('/', 1)[1]}--{number}.sql.zst"
            upload = store.begin(name)
            upload.write(b"x")
            made = sidecar(name, 1, upload.sha256, target)
            upload.commit(Sidecar(**{**made.__dict__, "taken_at": f"2026-12-0{number + 1}T00:00:00.000Z"}))
    assert cli.main(["backups", "--backup-dir", str(tmp_path / "backups"), "--prune", "--keep", "1",
                     "--output", "json"]) == 0
    document = json.loads(capsys.readouterr().out)
    assert sorted(document["removed"]) == ["a--0.sql.zst", "a--1.sql.zst"]
    assert sorted(b["name"] for b in document["backups"]) == ["a--2.sql.zst", "b--0.sql.zst"]
    assert cli.main(["backups", "--backup-dir", str(tmp_path / "backups"), "--keep", "1"]) == ExitCode.USAGE


def test_targets_are_named_as_plan_names_them_or_by_a_unique_database_name(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "1.sql").write_text("SELECT 1;\n")
    (tmp_path / "m.csv").write_text(
        "sql_runner_host,sql_runner_userid,sql_runner_password,database_type,database_host,database_userid,"
        "database_password,port,database,sql_script_to_run\n"
        "runner1,deploy,,MySQL,db1,app,,3306,shop,1.sql\nrunner1,deploy,,MySQL,db2,app,,3306,shop,1.sql\n"
        "runner1,deploy,,PostgreSQL,db3,app,,5432,crm,1.sql\n")
    manifest = str(tmp_path / "m.csv")
    assert cli.main(["backup", "-f", manifest, "--target", "shop", "--color", "never"]) == ExitCode.USAGE
    assert "2 targets of the manifest have this database name" in capsys.readouterr().err
    assert cli.main(["backup", "-f", manifest, "--target", "nope", "--color", "never"]) == ExitCode.USAGE
    assert "no target of the manifest is called that" in capsys.readouterr().err
    assert cli.main(["copy-db", "-f", manifest, "--from", "crm", "--to", "mysql://db1:3306/shop", "--yes",
                     "--color", "never"]) == ExitCode.USAGE
    assert "one engine" in capsys.readouterr().err
    assert cli.main(["restore", "x", "-f", manifest, "--backup-dir", str(tmp_path / "none"), "--yes",
                     "--color", "never"]) == ExitCode.USAGE
    assert "no backup 'x'" in capsys.readouterr().err

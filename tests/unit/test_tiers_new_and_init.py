"""`new` and `init` on the stub engine: the next name in each naming style (or a refusal to guess), the rows
appended per target so the next run applies the script, and a starter project that validates and overwrites
nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbupdater import cli
from dbupdater.cli.new import next_name, style_of
from dbupdater.model.errors import ExitCode, UsageError

from .fakes import Harness, Repo


@pytest.mark.parametrize(("names", "style", "expected"), [
    (["001_init.sql", "002_users.sql", "003_more.sql"], "sequence", "004_add_index.sql"),
    (["0009-init.sql"], "sequence", "0010-add_index.sql"),
    (["7_init.sql", "12_more.sql"], "sequence", "13_add_index.sql"),
    (["V1__init.sql", "V3_2__users.sql", "V3_1__x.sql"], "flyway", "V3_3__add_index.sql"),
    (["V2.9__a.sql"], "flyway", "V2.10__add_index.sql"),
])
def test_the_next_name_follows_the_manifests_naming(names: list[str], style: str, expected: str) -> None:
    assert style_of(names) == style
    assert next_name(style, names, "add_index", ".sql") == expected


def test_a_timestamp_naming_gets_the_time_now_and_is_never_before_the_last() -> None:
    names = ["20200101120000_init.sql", "20200102120000_more.sql"]
    assert style_of(names) == "timestamp"
    made = next_name("timestamp", names, "add_index", ".sql")
    assert len(made.split("_")[0]) == 14 and made > names[-1] and made.endswith("_add_index.sql")
    future = ["29991231235959_later.sql"]
    assert next_name("timestamp", future, "x", ".sql") == "29991231235960_x.sql"  # after the last, whatever the clock


def test_mixed_or_missing_naming_is_said_not_guessed() -> None:
    with pytest.raises(UsageError, match="more than one way") as raised:
        style_of(["001_init.sql", "V2__users.sql"])
    assert "--style" in str(raised.value)
    assert style_of(["init.sql", "users.sql"]) is None


@pytest.mark.parametrize(("first", "expected"), [
    ("003_first.sql", "004_add_index.sql"),
    ("V3_2__first.sql", "V3_3__add_index.sql"),
    ("20200101120000_first.sql", None),
])
def test_new_adds_a_file_and_a_row_per_target_that_the_next_run_applies(
        harness: Harness, repo: Repo, first: str, expected: str | None) -> None:
    for database in "ab":
        repo.row(database, repo.script(f"sql/{first}", "ok"))
    manifest = repo.write()
    assert cli.main(["apply", "-f", str(manifest), "--color", "never", "--no-report"]) == ExitCode.OK
    before = manifest.read_bytes()
    assert cli.main(["new", "Add index", "-f", str(manifest), "--color", "never"]) == ExitCode.OK
    text = manifest.read_bytes()
    assert text.startswith(before)  # what was there stays byte for byte
    added = [line for line in text[len(before):].decode().splitlines() if line]
    assert len(added) == 2
    made = [path.name for path in (repo.dir / "sql").iterdir() if path.name != first]
    assert len(made) == 1 and (expected is None or made == [expected])
    assert all(f"sql/{made[0]}" in line for line in added)
    assert (repo.dir / "sql" / made[0]).read_text(encoding="utf-8").startswith(f"-- {made[0]}: add index\n")
    assert cli.main(["apply", "-f", str(manifest), "--color", "never", "--no-report"]) == ExitCode.OK
    for database in "ab":
        assert harness.history(database)[-1] == (f"sql/{made[0]}", "success")


def test_new_for_one_target_and_refusals(harness: Harness, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    for database in "ab":
        repo.row(database, repo.script("001_init.sql", "ok"))
    manifest = repo.write()
    assert cli.main(["new", "only b", "-f", str(manifest), "--target", "b", "--color", "never"]) == ExitCode.OK
    assert manifest.read_text(encoding="utf-8").splitlines()[-1].count("002_only_b.sql") == 1
    assert len(manifest.read_text(encoding="utf-8").splitlines()) == 4
    assert cli.main(["new", "x", "-f", str(manifest), "--target", "zz", "--color", "never"]) == ExitCode.USAGE
    assert "no target 'zz'" in capsys.readouterr().err
    repo.row("a", repo.script("V9__odd.sql", "ok"))
    manifest = repo.write()
    assert cli.main(["new", "x", "-f", str(manifest), "--color", "never"]) == ExitCode.USAGE
    assert "more than one way" in capsys.readouterr().err
    assert cli.main(["new", "x", "-f", str(manifest), "--style", "flyway", "--color", "never"]) == ExitCode.OK
    assert (repo.dir / "V10__x.sql").is_file()


def test_init_writes_a_project_that_validates_and_overwrites_nothing(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "project"
    assert cli.main(["init", str(root), "--color", "never"]) == ExitCode.OK
    for tier in ("local", "ci", "qa", "uat", "preprod", "prod"):
        assert (root / "manifests" / f"{tier}.csv").is_file()
        assert cli.main(["validate", "--config", str(root / "environments.toml"), "--environment", tier,
                         "--without-secrets", "--color", "never"]) == ExitCode.OK
    assert "runs/" in (root / ".gitignore").read_text(encoding="utf-8")
    from dbupdater.tiers import load

    prod = load(root / "environments.toml").get("prod").policy
    assert prod.require_approval and prod.waves is not None and prod.backup_before
    before = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}
    (root / "scripts" / "001_create_example.sql").write_text("-- mine\n", encoding="utf-8")
    capsys.readouterr()
    assert cli.main(["init", str(root), "--color", "never"]) == ExitCode.USAGE
    assert "init overwrites nothing, so nothing was written" in capsys.readouterr().err
    assert (root / "scripts" / "001_create_example.sql").read_text(encoding="utf-8") == "-- mine\n"
    assert all(path.read_bytes() == data for path, data in before.items() if path.name != "001_create_example.sql")


def test_new_keeps_a_crlf_manifest_with_a_bom_as_it_is(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("0001-first.sql", "ok"))
    manifest = repo.write()
    lines = manifest.read_bytes().replace(b"\r\n", b"\n").rstrip(b"\n").replace(b"\n", b"\r\n")
    manifest.write_bytes(b"\xef\xbb\xbf" + lines)  # a BOM, CRLF, and no line ending after the last row
    assert cli.main(["new", "second", "-f", str(manifest), "--color", "never"]) == ExitCode.OK
    after = manifest.read_bytes()
    assert after.startswith(b"\xef\xbb\xbf" + lines + b"\r\n") and after.endswith(b"\r\n")
    assert b"0002-second.sql" in after.splitlines()[-1] and b"\n" not in after.replace(b"\r\n", b"")
    assert cli.main(["apply", "-f", str(manifest), "--color", "never", "--no-report"]) == ExitCode.OK
    assert harness.history("a") == [("0001-first.sql", "success"), ("0002-second.sql", "success")]

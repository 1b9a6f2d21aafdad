"""Saved plans and approvals on the stub engine: `plan --save` then `apply --plan` applies exactly that plan;
anything that differs (an edited script, a changed manifest, a target added, a history that moved, a file
edited by hand) is refused with exit 5 naming it; the approval is in every target's history note and in
run.json; a saved plan holds no secret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbupdater import cli
from dbupdater.model.errors import ExitCode
from dbupdater.saved_plans import FORMAT, digest_of

from .fakes import PASSWORD, Harness, Repo

TIERS = """
[prod]
manifest = "manifest.csv"
record_state = false
require_approval = true
"""


@pytest.fixture
def prod(repo: Repo) -> Path:
    path = repo.dir / "environments.toml"
    path.write_text(TIERS, encoding="utf-8")
    return path


def tool(config: Path, command: str, *args: str) -> int:
    return cli.main([command, "--config", str(config), "--environment", "prod", "--color", "never", "--no-report",
                     *args])


def two_targets(repo: Repo) -> None:
    repo.row("a", repo.script("001_init.sql", "sql CREATE TABLE t (x)"))
    repo.row("b", repo.script("001_init.sql", "sql CREATE TABLE t (x)"))
    repo.row("a", repo.script("002_more.sql", "sql INSERT INTO t VALUES (1)"))
    repo.write()


def saved_plan(repo: Repo, prod: Path, tmp_path: Path) -> Path:
    """Two targets, three rows, and their plan saved."""
    two_targets(repo)
    saved = tmp_path / "plan.json"
    assert tool(prod, "plan", "--save", str(saved)) == ExitCode.OK
    return saved


def notes(harness: Harness, database: str) -> list[tuple[str, str, str]]:
    return [tuple(row) for row in harness.query(  # type: ignore[misc]
        database, "SELECT script, status, note FROM dbupdater_history ORDER BY id")]


def test_plan_save_then_apply_plan_applies_and_records_the_approval_everywhere(
        harness: Harness, repo: Repo, prod: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = saved_plan(repo, prod, tmp_path)
    data = json.loads(saved.read_text(encoding="utf-8"))
    assert data["format"] == FORMAT and data["environment"] == "prod" and data["digest"] == digest_of(data)
    assert [row["script"] for row in data["rows"] if row["runs"]] == ["001_init.sql", "001_init.sql", "002_more.sql"]
    assert PASSWORD not in saved.read_text(encoding="utf-8")
    assert harness.ran == []
    capsys.readouterr()
    folder = tmp_path / "run"
    assert cli.main(["apply", "--config", str(prod), "--environment", "prod", "--plan", str(saved), "--yes",
                     "--color", "never", "--report-dir", str(folder)]) == ExitCode.OK
    assert f"approved: plan {data['digest']}" in capsys.readouterr().out
    for database, scripts in (("a", ["001_init.sql", "002_more.sql"]), ("b", ["001_init.sql"])):
        rows = notes(harness, database)
        assert [(script, status) for script, status, _ in rows] == [(s, "success") for s in scripts]
        assert all(note.startswith(f"approved {data['digest']} by ") for _, _, note in rows)
    document = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    assert document["run"]["approval"]["digest"] == data["digest"]
    assert "--yes" in document["run"]["approval"]["method"]
    from dbupdater.reporting.validation import check  # the document still validates against its schema

    check(document)


def test_an_edited_script_is_refused_naming_it(harness: Harness, repo: Repo, prod: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    saved = saved_plan(repo, prod, tmp_path)
    repo.script("002_more.sql", "sql INSERT INTO t VALUES (2)")
    capsys.readouterr()
    assert tool(prod, "apply", "--plan", str(saved), "--yes") == ExitCode.REFUSED
    out = capsys.readouterr().out
    assert "script 002_more.sql was edited" in out and "on db1:7000/a" in out.replace("stubdb://", "")
    assert harness.ran == [] and harness.history("a") == []


def test_a_changed_manifest_and_an_added_target_are_refused_naming_them(harness: Harness, repo: Repo, prod: Path,
                                                                        tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    saved = saved_plan(repo, prod, tmp_path)
    repo.row("c", repo.script("001_init.sql", "sql CREATE TABLE t (x)"))
    repo.write()
    capsys.readouterr()
    assert tool(prod, "apply", "--plan", str(saved), "--yes") == ExitCode.REFUSED
    out = capsys.readouterr().out
    assert "the manifest changed" in out and "/c was added" in out
    assert harness.ran == []


def test_a_target_whose_history_moved_is_refused_naming_it(harness: Harness, repo: Repo, prod: Path,
                                                           tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = saved_plan(repo, prod, tmp_path)
    # Someone applies the first script to b by another manifest meanwhile.
    other = Repo(repo.dir)
    other.row("b", "001_init.sql")
    assert cli.main(["apply", "-f", str(other.write("other.csv")), "--color", "never", "--no-report"]) == ExitCode.OK
    capsys.readouterr()
    assert tool(prod, "apply", "--plan", str(saved), "--yes") == ExitCode.REFUSED
    out = " ".join(capsys.readouterr().out.split())
    assert "/b: its history moved since the plan: 001_init.sql is now success" in out
    assert harness.history("a") == []


def test_a_plan_file_edited_by_hand_or_not_a_plan_is_refused(
        harness: Harness, repo: Repo, prod: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    saved = saved_plan(repo, prod, tmp_path)
    data = json.loads(saved.read_text(encoding="utf-8"))
    data["rows"][2]["runs"] = False
    saved.write_text(json.dumps(data), encoding="utf-8")
    capsys.readouterr()
    assert tool(prod, "apply", "--plan", str(saved), "--yes") == ExitCode.REFUSED
    assert "the plan file was edited after it was saved" in capsys.readouterr().out
    saved.write_text("{}", encoding="utf-8")
    assert tool(prod, "apply", "--plan", str(saved), "--yes") == ExitCode.USAGE
    assert f"--plan {saved}: not a saved plan" in capsys.readouterr().err
    assert harness.ran == []


def test_a_plan_saved_for_another_tier_is_refused(harness: Harness, repo: Repo, prod: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    two_targets(repo)
    prod.write_text(TIERS + TIERS.replace("[prod]", "[qa]").replace("require_approval = true", ""),
                    encoding="utf-8")
    saved = tmp_path / "plan.json"
    assert cli.main(["plan", "--config", str(prod), "--environment", "qa", "--color", "never", "--no-report",
                     "--save", str(saved)]) == ExitCode.OK
    capsys.readouterr()
    assert tool(prod, "apply", "--plan", str(saved), "--yes") == ExitCode.REFUSED
    assert "environment: the plan was saved for 'qa', this run is 'prod'" in capsys.readouterr().out


def test_one_plan_for_the_whole_manifest_serves_every_shard(harness: Harness, repo: Repo, prod: Path,
                                                            tmp_path: Path) -> None:
    for database in "abcd":
        repo.row(database, repo.script("001_init.sql", "ok"))
    repo.write()
    saved = tmp_path / "plan.json"
    assert tool(prod, "plan", "--save", str(saved)) == ExitCode.OK
    for shard in ("1/2", "2/2"):
        assert tool(prod, "apply", "--plan", str(saved), "--yes", "--shard", shard) == ExitCode.OK
    assert sorted(harness.ran) == [(database, "001_init.sql") for database in "abcd"]


def test_a_policy_changed_since_the_plan_is_refused_naming_it(harness: Harness, repo: Repo, prod: Path,
                                                              tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    saved = saved_plan(repo, prod, tmp_path)
    prod.write_text(TIERS + "waves = ['1', '100%']\n", encoding="utf-8")
    capsys.readouterr()
    assert tool(prod, "apply", "--plan", str(saved), "--yes") == ExitCode.REFUSED
    assert "the tier's policy changed: waves was None, is ['1', '100%']" in capsys.readouterr().out
    assert harness.ran == []

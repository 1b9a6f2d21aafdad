"""Blank scripts (empty, or white space only) are no-ops, as every migration tool takes them: real histories
hold them for changes that concern other engines only. Recorded as applied without starting a client;
`--strict` refuses them (exit 2, nothing runs)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dbupdater.model.errors import ExitCode

from .fakes import Harness, Repo
from .test_loop import main


def blank_manifest(repo: Repo) -> None:
    repo.row("a", repo.script("001.sql", "ok"))
    (repo.dir / "002_other_engine.sql").write_text("")
    repo.row("a", "002_other_engine.sql")
    (repo.dir / "003_spaces.sql").write_text("  \n\t\r\n")
    repo.row("a", "003_spaces.sql")
    repo.row("a", repo.script("004.sql", "ok"))


def test_blank_scripts_apply_as_no_ops_and_a_second_run_applies_nothing(
        harness: Harness, repo: Repo, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blank_manifest(repo)
    assert main(repo, "apply", "--report-dir", str(tmp_path / "run")) == ExitCode.OK
    assert harness.ran_on("a") == ["001.sql", "004.sql"]  # no client started for the blank ones
    assert harness.history("a") == [("001.sql", "success"), ("002_other_engine.sql", "success"),
                                    ("003_spaces.sql", "success"), ("004.sql", "success")]
    uploaded = {script for _, script in harness.uploads}
    assert "002_other_engine.sql" not in uploaded and "003_spaces.sql" not in uploaded
    out = capsys.readouterr().out
    assert "2 blank script(s)" in out and "--strict refuses them" in out
    document = json.loads((tmp_path / "run" / "run.json").read_text())
    blank = document["results"][1]
    assert blank["status"] == "applied" and blank["reason"].startswith("blank script: recorded as applied")
    assert document["plan"]["rows"][2]["action"] == "record the blank 003_spaces.sql as applied, starting no client"

    assert main(repo, "apply") == ExitCode.OK
    assert harness.ran_on("a") == ["001.sql", "004.sql"]
    assert len(harness.history("a")) == 4


def test_a_blank_script_that_gets_content_is_drift(harness: Harness, repo: Repo) -> None:
    blank_manifest(repo)
    assert main(repo, "apply") == ExitCode.OK
    (repo.dir / "002_other_engine.sql").write_text("ok\n")
    assert main(repo, "apply") == ExitCode.REFUSED


def test_strict_refuses_blank_scripts_and_runs_nothing(harness: Harness, repo: Repo,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    blank_manifest(repo)
    assert main(repo, "apply", "--strict") == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "002_other_engine.sql is blank" in err and "--strict refuses blank scripts" in err
    assert "sql_script_to_run" in err and harness.ran == []


def test_validate_and_plan_say_so(harness: Harness, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    blank_manifest(repo)
    assert main(repo, "validate") == ExitCode.OK
    assert "2 blank script(s)" in capsys.readouterr().out
    assert main(repo, "plan") == ExitCode.OK
    assert "2 blank script(s)" in capsys.readouterr().out


def test_exec_starts_no_client_for_a_blank_script(harness: Harness, repo: Repo) -> None:
    blank_manifest(repo)
    assert main(repo, "exec") == ExitCode.OK
    assert harness.ran_on("a") == ["001.sql", "004.sql"] and harness.history("a") == []


def test_a_tier_policy_can_make_blank_scripts_an_error(harness: Harness, repo: Repo,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from dbupdater import cli

    blank_manifest(repo)
    repo.write()
    config = repo.dir / "environments.toml"
    config.write_text("[qa]\nmanifest = 'manifest.csv'\nrecord_state = false\nstrict = true\n"
                      "[dev]\nmanifest = 'manifest.csv'\nrecord_state = false\n")
    assert cli.main(["apply", "--config", str(config), "--environment", "qa", "--color", "never"]) == ExitCode.USAGE
    assert "--strict refuses blank scripts" in capsys.readouterr().err and harness.ran == []
    assert cli.main(["apply", "--config", str(config), "--environment", "dev", "--color", "never"]) == ExitCode.OK

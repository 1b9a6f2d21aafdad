"""`report`: the run documents of every shard of a CI matrix merged into one document, one JUnit file and one
summary; a single run.json rebuilt in place; bad inputs refused naming the file (exit 2)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from junitparser import Error, JUnitXml

from dbupdater import cli
from dbupdater.model.errors import ExitCode
from dbupdater.model.shards import Shard
from dbupdater.reporting.document import schema
from dbupdater.reporting.merge import worst

from .fakes import PASSWORD, Harness, Repo

DATABASES = [f"d{n}" for n in range(8)]


def main(*args: str) -> int:
    return cli.main([*args, "--color", "never"])


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    jsonschema.validate(document, schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return document


@pytest.fixture
def shards(harness: Harness, repo: Repo) -> list[Path]:
    """Eight databases of two scripts run as four shards, one folder each; d5's second script fails."""
    for name in DATABASES:
        repo.row(name, repo.script("1.sql", "echo one"))
        repo.row(name, repo.script(f"2-{name}.sql", "fail broken here" if name == "d5" else "ok"))
    manifest = repo.write()
    folders = []
    for index in range(1, 5):
        folder = repo.dir / "artifacts" / f"shard-{index}"
        code = main("apply", "-f", str(manifest), "--shard", f"{index}/4", "--report-dir", str(folder))
        expected = {row.db.database for row in Shard(index, 4).select(repo.load()).rows}
        assert code == (ExitCode.SCRIPT_FAILED if "d5" in expected else ExitCode.OK)
        folders.append(folder)
    return folders


def test_four_shards_merge_into_one_report(shards: list[Path], repo: Repo, capsys: pytest.CaptureFixture[str],
                                           ) -> None:
    out = repo.dir / "merged"
    capsys.readouterr()
    assert main("report", *map(str, shards), "--output-dir", str(out)) == ExitCode.SCRIPT_FAILED
    printed = capsys.readouterr().out
    document = load(out / "run.json")
    assert len(document["merged"]["runs"]) == 4 and document["merged"]["missing_shards"] == []
    assert sorted(run["shard"] for run in document["merged"]["runs"]) == ["1/4", "2/4", "3/4", "4/4"]
    assert len(document["results"]) == 16 and len(document["targets"]) == 8
    assert document["summary"]["counts"]["applied"] == 15 and document["summary"]["counts"]["failed"] == 1
    assert document["run"]["exit_code"] == 1
    shard_ids = {run["shard"]: run["run_id"] for run in document["merged"]["runs"]}
    failed = next(r for r in document["results"] if r["status"] == "failed")
    assert failed["script"] == "2-d5.sql" and shard_ids[failed["shard"]] == failed["run_id"]
    suites = list(JUnitXml.fromfile(str(out / "junit.xml")))
    assert sorted(suite.name.rsplit("/", 1)[1] for suite in suites) == DATABASES
    assert sum(suite.tests for suite in suites) == 16 and sum(suite.failures for suite in suites) == 1
    assert "broken here" in printed and "2-d5.sql" in printed and "(exit 1)" in printed
    for name in DATABASES:
        assert f"/{name}" in printed
    page = (out / "report.html").read_text(encoding="utf-8")
    assert "2-d5.sql" in page and PASSWORD not in page


def test_artifact_folders_are_searched_and_a_missing_shard_is_said(shards: list[Path], repo: Repo,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    out = repo.dir / "merged"
    (shards[2] / "run.json").unlink()
    assert main("report", str(repo.dir / "artifacts"), "-o", str(out), "--exit-zero") == ExitCode.OK
    document = load(out / "run.json")
    assert document["merged"]["missing_shards"] == ["3/4"]
    assert "shards missing from this report: 3/4" in capsys.readouterr().out


def test_one_run_json_is_rebuilt_in_place(shards: list[Path]) -> None:
    folder = shards[0]
    before = (folder / "run.json").read_bytes()
    (folder / "report.html").unlink()
    (folder / "junit.xml").unlink()
    main("report", str(folder / "run.json"), "--exit-zero")
    assert (folder / "report.html").is_file() and (folder / "junit.xml").is_file()
    assert (folder / "run.json").read_bytes() == before


def test_report_output_json_prints_the_merged_document(shards: list[Path], repo: Repo,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    main("report", *map(str, shards), "-o", str(repo.dir / "m"), "--output", "json")
    out, err = capsys.readouterr()
    assert len(json.loads(out)["results"]) == 16 and "Targets" in err


def test_bad_inputs_are_refused_naming_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    broken = tmp_path / "run.json"
    broken.write_text("{not json")
    assert main("report", str(broken)) == ExitCode.USAGE
    assert str(broken) in capsys.readouterr().err
    broken.write_text(json.dumps({"format": "something-else"}))
    assert main("report", str(broken)) == ExitCode.USAGE
    assert main("report", str(tmp_path / "nowhere")) == ExitCode.USAGE
    assert main("report", str(tmp_path)) == ExitCode.USAGE  # a folder without run.json under it
    other = tmp_path / "b"
    other.mkdir()
    (other / "run.json").write_text(json.dumps({"format": "dbupdater-run", "version": 99}))
    assert main("report", str(other)) == ExitCode.USAGE
    assert "version 99" in capsys.readouterr().err


def test_a_script_that_could_not_be_judged_is_a_junit_error(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "transport-error"))
    assert cli.main(["apply", "-f", str(repo.write()), "--report-dir", str(repo.dir / "r")]) == ExitCode.UNREACHABLE
    [suite] = JUnitXml.fromfile(str(repo.dir / "r" / "junit.xml"))
    [case] = list(suite)
    assert isinstance(case.result[0], Error) and suite.errors == 1


def test_the_most_serious_exit_code_wins() -> None:
    assert worst([0, 1, 5]) == 5 and worst([1, 3, 0]) == 3 and worst([0, 130, 3]) == 130 and worst([0, 0]) == 0
    assert worst([2, 5]) == 2 and worst([]) == 0

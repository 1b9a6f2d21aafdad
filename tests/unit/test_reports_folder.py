"""The run folder and `--output json` through the real CLI on the stub engine: what run.json, junit.xml and
report.html hold after runs that succeed, fail, are refused or cannot start; bounded excerpts; no secret."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from junitparser import Failure, JUnitXml, Skipped

from dbupdater import cli
from dbupdater.model.errors import ExitCode
from dbupdater.reporting.document import EXCERPT_LINES, schema

from .fakes import PASSWORD, Harness, Repo


def main(repo: Repo, *args: str) -> int:
    command = args[0] if args else "apply"
    return cli.main([command, "-f", str(repo.write()), "--color", "never", *args[1:]])


def folders(repo: Repo) -> list[Path]:
    return sorted(p for p in (repo.dir / "runs").iterdir() if not p.name.startswith("."))


def load(folder: Path) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    jsonschema.validate(document, schema(), format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER)
    return document


def no_secret(folder: Path) -> None:
    for path in folder.iterdir():
        text = path.read_text(encoding="utf-8")
        assert PASSWORD not in text and json.dumps(PASSWORD)[1:-1] not in text, path.name


def mixed(repo: Repo) -> None:
    """Database a: two successes (one warns, one echoes the password), then a failure and a row never run;
    database b: one success."""
    repo.row("a", repo.script("1.sql", "echo hello", f"echo the password is {PASSWORD}"))
    repo.row("a", repo.script("2.sql", "warn careful now", "ok"))
    repo.row("a", repo.script("3.sql", "echo step one", "fail relation \"x\" does not exist"))
    repo.row("a", repo.script("4.sql", "ok"))
    repo.row("b", repo.script("b1.sql", "ok"))


def test_a_run_writes_its_folder_beside_the_manifest(harness: Harness, repo: Repo) -> None:
    mixed(repo)
    assert main(repo, "apply", "--keep-going") == ExitCode.SCRIPT_FAILED
    [folder] = folders(repo)
    assert folder.name.endswith(load(folder)["run"]["id"])
    assert sorted(p.name for p in folder.iterdir()) == ["junit.xml", "report.html", "run.json"]
    for path in folder.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    no_secret(folder)
    document = load(folder)
    assert document["run"]["command"] == "apply" and document["run"]["exit_code"] == 1
    assert "--keep-going" in document["run"]["argv"]
    assert document["manifest"]["sha256"].startswith("sha256:") and document["manifest"]["rows"] == 5
    by_script = {r["script"]: r for r in document["results"]}
    assert [by_script[s]["status"] for s in ("1.sql", "2.sql", "3.sql", "4.sql", "b1.sql")] == [
        "applied", "applied", "failed", "not run", "applied"]
    failed = by_script["3.sql"]
    assert failed["exit_code"] == 1 and any("does not exist" in line for line in failed["errors"])
    assert [line["text"] for line in failed["output"]["lines"] if line["stream"] == "stdout"] == ["step one"]
    assert by_script["2.sql"]["warnings"] and "careful now" in by_script["2.sql"]["warnings"][0]
    assert "the password is ***" in [line["text"] for line in by_script["1.sql"]["output"]["lines"]]
    for result in document["results"]:
        if result["status"] != "not run":
            assert 0 <= result["start_offset"] <= result["end_offset"] <= document["run"]["seconds"] + 0.01
    assert [p["state"] for p in document["plan"]["rows"]] == ["pending"] * 5
    assert {t["target"]: t["got_to"] for t in document["targets"]}["stubdb://db1:7000/a"].startswith("stopped at 3.sql")

    suites = {suite.name: suite for suite in JUnitXml.fromfile(str(folder / "junit.xml"))}
    assert set(suites) == {"stubdb://db1:7000/a", "stubdb://db1:7000/b"}
    cases = {case.name: case for case in suites["stubdb://db1:7000/a"]}
    assert list(cases) == ["1.sql", "2.sql", "3.sql", "4.sql"]
    [failure] = cases["3.sql"].result
    assert isinstance(failure, Failure) and "does not exist" in (failure.text or "")
    assert isinstance(cases["4.sql"].result[0], Skipped)
    assert cases["1.sql"].is_passed and suites["stubdb://db1:7000/a"].failures == 1


def test_applied_scripts_are_skipped_cases_the_next_time(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.row("a", repo.script("2.sql", "ok"))
    assert main(repo, "apply", "--report-dir", str(repo.dir / "first")) == ExitCode.OK
    repo.row("a", repo.script("3.sql", "ok"))
    assert main(repo, "apply", "--report-dir", str(repo.dir / "second")) == ExitCode.OK
    document = load(repo.dir / "second")
    assert [r["status"] for r in document["results"]] == ["skipped", "skipped", "applied"]
    assert document["plan"]["rows"][0]["history"]["status"] == "success"
    [suite] = JUnitXml.fromfile(str(repo.dir / "second" / "junit.xml"))
    skipped = [case for case in suite if case.is_skipped]
    assert len(skipped) == 2 and "already applied" in skipped[0].result[0].message
    assert not (repo.dir / "runs").exists()  # --report-dir replaces the default place


def test_output_json_puts_the_document_on_stdout_and_people_on_stderr(
        harness: Harness, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    assert main(repo, "apply", "--output", "json", "--no-report") == ExitCode.OK
    out, err = capsys.readouterr()
    document = json.loads(out)
    jsonschema.validate(document, schema())
    assert document["results"][0]["status"] == "applied"
    assert "1.sql" in err
    assert not (repo.dir / "runs").exists()


def test_plan_output_json_is_the_plan_part_of_the_document(
        harness: Harness, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.row("a", repo.script("2.sql", "ok"))
    assert main(repo, "apply", "--no-report") == ExitCode.OK
    repo.row("a", repo.script("3.sql", "ok"))
    capsys.readouterr()
    assert main(repo, "plan", "--output", "json", "--no-report") == ExitCode.OK
    out, err = capsys.readouterr()
    document = json.loads(out)
    jsonschema.validate(document, schema())
    assert document["run"]["command"] == "plan" and document["results"] == []
    assert [p["state"] for p in document["plan"]["rows"]] == ["applied", "applied", "pending"]
    assert "can go ahead" in err


def test_excerpts_keep_the_last_lines_and_say_what_was_cut(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", *[f"echo line {n}" for n in range(200)], "fail at the end"))
    assert main(repo) == ExitCode.SCRIPT_FAILED
    output = load(folders(repo)[0])["results"][0]["output"]
    assert len(output["lines"]) == EXCERPT_LINES
    assert output["lines"][-1]["text"].endswith("at the end")
    assert output["omitted_lines"] == 200 + 1 - EXCERPT_LINES and output["omitted_bytes"] > 0


def test_a_refused_run_and_a_run_that_cannot_start_still_write_their_folder(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "fail boom"))
    assert main(repo, "apply", "--report-dir", str(repo.dir / "r1")) == ExitCode.SCRIPT_FAILED
    assert main(repo, "apply", "--report-dir", str(repo.dir / "r2")) == ExitCode.REFUSED
    refused = load(repo.dir / "r2")
    assert refused["run"]["exit_code"] == 5 and refused["results"][0]["status"] == "refused"
    assert refused["plan"]["rows"][0]["state"] == "in doubt"
    harness.unreachable_runners.add("runner1")
    assert main(repo, "apply", "--report-dir", str(repo.dir / "r3")) == ExitCode.UNREACHABLE
    gone = load(repo.dir / "r3")
    assert gone["run"]["exit_code"] == 3 and "unreachable" in gone["run"]["error"]


def test_a_folder_that_cannot_be_written_is_a_warning_not_a_new_exit_code(
        harness: Harness, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    blocker = repo.dir / "blocker"
    blocker.write_text("a file where the folder's parent should be")
    assert main(repo, "apply", "--report-dir", str(blocker / "run")) == ExitCode.OK
    out = capsys.readouterr()
    assert "could not be written" in out.out + out.err


def test_the_page_embeds_hostile_text_as_data(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "echo </script><script>alert(1)</script>", "fail <img src=x onerror=alert(1)>"))
    assert main(repo) == ExitCode.SCRIPT_FAILED
    page = (folders(repo)[0] / "report.html").read_text(encoding="utf-8")
    assert "</script><script>alert" not in page and "<img src=x" not in page
    assert page.count("</script>") == 2  # the data block's and the page script's own


def test_exec_writes_its_folder_too(harness: Harness, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "echo checked"))
    assert main(repo, "exec", "--output", "json") == ExitCode.OK
    printed = json.loads(capsys.readouterr().out)
    document = load(folders(repo)[0])
    assert document == printed
    assert document["run"]["command"] == "exec" and document["run"]["history"] is False
    assert document["results"][0]["output"]["lines"] == [{"stream": "stdout", "text": "checked"}]


def test_a_notice_after_the_end_is_written_into_the_folder_again(tmp_path: Path) -> None:
    """Notifications are posted after the run document was handed out (they listen after it); a failed one is
    a warning that run.json and report.html must hold too, so the folder is written again with it."""
    from dbupdater.events import Level, Notice
    from dbupdater.model.outcome import RunResult
    from dbupdater.reporting.document import RunDocument
    from dbupdater.reporting.runfolder import RunFolder

    warnings: list[str] = []
    folder = RunFolder(tmp_path / "run", warnings.append)
    printed: list[dict[str, Any]] = []
    document = RunDocument([folder, printed.append], keepers=[folder.rewrite])
    document.finish(RunResult([], 0.5), exit_code=0)
    assert load(tmp_path / "run")["notices"] == [] and len(printed) == 1
    document.handle(Notice("notification to webhook http://127.0.0.1:9/*** failed: HTTP 500", Level.WARNING))
    notices = load(tmp_path / "run")["notices"]
    assert notices == [{"level": "warning", "text": "notification to webhook http://127.0.0.1:9/*** failed: HTTP 500"}]
    assert "failed: HTTP 500" in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert len(printed) == 1 and warnings == []  # stdout's JSON was printed once, at the end


def test_a_keeper_that_fails_again_does_not_loop(tmp_path: Path) -> None:
    from dbupdater.events import Level, Notice
    from dbupdater.model.outcome import RunResult
    from dbupdater.reporting.document import RunDocument

    calls: list[int] = []

    def keeper(document: dict[str, Any]) -> None:  # a folder that cannot be written any more, and says so
        calls.append(len(document["notices"]))
        run.handle(Notice("the run folder could not be written", Level.WARNING))

    run = RunDocument([], keepers=[keeper])
    run.finish(RunResult([], 0.5), exit_code=0)
    run.handle(Notice("notification failed", Level.WARNING))
    assert calls == [1]
    assert run.done is not None and [n["text"] for n in run.done["notices"]] == [
        "notification failed", "the run folder could not be written"]

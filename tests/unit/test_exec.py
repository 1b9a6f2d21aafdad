"""`exec`: every row runs, judged as `apply` judges, and the history tables are neither read nor created."""

from __future__ import annotations

from dbupdater import cli
from dbupdater.model.errors import ExitCode

from .fakes import HEADER, Harness, Repo
from .test_loop import main


def with_timeouts(repo: Repo, command: str, *args: str) -> int:
    """The manifest with a script_timeout column."""
    manifest = repo.write(header=[*HEADER, "script_timeout"])
    return cli.main([command, "-f", str(manifest), "--color", "never", *args])


def test_exec_runs_every_row_each_time_and_keeps_no_history(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "sql CREATE TABLE IF NOT EXISTS t (x)"))
    repo.row("a", repo.script("2.sql", "sql INSERT INTO t VALUES (1)"))
    assert main(repo, "exec") == ExitCode.OK
    assert main(repo, "exec") == ExitCode.OK
    assert harness.ran.count(("a", "2.sql")) == 2
    assert harness.tables("a") == {"t"}  # no dbupdater_history, no dbupdater_lock


def test_exec_is_judged_as_apply_judges(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.row("a", repo.script("2.sql", "stderr something unexpected"))  # exit 0, but an unexpected line
    repo.row("a", repo.script("3.sql", "ok"))
    assert main(repo, "exec") == ExitCode.SCRIPT_FAILED
    assert harness.ran == [("a", "1.sql"), ("a", "2.sql")]  # the target stops at its failure


def test_exec_after_apply_runs_applied_scripts_again_and_leaves_the_history_alone(harness: Harness,
                                                                                  repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    assert main(repo, "apply") == ExitCode.OK
    before = harness.history("a")
    assert main(repo, "exec") == ExitCode.OK
    assert harness.history("a") == before and harness.ran.count(("a", "1.sql")) == 2


def test_exec_of_an_unreachable_runner_is_exit_3(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    harness.unreachable_runners.add("runner1")
    assert main(repo, "exec") == ExitCode.UNREACHABLE
    assert harness.ran == []


# --- script timeout ----------------------------------------------------------------------------------------------


def test_a_script_over_its_timeout_is_stopped_and_left_in_doubt_when_its_session_cannot_be_seen(
        harness: Harness, repo: Repo) -> None:
    # The stub engine records no database session (as Oracle and SQL Server): whether the script's work on the
    # server is over cannot be shown, so the history keeps it `running`. MySQL and PostgreSQL, which can show
    # it, record `failed`: tests/test_script_timeout.py.
    repo.row("a", repo.script("1.sql", "sleep 30"))
    repo.row("a", repo.script("2.sql", "ok"))
    assert main(repo, "apply", "--script-timeout", "0.5") == ExitCode.SCRIPT_FAILED
    assert harness.history("a") == [("1.sql", "running")]
    assert harness.ran == [("a", "1.sql")]


def test_a_rows_timeout_cancels_only_that_script(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("slow.sql", "sleep 30"), script_timeout="0.5")
    repo.row("b", repo.script("other.sql", "sleep 1.5"), runner="runner1")  # same runner, longer, no limit
    assert with_timeouts(repo, "apply", "--keep-going") == ExitCode.SCRIPT_FAILED
    assert harness.history("a") == [("slow.sql", "running")]  # in doubt: see above
    assert harness.history("b") == [("other.sql", "success")]


def test_a_bad_timeout_is_exit_2_naming_the_cell(harness: Harness, repo: Repo, capsys) -> None:  # type: ignore[no-untyped-def]
    repo.row("a", repo.script("1.sql", "ok"), script_timeout="²")
    assert with_timeouts(repo, "validate") == ExitCode.USAGE
    assert "line 2, column script_timeout" in capsys.readouterr().err

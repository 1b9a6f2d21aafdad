"""`exec`: every row runs, judged as `apply` judges, and the history tables are neither read nor created."""

from __future__ import annotations

from dbupdater.model.errors import ExitCode

from .fakes import Harness, Repo
from .test_loop import main


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

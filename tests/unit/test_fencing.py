"""Exactly once and fencing, decided by the database, on the stub engine: a script changes the ledger under the
run (as another run, another name of the database or a pause past the lease would) and the next script's
`running` row must be refused by the database, in both ways it is written, with the outcome saying what is true.
The rig's own races are in tests/adversarial/test_trust.py."""

from __future__ import annotations

from dbupdater.checksum import checksum
from dbupdater.model.outcome import Status

from .fakes import Harness, Repo
from .test_loop import run, sharing, statuses

__all__ = ["sharing"]  # the fixture, imported for this module's tests

STOLEN = ("sql UPDATE dbupdater_lock SET run_id = 'another-run', host = 'elsewhere', "
          "expires_at = '2999-01-01 00:00:00.000' WHERE name = 'deploy'")
EXPIRED = "sql UPDATE dbupdater_lock SET expires_at = '2000-01-01 00:00:00.000' WHERE name = 'deploy'"


def applied_by_another_run(script: str, checksum: str) -> str:
    return ("sql INSERT INTO dbupdater_history (script, checksum, checksum_version, status, run_id) VALUES "
            f"('{script}', '{checksum}', 1, 'success', 'another-run')")


def test_a_lock_taken_by_another_run_stops_the_target_before_its_next_script(sharing: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", STOLEN))
    repo.row("a", repo.script("2.sql", "ok"))
    repo.row("a", repo.script("3.sql", "ok"))
    result = run(repo)
    assert statuses(result) == [("a", "1.sql", Status.APPLIED), ("a", "2.sql", Status.REFUSED),
                                ("a", "3.sql", Status.NOT_RUN)]
    assert "LOCK LOST" in result.outcomes[1].reason and "host elsewhere" in result.outcomes[1].reason
    assert sharing.ran == [("a", "1.sql")]
    assert sharing.history("a") == [("1.sql", "success")]  # what it ran is recorded, nothing else
    assert sharing.query("a", "SELECT run_id FROM dbupdater_lock WHERE name = 'deploy'") == [("another-run",)]


def test_a_lease_that_ended_stops_the_target_before_its_next_script(sharing: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", EXPIRED))
    repo.row("a", repo.script("2.sql", "ok"))
    result = run(repo)
    assert statuses(result) == [("a", "1.sql", Status.APPLIED), ("a", "2.sql", Status.REFUSED)]
    assert "LOCK LOST" in result.outcomes[1].reason and "lease ended" in result.outcomes[1].reason
    assert sharing.history("a") == [("1.sql", "success")]


def test_a_script_applied_meanwhile_is_skipped_not_run_again(sharing: Harness, repo: Repo) -> None:
    two = repo.dir / repo.script("2.sql", "ok")
    repo.row("a", repo.script("1.sql", applied_by_another_run("2.sql", checksum(two))))
    repo.row("a", "2.sql")
    repo.row("a", repo.script("3.sql", "ok"))
    result = run(repo)
    assert statuses(result) == [("a", "1.sql", Status.APPLIED), ("a", "2.sql", Status.SKIPPED),
                                ("a", "3.sql", Status.APPLIED)]
    assert "already applied" in result.outcomes[1].reason
    assert sharing.ran == [("a", "1.sql"), ("a", "3.sql")]


def test_a_script_whose_history_changed_otherwise_is_refused(sharing: Harness, repo: Repo) -> None:
    failed = ("sql INSERT INTO dbupdater_history (script, checksum, checksum_version, status, run_id) VALUES "
              "('2.sql', 'x', 1, 'failed', 'another-run')")
    repo.row("a", repo.script("1.sql", failed))
    repo.row("a", repo.script("2.sql", "ok"))
    result = run(repo)
    assert statuses(result) == [("a", "1.sql", Status.APPLIED), ("a", "2.sql", Status.REFUSED)]
    assert "history changed" in result.outcomes[1].reason
    assert sharing.ran == [("a", "1.sql")]

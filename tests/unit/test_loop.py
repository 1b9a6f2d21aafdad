"""The core's decisions, through the real manifest reader, ledger, plan and executor, on a stub engine over
SQLite and fake runners (see fakes.py): order, halting, skipping, drift, in doubt, hooks, locks, interrupts.

Timing never decides a result here: scripts that must overlap meet at barriers, a script that must outlive a
decision waits for it (`wait-stopped`), and Ctrl-C reaches the main thread only once it waits for the run.
"""

from __future__ import annotations

import json
import stat
import threading

import pytest

from dbupdater import cli
from dbupdater.events import Interrupted, WaitingForLock
from dbupdater.execution.hooks import RunHook, StopRun
from dbupdater.execution.options import RunOptions
from dbupdater.ledger import Refused
from dbupdater.model.errors import ExitCode, UnreachableError
from dbupdater.model.outcome import InterruptStep, RunResult, Status
from dbupdater.model.specs import ManifestRow
from dbupdater.plan import PlannedRow

from .fakes import HEADER, PASSWORD, Harness, RecordingReporter, Repo, walk


def run(repo: Repo, reporter: RecordingReporter | None = None, hooks: list[RunHook] | None = None,
        **options: object) -> RunResult:
    _, result = walk(repo.load(), RunOptions(**options), reporter or RecordingReporter(), hooks or ())  # type: ignore[arg-type]
    return result


def statuses(result: RunResult) -> list[tuple[str, str, Status]]:
    return [(o.row.db.database, o.row.script_label, o.status) for o in result.outcomes]


def main(repo: Repo, *args: str) -> int:
    command = args[0] if args else "apply"
    return cli.main([command, "-f", str(repo.write()), "--color", "never", *args[1:]])


@pytest.fixture(params=[True, False], ids=["shared-session", "own-call"])
def sharing(request: pytest.FixtureRequest, harness: Harness) -> Harness:
    """Both ways the `running` row is written: in the script's own session, or in a ledger call of its own."""
    harness.engine.share_session = request.param
    return harness


# --- order ------------------------------------------------------------------------------------------------------


def test_parallel_1_runs_the_whole_manifest_in_order(sharing: Harness, repo: Repo) -> None:
    for database, script in [("a", "001.sql"), ("b", "001.sql"), ("a", "002.sql"), ("c", "001.sql"),
                             ("b", "002.sql")]:
        repo.row(database, repo.script(script, "ok"), runner="runner2" if database == "b" else "runner1")
    result = run(repo, parallel=1)
    assert result.exit_code is ExitCode.OK
    assert sharing.ran == [("a", "001.sql"), ("b", "001.sql"), ("a", "002.sql"), ("c", "001.sql"), ("b", "002.sql")]
    assert sharing.history("a") == [("001.sql", "success"), ("002.sql", "success")]
    assert sharing.history("c") == [("001.sql", "success")]
    # Each script copied once per runner, however many targets run it.
    assert sorted(sharing.uploads) == [("deploy@runner1", "001.sql"), ("deploy@runner1", "002.sql"),
                                       ("deploy@runner2", "001.sql"), ("deploy@runner2", "002.sql")]


def test_each_target_keeps_manifest_order_while_targets_overlap(harness: Harness, repo: Repo) -> None:
    databases = ["a", "b", "c", "d"]
    for step in range(3):
        # The first scripts of all four targets run at once (they meet), so the targets really overlap.
        script = repo.script(f"{step}.sql", "meet first 4" if step == 0 else "ok")
        for n, database in enumerate(databases):
            repo.row(database, script, runner=f"runner{1 + n % 2}")
    result = run(repo, parallel=4, per_runner=2)
    assert result.exit_code is ExitCode.OK, statuses(result)
    for database in databases:
        assert harness.ran_on(database) == ["0.sql", "1.sql", "2.sql"]
        assert harness.history(database) == [("0.sql", "success"), ("1.sql", "success"), ("2.sql", "success")]


def test_per_runner_cap_is_never_exceeded(harness: Harness, repo: Repo) -> None:
    # Six targets through runner1 and two through runner2, at most two at once per runner: the scripts meet in
    # pairs on each runner (so two do run at once), and a third at once would show in the peak.
    pair1 = repo.script("r1.sql", "meet runner1 2")
    pair2 = repo.script("r2.sql", "meet runner2 2")
    for n in range(6):
        repo.row(f"one{n}", pair1, runner="runner1")
    for n in range(2):
        repo.row(f"two{n}", pair2, runner="runner2")
    result = run(repo, parallel=8, per_runner=2)
    assert result.exit_code is ExitCode.OK, statuses(result)
    assert harness.peak["deploy@runner1"] == 2 and harness.peak["deploy@runner2"] == 2


def test_a_target_counts_against_the_runner_of_its_first_row(harness: Harness, repo: Repo) -> None:
    # Target x starts on runner1 and goes on on runner2: with one slot per runner, y (runner1) waits for x.
    repo.row("x", repo.script("x1.sql", "signal x1"), runner="runner1")
    repo.row("x", repo.script("x2.sql", "ok"), runner="runner2")
    repo.row("y", repo.script("y1.sql", "ok"), runner="runner1")
    result = run(repo, parallel=4, per_runner=1)
    assert result.exit_code is ExitCode.OK
    assert harness.ran == [("x", "x1.sql"), ("x", "x2.sql"), ("y", "y1.sql")]


# --- halting ----------------------------------------------------------------------------------------------------


def test_a_failure_halts_the_run_and_the_running_scripts_finish(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("a1.sql", "wait b1-running", "fail boom"))
    repo.row("a", repo.script("a2.sql", "ok"))
    repo.row("b", repo.script("b1.sql", "signal b1-running", "wait-stopped", "ok"))
    repo.row("b", repo.script("b2.sql", "ok"))
    repo.row("c", repo.script("c1.sql", "ok"))
    result = run(repo, parallel=2)
    assert statuses(result) == [("a", "a1.sql", Status.FAILED), ("a", "a2.sql", Status.NOT_RUN),
                                ("b", "b1.sql", Status.APPLIED), ("b", "b2.sql", Status.NOT_RUN),
                                ("c", "c1.sql", Status.NOT_RUN)]
    assert result.exit_code is ExitCode.SCRIPT_FAILED
    assert result.outcomes[0].errors == ("ERROR:  boom",)
    assert harness.history("a") == [("a1.sql", "failed")]
    assert harness.history("b") == [("b1.sql", "success")]  # finished and recorded, though the run was stopping
    assert harness.history("c") == []
    assert not harness.leftover_dirs() and all(t.closed for t in harness.transports)


def test_keep_going_stops_only_the_failed_target(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("a1.sql", "fail boom"))
    repo.row("a", repo.script("a2.sql", "ok"))
    repo.row("b", repo.script("b1.sql", "ok"))
    repo.row("b", repo.script("b2.sql", "ok"))
    repo.row("c", repo.script("c1.sql", "ok"))
    result = run(repo, parallel=2, keep_going=True)
    assert statuses(result) == [("a", "a1.sql", Status.FAILED), ("a", "a2.sql", Status.NOT_RUN),
                                ("b", "b1.sql", Status.APPLIED), ("b", "b2.sql", Status.APPLIED),
                                ("c", "c1.sql", Status.APPLIED)]
    assert result.exit_code is ExitCode.SCRIPT_FAILED


def test_in_strict_order_a_failure_stops_everything_even_with_keep_going(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.row("b", repo.script("2.sql", "fail boom"))
    repo.row("a", repo.script("3.sql", "ok"))
    repo.row("c", repo.script("4.sql", "ok"))
    result = run(repo, parallel=1, keep_going=True)
    assert [s for _, _, s in statuses(result)] == [Status.APPLIED, Status.FAILED, Status.NOT_RUN, Status.NOT_RUN]
    assert harness.ran == [("a", "1.sql"), ("b", "2.sql")]


@pytest.mark.parametrize(("directives", "status", "code"), [
    (["stderr hello from a shell escape"], Status.FAILED, ExitCode.SCRIPT_FAILED),  # exit 0, unexpected stderr
    (["exit 127"], Status.UNREACHABLE, ExitCode.UNREACHABLE),  # the client is missing on the runner
    (["exit 137"], Status.FAILED, ExitCode.SCRIPT_FAILED),  # killed by a signal
    (["warn careful", "echo fine"], Status.APPLIED, ExitCode.OK),  # warnings are shown, they do not fail
])
def test_what_the_client_says_decides_the_row(harness: Harness, repo: Repo, directives: list[str], status: Status,
                                              code: ExitCode) -> None:
    repo.row("a", repo.script("1.sql", *directives))
    repo.row("a", repo.script("2.sql", "ok"))
    result = run(repo)
    assert result.outcomes[0].status is status, result.outcomes[0].reason
    assert result.exit_code is code
    expected_second = Status.APPLIED if status is Status.APPLIED else Status.NOT_RUN
    assert result.outcomes[1].status is expected_second
    if status is Status.APPLIED:
        assert result.outcomes[0].warnings == ("WARNING:  careful",) and result.outcomes[0].stdout_tail == ("fine",)


# --- the ledger decides what runs -------------------------------------------------------------------------------


def test_a_second_run_skips_what_was_applied(sharing: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "sql CREATE TABLE t (x)"))
    repo.row("a", repo.script("2.sql", "sql INSERT INTO t VALUES (1)"))
    assert run(repo).exit_code is ExitCode.OK
    sharing.ran.clear()
    again = run(repo)
    assert again.exit_code is ExitCode.OK
    assert [o.status for o in again.outcomes] == [Status.SKIPPED, Status.SKIPPED]
    assert "already applied" in again.outcomes[0].reason
    assert sharing.ran == []
    assert sharing.query("a", "SELECT COUNT(*) FROM t") == [(1,)]
    assert sharing.history("a") == [("1.sql", "success"), ("2.sql", "success")]


def test_an_edited_script_is_drift_and_nothing_runs_anywhere(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.row("b", repo.script("2.sql", "ok"))
    assert run(repo).exit_code is ExitCode.OK
    repo.row("b", repo.script("3.sql", "ok"))  # new, pending
    repo.script("1.sql", "ok", "-- edited after it was applied")
    harness.ran.clear()
    result = run(repo)
    assert result.exit_code is ExitCode.REFUSED
    assert result.outcomes[0].status is Status.REFUSED and result.outcomes[0].reason.startswith("drifted")
    assert [o.status for o in result.outcomes[1:]] == [Status.NOT_RUN, Status.NOT_RUN]
    assert harness.ran == []
    assert main(repo) == ExitCode.REFUSED
    assert main(repo, "plan") == ExitCode.REFUSED


def test_line_endings_and_a_byte_order_mark_are_not_drift(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok", "echo x"))
    assert run(repo).exit_code is ExitCode.OK
    path = repo.dir / "1.sql"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes().replace(b"\n", b"\r\n"))
    result = run(repo)
    assert result.exit_code is ExitCode.OK and result.outcomes[0].status is Status.SKIPPED


def test_a_changed_repeatable_script_runs_again(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("view.sql", "echo v1"), repeatable="yes")
    assert run(repo).exit_code is ExitCode.OK
    assert run(repo).outcomes[0].status is Status.SKIPPED
    repo.script("view.sql", "echo v2")
    result = run(repo)
    assert result.outcomes[0].status is Status.APPLIED
    assert harness.history("a") == [("view.sql", "success"), ("view.sql", "success")]


def test_a_script_listed_twice_for_one_database_runs_once(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.row("a", repo.script("2.sql", "ok"))
    repo.row("a", "1.sql", runner="runner2")
    result = run(repo)
    assert [o.status for o in result.outcomes] == [Status.APPLIED, Status.APPLIED, Status.SKIPPED]
    assert "runs earlier in this manifest (row 1)" in result.outcomes[2].reason
    assert harness.ran == [("a", "1.sql"), ("a", "2.sql")]


def test_a_lost_runner_leaves_the_script_running_and_the_next_run_refuses_it(sharing: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.row("a", repo.script("2.sql", "lose-runner"))
    repo.row("a", repo.script("3.sql", "ok"))
    result = run(repo)
    assert [o.status for o in result.outcomes] == [Status.APPLIED, Status.UNREACHABLE, Status.NOT_RUN]
    assert result.exit_code is ExitCode.UNREACHABLE
    # Neither the end of 2.sql nor the lock's release could be written: the history says what a crash leaves.
    assert sharing.history("a") == [("1.sql", "success"), ("2.sql", "running")]
    sharing.expire_lock("a")  # the dead run's lease runs out
    sharing.ran.clear()
    again = run(repo)
    assert again.exit_code is ExitCode.REFUSED
    assert [o.status for o in again.outcomes] == [Status.NOT_RUN, Status.REFUSED, Status.NOT_RUN]
    assert again.outcomes[1].reason.startswith("in doubt") and "resolve" in again.outcomes[1].reason
    assert sharing.ran == []


def test_a_lost_channel_is_recorded_failed_and_in_doubt_next_time(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "lose"))
    result = run(repo)
    assert result.outcomes[0].status is Status.UNREACHABLE
    assert "may be partially applied" in result.outcomes[0].reason
    assert harness.history("a") == [("1.sql", "failed")]
    assert run(repo).outcomes[0].status is Status.REFUSED


def test_a_transport_error_mid_script_is_unreachable_and_in_doubt(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "transport-error"))
    result = run(repo)
    assert result.outcomes[0].status is Status.UNREACHABLE and "fake connection failed" in result.outcomes[0].reason
    assert harness.history("a") == [("1.sql", "failed")]


def test_a_failed_script_is_in_doubt_until_resolved(harness: Harness, repo: Repo, capsys: pytest.CaptureFixture[str],
                                                    ) -> None:
    repo.row("a", repo.script("1.sql", "fail boom"))
    repo.row("a", repo.script("2.sql", "ok"))
    assert main(repo) == ExitCode.SCRIPT_FAILED
    assert main(repo) == ExitCode.REFUSED and "in doubt" in capsys.readouterr().out
    repo.script("1.sql", "ok")  # fixed; its effect was undone by hand
    assert main(repo, "resolve", "--script", "1.sql", "--mark", "rerun") == ExitCode.OK
    harness.ran.clear()
    assert main(repo) == ExitCode.OK
    assert harness.ran == [("a", "1.sql"), ("a", "2.sql")]
    assert harness.history("a") == [("1.sql", "rerun"), ("1.sql", "success"), ("2.sql", "success")]


def test_resolve_applied_records_the_current_checksum(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "lose"))
    repo.row("a", repo.script("2.sql", "ok"))
    assert main(repo) == ExitCode.UNREACHABLE
    assert main(repo, "resolve", "--all", "--mark", "applied") == ExitCode.OK
    harness.ran.clear()
    assert main(repo) == ExitCode.OK
    assert harness.ran == [("a", "2.sql")]
    assert main(repo, "resolve", "--all", "--mark", "applied") == ExitCode.USAGE  # nothing in doubt any more


def test_a_failure_in_one_transaction_is_rolled_back_and_runs_again(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "sql CREATE TABLE half (x)", "fail boom"), single_transaction="yes")
    result = run(repo)
    assert result.outcomes[0].status is Status.FAILED and "rolled back" in result.outcomes[0].reason
    assert harness.history("a") == [("1.sql", "rolled_back")]
    assert "half" not in harness.tables("a")
    repo.script("1.sql", "sql CREATE TABLE half (x)")
    assert run(repo).exit_code is ExitCode.OK  # rolled back needs no resolve
    assert "half" in harness.tables("a")
    assert harness.history("a") == [("1.sql", "rolled_back"), ("1.sql", "success")]


def test_when_the_running_row_cannot_be_written_the_script_does_not_start(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.row("a", repo.script("2.sql", "sql CREATE TABLE never (x)"))
    harness.fail_before.add("2.sql")
    result = run(repo)
    assert result.outcomes[1].status is Status.UNREACHABLE and result.outcomes[1].reason.startswith("not started")
    assert harness.ran == [("a", "1.sql")] and "never" not in harness.tables("a")
    assert harness.history("a") == [("1.sql", "success")]  # 1.sql's success went with the release
    harness.fail_before.clear()
    assert [o.status for o in run(repo).outcomes] == [Status.SKIPPED, Status.APPLIED]


# --- hooks ------------------------------------------------------------------------------------------------------


class StopAt:
    """A hook that refuses to let `script` start (Vault went away, an approval was withdrawn)."""

    def __init__(self, script: str) -> None:
        self.script = script
        self.executing_called: list[int] = []
        self.asked: list[str] = []

    def executing(self, planned: list[PlannedRow]) -> None:
        self.executing_called.append(len(planned))

    def before_script(self, row: ManifestRow) -> None:
        self.asked.append(row.script_label)
        if row.script_label == self.script:
            raise StopRun("the vault token was revoked")

    def finished(self, result: RunResult) -> None:
        pass


@pytest.mark.parametrize("parallel", [1, 8])
def test_stop_run_from_a_hook_stops_before_the_next_script(harness: Harness, repo: Repo, parallel: int) -> None:
    for name in ("1.sql", "2.sql", "3.sql"):
        repo.row("a", repo.script(name, "ok"))
    hook = StopAt("2.sql")
    result = run(repo, hooks=[hook], parallel=parallel)
    assert [o.status for o in result.outcomes] == [Status.APPLIED, Status.UNREACHABLE, Status.NOT_RUN]
    assert result.outcomes[1].reason == "stopped before this script: the vault token was revoked"
    assert result.exit_code is ExitCode.UNREACHABLE
    assert harness.ran == [("a", "1.sql")] and hook.asked == ["1.sql", "2.sql"] and hook.executing_called == [3]
    assert harness.history("a") == [("1.sql", "success")]


def test_hooks_are_not_asked_when_nothing_would_run(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    assert run(repo).exit_code is ExitCode.OK
    hook = StopAt("1.sql")
    assert run(repo, hooks=[hook]).exit_code is ExitCode.OK
    assert hook.executing_called == [] and hook.asked == []


# --- reaching runners and databases -----------------------------------------------------------------------------


def test_an_unreachable_runner_means_nothing_runs_anywhere(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"), runner="runner1")
    repo.row("b", "1.sql", runner="runner2")
    harness.unreachable_runners.add("runner2")
    with pytest.raises(UnreachableError, match="runner2 unreachable"):
        run(repo)
    assert harness.ran == [] and harness.history("a") == []
    assert not harness.leftover_dirs() and all(t.closed for t in harness.transports)
    assert main(repo) == ExitCode.UNREACHABLE


@pytest.mark.parametrize("breakage", ["client", "login"])
def test_a_database_that_cannot_be_used_stops_the_run_before_anything_runs(harness: Harness, repo: Repo,
                                                                          breakage: str) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    if breakage == "client":
        harness.missing_clients.add("stubdb")
    else:
        harness.passwords["a"] = "another password"
    with pytest.raises(UnreachableError) as caught:
        run(repo)
    assert ("not installed" if breakage == "client" else "cannot connect to or log in") in str(caught.value)
    assert PASSWORD not in str(caught.value)
    assert harness.ran == []
    assert main(repo) == ExitCode.UNREACHABLE


def test_the_password_reaches_the_client_only_through_its_credentials_file(harness: Harness, repo: Repo) -> None:
    harness.passwords["a"] = PASSWORD  # the fake client accepts only this one
    repo.row("a", repo.script("1.sql", "ok"))
    assert run(repo).exit_code is ExitCode.OK
    lines = [line for _, line in harness.command_lines]
    assert lines and not any(PASSWORD in line for line in lines)
    assert all('STUBDB_PASSWORD="$(cat -- ' in line for line in lines)


def test_private_directories_are_0700_and_removed_and_files_are_0600(harness: Harness, repo: Repo) -> None:
    seen: dict[str, int] = {}
    repo.row("a", repo.script("1.sql", "ok"))
    repo.row("a", repo.script("2.sql", "signal look", "wait looked"))

    def look() -> None:  # while 2.sql runs, from the test's side
        assert harness.event("look").wait(5)
        directory = harness.private_dirs[0]
        seen[directory.name] = stat.S_IMODE(directory.stat().st_mode)
        for path in directory.iterdir():
            seen[path.name] = stat.S_IMODE(path.stat().st_mode)
        harness.event("looked").set()

    watcher = threading.Thread(target=look)
    watcher.start()
    assert run(repo).exit_code is ExitCode.OK
    watcher.join()
    modes = sorted(seen.values())
    assert modes[-1] == 0o700 and set(modes[:-1]) == {0o600} and len(modes) == 4  # dir, login, two scripts
    assert not harness.leftover_dirs() and all(t.closed for t in harness.transports)


# --- locks and the ledger's schema ------------------------------------------------------------------------------


def hold_lock(harness: Harness, database: str, expires: str) -> None:
    harness.query(database, "INSERT INTO dbupdater_lock (name, run_id, host, pid, os_user, expires_at) VALUES "
                            f"('deploy', 'other-run-0123456789', 'ci-7', 4242, 'jenkins', '{expires}')")


def test_a_lock_held_by_another_run_refuses_the_run_naming_the_holder(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.row("b", repo.script("2.sql", "ok"))
    assert main(repo, "baseline", "--up-to", "1.sql") == ExitCode.OK  # creates the tables, records 1.sql
    hold_lock(harness, "a", "2999-01-01 00:00:00.000")
    harness.ran.clear()
    with pytest.raises(Refused, match=r"locked by run other-ru of jenkins on host ci-7 \(pid 4242\)"):
        run(repo, lock_timeout=0)
    assert harness.ran == []
    assert main(repo, "apply", "--lock-timeout", "0") == ExitCode.REFUSED
    reporter = RecordingReporter()
    with pytest.raises(Refused):
        run(repo, reporter, lock_timeout=0.5)  # long enough to be seen waiting, even on a busy machine
    assert [event.holder.run_id for event in reporter.of(WaitingForLock)] == ["other-run-0123456789"]
    assert harness.query("b", "SELECT COUNT(*) FROM dbupdater_lock") == [(0,)]  # b's lock released on the way out


def test_an_expired_lease_is_taken_over(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    assert main(repo, "plan") == ExitCode.OK
    assert harness.tables("a") == set()  # plan creates nothing, not even the history table
    assert main(repo, "baseline", "--up-to", "1.sql") == ExitCode.OK
    repo.row("a", repo.script("2.sql", "ok"))
    hold_lock(harness, "a", "2000-01-01 00:00:00.000")  # a run killed with kill -9, long ago
    assert run(repo, lock_timeout=0).exit_code is ExitCode.OK
    assert harness.history("a") == [("1.sql", "success"), ("2.sql", "success")]
    assert harness.query("a", "SELECT COUNT(*) FROM dbupdater_lock") == [(0,)]


def test_a_version_1_ledger_is_upgraded_and_reverted_reads_as_rerun(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    assert run(repo).exit_code is ExitCode.OK
    # What the first releases left: no version table, 'reverted' for "run it again", no session columns.
    harness.query("a", "DROP TABLE dbupdater_schema")
    harness.query("a", "UPDATE dbupdater_history SET status = 'reverted'")
    harness.query("a", "ALTER TABLE dbupdater_history DROP COLUMN db_session")
    harness.query("a", "ALTER TABLE dbupdater_history DROP COLUMN db_user")
    harness.ran.clear()
    assert run(repo).exit_code is ExitCode.OK
    assert harness.ran == [("a", "1.sql")]
    assert harness.history("a") == [("1.sql", "rerun"), ("1.sql", "success")]
    assert harness.query("a", "SELECT version FROM dbupdater_schema ORDER BY version") == [(1,), (2,), (3,)]


def test_a_ledger_written_by_a_newer_release_is_refused(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    assert run(repo).exit_code is ExitCode.OK
    harness.query("a", "INSERT INTO dbupdater_schema (version) VALUES (99)")
    repo.row("a", repo.script("2.sql", "ok"))
    with pytest.raises(Refused, match="schema version 99"):
        run(repo)
    assert harness.history("a") == [("1.sql", "success")]


# --- interrupts -------------------------------------------------------------------------------------------------


def steps(reporter: RecordingReporter) -> list[tuple[InterruptStep, int]]:
    return [(event.step, event.running) for event in reporter.of(Interrupted)]


@pytest.mark.parametrize("parallel", [1, 8])
def test_first_ctrl_c_lets_the_running_script_finish_and_starts_nothing_new(harness: Harness, repo: Repo,
                                                                           parallel: int) -> None:
    repo.row("a", repo.script("slow.sql", "ctrlc", "wait-stopped", "sql CREATE TABLE after_interrupt (x)"))
    repo.row("a", repo.script("next.sql", "ok"))
    repo.row("b", repo.script("other.sql", "ok"))
    reporter = RecordingReporter()
    result = run(repo, reporter, parallel=parallel, per_runner=1)
    assert result.interrupted and result.exit_code is ExitCode.INTERRUPTED
    assert steps(reporter) == [(InterruptStep.WAIT, 1)]
    assert [o.status for o in result.outcomes] == [Status.APPLIED, Status.NOT_RUN, Status.NOT_RUN]
    assert harness.history("a") == [("slow.sql", "success")] and "after_interrupt" in harness.tables("a")
    assert harness.ran == [("a", "slow.sql")] and not harness.interrupts
    assert harness.query("a", "SELECT COUNT(*) FROM dbupdater_lock") == [(0,)]


@pytest.mark.parametrize("parallel", [1, 8])
def test_second_ctrl_c_cancels_the_running_script_on_its_runner(harness: Harness, repo: Repo, parallel: int) -> None:
    repo.row("a", repo.script("slow.sql", "ctrlc", "ctrlc", "hang", "sql CREATE TABLE never (x)"))
    repo.row("a", repo.script("next.sql", "ok"))
    reporter = RecordingReporter()
    result = run(repo, reporter, parallel=parallel)
    assert steps(reporter) == [(InterruptStep.WAIT, 1), (InterruptStep.CANCEL, 1)]
    assert harness.interrupts == {"deploy@runner1": 1}
    slow = result.outcomes[0]
    assert slow.status is Status.INTERRUPTED and slow.reason.startswith("cancelled on the server (interrupted)")
    assert slow.errors == ("ERROR:  canceling statement due to user request",)
    assert result.outcomes[1].status is Status.NOT_RUN and result.exit_code is ExitCode.INTERRUPTED
    assert harness.history("a") == [("slow.sql", "failed")] and "never" not in harness.tables("a")
    assert run(repo).outcomes[0].status is Status.REFUSED  # in doubt: nobody guesses what a cancel left


def test_third_ctrl_c_leaves_at_once_and_the_script_stays_in_doubt(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("stubborn.sql", "ignore-interrupts", "ctrlc", "ctrlc", "ctrlc", "hang"))
    reporter = RecordingReporter()
    left = run(repo, reporter)  # leaving still ends with a result: its report and hooks are written
    assert left.exit_code is ExitCode.INTERRUPTED and left.outcomes[0].status is Status.INTERRUPTED
    harness.settle()
    assert steps(reporter) == [(InterruptStep.WAIT, 1), (InterruptStep.CANCEL, 1), (InterruptStep.LEAVE, 1)]
    assert harness.history("a") == [("stubborn.sql", "running")]
    # On the way out the lock was released and the private directory removed.
    assert harness.query("a", "SELECT COUNT(*) FROM dbupdater_lock") == [(0,)]
    assert not harness.leftover_dirs() and all(t.closed for t in harness.transports)
    assert run(repo).outcomes[0].status is Status.REFUSED


def test_ctrl_c_through_the_command_line(harness: Harness, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("slow.sql", "ctrlc", "wait-stopped"))
    repo.row("a", repo.script("next.sql", "ok"))
    assert main(repo) == ExitCode.INTERRUPTED
    out = capsys.readouterr().out
    assert "starting nothing new" in out and "after an interrupt" in out and "1 not run" in out, out


def test_sigterm_cancels_at_once(harness: Harness, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("slow.sql", "sigterm", "hang"))
    repo.row("a", repo.script("next.sql", "ok"))
    assert main(repo, "apply", "--parallel", "1") == ExitCode.INTERRUPTED
    out = capsys.readouterr().out
    assert "cancelling 1 running script" in out and "cancelled on the server" in out, out
    assert harness.interrupts == {"deploy@runner1": 1}
    assert harness.history("a") == [("slow.sql", "failed")]


# --- the other commands, offline ----------------------------------------------------------------------------------


def test_validate_connects_nowhere(harness: Harness, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    assert main(repo, "validate") == ExitCode.OK
    assert harness.transports == [] and "manifest is valid" in capsys.readouterr().out


def test_status_json_and_plan(harness: Harness, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.row("a", repo.script("2.sql", "fail nope"))
    repo.row("b", "1.sql", runner="runner2")
    assert main(repo, "apply", "--keep-going") == ExitCode.SCRIPT_FAILED
    capsys.readouterr()
    assert main(repo, "status", "--output", "json") == ExitCode.OK
    document = json.loads(capsys.readouterr().out)
    a, b = "stubdb://db1:7000/a", "stubdb://db1:7000/b"
    assert document["targets"] == [a, b] and document["scripts"] == ["1.sql", "2.sql"]
    assert document["matrix"] == {"1.sql": {a: "success", b: "success"}, "2.sql": {a: "failed", b: None}}
    assert main(repo, "plan") == ExitCode.REFUSED
    assert "in doubt" in capsys.readouterr().out


def test_baseline_records_without_running(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "sql CREATE TABLE t (x)"))
    repo.row("a", repo.script("2.sql", "ok"))
    assert main(repo, "baseline", "--up-to", "1.sql") == ExitCode.OK
    assert harness.ran == [] and harness.history("a") == [("1.sql", "success")]
    assert main(repo) == ExitCode.OK
    assert harness.ran == [("a", "2.sql")]


def test_wait_ready_through_the_runners(harness: Harness, repo: Repo) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    repo.row("b", "1.sql", runner="runner2")
    assert main(repo, "wait-ready", "--timeout", "5") == ExitCode.OK
    harness.refuse_login.add("b")
    assert main(repo, "wait-ready", "--timeout", "0.2") == ExitCode.UNREACHABLE
    assert harness.ran == [] and harness.tables("a") == set()


def test_shards_run_disjoint_slices(harness: Harness, repo: Repo) -> None:
    for database in ("a", "b", "c"):
        repo.row(database, repo.script("1.sql", "ok"))
    assert main(repo, "apply", "--shard", "1/2") == ExitCode.OK
    first = {database for database, _ in harness.ran}
    assert main(repo, "apply", "--shard", "2/2") == ExitCode.OK
    second = {database for database, _ in harness.ran} - first
    assert first | second == {"a", "b", "c"} and not first & second and len(first) == 2


def test_the_legacy_manifest_infers_the_stub_engine_from_its_port(harness: Harness, repo: Repo,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "ok"))
    path = repo.write(header=[column for column in HEADER if column != "database_type"])
    assert cli.main(["apply", "-f", str(path), "--color", "never"]) == ExitCode.OK
    assert harness.ran == [("a", "1.sql")]
    assert "7000 StubDB" in capsys.readouterr().out  # the note naming the ports it infers from


def test_the_stub_engine_and_fake_transport_are_gone_after_the_test() -> None:
    from dbupdater.engines import registry as engines
    from dbupdater.transports import registry as transports

    assert "stubdb" not in engines.engines() and engines.find("stub") is None
    assert "fake" not in transports.kinds()

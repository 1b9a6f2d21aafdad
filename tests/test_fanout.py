"""Fan-out on the rig: order within a database, the per-runner cap, fail-fast vs keep-going, shards, memory."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbupdater.manifest import parse
from dbupdater.model.outcome import Outcome, RunResult, Status
from dbupdater.model.shards import Shard
from dbupdater.reporting.console import ConsoleReporter

from .conftest import ROOT, Target, Workspace


@pytest.fixture
def extra(rig, target: Target) -> Iterator[list[Target]]:  # type: ignore[no-untyped-def]
    """Three more fresh databases on the same server as `target`."""
    made = [target.sibling(f"{target.name}_{n}") for n in range(3)]
    yield made
    for other in made:
        other.drop()


def history(target: Target) -> list[list[str]]:
    return target.rows("SELECT script, status FROM dbupdater_history ORDER BY id")


def clients(databases: list[str]) -> int:
    """Native clients running a script (not a ledger query) on any of these databases right now."""
    out = subprocess.run(["ps", "-eo", "args", "-ww"], capture_output=True, text=True).stdout
    return sum(1 for line in out.splitlines() if "--show-warnings" in line
               and any(line.endswith(f"--database={name}") for name in databases))


def test_each_database_in_manifest_order_while_databases_overlap(workspace: Workspace, target: Target,
                                                                 extra: list[Target], run_tool) -> None:
    targets = [target, *extra]
    for step in range(3):  # manifest interleaves the databases; each database's own order must hold
        for n, db in enumerate(targets):
            workspace.row(db, workspace.script(f"{step}.sql", db.sleep(1) + "\n"), runner=1 + n % 2)
    result = run_tool("-f", str(workspace.write()), "--parallel", "4")
    assert result.code == 0, result.text
    for db in targets:
        assert history(db) == [["0.sql", "success"], ["1.sql", "success"], ["2.sql", "success"]]
    starts = {db.name: db.rows("SELECT MIN(started_at), MAX(finished_at) FROM dbupdater_history")[0]
              for db in targets}
    first_end = min(end for _, end in starts.values())
    assert all(begin <= first_end for begin, _ in starts.values()), "databases did not overlap"
    assert "Targets" in result.out and result.out.count("complete") == 4


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_per_runner_cap_holds(workspace: Workspace, target: Target, extra: list[Target], run_tool, info) -> None:
    targets = [target, *extra]
    for db in targets:
        for step in range(2):
            workspace.row(db, workspace.script(f"{step}.sql", "SELECT SLEEP(1.5);\n"), runner=1)
    path = workspace.write()
    seen: list[int] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            seen.append(clients([db.name for db in targets]))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = run_tool("-f", str(path), "--parallel", "4", "--per-runner", "2")
    finally:
        done.set()
        sampler.join()
    assert result.code == 0, result.text
    assert max(seen) == 2, f"concurrent clients on the runner: {sorted(set(seen))}"


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_fail_fast_lets_running_scripts_finish_and_starts_nothing_new(workspace: Workspace, target: Target,
                                                                      extra: list[Target], run_tool) -> None:
    bad, slow, later, last = target, *extra
    workspace.row(bad, workspace.script("bad.sql", "SELECT SLEEP(0.5);\nINSERT INTO nowhere VALUES (1);\n"))
    workspace.row(slow, workspace.script("slow.sql", "SELECT SLEEP(3);\nCREATE TABLE slow_done (id INT);\n"),
                  runner=2)
    workspace.row(slow, workspace.script("after.sql", "CREATE TABLE after_slow (id INT);\n"), runner=2)
    workspace.row(later, workspace.script("later.sql", "CREATE TABLE later_t (id INT);\n"))
    workspace.row(last, workspace.script("later.sql", "CREATE TABLE later_t (id INT);\n"))
    path = workspace.write()
    result = run_tool("-f", str(path), "--parallel", "2")
    assert result.code == 1, result.text
    assert "slow_done" in slow.tables()  # it was running: it finished, and is recorded
    assert history(slow) == [["slow.sql", "success"]]
    assert "after_slow" not in slow.tables()  # nothing new started after the failure
    assert "later_t" not in later.tables() and "later_t" not in last.tables()
    assert "stopped at bad.sql (failed)" in result.out and "not started after slow.sql" in result.out

    assert run_tool("resolve", "-f", str(path), "--all", "--mark", "rerun").code == 0
    going = run_tool("-f", str(path), "--parallel", "2", "--keep-going")
    assert going.code == 1, going.text
    assert "after_slow" in slow.tables() and "later_t" in later.tables() and "later_t" in last.tables()
    assert history(bad)[-1] == ["bad.sql", "failed"]


def test_shards_are_disjoint_and_cover_every_target(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("SELECT 1;\n")
    header = ["sql_runner_host", "sql_runner_userid", "sql_runner_password", "database_type", "database_host",
              "database_userid", "database_password", "port", "database", "sql_script_to_run"]
    rows = [(n + 2, [f"runner{n % 8}.invalid", "u", "", "MySQL", f"db{n % 13}.invalid", "u", "", "3306",
                     f"app{n}", "a.sql"]) for n in range(200)]
    manifest = parse("m.csv", tmp_path, header, rows)
    everything = {row.db.key for row in manifest.rows}
    for count in (1, 3, 7):
        slices = [{row.db.key for row in Shard(index, count).select(manifest).rows} for index in range(1, count + 1)]
        assert set().union(*slices) == everything
        assert sum(len(s) for s in slices) == len(everything)  # disjoint
        assert max(map(len, slices)) - min(map(len, slices)) <= 1  # balanced
    shuffled = parse("m.csv", tmp_path, header, list(reversed(rows)))
    assert ({row.db.key for row in Shard(2, 5).select(shuffled).rows}
            == {row.db.key for row in Shard(2, 5).select(manifest).rows}), "shards depend on row order"


def test_summary_of_a_large_run_lists_only_the_problems(tmp_path: Path) -> None:
    (tmp_path / "a.sql").write_text("SELECT 1;\n")
    header = ["sql_runner_host", "sql_runner_userid", "sql_runner_password", "database_type", "database_host",
              "database_userid", "database_password", "port", "database", "sql_script_to_run"]
    rows = [(n + 2, ["runner.invalid", "u", "", "MySQL", "db.invalid", "u", "", "3306", f"app{n}", "a.sql"])
            for n in range(60)]
    manifest = parse("m.csv", tmp_path, header, rows)
    outcomes = [Outcome(n + 1, row, Status.APPLIED) for n, row in enumerate(manifest.rows)]
    outcomes[41] = outcomes[41].but(status=Status.FAILED, reason="mysql exited with 1")
    out = io.StringIO()
    ConsoleReporter(out, color=False).run_finished(RunResult(outcomes, 1.0))
    text = out.getvalue()
    assert "Problems (1 of 60 rows)" in text and "app41" in text
    assert "app40" in text  # in the Targets table, which lists every database
    assert text.count("applied") == 1  # the final count only; no row of the 59 applied is listed
    assert "59 applied, 1 failed" in text


def test_shard_option(workspace: Workspace, target: Target, extra: list[Target], run_tool) -> None:
    for db in [target, *extra]:
        workspace.row(db, workspace.script("one.sql", "CREATE TABLE sharded (id INT);\n"))
    path = workspace.write()
    applied = []
    for index in (1, 2, 3):
        result = run_tool("-f", str(path), "--shard", f"{index}/3")
        assert result.code == 0, result.text
        assert f"shard {index}/3" in result.out
        applied.append(sum("sharded" in db.tables() for db in [target, *extra]))
    assert applied[-1] == 4 and applied[0] >= 1
    assert run_tool("-f", str(path), "--shard", "4/3").code == 2


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_each_script_is_uploaded_once_per_runner(workspace: Workspace, target: Target, extra: list[Target],
                                                 run_tool) -> None:
    for db in [target, *extra]:
        for name in ("u1.sql", "u2.sql"):
            workspace.row(db, workspace.script(name, f"CREATE TABLE {name[:2]} (id INT);\n"), runner=1)
    result = run_tool("--debug", "-f", str(workspace.write()))
    assert result.code == 0, result.text
    assert result.err.count("uploading u1.sql") == 1 and result.err.count("uploading u2.sql") == 1


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_a_200_mb_script_streams_with_flat_controller_memory(workspace: Workspace, target: Target, info) -> None:
    small = workspace.script("small.sql", "CREATE TABLE small_t (id INT);\n")
    workspace.row(target, small)
    big = workspace.dir / "big.sql"
    line = "-- " + "x" * 96 + "\n"
    with big.open("w", encoding="ascii") as handle:
        handle.write("CREATE TABLE big_t (id INT);\n")
        chunk = line * 10_000
        for _ in range(200 * 1024 * 1024 // len(chunk)):
            handle.write(chunk)
        handle.write("INSERT INTO big_t VALUES (1);\n")
    assert big.stat().st_size >= 200_000_000
    first = workspace.write("small.csv")
    workspace.row(target, "big.sql")
    second = workspace.write("big.csv")

    def peak_rss_kib(manifest: Path) -> int:
        argv = [sys.executable, str(ROOT / "remote_database_updater.py"), "-f", str(manifest), "--known-hosts",
                info.known_hosts, "--color", "never"]
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0
        return usage.ru_maxrss

    baseline = peak_rss_kib(first)
    with_big = peak_rss_kib(second)
    assert target.rows("SELECT id FROM big_t") == [["1"]]
    assert with_big - baseline < 40 * 1024, f"peak RSS grew from {baseline} KiB to {with_big} KiB"

"""Ledgers of several databases of one MySQL server opened and released in shared calls (ledger/together.py),
on the rig: fewer logins than a call per database, every history and lock as a call of its own leaves them,
and a database whose part of the shared call fails, or whose lock another run holds, is handled on its own,
exactly as before, with nothing run anywhere."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator

import pytest

from .conftest import Target, Workspace, fresh_targets
from .test_ledger import _client_sessions, client_pids, history, start, wait_for


@pytest.fixture
def three(rig, info) -> Iterator[list[Target]]:  # type: ignore[no-untyped-def]
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(fresh_targets(rig, info, ["mysql"]))[0] for _ in range(3)]


def _rows(workspace: Workspace, targets: list[Target], scripts: list[str]) -> None:
    for target in targets:
        for name in scripts:
            workspace.row(target, name)


def _lock_rows(target: Target) -> list[list[str]]:
    return target.rows("SELECT name, run_id FROM dbupdater_lock") if "dbupdater_lock" in target.tables() else []


def test_databases_of_one_server_share_their_opening_and_release(workspace: Workspace, three: list[Target],
                                                                  run_tool) -> None:
    fourth = three[0].sibling(f"t_{secrets.token_hex(4)}")
    try:
        targets = [*three, fourth]
        scripts = [workspace.script("a.sql", "CREATE TABLE a (id INT);\n"),
                   workspace.script("b.sql", "INSERT INTO a VALUES (1);\n")]
        _rows(workspace, targets, scripts)
        path = workspace.write()
        before = _client_sessions(targets[0])
        result = run_tool("-f", str(path), "--parallel", "4")
        logins = _client_sessions(targets[0]) - before - 1  # - 1: the query that counts
        assert result.code == 0, result.text
        for target in targets:
            assert history(target) == [["a.sql", "success"], ["b.sql", "success"]]
            assert target.rows("SELECT id FROM a") == [["1"]]
            assert _lock_rows(target) == []
        # A script is a login each (8); the four openings are one shared call; the four releases share calls
        # when they meet (a call of its own each would be 4 + 8 + 4 = 16).
        assert 8 + 1 + 1 <= logins <= 8 + 1 + 4, result.text
        again = run_tool("-f", str(path), "--parallel", "4")
        assert again.code == 0 and "8 skipped" in again.out, again.text
    finally:
        fourth.drop()


def test_a_part_that_fails_is_opened_on_its_own_and_nothing_runs(workspace: Workspace, three: list[Target],
                                                                  run_tool) -> None:
    broken = three[1]
    broken.query("CREATE TABLE dbupdater_lock (x INT)")  # not ours: the opening's insert into it fails
    _rows(workspace, three, [workspace.script("a.sql", "CREATE TABLE a (id INT);\n")])
    result = run_tool("-f", str(workspace.write()), "--parallel", "3")
    assert result.code == 3, result.text
    assert broken.name in result.text and "ERROR 1054" in result.text, result.text  # its own call, its own error
    for target in three:
        assert "a" not in target.tables()
        assert history(target) == [] if "dbupdater_history" in target.tables() else True
    for target in (three[0], three[2]):
        assert _lock_rows(target) == []


def test_a_lock_held_by_another_run_is_waited_for_alone(workspace: Workspace, three: list[Target], info,
                                                        run_tool) -> None:
    held = three[1]
    other = Workspace(workspace.dir / "other", info)
    other.dir.mkdir()
    other.row(held, other.script("slow.sql", held.sleep(6) + "\n"))
    other.write()
    holder = start(other, info)
    try:
        wait_for(lambda: client_pids(held.name), what="the other run's script to start")
        _rows(workspace, three, [workspace.script("a.sql", "CREATE TABLE a (id INT);\n")])
        result = run_tool("-f", str(workspace.write()), "--parallel", "3", "--lock-timeout", "1")
        assert result.code == 5, result.text
        assert f"{held.name}" in result.text and "is locked by" in result.text, result.text
        for target in three:
            assert "a" not in target.tables()
        for target in (three[0], three[2]):
            assert _lock_rows(target) == []
    finally:
        out, _ = holder.communicate(timeout=60)
    assert holder.returncode == 0, out
    assert history(held) == [["slow.sql", "success"]]
    again = run_tool("-f", str(workspace.write()), "--parallel", "3")
    assert again.code == 0, again.text
    assert all("a" in target.tables() for target in three)

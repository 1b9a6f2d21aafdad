"""Eight runs started at once, on one database and on several (each run's manifest lists them in its own
order): no script is applied twice (history and effect tables show each exactly once), and no deadlock:
every run ends within the lock timeout, with exit 0 or a clear lock-timeout refusal (exit 5)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ..conftest import Target, Workspace, fresh_targets
from ..test_ledger import start
from . import tally
from .support import assert_no_leftovers, effect_script, effects, latest, locks, private_dirs

RUNS = 8
LOCK_TIMEOUT = 60


@pytest.fixture
def several(rig, info) -> Iterator[list[Target]]:  # type: ignore[no-untyped-def]
    """Two fresh databases on each server."""
    with fresh_targets(rig, info, ("mysql", "postgresql", "mysql", "postgresql")) as made:
        yield made


def race(workspace: Workspace, info, targets: list[Target], scripts: int) -> None:  # type: ignore[no-untyped-def]
    names = [f"{n:03d}.sql" for n in range(1, scripts + 1)]
    for target in targets:
        for name in names:
            workspace.script(f"{target.engine}/{name}", effect_script(target, name, 0.1))
    for run in range(RUNS):  # each run its own manifest, the databases in a rotated order
        workspace.rows.clear()
        order = targets[run % len(targets):] + targets[:run % len(targets)]
        for target in order:
            for name in names:
                workspace.row(target, f"{target.engine}/{name}", runner=1 + run % 2)
        workspace.write(f"run{run}.csv")
    before = private_dirs()
    began = time.monotonic()
    procs = [start(workspace, info, "--lock-timeout", str(LOCK_TIMEOUT), "--lock-lease", "10", name=f"run{run}.csv")
             for run in range(RUNS)]
    outs = [proc.communicate(timeout=LOCK_TIMEOUT + 60)[0] for proc in procs]
    took = time.monotonic() - began
    tally.add("concurrent runs", RUNS)
    codes = [proc.returncode for proc in procs]
    for code, out in zip(codes, outs):
        assert code == 0 or (code == 5 and "lock" in out), out
    assert codes.count(0) >= 1, outs
    assert took < LOCK_TIMEOUT + 30, f"{took:.0f}s: longer than the lock timeout allows"
    for target in targets:
        history = latest(target)
        assert history == {f"{target.engine}/{name}": "success" for name in names}, (target.name, history)
        rows = target.rows("SELECT COUNT(*), COUNT(DISTINCT script) FROM dbupdater_history WHERE status = 'success'")
        assert rows == [[str(scripts), str(scripts)]], f"a script was applied twice on {target.name}: {rows}"
        assert effects(target) == {name: 1 for name in names}, effects(target)
        assert locks(target) == 0
        assert_no_leftovers(target, before)


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_eight_runs_at_once_on_one_database(workspace: Workspace, target: Target, info) -> None:  # type: ignore[no-untyped-def]
    race(workspace, info, [target], scripts=4)


def test_eight_runs_at_once_on_several_databases(workspace: Workspace, several: list[Target], info) -> None:  # type: ignore[no-untyped-def]
    race(workspace, info, several, scripts=2)


def test_a_database_reached_through_two_runners_records_every_success(workspace: Workspace, target: Target,
                                                                       run_tool) -> None:  # type: ignore[no-untyped-def]
    """Found by the first version of the race above, which alternated runners within one manifest: row 2's success
    waited for a later call of its runner's ledger, which never came (only the lock's ledger is released)."""
    for n in range(1, 4):
        name = workspace.script(f"{n:03d}.sql", effect_script(target, f"{n:03d}.sql"))
        workspace.row(target, name, runner=1 + n % 2)
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 0 and "3 applied" in result.out, result.text
    assert effects(target) == {"001.sql": 1, "002.sql": 1, "003.sql": 1}
    history = latest(target)
    assert set(history.values()) == {"success"}, history
    again = run_tool("-f", str(workspace.write()))
    assert again.code == 0 and "3 skipped" in again.out, again.text

"""Eight runs started at once, on one database and on several (each run's manifest lists them in its own
order): no script is applied twice (history and effect tables show each exactly once), and no deadlock:
every run ends within the lock timeout, with exit 0 or a clear lock-timeout refusal (exit 5). And the race
behind the overlapping-runs flake, staged with a database-side pause instead of load."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from ..conftest import Target, Workspace, fresh_targets
from ..test_ledger import start, wait_for
from . import tally
from .support import Defect, assert_no_leftovers, effect_script, effects, latest, locks, private_dirs

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


# Before a run inserts its own target row again (a lock attempt after its first one), the server pauses 3 s:
# the gap between the attempt's INSERT of the lock row and its read of the holder, which CPU contention
# widens from half a millisecond to tens of milliseconds, made wide enough to act in.
PAUSE = {
    "postgresql": """CREATE FUNCTION adv_pause() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
  IF NEW.name <> 'deploy' AND EXISTS (SELECT 1 FROM dbupdater_lock l WHERE l.name = NEW.name) THEN
    PERFORM pg_sleep(3);
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER adv_pause BEFORE INSERT ON dbupdater_lock FOR EACH ROW EXECUTE FUNCTION adv_pause();""",
    "mysql": "CREATE TRIGGER adv_pause BEFORE INSERT ON dbupdater_lock FOR EACH ROW SET @adv_pause = IF("
             "NEW.name <> 'deploy' AND EXISTS (SELECT 1 FROM dbupdater_lock l WHERE l.name = NEW.name), SLEEP(3), 0)",
}
PAUSED = {
    "postgresql": "SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                  "AND query LIKE 'INSERT%dbupdater_lock%'",
    "mysql": "SELECT COUNT(*) FROM information_schema.processlist WHERE state = 'User sleep' "
             "AND info LIKE '%@adv_pause%'",  # MariaDB shows the trigger's statement
}
HOLDER = ("INSERT INTO dbupdater_lock (name, run_id, host, pid, os_user, expires_at) VALUES ('deploy', "
          "'another-run', 'elsewhere', 1, 'someone', {now} + INTERVAL '1' MINUTE)")


@pytest.mark.parametrize("target", ["mysql", "postgresql"], indirect=True)
def test_a_lock_released_during_an_attempt_is_taken(workspace: Workspace, target: Target, info) -> None:  # type: ignore[no-untyped-def]
    """Why `test_overlapping_runs_never_lock_each_other_out` once ended with exit 3 under load: a waiting run's
    lock attempt is statements one after another (insert the lock row, which another run holds; read the
    holder), and the holder released in between, so there was no holder to read: "the lock row vanished
    while being taken", exit 3 (unreachable), though the lock had just become free."""
    workspace.row(target, workspace.script("000.sql", "SELECT 1;\n"))
    assert start(workspace, info, name=workspace.write("ledger.csv").name).wait(timeout=60) == 0  # the ledger
    workspace.rows.clear()
    workspace.row(target, workspace.script("001.sql", effect_script(target, "001.sql")))
    manifest = workspace.write()
    target.query(PAUSE[target.engine])
    target.query(HOLDER.format(now="NOW()" if target.engine == "mysql" else "now()"))
    waiting = start(workspace, info, "--lock-timeout", "60", name=manifest.name)
    try:
        wait_for(lambda: waiting.poll() is not None or target.rows(PAUSED[target.engine]) != [["0"]],
                 what="a lock attempt paused between its insert and its read")
        target.query("DELETE FROM dbupdater_lock WHERE run_id = 'another-run'")  # the other run lets go
        out, _ = waiting.communicate(timeout=60)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    tally.add("concurrent runs", 2)
    if waiting.returncode == 3 and "the lock row vanished while being taken" in out:
        raise Defect(out)
    assert waiting.returncode == 0, out
    assert latest(target) == {"000.sql": "success", "001.sql": "success"}
    assert effects(target) == {"001.sql": 1} and locks(target) == 0

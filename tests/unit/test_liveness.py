"""The proof that a lock's holder is gone: a flock'ed file per run on this machine (execution/liveness.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from dbupdater.execution.liveness import Liveness
from dbupdater.ledger import Holder
from dbupdater.model.identity import RunIdentity


def holder(identity: RunIdentity, **changes: object) -> Holder:
    fields: dict[str, object] = {"run_id": identity.run_id, "host": identity.host, "pid": identity.pid,
                                 "os_user": identity.os_user, "since": "now", "expires": "later", **changes}
    return Holder(**fields)  # type: ignore[arg-type]


def test_a_run_that_released_everything_leaves_no_file(tmp_path: Path) -> None:
    where = tmp_path / "runs"
    run = Liveness(RunIdentity(), where)
    run.start()
    assert len(list(where.iterdir())) == 1 and where.stat().st_mode & 0o777 == 0o700
    run.finish(all_released=True)
    assert list(where.iterdir()) == []


def test_a_dead_run_with_a_lock_left_is_proven_dead_to_the_same_user_on_the_same_host(tmp_path: Path) -> None:
    where = tmp_path / "runs"
    gone = RunIdentity()
    dead_run = Liveness(gone, where)
    dead_run.start()
    me = Liveness(RunIdentity(), where)
    assert not me.dead(holder(gone))  # alive: it holds its flock
    dead_run.finish(all_released=False)  # a lock it could not release: the file stays, nobody's
    assert me.dead(holder(gone))
    assert not me.dead(holder(gone, host="another-host"))  # proves nothing about another machine
    assert not me.dead(holder(gone, os_user="someone-else"))
    assert not me.dead(holder(RunIdentity()))  # no file: nothing is proven (another machine, an old release)


def test_a_run_killed_with_sigkill_is_dead_once_its_process_is(tmp_path: Path) -> None:
    where = tmp_path / "runs"
    run_id = uuid.uuid4().hex
    code = ("import sys, time; from pathlib import Path; from dbupdater.execution.liveness import Liveness; "
            "from dbupdater.model.identity import RunIdentity; "
            f"l = Liveness(RunIdentity(run_id={run_id!r}), Path({str(where)!r})); l.start(); "
            "print('up', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parents[2])
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "up"
        me = Liveness(RunIdentity(), where)
        assert not me.dead(holder(RunIdentity(run_id=run_id)))
        child.kill()
        child.wait()
        assert me.dead(holder(RunIdentity(run_id=run_id)))  # the kernel dropped its flock
    finally:
        if child.poll() is None:
            child.kill()


def test_a_run_id_from_the_database_is_never_a_path(tmp_path: Path) -> None:
    where = tmp_path / "runs"
    me = Liveness(RunIdentity(), where)
    me.start()
    (tmp_path / "x.alive").write_text("")
    assert not me.dead(holder(RunIdentity(), run_id="../x"))


def test_a_folder_that_is_not_private_is_not_used(tmp_path: Path) -> None:
    where = tmp_path / "runs"
    where.mkdir(mode=0o755)
    os.chmod(where, 0o755)
    gone = RunIdentity()
    (where / f"{gone.run_id}.alive").write_text("")  # planted by someone who could write there
    assert not Liveness(RunIdentity(), where).dead(holder(gone))

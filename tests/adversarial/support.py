"""The properties every adversarial run on the rig must keep, checked the same way after each fault:

- truthful history: a script whose latest entry is `success` left its effect exactly once, and a script whose
  effect is there has an entry (in doubt is truthful; `success` without the effect, or an effect nobody
  recorded, is not);
- no leftovers: no client process, no lock row, no new private directory (except where the documented
  behaviour keeps one: the connection to its runner was lost, so only the 24-hour sweep can remove it);
- a correct next run: what is in doubt is refused (exit 5), is settled with `resolve` by looking at the
  effect (as an operator would), and then the next run applies the rest, each script exactly once.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import subprocess
import time
from collections import Counter
from pathlib import Path

from ..conftest import Target
from ..test_ledger import client_pids, wait_for

EFFECT = "adv_effect"


def runner_uid() -> int:
    user = os.environ.get("DBU_TEST_RIG_NAME", "dbt") + "_runner"
    return int(subprocess.run(["id", "-u", user], capture_output=True, text=True, check=True).stdout)


def private_dirs() -> set[str]:
    """This rig's runners' private directories (other rigs on the machine share /tmp, so by owner)."""
    uid = runner_uid()
    found = set()
    for path in glob.glob("/tmp/dbupdater.*"):
        with contextlib.suppress(OSError):
            if os.stat(path).st_uid == uid:
                found.add(path)
    return found


def effect_script(target: Target, name: str, sleep: float = 0, extra: str = "") -> str:
    """SQL that records its own effect (one row naming the script) before it sleeps."""
    text = (f"CREATE TABLE IF NOT EXISTS {EFFECT} (script VARCHAR(200));\n"
            f"INSERT INTO {EFFECT} VALUES ('{name}');\n")
    if sleep:
        text += target.sleep(sleep) + "\n"
    return text + extra


def effects(target: Target) -> Counter[str]:
    if EFFECT not in target.tables():
        return Counter()
    return Counter(row[0] for row in target.rows(f"SELECT script FROM {EFFECT}"))


def latest(target: Target) -> dict[str, str]:
    if "dbupdater_history" not in target.tables():
        return {}
    # Names come back as hex: script names in this suite hold tabs' and bars' worth of hostile characters.
    name = "HEX(script)" if target.engine == "mysql" else "encode(convert_to(script, 'UTF8'), 'hex')"
    found: dict[str, str] = {}
    for status, script in target.rows(f"SELECT status, {name} FROM dbupdater_history ORDER BY id"):
        found[bytes.fromhex(script).decode("utf-8")] = status
    return found


def locks(target: Target) -> int:
    if "dbupdater_lock" not in target.tables():
        return 0
    return int(target.rows("SELECT COUNT(*) FROM dbupdater_lock")[0][0])


class Defect(AssertionError):
    """A known defect of the tool: tests that hit one are `xfail(raises=Defect, strict=True)`, so any other
    failure in them still fails, and the fix turns them green (then drop the mark)."""


def assert_truthful(target: Target, scripts: list[str]) -> dict[str, str]:
    """Nothing recorded applied that was not, nothing applied twice, no effect without an entry."""
    history, done = latest(target), effects(target)
    for script in scripts:
        assert done[script] <= 1, f"{script} took effect {done[script]} times"
        if history.get(script) == "success":
            assert done[script] == 1, f"{script} is recorded applied but its effect is not there: {history}"
        if done[script]:
            assert script in history, f"{script} took effect but the history has no entry for it: {history}"
    return history


def assert_no_leftovers(target: Target, before: set[str], *, lost_runner: bool = False, lock: bool = False) -> None:
    """No client left, no lock (unless a dead controller's lease is still running), no private directory
    (unless its runner was lost: then it must be private, and it is removed here so tests stay independent)."""
    wait_for(lambda: not client_pids(target.name), timeout=20, what="the clients to end")
    if not lock:
        assert locks(target) == 0, "a lock row was left behind"
    new = private_dirs() - before
    if lost_runner:
        for path in new:
            info = os.stat(path)
            assert info.st_mode & 0o777 == 0o700, (path, oct(info.st_mode))
            shutil.rmtree(path, ignore_errors=True)
    else:
        assert new == set(), f"private directories left behind: {new}"


def settle(target: Target, run_tool, manifest: Path, scripts: list[str], *extra: str,  # type: ignore[no-untyped-def]
           env: dict[str, str] | None = None) -> None:
    """The next run after a fault: refused while something is in doubt, resolved from the evidence, then
    complete, with every script's effect exactly once and nothing left behind."""
    before = private_dirs()
    result = run_tool("-f", str(manifest), "--lock-lease", "3", "--lock-timeout", "30", *extra, env=env)
    if result.code == 5:
        assert "in doubt" in result.out, result.text
        history, done = latest(target), effects(target)
        for script in scripts:
            if history.get(script) in ("running", "failed", "interrupted"):
                mark = "applied" if done[script] else "rerun"
                resolved = run_tool("resolve", "-f", str(manifest), "--script", script, "--mark", mark, *extra,
                                    env=env)
                assert resolved.code == 0, resolved.text
        result = run_tool("-f", str(manifest), "--lock-lease", "3", "--lock-timeout", "30", *extra, env=env)
    assert result.code == 0, result.text
    history = assert_truthful(target, scripts)
    assert all(history.get(script) == "success" for script in scripts), history
    assert all(effects(target)[script] == 1 for script in scripts), effects(target)
    assert_no_leftovers(target, before)


def until(predicate, timeout: float = 30, step: float = 0.05) -> bool:  # type: ignore[no-untyped-def]
    """Like wait_for, but says whether it happened instead of failing."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False

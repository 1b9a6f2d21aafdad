"""One behaviour suite, run by every registered engine against its peer (issue 18).

Sqitch's DBIEngineTest and golang-migrate's database/testing model: what the tool promises (README: How a
script runs, History, drift and locking, Exit codes) is written once here, in terms of a peer's database
(peers.Database: a script that leaves a mark, fails, warns or stores text, and what can be seen of it), and
every engine in `dbupdater.engines.registry` runs it. A new engine is tested by registering it and giving it
a peer; a case its peer cannot honour is skipped with the peer's reason, never silently.

Everything goes through the real command line (`apply`, `exec`, `plan`, `status`, `resolve`) in a subprocess, through
the rig's real SSH runner; the ledger is read in the server with SQL of the test's own.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from dbupdater.engines import registry

from .conftest import Tool
from .peers import PEERS, Capability, Database, missing_peer, peer_for, sha256

TEXT = "Größe – naïve café ☕ 📦 ñ 中文"  # noqa: RUF001 - 2-, 3- and 4-byte UTF-8 on purpose
NAME = "données/ç-001 ☕.sql"
needs = pytest.mark.needs
# Scripts run through `apply` where the peer keeps a ledger, and through `exec`, which judges them the same way
# without one, everywhere.
by_command = pytest.mark.parametrize("command", [pytest.param("apply", marks=needs(Capability.LEDGER)), "exec"])


def results(tool: Tool, folder: Path) -> list[dict[str, Any]]:
    """Per script, what the run document a run wrote into its --report-dir says (holding no secret)."""
    text = (folder / "run.json").read_text(encoding="utf-8")
    assert not tool.leaks(text), "a secret value appeared in run.json"
    found: list[dict[str, Any]] = json.loads(text)["results"]
    return found


def wait_for(predicate: Callable[[], object], what: str, seen: Callable[[], str] = str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; seen: {seen()}")
        time.sleep(0.05)


# --- the registry and the peers ---------------------------------------------------------------------------------


def test_every_registered_engine_has_a_peer(engine: str) -> None:
    if engine not in PEERS:
        pytest.fail(missing_peer(engine), pytrace=False)


def test_every_peer_is_for_a_registered_engine() -> None:
    stale = sorted(set(PEERS) - set(registry.engines()))
    assert not stale, f"peers for engines that are not registered: {stale}; remove them from PEERS"


def test_an_engine_without_a_peer_fails_saying_how_to_add_one() -> None:
    with pytest.raises(pytest.fail.Exception, match=r"'informix' .* no conformance peer.* tests/conformance/peers"):
        peer_for("informix")


def test_what_a_peer_cannot_honour_is_a_skip_with_its_reason() -> None:
    limited = [(peer, capability, reason) for peer in PEERS.values() for capability, reason in peer.limits().items()]
    if not limited:
        pytest.skip("every peer honours every behaviour")
    peer, capability, reason = limited[0]
    with pytest.raises(pytest.skip.Exception, match=re.escape(reason)):
        peer_for(peer.engine, [capability])


# --- running scripts ----------------------------------------------------------------------------------------------


@by_command
def test_a_good_script_runs(tool: Tool, db: Database, command: str) -> None:
    db.add("001.sql", db.mark("001"))
    result = tool(command)
    assert result.code == 0, result.text
    assert "[1/1] applied  001.sql" in result.out
    assert db.marks() == ["001"]


@needs(Capability.LEDGER)
def test_an_applied_script_is_recorded_and_skipped_next_time(tool: Tool, db: Database) -> None:
    path = db.add("001.sql", db.mark("001"))
    assert (first := tool("apply")).code == 0, first.text
    assert db.history() == [("001.sql", "success", sha256(path))]
    again = tool("apply")
    assert again.code == 0, again.text
    assert "1 skipped" in again.out and "already applied" in again.out
    assert db.marks() == ["001"]
    assert db.history() == [("001.sql", "success", sha256(path))]


@by_command
def test_a_failing_script_fails_and_stops_its_target(tool: Tool, db: Database, command: str, tmp_path: Path) -> None:
    failing = db.failing()
    db.add("001.sql", db.mark("001"))
    db.add("002.sql", failing.text)
    db.add("003.sql", db.mark("003"))
    result = tool(command, "--report-dir", str(tmp_path / "report"))
    assert result.code == 1, result.text
    assert "[2/3] failed   002.sql" in result.out and failing.shown in result.out
    assert "1 applied, 1 failed, 1 not run" in result.out
    assert db.marks() == ["001"]
    entries = results(tool, tmp_path / "report")
    assert [entry["status"] for entry in entries] == ["applied", "failed", "not run"]
    assert any(failing.shown in line for line in entries[1]["errors"]), entries[1]


@by_command
def test_a_verify_script_runs_after_its_script_and_a_failing_one_fails_its_row(
        tool: Tool, db: Database, command: str, tmp_path: Path) -> None:
    """Verify scripts go through the engine's client like scripts: one that passes lets the target go on, one
    the client fails fails its row (the script itself stays applied) and stops the target."""
    failing = db.failing()
    for name, text in (("verify/001.sql", db.mark("v001")), ("verify/002.sql", failing.text)):
        (db.folder / name).parent.mkdir(parents=True, exist_ok=True)
        (db.folder / name).write_text(text, encoding="utf-8")
    db.add("001.sql", db.mark("001"), verify_script="verify/001.sql")
    db.add("002.sql", db.mark("002"), verify_script="verify/002.sql")
    db.add("003.sql", db.mark("003"))
    manifest = db.manifest([*db.columns, "verify_script"])
    result = tool(command, "--report-dir", str(tmp_path / "report"), manifest=manifest)
    assert result.code == 1, result.text
    assert "applied, but its verify script verify/002.sql failed" in result.out and failing.shown in result.out
    assert db.marks() == ["001", "v001", "002"]
    entries = results(tool, tmp_path / "report")
    assert [entry["status"] for entry in entries] == ["applied", "failed", "not run"]
    assert entries[0]["reason"].endswith("verified by verify/001.sql")


@needs(Capability.LEDGER)
def test_a_failed_script_is_recorded_and_in_doubt_until_resolved(tool: Tool, db: Database) -> None:
    db.add("001.sql", db.mark("001"))
    broken = db.add("002.sql", db.failing().text)
    db.add("003.sql", db.mark("003"))
    assert (failed := tool("apply")).code == 1, failed.text
    assert [(script, status) for script, status, _ in db.history()] == [("001.sql", "success"),
                                                                         ("002.sql", "failed")]
    status = tool("status", "--output", "json")  # the history as `status` shows it, per script and target
    assert status.code == 0, status.text
    (label,) = (shown := json.loads(status.out))["targets"]
    assert {script: cells[label] for script, cells in shown["matrix"].items()} == {
        "001.sql": "success", "002.sql": "failed", "003.sql": None}
    refused = tool("apply")
    assert refused.code == 5, refused.text
    assert "in doubt" in refused.out and "resolve" in refused.out
    assert db.marks() == ["001"]
    broken.write_text(db.mark("002"), encoding="utf-8")  # the operator fixes the script...
    resolved = tool("resolve", "--script", "002.sql", "--mark", "rerun")  # ...and says it may run again
    assert resolved.code == 0, resolved.text
    after = tool("apply")
    assert after.code == 0, after.text
    assert db.marks() == ["001", "002", "003"]
    assert [status for script, status, _ in db.history() if script == "002.sql"] == ["rerun", "success"]


@needs(Capability.LEDGER)
def test_a_running_row_is_in_doubt_until_resolved(tool: Tool, db: Database) -> None:
    db.add("001.sql", db.mark("001"))
    assert (first := tool("apply")).code == 0, first.text
    db.stage_running("001.sql")  # what a run killed mid-script leaves
    db.add("002.sql", db.mark("002"))
    refused = tool("apply")
    assert refused.code == 5, refused.text
    assert "in doubt" in refused.out and "nothing ran anywhere" in refused.out
    plan = tool("plan")
    assert plan.code == 5 and "in doubt" in plan.out, plan.text
    resolved = tool("resolve", "--script", "001.sql", "--mark", "applied")
    assert resolved.code == 0, resolved.text
    after = tool("apply")
    assert after.code == 0, after.text
    assert db.marks() == ["001", "002"]  # marked applied: not run again


@needs(Capability.WARNINGS)
@by_command
def test_a_script_with_warnings_only_is_applied_with_its_warnings(tool: Tool, db: Database, command: str,
                                                                   tmp_path: Path) -> None:
    warning = db.warning()
    db.add("001.sql", warning.text + db.mark("001"))
    result = tool(command, "--report-dir", str(tmp_path / "report"))
    assert result.code == 0, result.text
    assert "warning:" in result.out and warning.shown in result.out
    assert db.marks() == ["001"]
    (entry,) = results(tool, tmp_path / "report")
    assert entry["status"] == "applied" and any(warning.shown in line for line in entry["warnings"]), entry


@by_command
def test_text_arrives_byte_for_byte(tool: Tool, db: Database, command: str) -> None:
    """Through the runner's session without a locale; the rig reads it back from the server, a replay peer
    from the copy of the script its client was given. The script's own path is not ASCII either: the history
    keeps it as it is."""
    path = db.add(NAME, db.store_text(TEXT))
    result = tool(command)
    assert result.code == 0, result.text
    assert db.stored_text() == TEXT
    if command == "apply":
        assert db.history() == [(NAME, "success", sha256(path))]


# --- the ledger -------------------------------------------------------------------------------------------------


@needs(Capability.LEDGER)
def test_an_edited_applied_script_is_drift_and_nothing_runs(tool: Tool, db: Database) -> None:
    path = db.add("001.sql", db.mark("001"))
    assert (first := tool("apply")).code == 0, first.text
    before = sha256(path)
    path.write_text(db.mark("001") + db.mark("001-edited"), encoding="utf-8")
    db.rows.insert(0, db.row("000.sql"))  # a new script listed before it must not run either
    (db.folder / "000.sql").write_text(db.mark("000"), encoding="utf-8")
    result = tool("apply")
    assert result.code == 5, result.text
    assert "drifted" in result.out and before in result.out and sha256(path) in result.out
    assert db.marks() == ["001"]


@needs(Capability.LEDGER)
def test_plan_shows_pending_and_applied_and_runs_nothing(tool: Tool, db: Database) -> None:
    path = db.add("001.sql", db.mark("001"))
    fresh = tool("plan")
    assert fresh.code == 0 and "pending" in fresh.out, fresh.text
    assert db.ledger_traces() == []  # plan writes nothing, not even the ledger's tables
    assert (first := tool("apply")).code == 0, first.text
    db.add("002.sql", db.mark("002"))
    plan = tool("plan", "--output", "json")  # the run document on stdout, the table on stderr
    assert plan.code == 0, plan.text
    rows = json.loads(plan.out)["plan"]["rows"]
    assert [(row["script"], row["state"]) for row in rows] == [("001.sql", "applied"), ("002.sql", "pending")]
    assert rows[0]["history"]["checksum"] == sha256(path) and rows[1]["history"] is None
    assert "nothing was executed" in plan.err
    assert db.marks() == ["001"]
    assert [script for script, _, _ in db.history()] == ["001.sql"]


def test_exec_runs_every_time_without_history(tool: Tool, db: Database) -> None:
    db.add("001.sql", db.mark("001"))
    db.add("002.sql", db.mark("002"))
    for _ in range(2):
        result = tool("exec")
        assert result.code == 0, result.text
    assert db.marks() == ["001", "002", "001", "002"]
    assert db.ledger_traces() == []


@needs(Capability.SECOND_SESSION, Capability.LEDGER)
def test_a_second_run_waits_for_the_lock_or_gives_up_naming_the_holder(tool: Tool, db: Database) -> None:
    """The first run holds the lock while its script waits at a gate in the server; a second run waits, a
    third with --lock-timeout 1 gives up (exit 5) naming the first; once the gate opens, the second goes on
    and skips what the first applied."""
    db.add("001.sql", db.gate() + db.mark("001"))
    db.manifest()
    holder = tool.start("apply")
    waiter: subprocess.Popen[str] | None = None
    lines: list[str] = []  # the waiter's output, read as it comes
    reader: threading.Thread | None = None
    try:
        wait_for(lambda: ("001.sql", "running") in [(s, st) for s, st, _ in db.history()], "the first run's script")
        waiter = tool.start("apply", "--lock-timeout", "120")
        reader = threading.Thread(target=lines.extend, args=(waiter.stdout or [],), daemon=True)
        reader.start()
        wait_for(lambda: any("waiting for the lock" in line for line in lines), "the second run to wait",
                 lambda: "".join(lines))
        impatient = tool("apply", "--lock-timeout", "1")
        assert impatient.code == 5, impatient.text
        assert "locked by run" in impatient.text and f"pid {holder.pid}" in impatient.text, impatient.text
        assert "gave up after 1s" in impatient.text, impatient.text
        assert waiter.poll() is None, "the waiting run ended while the lock was held"
    finally:
        db.open_gate()
        holder_out, _ = holder.communicate(timeout=60)
        if waiter is not None and reader is not None:
            waiter.wait(timeout=60)
            reader.join(timeout=10)  # all of its output read
    waited = "".join(lines)
    assert holder.returncode == 0, holder_out
    assert waiter.returncode == 0 and "1 skipped" in waited, waited
    assert not tool.leaks(holder_out + waited), "a secret value appeared in the tool's output"
    assert db.marks() == ["001"]


# --- the runner -------------------------------------------------------------------------------------------------


@by_command
def test_the_client_missing_on_the_runner_is_exit_3(tool: Tool, db: Database, command: str) -> None:
    with db.client_missing() as missing:
        db.add("001.sql", db.mark("001"), **missing.cells)
        result = tool(command, manifest=db.manifest(missing.columns), env=missing.env)
    assert result.code == 3, result.text
    assert "client is not installed or not on PATH" in result.text
    assert db.marks() == []


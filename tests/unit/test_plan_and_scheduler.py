"""The plan's states from a history, the scheduler's rules (cap per runner, order of starts, stop, errors,
interrupts), the interrupt escalation, and shards. Jobs coordinate through events and barriers, never sleeps."""

from __future__ import annotations

import math
import random
import signal
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from dbupdater.checksum import VERSION, checksum
from dbupdater.execution.interrupts import TERM_GRACE, Escalation, Terminated, sigterm_as_interrupt
from dbupdater.execution.scheduler import Scheduler, parallel_map
from dbupdater.ledger import Entry
from dbupdater.model.errors import UsageError
from dbupdater.model.outcome import InterruptStep
from dbupdater.model.shards import Shard
from dbupdater.model.specs import DatabaseSpec, Manifest, ManifestRow, RunnerSpec, targets
from dbupdater.plan import RowState, plan_rows

from .fakes import Harness

LIMIT = 5.0

# --- plan_rows --------------------------------------------------------------------------------------------------


def make_row(base: Path, database: str, script: str, text: str = "ok\n", *, repeatable: bool = False,
             line: int = 2) -> ManifestRow:
    path = base / script
    if not path.exists():
        path.write_text(text, encoding="utf-8")
    runner = RunnerSpec("fake", "runner1", 22, "deploy")
    db = DatabaseSpec("stubdb", "db1", 7000, "app", database)
    return ManifestRow(line, runner, db, path, script, script, repeatable)


def entry(row: ManifestRow, status: str, digest: str | None = None, version: int = VERSION) -> Entry:
    return Entry(id=1, script=row.script_id, checksum=digest or checksum(row.script), checksum_version=version,
                 status=status, started_at="2024-01-02 03:04:05", finished_at="2024-01-02 03:04:06",
                 run_id="0123456789abcdef", runner_host="deploy@runner1", os_user="ci", note=None)


def state_of(row: ManifestRow, found: Entry | None) -> tuple[RowState, str]:
    histories = {row.db.key: {row.script_id: found}} if found else {}
    planned = plan_rows([row], histories)  # type: ignore[arg-type]
    return planned[0].state, planned[0].detail


def test_a_script_never_run_is_pending(tmp_path: Path) -> None:
    row = make_row(tmp_path, "a", "1.sql")
    assert state_of(row, None) == (RowState.PENDING, "")


def test_applied_with_the_same_content_is_applied(tmp_path: Path) -> None:
    row = make_row(tmp_path, "a", "1.sql")
    state, detail = state_of(row, entry(row, "success"))
    assert state is RowState.APPLIED and not state.runs and not state.blocks
    assert detail == "success at 2024-01-02 03:04:06 UTC by ci via deploy@runner1 (run 01234567)"


def test_applied_with_other_content_is_drift(tmp_path: Path) -> None:
    row = make_row(tmp_path, "a", "1.sql")
    state, detail = state_of(row, entry(row, "success", digest="0" * 64))
    assert state is RowState.DRIFTED and state.blocks
    assert "0" * 64 in detail and checksum(row.script) in detail and "add a new script instead" in detail
    # A checksum of another algorithm version cannot be compared: that is drift too, never a silent skip.
    assert state_of(row, entry(row, "success", version=VERSION + 1))[0] is RowState.DRIFTED


def test_a_repeatable_script_runs_again_when_changed(tmp_path: Path) -> None:
    row = make_row(tmp_path, "a", "view.sql", repeatable=True)
    state, detail = state_of(row, entry(row, "success", digest="0" * 64))
    assert state is RowState.CHANGED and state.runs and detail.startswith("content changed since success at")
    assert state_of(row, entry(row, "success"))[0] is RowState.APPLIED


@pytest.mark.parametrize("status", ["running", "failed"])
def test_running_or_failed_is_in_doubt(tmp_path: Path, status: str) -> None:
    row = make_row(tmp_path, "a", "1.sql")
    state, detail = state_of(row, entry(row, status))
    assert state is RowState.IN_DOUBT and state.blocks and not state.runs
    assert detail.startswith(f"{status} at") and "resolve --mark applied" in detail


@pytest.mark.parametrize("status", ["rolled_back", "rerun", "reverted"])
def test_rolled_back_and_rerun_are_pending(tmp_path: Path, status: str) -> None:
    row = make_row(tmp_path, "a", "1.sql")
    state, detail = state_of(row, entry(row, status, digest="f" * 64))  # whatever content it had then
    assert state is RowState.PENDING and detail.startswith(f"last attempt {status} at")


@pytest.mark.parametrize("status", ["SUCCESS", "applied", "", "succes"])
def test_an_unknown_status_is_in_doubt(tmp_path: Path, status: str) -> None:
    row = make_row(tmp_path, "a", "1.sql")
    assert state_of(row, entry(row, status)) == (RowState.IN_DOUBT, f"unknown status {status!r} in the history table")


def test_a_script_listed_twice_for_one_database_runs_once(tmp_path: Path) -> None:
    rows = [make_row(tmp_path, "a", "1.sql"), make_row(tmp_path, "a", "2.sql"), make_row(tmp_path, "a", "1.sql"),
            make_row(tmp_path, "b", "1.sql")]
    planned = plan_rows(rows, {})
    assert [p.index for p in planned] == [1, 2, 3, 4]
    assert [p.state for p in planned] == [RowState.PENDING, RowState.PENDING, RowState.APPLIED, RowState.PENDING]
    assert planned[2].detail == "runs earlier in this manifest (row 1)"


def test_a_script_listed_twice_keeps_its_ledger_state(tmp_path: Path) -> None:
    first, again = make_row(tmp_path, "a", "1.sql"), make_row(tmp_path, "a", "1.sql")
    for status, expected in (("success", RowState.APPLIED), ("failed", RowState.IN_DOUBT)):
        planned = plan_rows([first, again], {first.db.key: {"1.sql": entry(first, status)}})
        assert [p.state for p in planned] == [expected, expected]
        assert planned[0].entry is not None and planned[1].detail == planned[0].detail


def test_the_history_of_another_database_does_not_count(tmp_path: Path) -> None:
    row_a, row_b = make_row(tmp_path, "a", "1.sql"), make_row(tmp_path, "b", "1.sql")
    planned = plan_rows([row_a, row_b], {row_a.db.key: {"1.sql": entry(row_a, "success")}})
    assert [p.state for p in planned] == [RowState.APPLIED, RowState.PENDING]
    assert planned[0].checksum == planned[1].checksum == checksum(row_a.script)


# --- the scheduler ----------------------------------------------------------------------------------------------


class Trace:
    """What jobs did, in order, and how many ran at once per runner."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[str] = []
        self.active: dict[str, int] = {}
        self.peak: dict[str, int] = {}

    def job(self, runner: str, name: str, body: Callable[[], object] = lambda: None) -> tuple[str, Callable[[], None]]:
        def run() -> None:
            with self.lock:
                self.events.append(f"start {name}")
                self.active[runner] = self.active.get(runner, 0) + 1
                self.peak[runner] = max(self.peak.get(runner, 0), self.active[runner])
            try:
                body()
            finally:
                with self.lock:
                    self.active[runner] -= 1
                    self.events.append(f"end {name}")

        return runner, run

    def starts(self) -> list[str]:
        return [event.removeprefix("start ") for event in self.events if event.startswith("start ")]


def never(*_: object) -> float | None:
    raise AssertionError("no interrupt was expected")


def test_one_worker_starts_jobs_in_their_order() -> None:
    trace = Trace()
    jobs = [trace.job(runner, name) for runner, name in [("r1", "a"), ("r2", "b"), ("r1", "c"), ("r3", "d")]]
    Scheduler(1, 1).run(jobs, never)
    assert trace.events == ["start a", "end a", "start b", "end b", "start c", "end c", "start d", "end d"]


def test_the_cap_per_runner_holds_and_is_reached() -> None:
    trace = Trace()
    pair = threading.Barrier(2)  # jobs of r1 can only pass it two at a time: the cap is reached, not just kept
    jobs = [trace.job("r1", f"a{n}", lambda: pair.wait(LIMIT)) for n in range(6)]
    jobs += [trace.job("r2", f"b{n}") for n in range(3)]
    Scheduler(8, 2).run(jobs, never)
    assert trace.peak["r1"] == 2 and trace.peak["r2"] <= 2
    assert len(trace.starts()) == 9


def test_the_next_job_is_the_earliest_whose_runner_has_room() -> None:
    trace = Trace()
    b2_started = threading.Event()
    jobs = [trace.job("r1", "a1", lambda: b2_started.wait(LIMIT)),  # holds r1 until b2 has started
            trace.job("r1", "a2"),
            trace.job("r2", "b1"),
            trace.job("r2", "b2", b2_started.set)]
    Scheduler(2, 1).run(jobs, never)
    events = trace.events
    assert trace.peak == {"r1": 1, "r2": 1}
    assert events.index("start b2") < events.index("end a1") < events.index("start a2")  # a2 waited for r1, b2 did not
    assert events.index("end b1") < events.index("start b2")


def test_stop_starts_nothing_new_and_lets_running_jobs_finish() -> None:
    trace = Trace()
    scheduler = Scheduler(2, 2)
    stopped = threading.Event()

    def stop() -> None:
        scheduler.stop()
        stopped.set()

    jobs = [trace.job("r1", "long", lambda: stopped.wait(LIMIT)), trace.job("r1", "stopper", stop),
            trace.job("r1", "later1"), trace.job("r2", "later2")]
    scheduler.run(jobs, never)
    assert scheduler.stopped
    assert sorted(trace.starts()) == ["long", "stopper"] and "end long" in trace.events


def test_an_exception_in_a_job_stops_the_rest_and_is_raised_once_running_jobs_finished() -> None:
    trace = Trace()
    failed = threading.Event()

    def boom() -> None:
        failed.set()
        raise ValueError("a bug in a job")

    jobs = [trace.job("r1", "slow", lambda: failed.wait(LIMIT)), trace.job("r2", "boom", boom),
            trace.job("r3", "never")]
    with pytest.raises(ValueError, match="a bug in a job"):
        Scheduler(2, 1).run(jobs, never)
    assert "end slow" in trace.events and "never" not in trace.starts()


def test_parallel_map_raises_after_the_others_finished() -> None:
    seen: list[int] = []
    lock = threading.Lock()
    release = threading.Event()

    def work(item: int) -> None:
        if item == 1:
            release.set()
            raise KeyError(item)
        release.wait(LIMIT)
        with lock:
            seen.append(item)

    with pytest.raises(KeyError):
        parallel_map(work, [0, 1, 2, 3], 2)
    assert seen == [0]  # the call running when 1 failed finished; nothing started after it


def test_an_interrupt_asks_what_to_do_and_waits_for_running_jobs(harness: Harness) -> None:
    trace = Trace()
    answered = threading.Event()
    calls: list[tuple[int, str]] = []

    def on_interrupt(running: int, cause: BaseException | None) -> float | None:
        calls.append((running, type(cause).__name__))
        answered.set()
        return math.inf

    def press() -> None:
        harness.press(signal.SIGINT, in_executor=False)
        assert answered.wait(LIMIT)

    scheduler = Scheduler(2, 2)
    scheduler.run([trace.job("r1", "pressing", press), trace.job("r1", "waiting", lambda: answered.wait(LIMIT)),
                   trace.job("r1", "after")], on_interrupt)
    assert calls == [(2, "KeyboardInterrupt")]  # both still running when it was asked
    assert scheduler.stopped and "after" not in trace.starts() and "end pressing" in trace.events


def test_when_the_grace_period_runs_out_it_asks_again_and_may_leave(harness: Harness) -> None:
    causes: list[str | None] = []
    left = threading.Event()

    def on_interrupt(running: int, cause: BaseException | None) -> float | None:
        causes.append(None if cause is None else type(cause).__name__)
        if cause is not None:
            return 0.05  # a short grace
        left.set()
        return None  # leave

    def stuck() -> None:
        harness.press(signal.SIGINT, in_executor=False)
        left.wait(LIMIT)

    with pytest.raises(KeyboardInterrupt):
        Scheduler(1, 1).run([("r1", stuck)], on_interrupt)
    assert causes == ["KeyboardInterrupt", None]


# --- the interrupt escalation -----------------------------------------------------------------------------------


class Steps:
    def __init__(self) -> None:
        self.log: list[object] = []
        self.escalation = Escalation(lambda: self.log.append("cancel"),
                                     lambda step, running: self.log.append((step, running)),
                                     lambda: self.log.append("leave"))


def test_ctrl_c_waits_then_cancels_then_leaves() -> None:
    steps = Steps()
    e = steps.escalation
    assert not e.interrupted and e.step is None
    assert e(3, KeyboardInterrupt()) == math.inf and e.step is InterruptStep.WAIT and e.interrupted
    assert steps.log == [(InterruptStep.WAIT, 3)]  # nothing is cancelled yet
    assert e(2, KeyboardInterrupt()) == math.inf and e.step is InterruptStep.CANCEL
    assert steps.log[1:] == [(InterruptStep.CANCEL, 2), "cancel"]
    assert e(1, KeyboardInterrupt()) is None and e.step is InterruptStep.LEAVE
    assert steps.log[3:] == [(InterruptStep.LEAVE, 1), "leave"]
    assert e(1, KeyboardInterrupt()) is None  # later ones leave too


def test_sigterm_cancels_at_once_with_a_grace_then_leaves() -> None:
    steps = Steps()
    e = steps.escalation
    assert e(1, Terminated()) == TERM_GRACE and e.step is InterruptStep.CANCEL
    assert steps.log == [(InterruptStep.CANCEL, 1), "cancel"]
    assert e(1, Terminated()) is None and steps.log[-1] == "leave"


def test_sigterm_after_a_ctrl_c_cancels_and_a_grace_running_out_leaves() -> None:
    steps = Steps()
    e = steps.escalation
    e(1, KeyboardInterrupt())
    assert e(1, Terminated()) == TERM_GRACE and e.step is InterruptStep.CANCEL
    assert e(1, None) is None and e.step is InterruptStep.LEAVE and steps.log[-1] == "leave"


def test_sigterm_unwinds_like_ctrl_c_while_the_guard_is_on() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(Terminated), sigterm_as_interrupt():
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGTERM)
        threading.Event().wait(LIMIT)
    assert signal.getsignal(signal.SIGTERM) is before
    assert issubclass(Terminated, KeyboardInterrupt)
    outside: list[object] = []

    def elsewhere() -> None:  # off the main thread it changes nothing (signal handlers live there)
        with sigterm_as_interrupt():
            outside.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert outside == [before]


# --- shards -----------------------------------------------------------------------------------------------------


def fleet(base: Path, count: int) -> Manifest:
    rows = []
    engines = ["stubdb", "mysql", "postgresql"]
    for n in range(count):
        db = DatabaseSpec(engines[n % 3], f"db{n % 4}", 5000 + n % 5, "app", f"d{n}")
        for step in range(2):
            script = base / f"{step}.sql"
            rows.append(ManifestRow(n * 2 + step + 2, RunnerSpec("fake", f"r{n % 2}", 22, "u"), db, script,
                                    script.name, script.name))
    return Manifest("m.csv", base, rows)


@pytest.mark.parametrize("count", [1, 2, 3, 5, 8])
def test_shards_are_disjoint_covering_and_balanced(tmp_path: Path, count: int) -> None:
    manifest = fleet(tmp_path, 11)
    everything = set(targets(manifest.rows))
    slices = [Shard(index, count).select(manifest) for index in range(1, count + 1)]
    keys = [set(targets(part.rows)) for part in slices]
    assert set().union(*keys) == everything
    assert sum(len(k) for k in keys) == len(everything)  # disjoint
    sizes = [len(k) for k in keys]
    assert max(sizes) - min(sizes) <= 1
    for part in slices:  # each target keeps all its rows, in manifest order
        assert [row.line for row in part.rows] == sorted(row.line for row in part.rows)
        assert all(len(positions) == 2 for positions in targets(part.rows).values())
        assert part.notes[-1].startswith(f"shard {slices.index(part) + 1}/{count}: ")


def test_shards_do_not_depend_on_the_manifest_order(tmp_path: Path) -> None:
    manifest = fleet(tmp_path, 9)
    shuffled = list(manifest.rows)
    random.Random(7).shuffle(shuffled)
    other = Manifest(manifest.source, manifest.base_dir, shuffled)
    for index in (1, 2, 3):
        assert set(targets(Shard(index, 3).select(manifest).rows)) == set(targets(Shard(index, 3).select(other).rows))


@pytest.mark.parametrize("text", ["0/2", "3/2", "a/b", "2", "1/0", "-1/2", "1/2/3", ""])
def test_bad_shard_specs_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError, match="expected I/N"):
        Shard.parse(text)


def test_a_good_shard_spec() -> None:
    assert Shard.parse("2/8") == Shard(2, 8) and Shard.parse("1/1") == Shard(1, 1)

"""How long a run still has to go, from what the databases remember: each history table holds how long a
script took there, so a script pending on one database is expected to take what it took on the others.

A pending script's estimate is the median of its durations on the targets where it is applied (history read
before the run, and where it ran in this run). A script that never ran anywhere gets the median of every
script that ran in this run so far; before anything ran, it has none, and the time left is "unknown": a
guess presented as a figure would be worse than no figure.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from ..ledger import SUCCESS, Entry
from ..model.outcome import Status
from ..model.specs import DbKey
from ..plan import PlannedRow


def entry_seconds(entry: Entry | None) -> float | None:
    """A successful history entry's duration (the tables keep whole seconds, UTC)."""
    if entry is None or entry.status != SUCCESS or not entry.finished_at:
        return None
    try:
        took = datetime.fromisoformat(entry.finished_at) - datetime.fromisoformat(entry.started_at)
    except ValueError:
        return None
    seconds = took.total_seconds()
    return seconds if seconds >= 0 else None


def median(values: Iterable[float]) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


@dataclass
class Estimates:
    """Durations per script, and what is left: rows still to run, and how long the running ones have run."""

    planned: list[PlannedRow]
    parallel: int = 1
    per_runner: int = 1
    # script id -> target -> seconds it took there (history, then this run's own results)
    durations: dict[str, dict[DbKey, float]] = field(default_factory=dict)
    this_run: list[float] = field(default_factory=list)
    done: set[int] = field(default_factory=set)  # manifest indexes that finished (or were skipped)
    started: dict[int, float] = field(default_factory=dict)  # running: manifest index -> monotonic start
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        for p in self.planned:
            seconds = entry_seconds(p.entry)
            if seconds is not None:
                self.durations.setdefault(p.row.script_id, {})[p.row.db.key] = seconds
        self.by_index = {p.index: p for p in self.planned}
        for p in self.planned:
            if not p.state.runs:
                self.done.add(p.index)

    def start(self, index: int, at: float | None = None) -> None:
        with self._lock:
            self.started[index] = time.monotonic() if at is None else at

    def finish(self, index: int, status: Status, seconds: float) -> None:
        with self._lock:
            self.started.pop(index, None)
            self.done.add(index)
            p = self.by_index.get(index)
            if p is not None and status is Status.APPLIED:
                self.durations.setdefault(p.row.script_id, {})[p.row.db.key] = seconds
                self.this_run.append(seconds)

    def estimate(self, p: PlannedRow) -> float | None:
        """Seconds this row is expected to take, or None when nothing is known to go by."""
        with self._lock:
            return self._estimate(p)

    def _estimate(self, p: PlannedRow) -> float | None:
        known = self.durations.get(p.row.script_id)
        if known:
            return median(known.values())
        return median(self.this_run)

    def left(self, now: float | None = None) -> Left:
        """What is left: seconds until the run ends (None: unknown), and how many running scripts have run
        past their estimate (then the figure is a floor, and says so).

        Each target runs its rows one after another, targets in parallel within `--parallel` and
        `--per-runner` (by the runner of a target's first row): the run cannot end before its longest target,
        nor before its total work is shared out over the workers it has (overall, and per runner)."""
        now = time.monotonic() if now is None else now
        overdue = 0
        with self._lock:
            chains: dict[DbKey, float] = {}
            runner_of: dict[DbKey, object] = {}
            for p in self.planned:
                key = p.row.db.key
                runner_of.setdefault(key, p.row.runner)
                if p.index in self.done:
                    continue
                guess = self._estimate(p)
                if guess is None:
                    return Left(None, overdue)
                if p.index in self.started:
                    ran = now - self.started[p.index]
                    overdue += ran > guess
                    guess = max(0.0, guess - ran)
                chains[key] = chains.get(key, 0.0) + guess
        if not chains:
            return Left(0.0, overdue)
        total = sum(chains.values())
        if self.parallel <= 1:
            return Left(total, overdue)
        bound = max(max(chains.values()), total / min(self.parallel, len(chains)))
        runners: dict[object, list[float]] = {}
        for key, seconds in chains.items():
            runners.setdefault(runner_of[key], []).append(seconds)
        for shared in runners.values():
            bound = max(bound, sum(shared) / min(self.per_runner, len(shared)))
        return Left(bound, overdue)


@dataclass(frozen=True)
class Left:
    seconds: float | None  # None: unknown
    overdue: int = 0  # running scripts past their estimate

    def __str__(self) -> str:
        if self.seconds is None:
            return "time left unknown"
        text = f"about {duration(self.seconds)} left" if self.seconds >= 1 else "under 1s left"
        if self.overdue:
            text = f"at least {duration(self.seconds)} left: {self.overdue} running longer than before"
        return text


def duration(seconds: float, *, tenths: bool = False) -> str:
    """Short and steady: 7s (4.2s with tenths, under 10 s), 1:05, 1:02:03."""
    if tenths and seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}:{secs:02d}"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"

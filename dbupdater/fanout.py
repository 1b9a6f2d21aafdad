"""Many targets at once: shards of a fleet, and a scheduler with per-runner caps.

A target is one database. Its rows run in manifest order, one at a time, whichever runner each row names;
different targets run in parallel. A target counts against the cap of the runner of its first row.
"""

from __future__ import annotations

import functools
import math
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from .model.errors import UsageError
from .model.specs import Manifest, targets

T = TypeVar("T")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as CI matrices count
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        left, sep, right = text.partition("/")
        if not sep or not left.isdigit() or not right.isdigit() or not 1 <= int(left) <= int(right):
            raise UsageError(f"--shard {text!r}: expected I/N with 1 <= I <= N, e.g. 2/8")
        return cls(int(left), int(right))

    def select(self, manifest: Manifest) -> Manifest:
        """Targets sorted by (engine, host, port, database) dealt round-robin: disjoint, covering, balanced,
        and the same on every machine whatever order the manifest lists them in."""
        keys = sorted(targets(manifest.rows))
        mine = {key for position, key in enumerate(keys) if position % self.count == self.index - 1}
        rows = [row for row in manifest.rows if row.db.key in mine]
        note = f"shard {self.index}/{self.count}: {len(mine)} of {len(keys)} target(s), {len(rows)} script(s)"
        return replace(manifest, rows=rows, notes=[*manifest.notes, note])


class Scheduler:
    """Runs jobs on at most `workers` threads, at most `per_runner` at a time for one runner.

    A job waits only when every remaining job's runner is at its cap; the next job started is the earliest
    (in manifest order) whose runner has room. `stop()` lets running jobs finish and starts no more.
    """

    def __init__(self, workers: int, per_runner: int) -> None:
        self.workers = max(1, workers)
        self.per_runner = max(1, per_runner)
        self._cond = threading.Condition()
        self._pending: list[tuple[Hashable, Callable[[], object]]] = []
        self._active: dict[Hashable, int] = {}
        self._stopped = False
        self.errors: list[BaseException] = []
        self._workers = 0

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    @property
    def stopped(self) -> bool:
        return self._stopped

    def run(self, jobs: Sequence[tuple[Hashable, Callable[[], object]]],
            on_interrupt: Callable[[int, BaseException | None], float | None]) -> None:
        """Run every job. On Ctrl-C (or SIGTERM) nothing new starts and on_interrupt(running jobs, the
        exception) says how many seconds more to wait for them, None meaning not at all; when that time runs
        out it is asked again with None in place of the exception."""
        self._pending = list(jobs)
        threads = [threading.Thread(target=self._work, name=f"dbupdater-worker-{n}", daemon=True)
                   for n in range(min(self.workers, len(jobs)))]
        self._workers = len(threads)
        for thread in threads:
            thread.start()
        deadline = math.inf
        while True:
            # Waiting on our own condition, not Thread.join: in Python 3.11 a Ctrl-C inside join() marks a
            # thread that is still running as stopped (the bpo-45274 cleanup), and the run would end under it.
            try:
                with self._cond:
                    if self._workers == 0:
                        break
                    self._cond.wait(min(1.0, max(0.0, deadline - time.monotonic())))
                    if self._workers == 0:
                        break
                if time.monotonic() < deadline:
                    continue
                cause: BaseException | None = None
            except KeyboardInterrupt as exc:
                cause = exc
            self.stop()
            with self._cond:
                running = sum(self._active.values())
            wait = on_interrupt(running, cause)
            if wait is None:
                raise cause or KeyboardInterrupt()
            deadline = time.monotonic() + wait
        if self.errors:
            raise self.errors[0]

    def _take(self) -> tuple[Hashable, Callable[[], object]] | None:
        with self._cond:
            while True:
                if self._stopped or not self._pending:
                    return None
                for position, (runner, job) in enumerate(self._pending):
                    if self._active.get(runner, 0) < self.per_runner:
                        del self._pending[position]
                        self._active[runner] = self._active.get(runner, 0) + 1
                        return runner, job
                self._cond.wait()

    def _work(self) -> None:
        try:
            self._work_through()
        finally:
            with self._cond:
                self._workers -= 1
                self._cond.notify_all()

    def _work_through(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            runner, job = taken
            try:
                job()
            except BaseException as exc:  # a bug in a job must not hang the run: stop and re-raise in main
                with self._cond:
                    self.errors.append(exc)
                self.stop()
            finally:
                with self._cond:
                    self._active[runner] -= 1
                    self._cond.notify_all()


def parallel_map(function: Callable[[T], object], items: list[T], workers: int) -> None:
    """Call function on every item with a few threads. After an exception nothing new starts; it is raised
    once the calls already running have finished."""
    scheduler = Scheduler(workers, workers)
    scheduler.run([(index, functools.partial(function, item)) for index, item in enumerate(items)],
                  lambda running, cause: None)

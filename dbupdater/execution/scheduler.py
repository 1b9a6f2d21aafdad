"""A scheduler for many targets at once: `workers` threads, at most `per_runner` jobs through one runner.

A target is one database. Its rows run in manifest order, one at a time, whichever runner each row names;
different targets run in parallel. A target counts against the cap of the runner of its first row.
"""

from __future__ import annotations

import functools
import math
import signal
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

from .. import defaults

T = TypeVar("T")


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
        out it is asked again with None in place of the exception. An interrupt arriving while the workers
        start or while on_interrupt runs is handled as the next one, never lost."""
        self._pending = list(jobs)
        deadline = math.inf
        cause: BaseException | None = None
        interrupted = False  # an interrupt, or the end of a grace period, waiting to be handled
        leaving: BaseException | None = None
        try:
            self._start(min(self.workers, len(jobs)))
        except KeyboardInterrupt as exc:
            cause, interrupted = exc, True
        while leaving is None:
            # Waiting on our own condition, not Thread.join: in Python 3.11 a Ctrl-C inside join() marks a
            # thread that is still running as stopped (the bpo-45274 cleanup), and the run would end under it.
            try:
                if interrupted:
                    interrupted = False
                    self.stop()
                    with self._cond:
                        running = sum(self._active.values())
                    wait = on_interrupt(running, cause)
                    if wait is None:
                        leaving = cause or KeyboardInterrupt()
                        continue
                    deadline = time.monotonic() + wait
                with self._cond:
                    if self._workers == 0:
                        break
                    self._cond.wait(min(1.0, max(0.0, deadline - time.monotonic())))
                    if self._workers == 0:
                        break
                if time.monotonic() >= deadline:
                    cause, interrupted = None, True
            except KeyboardInterrupt as exc:
                cause, interrupted = exc, True
        if leaving is not None:
            raise leaving
        if self.errors:
            raise self.errors[0]

    def _start(self, count: int) -> None:
        """Start the workers with SIGINT and SIGTERM held back: an interrupt in the middle would leave the
        count of workers wrong (and the wait for them endless). A held-back signal arrives at the unblock,
        in the caller's try; the workers keep the mask, so signals always reach the main thread."""
        held = {signal.SIGINT, signal.SIGTERM}
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, held) if hasattr(signal, "pthread_sigmask") else None
        try:
            threads = [threading.Thread(target=self._work, name=f"dbupdater-worker-{n}", daemon=True)
                       for n in range(count)]
            with self._cond:
                self._workers = len(threads)
            for thread in threads:
                thread.start()
        finally:
            if previous is not None:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)

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


def parallel_map(function: Callable[[T], object], items: list[T], workers: int,
                 group: Callable[[T], Hashable] | None = None, per_group: int | None = None) -> None:
    """Call function on every item with a few threads, at most `per_group` at once for items of one group
    (e.g. one runner). After an exception nothing new starts; it is raised once the calls already running
    have finished."""
    scheduler = Scheduler(workers, per_group or workers)
    scheduler.run([(group(item) if group else index, functools.partial(function, item))
                   for index, item in enumerate(items)], lambda running, cause: None)


def runner_cap(parallel: int, per_runner: int | None) -> int:
    """Databases at once through one runner: `--per-runner` when given, else `--parallel`, bounded by what one
    SSH connection carries (defaults.PER_CONNECTION): a default that silently ran fewer than `--parallel` on a
    single runner was the complaint of issue 13."""
    if per_runner is not None:
        return max(1, per_runner)
    return max(1, min(parallel, defaults.PER_CONNECTION))


def _databases(count: int) -> str:
    return f"{count} database{'' if count == 1 else 's'}"


def caps(per_runner_counts: dict[str, int], parallel: int, per_runner: int | None) -> dict[str, str]:
    """Which cap decides how many databases run at once, in words: "run" for the whole run, "runner LABEL" for
    each runner (its databases counted by the runner of their first row, as the scheduler counts them)."""
    total = sum(per_runner_counts.values())
    runners = len(per_runner_counts)
    where = f"{_databases(total)} on {runners} runner{'' if runners == 1 else 's'}"
    if parallel <= 1:
        words = {"run": f"{where}: one script at a time, the whole manifest in order (--parallel 1)"}
        for label, count in per_runner_counts.items():
            words[f"runner {label}"] = f"{_databases(count)}, one at a time (--parallel 1)"
        return words
    cap = runner_cap(parallel, per_runner)
    at_once = min(total, parallel, sum(min(count, cap) for count in per_runner_counts.values()))
    if at_once == total:
        words = {"run": f"{where}: all {total} at once"}
    elif at_once == parallel:
        words = {"run": f"{where}: {parallel} at once (--parallel {parallel})"}
    else:
        words = {"run": f"{where}: {at_once} at once (the per-runner cap)"}
    bound = (f"--per-runner {cap}" if per_runner is not None else
             f"default: --parallel, at most {defaults.PER_CONNECTION} through one SSH connection; raise it with "
             "--per-runner")
    for label, count in per_runner_counts.items():
        if count <= min(cap, parallel):
            text = f"{_databases(count)}, all {count} at once" if count > 1 else f"{_databases(count)}"
        elif cap < parallel:
            text = f"{_databases(count)}, {cap} at once ({bound})"
        else:
            shared = ", workers shared with the other runners" if runners > 1 else ""
            text = f"{_databases(count)}, {parallel} at once (--parallel {parallel}{shared})"
        words[f"runner {label}"] = text
    return words

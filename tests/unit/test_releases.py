"""Releases combined into shared calls (execution/releases.py), with stand-in ledgers: every release is made
exactly once, the ones that arrive while a call runs share the next call, a part that did not complete is
released on its own, and each worker gets its own ledger's error."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from dbupdater.execution import releases as module
from dbupdater.execution.releases import Releases
from dbupdater.ledger import LedgerError


class Stand:
    """A ledger as Releases sees it: a key, and a release of its own that may fail."""

    def __init__(self, name: str, key: str | None = "server", fails: bool = False) -> None:
        self.name, self.key, self.fails = name, key, fails
        self.alone = 0  # releases in a call of its own
        self.shared = 0  # releases in a shared call

    def release(self) -> None:
        self.alone += 1
        if self.fails:
            raise LedgerError(f"{self.name}: the server went away")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every shared call's ledgers; a part named in `incomplete` does not complete."""
    made: list[list[str]] = []
    monkeypatch.setattr(module, "share_key", lambda ledger: ledger.key)

    def together(ledgers: list[Any]) -> list[Any]:
        made.append([ledger.name for ledger in ledgers])
        done = [ledger for ledger in ledgers if not ledger.name.startswith("incomplete")]
        for ledger in done:
            ledger.shared += 1
        return done

    monkeypatch.setattr(module, "release_together", together)
    return made


def test_releases_that_meet_share_a_call_and_each_is_made_once(calls: list[list[str]]) -> None:
    releases = Releases()
    first = Stand("first")
    gate, queued = threading.Event(), threading.Semaphore(0)
    first_release = first.release

    def slow_release() -> None:  # the first call runs until the others are waiting
        gate.wait(10)
        first_release()

    first.release = slow_release  # type: ignore[method-assign]
    others = [Stand(f"db{n}") for n in range(5)]
    workers = [threading.Thread(target=releases.release, args=(first,))]
    workers[0].start()
    def queue(stand: Stand) -> None:
        queued.release()
        releases.release(stand)  # type: ignore[arg-type]

    for stand in others:
        worker = threading.Thread(target=queue, args=(stand,))
        workers.append(worker)
        worker.start()
    for _ in others:
        queued.acquire(timeout=10)
    while sum(len(items) for items in releases._waiting.values()) < len(others):  # all queued behind the call
        threading.Event().wait(0.01)
    gate.set()
    for worker in workers:
        worker.join(10)
    assert (first.alone, first.shared) == (1, 0)  # the leader's own release, alone: nothing waited yet
    assert calls == [[stand.name for stand in others]]  # the five that waited, in one call
    assert all((stand.alone, stand.shared) == (0, 1) for stand in others)
    assert releases._calling == set() and releases._waiting == {}


def test_an_incomplete_part_is_released_alone_and_errors_reach_their_own_worker(calls: list[list[str]]) -> None:
    releases = Releases()
    done, failed = Stand("done"), Stand("incomplete-failing", fails=True)
    releases._waiting["server"] = [module._Release(done)]  # type: ignore[arg-type]  # waiting as if queued
    with pytest.raises(LedgerError, match="went away"):
        releases.release(failed)  # type: ignore[arg-type]
    assert calls == [["done", "incomplete-failing"]]
    assert (done.alone, done.shared) == (0, 1)
    assert (failed.alone, failed.shared) == (1, 0)  # its part did not complete: a call of its own, which failed


def test_a_ledger_that_cannot_share_keeps_its_own_call(calls: list[list[str]]) -> None:
    alone = Stand("postgres", key=None)
    Releases().release(alone)  # type: ignore[arg-type]
    assert (alone.alone, calls) == (1, [])

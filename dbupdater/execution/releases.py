"""Targets' releases (their last success and their lock) combined into shared calls where their ledgers can
share one (ledger/together.py): the first worker to release a target on a given runner, server and login
makes the call, and takes along every release that arrives while its call runs; those workers wait for it
instead of making calls of their own. A release keeps its own call when nothing shares it.
"""

from __future__ import annotations

import threading
from collections.abc import Hashable
from dataclasses import dataclass, field

from ..ledger import Ledger
from ..ledger.together import release_together, share_key
from ..model.errors import DbUpdaterError


@dataclass
class _Release:
    ledger: Ledger
    done: threading.Event = field(default_factory=threading.Event)
    error: DbUpdaterError | None = None


class Releases:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[Hashable, list[_Release]] = {}
        self._calling: set[Hashable] = set()  # keys with a worker making calls

    def release(self, ledger: Ledger) -> None:
        """Release the ledger (alone or with others); raises what its own release would raise."""
        key = share_key(ledger)
        if key is None:
            ledger.release()
            return
        mine = _Release(ledger)
        with self._lock:
            self._waiting.setdefault(key, []).append(mine)
            leads = key not in self._calling
            self._calling.add(key)
        if leads:
            self._lead(key)
        mine.done.wait()
        if mine.error is not None:
            raise mine.error

    def _lead(self, key: Hashable) -> None:
        """Make calls until no release of this key waits. A failure other than a release's own (a bug) fails
        every release still waiting, rather than leaving them waiting for a worker that is gone."""
        try:
            while self._call(key):
                pass
        except BaseException:
            with self._lock:
                self._calling.discard(key)
                left = self._waiting.pop(key, [])
            for item in left:
                item.error = DbUpdaterError("not released: the worker releasing it failed")
                item.done.set()
            raise

    def _call(self, key: Hashable) -> bool:
        """One call for every release of this key that waits; False when none waited (the key is free)."""
        with self._lock:
            batch = self._waiting.pop(key, [])
            if not batch:
                self._calling.discard(key)
                return False
        try:
            released = set(release_together([item.ledger for item in batch])) if len(batch) > 1 else set()
            for item in batch:
                if item.ledger not in released:
                    try:
                        item.ledger.release()
                    except DbUpdaterError as exc:
                        item.error = exc
        finally:
            for item in batch:
                item.done.set()
        return True

"""The lease heartbeat: while scripts run, every held lock is renewed every lease/3; a lock lost (it expired and
another run took it) is noticed, and that target stops before its next script."""

from __future__ import annotations

import threading
import time

from ..ledger import Ledger
from ..model.errors import DbUpdaterError


class Heartbeat(threading.Thread):
    """Renews the lease of every held lock while scripts run; notices when a lock is lost."""

    def __init__(self, ledgers: list[Ledger], lease: int) -> None:
        super().__init__(name="dbupdater-heartbeat", daemon=True)
        self.ledgers = list(ledgers)
        self._guard = threading.Lock()
        self.lease = lease
        self.lost: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        last_ok = {id(ledger): time.monotonic() for ledger in self.ledgers}
        while not self._stop_event.wait(max(1.0, self.lease / 3)):
            with self._guard:
                ledgers = list(self.ledgers)
            for ledger in ledgers:
                try:
                    held = ledger.heartbeat(self.lease)
                except DbUpdaterError:
                    held = time.monotonic() - last_ok[id(ledger)] < self.lease * 2 / 3  # transient, if brief
                else:
                    last_ok[id(ledger)] = time.monotonic()
                if not held and ledger.db.target_label not in self.lost:
                    self.lost.append(ledger.db.target_label)

    def discard(self, ledger: Ledger) -> None:
        """A target is done and its lock released: stop renewing it."""
        with self._guard:
            if ledger in self.ledgers:
                self.ledgers.remove(ledger)

    def stop(self, wait: float = 30.0) -> None:
        """Stop renewing; wait for a renewal under way (it only ever extends our own lease, so one that lands
        after the release changes nothing)."""
        self._stop_event.set()
        self.join(timeout=wait)

"""`wait-ready`: poll until every database of a manifest answers a query, with backoff and a deadline.

Through the runner's client by default (the same path a run takes, so "ready" means the run can start), or
directly with the Python drivers when the controller can reach the databases.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from .engines import registry as engines
from .execution.options import RunOptions
from .execution.pool import Deployment
from .model.secret import redact
from .model.specs import DatabaseSpec, Manifest, ManifestRow, first_row_per_database
from .transports import HostKeyRefused

FIRST_DELAY, FACTOR, MAX_DELAY = 0.5, 1.6, 5.0


@dataclass
class Probe:
    row: ManifestRow  # the first row naming the database: its runner is the way in
    ready_after: float | None = None
    last_error: str = "not tried yet"
    attempts: int = 0

    @property
    def db(self) -> DatabaseSpec:
        return self.row.db


def wait_ready(manifest: Manifest, options: RunOptions, *, via: str, timeout: float,
               on_ready: Callable[[Probe], None], on_retry: Callable[[Probe], None]) -> list[Probe]:
    """Returns every probe; those with ready_after None did not answer before the deadline."""
    started = time.monotonic()
    deadline = started + timeout
    pending = [Probe(row) for row in first_row_per_database(manifest.rows)]
    done: list[Probe] = []
    delay = FIRST_DELAY
    with Deployment(manifest, options) as deployment:
        while pending:
            for probe in list(pending):
                probe.attempts += 1
                try:
                    if via == "direct":
                        left = deadline - time.monotonic()
                        engines.get(probe.db.engine).probe_direct(probe.db, min(10.0, max(1.0, left)))
                    else:
                        deployment.channel(probe.row).ping()
                except (HostKeyRefused, ImportError):
                    raise
                except Exception as exc:  # drivers raise their own hierarchies; all mean "not yet"
                    message = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
                    changed = message != probe.last_error
                    probe.last_error = message
                    if via != "direct":
                        deployment.forget(probe.row.runner)  # reconnect next round: the runner may be starting
                    if changed:
                        on_retry(probe)
                    continue
                probe.ready_after = time.monotonic() - started
                pending.remove(probe)
                done.append(probe)
                on_ready(probe)
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(MAX_DELAY, delay * FACTOR)
    return done + pending

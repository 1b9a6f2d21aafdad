"""`wait-ready`: poll until every database of a manifest answers a query, with backoff and a deadline.

Through the runner's client by default (the same path a run takes, so "ready" means the run can start), or
directly with the Python drivers when the controller can reach the databases.
"""

from __future__ import annotations

import threading
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
CLOSE_GRACE = 1.0


@dataclass(eq=False)  # a probe is one database's attempts: compared by identity
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
    """Returns every probe; those with ready_after None did not answer before the deadline.

    The deadline holds whatever the network does: each round's probes run on worker threads, and the command
    waits for them only until the deadline (a probe stuck in an SSH or client connect timeout is abandoned and
    counts as not ready), then gives closing the connections at most CLOSE_GRACE seconds.
    """
    started = time.monotonic()
    deadline = started + timeout
    pending = [Probe(row) for row in first_row_per_database(manifest.rows)]
    done: list[Probe] = []
    delay = FIRST_DELAY
    deployment = Deployment(manifest, options)
    # Daemon threads, not a ThreadPoolExecutor: the interpreter joins an executor's workers at exit, which would
    # wait out an abandoned probe's connect timeout after all.
    in_flight: dict[Probe, threading.Thread] = {}
    fatal: list[BaseException] = []

    def attempt(probe: Probe) -> None:
        probe.attempts += 1
        try:
            if via == "direct":
                left = deadline - time.monotonic()
                engines.get(probe.db.engine).probe_direct(probe.db, min(10.0, max(1.0, left)))
            else:
                deployment.channel(probe.row).ping()
        except (HostKeyRefused, ImportError) as exc:
            fatal.append(exc)
            return
        except Exception as exc:  # drivers raise their own hierarchies; all mean "not yet"
            message = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
            changed = message != probe.last_error
            probe.last_error = message
            if via != "direct":
                deployment.forget(probe.row.runner)  # reconnect next round: the runner may be starting
            if changed:
                on_retry(probe)
            return
        probe.ready_after = time.monotonic() - started
        on_ready(probe)

    try:
        while pending:
            for probe in pending:
                if probe not in in_flight:  # one attempt per database at a time
                    in_flight[probe] = threading.Thread(target=attempt, args=(probe,), daemon=True,
                                                        name="dbupdater-probe")
                    in_flight[probe].start()
            for thread in list(in_flight.values()):
                thread.join(max(0.0, deadline - time.monotonic()))
            for probe, thread in list(in_flight.items()):
                if not thread.is_alive():
                    del in_flight[probe]
            if fatal:
                raise fatal[0]
            for probe in [probe for probe in pending if probe.ready_after is not None]:
                pending.remove(probe)
                done.append(probe)
            if not pending or time.monotonic() >= deadline:
                break
            time.sleep(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(MAX_DELAY, delay * FACTOR)
    finally:
        deployment.close(within=CLOSE_GRACE)
    return done + pending

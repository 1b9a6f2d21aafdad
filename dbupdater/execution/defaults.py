"""Every default of a run in one place: the command line shows these, RunOptions starts from them."""

from __future__ import annotations

LOCK_TIMEOUT = 60.0  # seconds to wait for another run's lock
LOCK_LEASE = 60  # seconds a lock not renewed stays held (renewed every lease/3)
PARALLEL = 8  # databases at once
PER_RUNNER = 4  # databases at once through one runner (below sshd's MaxSessions of 10)
WAIT_READY_TIMEOUT = 120.0

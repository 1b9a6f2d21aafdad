"""Every default of a run in one place: the command line shows these, RunOptions and the environment state
start from them. (A transport's own defaults, such as SSH's known_hosts, live with its kind.)"""

from __future__ import annotations

LOCK_TIMEOUT = 60.0  # seconds to wait for another run's lock
LOCK_LEASE = 60  # seconds a lock not renewed stays held (renewed every lease/3)
PARALLEL = 8  # databases at once
PER_RUNNER = 4  # databases at once through one runner (below sshd's MaxSessions of 10)
WAIT_READY_TIMEOUT = 120.0  # seconds wait-ready polls before giving up
STATE_PATH = "secret/ENVIRONMENTS/{environment}/{database}"  # Vault KV path of each database's state
SCRIPT_ENCODING = "utf-8"  # of scripts whose row declares none

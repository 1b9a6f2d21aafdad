"""Every default of a run in one place: the command line shows these, RunOptions and the environment state
start from them. (A transport's own defaults, such as SSH's known_hosts, live with its kind.)"""

from __future__ import annotations

LOCK_TIMEOUT = 60.0  # seconds to wait for another run's lock
LOCK_LEASE = 60  # seconds a lock not renewed stays held (renewed every lease/3)
PARALLEL = 8  # databases at once
PER_RUNNER: int | None = None  # databases at once through one runner: None is --parallel, at most PER_CONNECTION
# What one SSH connection carries by default: sshd's MaxSessions is 10 channels, and besides the scripts a runner
# needs one channel for the background copy of the next scripts and one for the lease renewal (one at a time
# each; the hourly touch of the private directory rarely adds a third, and a refused channel opens a second
# connection). More through one runner: --per-runner.
PER_CONNECTION = 8
WAIT_READY_TIMEOUT = 120.0  # seconds wait-ready polls before giving up
STATE_PATH = "secret/ENVIRONMENTS/{environment}/{database}"  # Vault KV path of each database's state
SCRIPT_ENCODING = "utf-8"  # of scripts whose row declares none

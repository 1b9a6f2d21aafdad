"""The ledger: each target database's own record of what ran, its lock, and the channel to reach it.

Everything goes through the native client on the runner, like the scripts themselves (`channel`); the
tables carry a schema version with upgrade steps (`schema`).
"""

from __future__ import annotations

from .book import Ledger
from .channel import SqlChannel
from .records import (
    FAILED,
    IN_DOUBT,
    NOT_APPLIED,
    RERUN,
    ROLLED_BACK,
    RUNNING,
    SUCCESS,
    UNDONE,
    Entry,
    Holder,
    LedgerError,
    Refusal,
    Refused,
    ScriptSession,
    SharedLedger,
    recorded,
)

__all__ = ["FAILED", "IN_DOUBT", "NOT_APPLIED", "RERUN", "ROLLED_BACK", "RUNNING", "SUCCESS", "UNDONE", "Entry",
           "Holder", "Ledger", "LedgerError", "Refusal", "Refused", "ScriptSession", "SharedLedger", "SqlChannel",
           "recorded"]

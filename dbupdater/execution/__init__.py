"""Running a plan: sessions and ledgers (`pool`), copies (`sessions`), the lease heartbeat, the scheduler,
one executor for both walks, one row's step, interrupts and hooks."""

from __future__ import annotations

from .executor import apply
from .hooks import Hooks, RunHook, StopRun
from .options import RunOptions
from .pool import Deployment

__all__ = ["Deployment", "Hooks", "RunHook", "RunOptions", "StopRun", "apply"]

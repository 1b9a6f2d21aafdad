"""How a run behaves: one frozen value the command line builds, with every default in `defaults`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .. import defaults


@dataclass(frozen=True)
class RunOptions:
    transports: dict[str, Any] = field(default_factory=dict)  # each transport kind's options, by kind
    history_schema: str | None = None
    lock_timeout: float = defaults.LOCK_TIMEOUT
    lock_lease: int = defaults.LOCK_LEASE
    single_transaction: bool = False
    parallel: int = defaults.PARALLEL
    per_runner: int = defaults.PER_RUNNER
    keep_going: bool = False
    history: bool = True  # False (`exec`): no history tables, no locks; every row runs, judged as `apply` judges

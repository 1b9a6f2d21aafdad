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
    per_runner: int | None = defaults.PER_RUNNER  # None: as --parallel, at most defaults.PER_CONNECTION
    keep_going: bool = False
    script_timeout: float | None = None  # seconds a script may run (a row's script_timeout column wins)
    history: bool = True  # False (`exec`): no history tables, no locks; every row runs, judged as `apply` judges

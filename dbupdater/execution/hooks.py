"""What a run asks and tells outside the databases, as composable hooks: Vault's health before each script,
the environment's state in Vault, later approvals and notifications. The run knows none of them.

A hook stops the whole run by raising `StopRun` (before the first script from `executing`, before the next
one from `before_script`); the run records that as data, never by reading an exception's text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from ..model.errors import DbUpdaterError, ExitCode
from ..model.outcome import RunResult
from ..model.specs import ManifestRow
from ..plan import PlannedRow


class StopRun(DbUpdaterError):
    """A hook refuses to let the run go on (e.g. Vault went away): nothing more starts anywhere."""

    exit_code = ExitCode.UNREACHABLE


class RunHook(Protocol):
    def executing(self, planned: list[PlannedRow]) -> None:
        """Scripts are about to run (only called when some will)."""

    def before_script(self, row: ManifestRow) -> None:
        """The row's script is next. Called from worker threads, possibly at once."""

    def finished(self, result: RunResult) -> str | None:
        """The run ended (after `executing`): a note on what the hook did, if it says one; raising
        DbUpdaterError says the hook could not do its part, in words a person can act on."""


class Hooks:
    """Hooks as one: each is called in order; `finished` calls every hook even when one fails."""

    def __init__(self, hooks: Iterable[RunHook] = ()) -> None:
        self.hooks = list(hooks)
        self.executed = False
        self._notes: list[str] = []
        self._failed_any = False

    def executing(self, planned: list[PlannedRow]) -> None:
        self.executed = True
        for hook in self.hooks:
            hook.executing(planned)

    def before_script(self, row: ManifestRow) -> None:
        for hook in self.hooks:
            hook.before_script(row)

    def finished(self, result: RunResult) -> list[DbUpdaterError]:
        """Every hook's failure to finish, in order (none: an empty list). Only after `executing`."""
        if not self.executed:
            return []
        failures: list[DbUpdaterError] = []
        for hook in self.hooks:
            try:
                note = hook.finished(result)
            except DbUpdaterError as exc:
                failures.append(exc)
            else:
                if note:
                    self._notes.append(note)
        self._failed_any = bool(failures)
        return failures

    def notes(self) -> list[str]:
        """What the hooks that finished well said they did (only when none failed: a failure says it all)."""
        return [] if self._failed_any else list(self._notes)

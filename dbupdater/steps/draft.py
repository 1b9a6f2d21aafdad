"""A step's outcome while it is being made: mutable inside one step only, handed out as a frozen `Outcome`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..model.outcome import Outcome, Status
from ..model.specs import ManifestRow


@dataclass
class Draft:
    """Filled in as the step goes (the client's exit code, its judged output, the ledger's answers); no one
    outside the step sees it before `outcome()` freezes it. How long it took is the walk's to say: the
    executor times every step, whatever its kind."""

    index: int
    row: ManifestRow
    step: str
    status: Status = Status.NOT_RUN
    reason: str = ""
    exit_code: int | None = None
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stdout_tail: list[str] = field(default_factory=list)
    timed_out: bool = False

    def outcome(self) -> Outcome:
        return Outcome(self.index, self.row, self.status, self.reason, self.exit_code, 0.0,
                       tuple(self.warnings), tuple(self.errors), tuple(self.stdout_tail), self.timed_out, self.step)

"""Kinds of step: what the Run asks of a step, and what a step gets from the Run.

The Run walks targets and does one step per manifest row. It never knows what a step does: a kind plans its
rows (what it will do on each target, from the target's history when it keeps one), then does one row on the
target's session and returns its outcome as a value. Running a SQL script (`apply`) and running it without
the history (`exec`) are the first two kinds; verify, undo, pause, command, dump, restore and copy are more
of them, added without changing the Run.

Optional capabilities are small protocols of their own (`Prepares`), checked at run time, never methods every
kind must carry.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ..ledger import Entry
from ..model.outcome import Outcome
from ..model.specs import DbKey, ManifestRow
from ..plan import PlannedRow
from .options import RunOptions
from .pool import Deployment

LineSink = Callable[[str, str], None]
"""("stdout" | "stderr", line): one line of a client's output while a step runs (for -v and excerpts)."""

LinesSink = Callable[[str, list[str]], None]
"""("stdout" | "stderr", lines): what LineSink takes, several lines of one stream at once (a chunk's worth)."""

Histories = Mapping[DbKey, Mapping[str, Entry]]


class NoticeSink(Protocol):
    """What a long step has done so far, in words, shown at default verbosity (a table copied; `ongoing`: a state
    the next one replaces, such as a follower's lag)."""

    def __call__(self, text: str, *, ongoing: bool = False) -> None: ...


def unheard(text: str, *, ongoing: bool = False) -> None:
    """A NoticeSink for contexts without a row to report on (preparing)."""

Ask = Callable[[str, str], "str | None"]
"""(what to show, the question) -> the operator's answer; None when the answer cannot come (end of input)."""


@dataclass(frozen=True)
class StepContext:
    """What a step gets from the Run: the run's connections, sessions and ledgers (`deployment`), how the run
    behaves (`options`), where its output lines go, the operator, when the run has one (a terminal), the
    approval of the plan it applies, when it has one, and where its progress goes."""

    deployment: Deployment
    options: RunOptions
    on_line: LineSink
    on_lines: LinesSink  # the same place, for a chunk's lines at once: one event, not one per line
    ask: Ask | None = None
    # The approval of the saved plan this run applies, in words (None: none): it covers every row of the
    # plan, so a pause it contains needs no operator (`--plan FILE --yes` in CI).
    approved: str | None = None
    # Progress in words for the console at default verbosity and the run document (on_line is client output,
    # shown only with -v): a copy's tables as they are done, a follower's lag.
    notice: NoticeSink = unheard


class StepKind(Protocol):
    """A kind of step. `history`: its rows read and write the history tables, so the Run opens every target's
    ledger, holds its lock, and refuses the whole run when a row is drifted or in doubt."""

    name: str
    history: bool

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        """What each of these rows (with its 1-based index in the manifest) will do, from its target's history
        (empty for kinds without one); one PlannedRow per row, in the order given."""
        ...

    def describe(self, planned: PlannedRow) -> str:
        """What the row does on its target, in a few words, for the plan, the live view and the report."""
        ...

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        """Do the row on its target and say how it went. Called from worker threads; never raises for what a
        target did (a failure is an outcome), so the Run decides from data whether the target and the run go
        on."""
        ...


@runtime_checkable
class Prepares(Protocol):
    """A kind that prepares its rows once the plan stands and before the first step (copying scripts ahead)."""

    def prepare(self, planned: Sequence[PlannedRow], context: StepContext) -> None: ...


@runtime_checkable
class Orders(Protocol):
    """A kind that walks its rows in an order of its own rather than the manifest's (`revert`: the newest
    application first). Each target's rows are walked in the order returned."""

    def order(self, planned: list[PlannedRow]) -> list[PlannedRow]: ...


Chooser = Callable[[ManifestRow], StepKind]


def every_row(kind: StepKind) -> Chooser:
    """The same kind for every row (today's commands say this; a manifest column may choose per row later)."""
    return lambda row: kind

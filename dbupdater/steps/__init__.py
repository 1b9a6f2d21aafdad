"""Kinds of step (see `execution.kinds`): what a run can do on a target. Each kind is a module of its own; a
command names the kinds it runs (`chooser`: by each row's `step` column), and the Run walks them without
knowing what they do."""

from __future__ import annotations

from ..execution.kinds import Chooser, StepKind
from ..model.specs import ManifestRow
from .command import CommandStep
from .pause import PauseStep
from .script import ExecStep, ScriptStep

__all__ = ["CommandStep", "ExecStep", "PauseStep", "ScriptStep", "chooser"]


def chooser(history: bool) -> Chooser:
    """The kind of each row from its `step` column: SQL through the engine's client (recorded in the history,
    or not: `exec`), a pause for the operator, or a command run on the runner."""
    kinds: dict[str, StepKind] = {"sql": ScriptStep() if history else ExecStep(), "pause": PauseStep(history),
                                  "command": CommandStep(history)}

    def choose(row: ManifestRow) -> StepKind:
        return kinds[row.step]

    return choose

"""`revert`: take applied changes back, newest first, with each row's undo script (`undo_script` column).

`--to SCRIPT` reverts, on every target, what was applied after SCRIPT (SCRIPT stays applied); `--steps N` the
last N applied rows of each target. A row without an undo script stops its target's revert there, saying
which. The plan is shown, and the operator confirms on a terminal by typing `revert`; elsewhere (CI) `--yes`
says it was confirmed, and without it nothing runs (exit 2). `plan --revert` shows the same plan only; with
`--save FILE` it saves it, and `revert --plan FILE --yes` reverts exactly that plan (how a tier that requires
approval is reverted in CI).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..model.errors import UsageError
from ..model.specs import Manifest
from . import apply
from .common import Command, positive
from .runs import run_of

if TYPE_CHECKING:
    from ..plan import PlannedRow
    from ..steps.undo import UndoStep


def add_selection(parser: argparse.ArgumentParser) -> None:
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--to", metavar="SCRIPT",
                       help="revert what was applied after SCRIPT on each target (its path as in the manifest's "
                            "sql_script_to_run column, relative to the manifest's folder); SCRIPT stays applied")
    which.add_argument("--steps", type=positive, metavar="N", help="revert the last N applied rows of each target")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_selection(parser)
    parser.add_argument("--yes", dest="confirmed", action="store_true",
                        help="do not ask: the revert was confirmed elsewhere (CI); without it a revert asks on a "
                             "terminal and refuses to run anywhere else; with --plan, the plan was approved")
    parser.add_argument("--plan", type=Path, metavar="FILE", dest="saved_plan",
                        help="revert exactly this saved plan (`plan --revert ... --save FILE`): refused (exit 5), "
                             "naming what changed, when anything differs; a tier that requires approval reverts "
                             "only an approved plan")
    apply.add_run_arguments(parser)


def undo_kind(manifest: Manifest, args: argparse.Namespace) -> UndoStep:
    """The undo kind of step for `--to` / `--steps`, checked against the manifest (exit 2 before anything)."""
    from ..steps.undo import UndoStep

    to, steps = getattr(args, "to", None), getattr(args, "steps", None)
    if to is None and steps is None:
        raise UsageError("say what to revert: --to SCRIPT or --steps N")
    if to is not None:
        named = {row.script_id for row in manifest.rows} | {row.script_label for row in manifest.rows}
        if to not in named:
            raise UsageError(f"--to {to}: no row of the manifest runs this script")
        to = next(row.script_id for row in manifest.rows if to in (row.script_id, row.script_label))
    return UndoStep(to, steps)


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..execution.kinds import every_row

    if args.saved_plan is not None:
        args.yes = args.confirmed  # --yes with --plan: the plan was approved (and the revert confirmed) elsewhere
    run = run_of(args, manifest, "revert", every_row(undo_kind(manifest, args)))
    if not args.confirmed:
        if run.ask is None:
            raise UsageError("revert changes databases: run it on a terminal to confirm it, or pass --yes where it "
                             "was confirmed another way (CI); nothing was run")
        ask = run.ask

        def confirm(planned: list[PlannedRow]) -> bool:
            count = sum(1 for p in planned if p.state.runs)
            answer = ask(f"revert: {count} undo step(s) above, newest first", "Type revert to go on: ")
            return (answer or "").strip() == "revert"

        run.confirm = confirm
    return run.execute()


COMMAND = Command("revert", "take applied changes back, newest first, with each row's undo script: --to SCRIPT "
                  "or --steps N; asks on a terminal, --yes in CI", add_arguments, run)

"""`test`: run the verify script of every applied row, on every target: the test stage of a pipeline as one
command (bring_up, apply, test, bring_down), reported per target in the terminal, the run folder and JUnit."""

from __future__ import annotations

import argparse

from ..model.specs import Manifest
from . import apply
from .common import Command
from .runs import run_of


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..execution.kinds import every_row
    from ..steps.verify import VerifyStep

    # Every target is checked whatever another's checks found: a test stage reports all that is wrong.
    args.keep_going = True
    return run_of(args, manifest, "test", every_row(VerifyStep())).execute()


COMMAND = Command("test", "run the verify script of every applied row on its target and report per target; "
                  "rows not applied yet, or without a verify script, have nothing to check",
                  apply.add_run_arguments, run)

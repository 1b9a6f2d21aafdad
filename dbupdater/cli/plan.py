"""`plan`: log in everywhere, read every history, show what apply (or, with `--revert`, revert) would do;
creates and executes nothing."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..model.errors import UsageError
from ..model.specs import Manifest
from . import revert
from .common import Command, add_environment_options
from .runs import add_report_options, run_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_report_options(parser)  # the run folder and `--output json` hold the plan part of the run document
    add_environment_options(parser)  # the tier: its manifest, and its name in the saved plan
    parser.add_argument("--save", type=Path, metavar="FILE", dest="save_plan",
                        help="save the plan to FILE (JSON, no secrets) with a digest over every script's checksum, "
                             "every target and its history, the manifest and the tool version, for `apply --plan`")
    parser.add_argument("--revert", action="store_true",
                        help="show what `revert` would do instead, with --to SCRIPT or --steps N")
    revert.add_selection(parser)


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..execution.kinds import every_row
    from ..steps import chooser

    if args.revert:
        return run_of(args, manifest, "plan", every_row(revert.undo_kind(manifest, args))).preview()
    if args.to is not None or args.steps is not None:
        raise UsageError("--to and --steps say what to revert: add --revert")
    return run_of(args, manifest, "plan", chooser(history=True)).preview()


COMMAND = Command("plan", "connect, log in, read the history and show what apply would do; executes nothing",
                  add_arguments, run, locking=False)

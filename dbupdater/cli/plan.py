"""`plan`: log in everywhere, read every history, show what apply would do; creates and executes nothing."""

from __future__ import annotations

import argparse

from ..model.specs import Manifest
from .common import Command
from .runs import add_report_options, run_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_report_options(parser)  # the run folder and `--output json` hold the plan part of the run document


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..steps import ScriptStep

    return run_of(args, manifest, "plan", ScriptStep()).preview()


COMMAND = Command("plan", "connect, log in, read the history and show what apply would do; executes nothing",
                  add_arguments, run, locking=False)

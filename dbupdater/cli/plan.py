"""`plan`: log in everywhere, read every history, show what apply would do; creates and executes nothing."""

from __future__ import annotations

import argparse

from ..model.errors import ExitCode
from ..model.specs import Manifest, first_row_per_database
from .common import Command, reporter_for, run_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    pass


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..execution.pool import Deployment
    from ..plan import plan_rows

    reporter = reporter_for(args)
    reporter.run_started(manifest)
    with Deployment(manifest, run_options(args)) as deployment:
        histories = deployment.open(lock=False)
        # one query per database, in manifest order
        holders = {row.db.target_label: deployment.ledger(row).holder()
                   for row in first_row_per_database(manifest.rows)}
    planned = plan_rows(manifest.rows, histories)
    reporter.plan_table(planned)
    for label, holder in holders.items():
        if holder is not None:
            reporter.note(f"{label} is locked right now by {holder.describe()}")
    pending = sum(1 for p in planned if p.state.runs)
    if any(p.state.blocks for p in planned):
        reporter.error("the run would be refused (see drifted / in doubt above); nothing was executed")
        return int(ExitCode.REFUSED)
    reporter.say(f"the run can go ahead: {pending} script(s) to apply; nothing was executed", "green")
    return int(ExitCode.OK)


COMMAND = Command("plan", "connect, log in, read the history and show what apply would do; executes nothing",
                  add_arguments, run, locking=False)

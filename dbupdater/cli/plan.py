"""`plan`: log in everywhere, read every history, show what apply would do; creates and executes nothing."""

from __future__ import annotations

import argparse

from ..model.errors import ExitCode
from ..model.specs import Manifest, first_row_per_database
from .common import Command, reporter_for, run_options
from .report import add_report_options, run_reports


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_report_options(parser)  # the run folder and `--output json` hold the plan part of the run document


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..execution.pool import Deployment
    from ..model.errors import DbUpdaterError
    from ..model.identity import RunIdentity
    from ..model.outcome import RunResult
    from ..plan import plan_rows
    from ..reporting.events import Level, Notice, RunPlanned, RunStarted

    reporter = reporter_for(args)
    identity = RunIdentity()
    document = run_reports(args, manifest, identity.run_id, console=reporter).document
    document.handle(RunStarted(manifest, "plan", identity.run_id, shard=getattr(args, "shard", None) or None))
    reporter.run_started(manifest)
    try:
        with Deployment(manifest, run_options(args), identity) as deployment:
            histories = deployment.open(lock=False)
            # one query per database, in manifest order
            holders = {row.db.target_label: deployment.ledger(row).holder()
                       for row in first_row_per_database(manifest.rows)}
    except DbUpdaterError as exc:
        document.abort(int(exc.exit_code), str(exc))
        raise
    planned = plan_rows(manifest.rows, histories)
    document.handle(RunPlanned(planned))
    reporter.plan_table(planned)
    for label, holder in holders.items():
        if holder is not None:
            reporter.note(f"{label} is locked right now by {holder.describe()}")
            document.handle(Notice(f"{label} is locked right now by {holder.describe()}", Level.NOTE))
    pending = sum(1 for p in planned if p.state.runs)
    if any(p.state.blocks for p in planned):
        reporter.error("the run would be refused (see drifted / in doubt above); nothing was executed")
        code = ExitCode.REFUSED
    else:
        reporter.say(f"the run can go ahead: {pending} script(s) to apply; nothing was executed", "green")
        code = ExitCode.OK
    document.finish(RunResult([]), exit_code=int(code))
    return int(code)


COMMAND = Command("plan", "connect, log in, read the history and show what apply would do; executes nothing",
                  add_arguments, run, locking=False)

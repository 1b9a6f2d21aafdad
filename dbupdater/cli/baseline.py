"""`baseline`: record pending scripts as applied without running them (adopting an existing database)."""

from __future__ import annotations

import argparse

from ..checksum import VERSION
from ..model.errors import ExitCode, UsageError
from ..model.specs import Manifest
from .common import Command, reporter_for, run_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--up-to", metavar="PATH", help="stop after this script (default: all pending)")


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..execution.pool import Deployment
    from ..plan import plan_rows

    reporter = reporter_for(args)
    rows = manifest.rows
    if args.up_to is not None:
        matches = [i for i, row in enumerate(rows) if args.up_to in (row.script_id, row.script_label)]
        if not matches:
            raise UsageError(f"--up-to {args.up_to!r} names no script of the manifest")
        rows = rows[: matches[-1] + 1]
    with Deployment(manifest, run_options(args)) as deployment:
        histories = deployment.open(lock=True, on_wait=reporter.waiting_for_lock)
        planned = plan_rows(rows, histories)
        blocked = [p for p in planned if p.state.blocks]
        if blocked:
            reporter.plan_table(blocked)
            reporter.error("baseline refused: resolve the scripts in doubt or drifted first; nothing was recorded")
            return int(ExitCode.REFUSED)
        who = deployment.identity
        count = 0
        for p in planned:
            if p.state.runs:
                deployment.ledger(p.row).baseline(p.row.script_id, p.checksum, VERSION,
                                                  f"baseline by {who.os_user}@{who.host}: marked applied, not run")
                count += 1
        reporter.say(f"baseline: {count} script(s) marked applied without running", "green")
    return int(ExitCode.OK)


COMMAND = Command("baseline", "record pending scripts as applied without running them (adopt an existing database)",
                  add_arguments, run)

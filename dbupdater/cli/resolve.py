"""`resolve`: settle scripts left running or failed, after a person checked the database."""

from __future__ import annotations

import argparse

from ..model.errors import ExitCode, UsageError
from ..model.specs import Manifest
from .common import Command, reporter_for, run_options


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--script", action="append", default=[], metavar="PATH",
                        help="script as written in the manifest (repeatable)")
    parser.add_argument("--all", action="store_true", help="every script in doubt in the manifest")
    parser.add_argument("--mark", choices=("applied", "rerun"), required=True,
                        help="applied: the database has its effect; rerun: run it again (after you undid it)")


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..execution.pool import Deployment
    from ..ledger import RERUN, SUCCESS
    from ..plan import RowState, plan_rows

    if not args.script and not args.all:
        raise UsageError("name the scripts to resolve with --script (repeatable), or use --all")
    reporter = reporter_for(args)
    status = SUCCESS if args.mark == "applied" else RERUN
    with Deployment(manifest, run_options(args)) as deployment:
        histories = deployment.open(lock=True, on_wait=reporter.waiting_for_lock)
        planned = plan_rows(manifest.rows, histories)
        chosen = [p for p in planned if p.state is RowState.IN_DOUBT
                  and (args.all or p.row.script_id in args.script or p.row.script_label in args.script)]
        if not chosen:
            raise UsageError("no script in doubt matches; `plan` shows each script's state")
        who = deployment.identity
        for p in chosen:
            assert p.entry is not None
            note = (f"resolved by {who.os_user}@{who.host}: marked {args.mark}; was {p.entry.status} "
                    f"(run {p.entry.run_id[:8]})")
            deployment.ledger(p.row).set_status(p.entry, status, p.checksum, note)
            reporter.say(f"{p.row.script_id} on {p.row.db.target_label}: {p.entry.status} -> "
                         f"{'applied' if status == SUCCESS else 'to be run again'}", "green")
    return int(ExitCode.OK)


COMMAND = Command("resolve", "settle scripts left running or failed, after you checked the database",
                  add_arguments, run)

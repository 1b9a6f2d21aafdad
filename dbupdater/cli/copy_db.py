"""`copy-db --from TARGET --to TARGET`: the source dumped on its runner and restored on the destination's, streamed
through the controller with nothing on disk; the destination's history then says what the source's says, so
`plan` against the copy shows what a deployment would do to the source (rehearse on the copy first)."""

from __future__ import annotations

import argparse

from ..model.errors import UsageError
from ..model.specs import Manifest
from . import apply
from .backup import one_row_per_target, target_row
from .common import Command
from .restore import add_confirmation, confirm_overwrite
from .runs import run_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", required=True, metavar="TARGET",
                        help="the target copied (as plan and status name it, or its database name when unique)")
    parser.add_argument("--to", dest="destination", required=True, metavar="TARGET",
                        help="the target replaced by the copy (same engine)")
    add_confirmation(parser)
    apply.add_run_arguments(parser)


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..model.specs import ManifestRow
    from ..steps.copy import CopyStep, SourceStep
    from ..steps.dump import check_dumpable

    source = target_row(manifest, args.source, "--from")
    to = target_row(manifest, args.destination, "--to")
    if source.db.key == to.db.key:
        raise UsageError(f"--from and --to name one database ({source.db.target_label}): nothing to copy")
    if source.db.engine != to.db.engine:
        raise UsageError(f"--from {source.db.target_label} and --to {to.db.target_label}: copies go between "
                         "databases of one engine")
    check_dumpable([source, to])
    reads = SourceStep()
    copy = CopyStep(source, reads)

    def choose(row: ManifestRow) -> SourceStep | CopyStep:
        return reads if row is source else copy

    run = run_of(args, one_row_per_target(manifest, [source, to]), "copy-db", choose)
    confirm_overwrite(run, args, f"copy-db from {source.db.target_label}")
    return run.execute()


COMMAND = Command("copy-db", "replace a target with a copy of another (same engine), streamed runner to runner "
                  "through this machine with nothing on disk; then `plan` on the copy rehearses a deployment",
                  add_arguments, run)

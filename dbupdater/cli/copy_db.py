"""`copy-db --from TARGET --to TARGET`: the source dumped on its runner and restored on the destination's, streamed
through the controller with nothing on disk; the destination's history then says what the source's says, so
`plan` against the copy shows what a deployment would do to the source (rehearse on the copy first).

From MySQL/MariaDB to PostgreSQL (`steps.convert`), the source's tables are translated and copied into one
schema of the destination instead, table by table, verified by checksums, resumable; `--plan DIR` writes what
the copy would make for review and runs nothing on the destination."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..model.errors import UsageError
from ..model.specs import Manifest, ManifestRow
from . import apply
from .backup import acting, one_row_per_target, target_row
from .common import Command
from .restore import (
    add_confirmation,
    add_saved_plans,
    confirm_overwrite,
    one_plan_option,
    overwrite,
    saved_plan_for,
)
from .runs import run_of

if TYPE_CHECKING:
    from ..conversion.model import ConversionPlan
    from ..steps.convert import Across

# options of copies across engines
ACROSS = ("schema", "tables", "exclude", "zero_dates", "plan_dir", "restart", "follow", "detach")


def names(text: str) -> tuple[str, ...]:
    """A comma list of table names or patterns (fnmatch: *, ?, [...])."""
    found = tuple(part.strip() for part in text.split(",") if part.strip())
    if not found:
        raise argparse.ArgumentTypeError("give one or more table names or patterns, separated by commas")
    return found


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--from", dest="source", required=True, metavar="TARGET",
                        help="the target copied (as plan and status name it, or its database name when unique)")
    parser.add_argument("--to", dest="destination", required=True, metavar="TARGET",
                        help="the target replaced by the copy (same engine), or, from MySQL/MariaDB, the "
                             "PostgreSQL target whose schema --schema the copy replaces")
    add_confirmation(parser)
    add_saved_plans(parser, plan_option=False)  # --plan is the review of a copy across engines
    across = parser.add_argument_group(
        "from MySQL/MariaDB to PostgreSQL", "the source's tables translated into one schema of the destination, "
        "streamed table by table (--parallel tables at once), verified by checksums on both sides; a rerun keeps "
        "the tables loaded before and loads the rest; rows that cannot be carried go to "
        "dbupdater_copy.discarded_rows and fail the command (exit 1)")
    across.add_argument("--schema", metavar="NAME",
                        help="the destination schema, replaced whole (default: the source database's name)")
    across.add_argument("--tables", type=names, metavar="LIST",
                        help="copy only these tables: names or patterns (*, ?), comma-separated")
    across.add_argument("--exclude", type=names, metavar="LIST",
                        help="leave these tables out: names or patterns (*, ?), comma-separated")
    across.add_argument("--zero-dates", choices=("discard", "null"), default=None,
                        help="rows holding a zero date (0000-00-00, a zero month or day): discard (default: kept in "
                             "dbupdater_copy.discarded_rows, the command fails) or null (carried as NULL where the "
                             "column allows it)")
    across.add_argument("--plan", dest="plan_dir", type=Path, metavar="DIR",
                        help="read the source's catalog, write DIR/schema.sql, DIR/not-carried.txt and "
                             "DIR/mysql-objects.sql, print a summary, and run nothing on the destination")
    across.add_argument("--restart", action="store_true",
                        help="drop the destination schema and the copy's state, and start over (by default a "
                             "rerun keeps the tables wholly loaded before, their DDL unchanged)")
    across.add_argument("--follow", action="store_true",
                        help="then keep the copy in step from the source's binary log (ROW format, full row images; "
                             "the user needs REPLICATION SLAVE and BINLOG MONITOR) until Ctrl-C or copy-db --detach; "
                             "a complete copy is followed at once from where it stopped (SSH or local runners)")
    across.add_argument("--detach", action="store_true",
                        help="end following: the follower (or this run, when none runs) applies the log to its end, "
                             "sets every identity past the copied rows and marks the copy detached")
    apply.add_run_arguments(parser)
    for action in parser._actions:  # the run's --parallel, with its meaning here
        if "--parallel" in action.option_strings:
            action.help = (f"{action.help}. copy-db from MySQL/MariaDB to PostgreSQL: tables copied at once "
                           "(default: 4)")


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..steps.copy import CopyStep, SourceStep
    from ..steps.dump import check_dumpable

    source = target_row(manifest, args.source, "--from")
    to = target_row(manifest, args.destination, "--to")
    if source.db.key == to.db.key:
        raise UsageError(f"--from and --to name one database ({source.db.target_label}): nothing to copy")
    if source.db.engine != to.db.engine:
        return across(manifest, args, source, to)
    given = [f"--{name.replace('_', '-').replace('plan-dir', 'plan')}" for name in ACROSS if getattr(args, name)]
    if given:
        raise UsageError(f"{', '.join(given)}: only for copies from MySQL/MariaDB to PostgreSQL; a copy between "
                         "databases of one engine replaces the whole database")
    check_dumpable([source, to])
    # Each row named by what it does (the copy by the history entry it writes): in reports and a saved plan.
    source, to = (acting(source, f"copy source for {to.db.target_label}"),
                  acting(to, f"copy from {source.db.target_label}"))
    saved_plan_for(args, f"copy-db --from {args.source} --to {args.destination}", [source, to])
    reads = SourceStep()
    copy = CopyStep(source, reads)

    def choose(row: ManifestRow) -> SourceStep | CopyStep:
        return reads if row is source else copy

    run = run_of(args, one_row_per_target(manifest, [source, to]), "copy-db", choose)
    return overwrite(run, args, f"copy-db from {source.db.target_label}")


def across(manifest: Manifest, args: argparse.Namespace, source: ManifestRow, to: ManifestRow) -> int:
    """From MySQL/MariaDB to PostgreSQL: checked (exit 2 before anything), then `--plan DIR` or the copy."""
    from ..steps.convert import TABLES_AT_ONCE, Across, ConvertStep, check_pair, check_schema
    from ..steps.copy import SourceStep

    check_pair(source, to)
    wanted = Across(schema=args.schema or source.db.database, tables=args.tables or (), exclude=args.exclude or (),
                    zero_dates=args.zero_dates or "discard", parallel=args.parallel or TABLES_AT_ONCE,
                    restart=args.restart)
    check_schema(wanted.schema, getattr(args, "history_schema", None))
    # Each row named by what it does, as for a copy of one engine: its outcome's words show by default.
    named = acting(source, f"{'follow' if args.detach else 'copy'} source for {to.db.target_label}")
    to = acting(to, (f"detach from {source.db.target_label}" if args.detach else
                     f"copy from {source.db.target_label}"))
    source = named
    planned = args.save_plan is not None or args.saved_plan is not None
    if planned and (args.follow or args.detach or args.plan_dir is not None):
        raise UsageError("--save-plan and --saved-plan: for the copy itself, not with --follow, --detach or --plan")
    if args.follow or args.detach:
        return following(manifest, args, source, to, wanted)
    approved: str | None = None
    plan = None
    if planned:
        # What is approved is the translation too: its checksum names the row, so a plan saved before the
        # source's schema changed is refused by name here, and the copy refuses a catalog read again that
        # translates otherwise (ConvertStep.approved).
        from ..steps.convert import plan_checksum

        one_plan_option(args)
        plan = source_plan(manifest, args, source, wanted)  # a name that matches no table: exit 2 here
        translation = plan_checksum(plan)
        to = acting(to, f"{to.script_label} into schema {wanted.schema}{' (restart)' if wanted.restart else ''}, "
                        f"translation {translation[:16]}")
        approved = translation if args.saved_plan is not None else None
    # Also the words of a refusal on a tier that requires approval: how to save this copy's plan and run it.
    saved_plan_for(args, f"copy-db --from {args.source} --to {args.destination}", [source, to])
    if args.plan_dir is not None or wanted.tables or wanted.exclude:
        plan = plan or source_plan(manifest, args, source, wanted)  # a name that matches no table: exit 2 here
        if args.plan_dir is not None:
            from ..steps.convert_review import review
            from .common import reporter_for

            console = reporter_for(args)
            for line in review(plan, args.plan_dir):
                console.say(line)
            return 0
    from ..steps.convert_position import Positions

    reads = SourceStep()
    copy = ConvertStep(source, reads, wanted, positions=Positions(strict=False),  # for a later --follow
                       approved=approved)

    def choose(row: ManifestRow) -> SourceStep | ConvertStep:
        return reads if row is source else copy

    run = run_of(args, one_row_per_target(manifest, [source, to]), "copy-db", choose)
    if args.save_plan is not None:
        return run.preview()
    confirm_overwrite(run, args, f"copy-db from {source.db.target_label}",
                      f"Schema {wanted.schema} of the database will be overwritten: it is dropped with everything in "
                      "it and made again from the copy (a rerun keeps the tables it loaded before).")
    return run.execute()


def following(manifest: Manifest, args: argparse.Namespace, source: ManifestRow, to: ManifestRow,
              wanted: Across) -> int:
    """--follow (the copy first when it is not complete) or --detach (no lock taken: the follower holds it)."""
    from ..extras import require
    from ..steps.convert import ConvertStep, read_plan
    from ..steps.convert_position import Positions
    from ..steps.copy import SourceStep
    from ..steps.follow import FollowAfter, FollowedSource, FollowStep

    if args.follow and args.detach:
        raise UsageError("--follow and --detach: one or the other")
    if args.plan_dir is not None:
        raise UsageError("--plan runs nothing: not with --follow or --detach")
    require("binlog")  # exit 2 naming the extra before anything is contacted (`pip install .` is the core only)
    require("follow-postgres")
    follow = FollowStep(source, lambda context: read_plan(context.deployment.channel(source), source, wanted),
                        detach=args.detach)
    copied = SourceStep()
    reads: SourceStep | FollowedSource = FollowedSource() if args.detach else copied
    kind: FollowStep | FollowAfter = follow if args.detach else FollowAfter(
        ConvertStep(source, copied, wanted, positions=Positions(strict=True)), follow, lambda context: wanted.schema,
        restart=wanted.restart)

    def choose(row: ManifestRow) -> SourceStep | FollowedSource | FollowStep | FollowAfter:
        return reads if row is source else kind

    run = run_of(args, one_row_per_target(manifest, [source, to]), "copy-db", choose)
    if args.follow:
        confirm_overwrite(run, args, f"copy-db from {source.db.target_label}",
                          f"Schema {wanted.schema} of the database will be overwritten unless its copy is complete: "
                          "it is dropped with everything in it and made again from the copy, then followed.")
    return run.execute()


def source_plan(manifest: Manifest, args: argparse.Namespace, source: ManifestRow, wanted: Across) -> ConversionPlan:
    """The source's catalog, read and translated before any run: only the source's runner is reached, and
    only to read."""
    from ..execution.pool import Deployment
    from ..steps.convert import read_plan
    from .common import run_options

    with Deployment(one_row_per_target(manifest, [source]), run_options(args)) as deployment:
        return read_plan(deployment.channel(source), source, wanted)


COMMAND = Command("copy-db", "replace a target with a copy of another (same engine), streamed runner to runner "
                  "through this machine with nothing on disk; then `plan` on the copy rehearses a deployment. From "
                  "MySQL/MariaDB to PostgreSQL: the tables translated into one schema, verified, resumable",
                  add_arguments, run)

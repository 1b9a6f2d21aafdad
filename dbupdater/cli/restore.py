"""`restore BACKUP`: a backup from the store into its own target, or `--into` another target of the same
engine; its SHA-256 checked first; on a terminal the operator confirms by typing the target's database name,
having been shown what will be overwritten; `--yes` where it was confirmed elsewhere (CI); a tier that
requires approval refuses without one (the Run's rule for every run of a promoted tier)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..model.errors import UsageError
from ..model.specs import Manifest, ManifestRow
from . import apply
from .backup import add_store_option, one_row_per_target, store_of, target_row
from .common import Command
from .runs import run_of

if TYPE_CHECKING:
    from ..execution.run import Run
    from ..plan import PlannedRow


def add_confirmation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", dest="confirmed", action="store_true",
                        help="do not ask: overwriting the target was confirmed elsewhere (CI); without it the "
                             "command asks on a terminal and refuses to run anywhere else")


def confirm_overwrite(run: Run, args: argparse.Namespace, what: str) -> None:
    """Unless --yes: on a terminal, the operator types the target's database name, having seen the plan; with
    no terminal, exit 2 before anything is contacted."""
    if args.confirmed:
        return
    if run.ask is None:
        raise UsageError(f"{what} overwrites a database: run it on a terminal to confirm it, or pass --yes where it "
                         "was confirmed another way (CI); nothing was run")
    ask = run.ask

    def confirm(planned: list[PlannedRow]) -> bool:
        chosen = [p for p in planned if p.state.runs]
        names = {p.row.db.database for p in chosen}
        shown = "; ".join(p.action for p in chosen)
        answer = ask(f"{what}: {shown}. What the database holds now will be overwritten: its tables, views and "
                     "routines are dropped and replaced by the backup's, and whatever was written since is lost.",
                     f"Type the database's name ({', '.join(sorted(names))}) to go on: ")
        return (answer or "").strip() in names

    run.confirm = confirm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backup", metavar="BACKUP", help="the backup's name, as `backups` lists it")
    parser.add_argument("--into", metavar="TARGET",
                        help="restore into this target of the manifest instead of the backup's own (same engine; as "
                             "plan and status name it, or its database name when unique in the manifest)")
    add_store_option(parser)
    add_confirmation(parser)
    apply.add_run_arguments(parser)


def destination(manifest: Manifest, engine: str, target: str, into: str | None) -> ManifestRow:
    row = target_row(manifest, into or target, "--into" if into else "the backup's target")
    if row.db.engine != engine:
        raise UsageError(f"--into {into}: a {engine} backup restores into a {engine} target only, not "
                         f"{row.db.target_label}")
    return row


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..execution.kinds import every_row
    from ..steps.dump import check_dumpable
    from ..steps.restore import RestoreStep

    store = store_of(args, manifest.base_dir)
    sidecar = store.find(args.backup)
    row = destination(manifest, sidecar.engine, sidecar.target, args.into)
    check_dumpable([row])
    run = run_of(args, one_row_per_target(manifest, [row]), "restore", every_row(RestoreStep(store, sidecar)))
    confirm_overwrite(run, args, f"restore {sidecar.name}")
    return run.execute()


COMMAND = Command("restore", "restore a backup into its target or --into another of the same engine (SHA-256 "
                  "checked first; type the database's name on a terminal, --yes in CI); recorded in the history",
                  add_arguments, run)

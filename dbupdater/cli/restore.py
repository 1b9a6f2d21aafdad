"""`restore BACKUP`: a backup from the store into its own target, or `--into` another target of the same
engine; its SHA-256 checked first; on a terminal the operator confirms by typing the target's database name,
having been shown what will be overwritten; `--yes` where it was confirmed elsewhere (CI).

A tier that requires approval refuses a restore without one (the Run's rule for every run of a promoted tier).
As `plan --save` and `apply --plan` do for scripts, `restore BACKUP --save-plan FILE` saves what the restore
would do (the backup by name and SHA-256, the target and its history) and runs nothing; once the plan is
approved (the CI platform's protected environment), `restore BACKUP --plan FILE --yes` restores exactly that:
another backup or another target is refused by name before anything is contacted, and a target whose history
moved since is refused by the Run. `copy-db` takes the same options (`--saved-plan` there)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from ..model.errors import UsageError
from ..model.secret import shown
from ..model.specs import Manifest, ManifestRow
from . import apply
from .backup import acting, add_store_option, one_row_per_target, store_of, target_row
from .common import Command
from .runs import run_of

if TYPE_CHECKING:
    from ..execution.run import Run
    from ..plan import PlannedRow


def add_confirmation(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--yes", dest="confirmed", action="store_true",
                        help="do not ask: overwriting the target was confirmed elsewhere (CI); without it the "
                             "command asks on a terminal and refuses to run anywhere else")


def confirm_overwrite(run: Run, args: argparse.Namespace, what: str, overwritten: str | None = None) -> None:
    """Unless --yes: on a terminal, the operator types the target's database name, having seen the plan and what
    will be overwritten (`overwritten`: by default the whole database); with no terminal, exit 2 before
    anything is contacted."""
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
        answer = ask(f"{what}: {shown}. " + (overwritten or "What the database holds now will be overwritten: its "
                     "tables, views and routines are dropped and replaced by the backup's, and whatever was written "
                     "since is lost."),
                     f"Type the database's name ({', '.join(sorted(names))}) to go on: ")
        return (answer or "").strip() in names

    run.confirm = confirm


def add_saved_plans(parser: argparse.ArgumentParser, *, plan_option: bool = True) -> None:
    """--save-plan FILE and --saved-plan FILE (also --plan FILE where the command has no --plan of its own)."""
    group = parser.add_argument_group("saved plans (a tier that requires approval)")
    group.add_argument("--save-plan", type=Path, metavar="FILE", dest="save_plan",
                       help="save what this command would do (which backup or source, the target and its history) "
                            "to FILE for approval, and run nothing")
    group.add_argument(*(("--plan", "--saved-plan") if plan_option else ("--saved-plan",)), type=Path, metavar="FILE",
                       dest="saved_plan",
                       help="do exactly this saved plan (--save-plan): another backup, source or target is refused "
                            "by name, and so is a target whose history moved since (exit 5); with --yes, the plan "
                            "was approved before this run (CI) and the approval is recorded")


def one_plan_option(args: argparse.Namespace) -> None:
    """--save-plan or --saved-plan, not both (checked before anything is contacted)."""
    if args.save_plan is not None and args.saved_plan is not None:
        raise UsageError("--save-plan saves a plan and --saved-plan runs one: give one of them")


def saved_plan_for(args: argparse.Namespace, command: str, rows: list[ManifestRow]) -> None:
    """The saved-plan options checked before anything is contacted: not both; a saved plan must be one of this
    very command (its rows: the same backup or source, the same targets), else exit 5 naming both; --yes with
    it is the plan's approval. Also how this command saves and runs a plan, for the Run's words."""
    from .. import saved_plans

    one_plan_option(args)
    tier = f" --environment {args.environment}" if getattr(args, "environment", None) else ""
    option = "--saved-plan" if command.startswith("copy-db") else "--plan"
    args.plan_commands = (f"{command}{tier} --save-plan {{plan}}", f"{command}{tier} {option} {{plan}} --yes")
    if args.saved_plan is None:
        return
    args.yes = args.confirmed  # with a saved plan, --yes is its approval (and confirms the overwrite)
    saved = saved_plans.read(args.saved_plan)
    wanted = sorted((shown(row.script_id), shown(row.db.target_label)) for row in rows)
    held = sorted((str(row.get("script")), str(row.get("target"))) for row in saved.data["rows"])
    if held != wanted:
        def said(pairs: list[tuple[str, str]]) -> str:
            return "; ".join(f"{script} on {target}" for script, target in pairs) or "nothing"

        raise saved_plans.PlanChanged(
            f"refused: the saved plan {args.saved_plan} is not a plan of this command, and nothing ran anywhere. The "
            f"plan holds: {said(held)}. This command does: {said(wanted)}. Save a plan of this one with "
            f"`{command}{tier} --save-plan FILE` and have it approved")


def overwrite(run: Run, args: argparse.Namespace, what: str) -> int:
    """Save the plan (--save-plan: nothing is overwritten, so nothing is confirmed), or have the overwrite
    confirmed and run it."""
    if args.save_plan is not None:
        return run.preview()
    confirm_overwrite(run, args, what)
    return run.execute()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("backup", metavar="BACKUP", help="the backup's name, as `backups` lists it")
    parser.add_argument("--into", metavar="TARGET",
                        help="restore into this target of the manifest instead of the backup's own (same engine; as "
                             "plan and status name it, or its database name when unique in the manifest)")
    add_store_option(parser)
    add_confirmation(parser)
    add_saved_plans(parser)
    apply.add_run_arguments(parser)


def destination(manifest: Manifest, engine: str, target: str, into: str | None) -> ManifestRow:
    row = target_row(manifest, into or target, "--into" if into else "the backup's target")
    if row.db.engine != engine:
        raise UsageError(f"--into {into}: a {engine} backup restores into a {engine} target only, not "
                         f"{row.db.target_label}")
    return row


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..execution.kinds import every_row
    from ..plan import RESTORE
    from ..steps.dump import check_dumpable
    from ..steps.restore import RestoreStep

    store = store_of(args, manifest.base_dir)
    sidecar = store.find(args.backup)
    # The row is named by the history entry the restore writes: in every report and in a saved plan
    row = acting(destination(manifest, sidecar.engine, sidecar.target, args.into), f"{RESTORE}{sidecar.name}")
    check_dumpable([row])
    into = f" --into {args.into}" if args.into else ""
    saved_plan_for(args, f"restore {sidecar.name}{into}", [row])
    run = run_of(args, one_row_per_target(manifest, [row]), "restore", every_row(RestoreStep(store, sidecar)))
    return overwrite(run, args, f"restore {sidecar.name}")


COMMAND = Command("restore", "restore a backup into its target or --into another of the same engine (SHA-256 "
                  "checked first; type the database's name on a terminal, --yes in CI; a tier that requires approval: "
                  "--save-plan, then --plan FILE --yes); recorded in the history",
                  add_arguments, run)

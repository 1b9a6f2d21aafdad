"""`apply` (the default): run every pending script of the manifest, each target in order."""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import defaults
from ..model.specs import Manifest
from .common import Command, add_environment_options, duration, positive
from .notify_options import add_notify_options
from .runs import add_report_options, run_of


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    add_environment_options(parser)
    add_promotion_options(parser)
    from .backup import add_store_option

    group = parser.add_argument_group("backups")
    group.add_argument("--backup-before", action="store_true",
                       help="back up each target right before its first pending script (a target whose backup "
                            "failed does not start); a tier's backup_before does the same")
    add_store_option(group)  # type: ignore[arg-type]


def add_promotion_options(parser: argparse.ArgumentParser) -> None:
    """Saved plans, approvals and waves (see environments.toml)."""
    group = parser.add_argument_group("promotion (saved plans, approvals, waves)")
    group.add_argument("--plan", type=Path, metavar="FILE", dest="saved_plan",
                       help="apply exactly this saved plan (`plan --save FILE`): refused (exit 5), naming what "
                            "changed, if a script, a target, a target's history or the manifest differs from it")
    group.add_argument("--yes", action="store_true",
                       help="the saved plan was approved before this run (e.g. by the CI platform's protected "
                            "environment): record that approval and apply it without asking; only with --plan")
    group.add_argument("--pause-between-waves", action="store_true",
                       help="with waves (a tier's `waves`), ask on the terminal before starting each later wave")
    group.add_argument("--warnings-are-errors", action="store_true",
                       help="a script that printed warnings stops its database and fails the run (it stays "
                            "recorded as applied)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """What `apply` and `exec` share: how the manifest is walked and how each script runs."""
    fanout = parser.add_argument_group("parallelism")
    fanout.add_argument("--parallel", type=positive, metavar="N",
                        help="run up to N databases at once, each database's scripts in manifest order "
                             f"(default: the tier's parallel, else {defaults.PARALLEL}); 1 runs the whole manifest "
                             "strictly in order")
    fanout.add_argument("--per-runner", type=positive, default=defaults.PER_RUNNER, metavar="M",
                        help="at most M databases at once through one runner host (default: --parallel, at most "
                             f"{defaults.PER_CONNECTION}, what one SSH connection carries under sshd's default "
                             "MaxSessions of 10); when a runner's sshd refuses a channel, a second connection opens")
    fanout.add_argument("--keep-going", action="store_true",
                        help="after a failure, let the other databases go on (only the failed one stops); by "
                             "default nothing new starts anywhere and running scripts finish")
    parser.add_argument("--script-timeout", dest="all_script_timeout", type=duration, metavar="DURATION",
                        help="cancel a script on the server when it runs longer than this (90, 90s, 15m, 2h) and "
                             "fail its row; a row's script_timeout column wins (default: no limit)")
    add_report_options(parser)
    add_notify_options(parser)
    parser.add_argument("--single-transaction", dest="all_single_transaction", action="store_true",
                        help="run each PostgreSQL script in one transaction (psql --single-transaction): a failed "
                             "script leaves nothing behind; MySQL DDL cannot be rolled back, so MySQL rows are "
                             "unaffected")


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..steps import chooser

    choose = chooser(history=True)
    tier = getattr(args, "tier", None)
    if getattr(args, "backup_before", False) or (tier is not None and tier.policy.backup_before):
        from .backup import backing_up_first

        choose = backing_up_first(choose, manifest, args)
    return run_of(args, manifest, "apply", choose).execute()


COMMAND = Command("apply", "run every pending script of the manifest in order (the default)", add_arguments, run)

"""`apply` (the default): run every pending script of the manifest, each target in order."""

from __future__ import annotations

import argparse

from .. import defaults
from ..model.errors import DbUpdaterError, ExitCode
from ..model.specs import Manifest
from .common import (
    Command,
    add_environment_options,
    duration,
    environment_for,
    positive,
    run_options,
)
from .notify_options import add_notify_options, with_notifications
from .report import add_report_options, run_reports


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_run_arguments(parser)
    add_environment_options(parser)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """What `apply` and `exec` share: how the manifest is walked and how each script runs."""
    fanout = parser.add_argument_group("parallelism")
    fanout.add_argument("--parallel", type=positive, default=defaults.PARALLEL, metavar="N",
                        help="run up to N databases at once, each database's scripts in manifest order "
                             "(default: %(default)s); 1 runs the whole manifest strictly in order")
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
    from .. import vault
    from ..environments import EnvironmentState, VaultHealth
    from ..execution.executor import apply
    from ..execution.hooks import Hooks, RunHook
    from ..model.identity import RunIdentity
    from ..reporting.events import Level, Notice, PlanMade, RunFinished, RunStarted

    environment = environment_for(args)
    identity = RunIdentity()
    reports = run_reports(args, manifest, identity.run_id)
    reporter, notifier = with_notifications(args, reports.reporter)  # references resolved: exit 2 before any run
    reporter.handle(RunStarted(manifest, "apply", identity.run_id, shard=getattr(args, "shard", None) or None,
                               environment=environment.name if environment else None, argv=reports.argv,
                               report_dir=reports.folder))
    chosen: list[RunHook] = []
    if environment is not None or vault.used():
        chosen.append(VaultHealth(vault.shared()))
    if environment is not None:
        chosen.append(EnvironmentState(environment, manifest, identity))
    hooks = Hooks(chosen)
    try:
        planned, result = apply(manifest, run_options(args), reporter, hooks, identity)
    except (DbUpdaterError, KeyboardInterrupt) as stop:  # no result (a runner unreachable): the folder says why
        reports.document.abort(int(getattr(stop, "exit_code", ExitCode.INTERRUPTED)), str(stop) or "interrupted")
        notifier.abort(int(getattr(stop, "exit_code", ExitCode.INTERRUPTED)), str(stop) or "interrupted")
        raise
    if any(p.state.blocks for p in planned):
        reporter.handle(PlanMade(planned))
        reporter.handle(Notice("refused: nothing ran anywhere. Drifted scripts need a new script instead of an "
                               "edit; scripts in doubt need `resolve` after you checked the database.", Level.ERROR))
        reports.document.finish(result)
        notifier.finish(result)
    code = int(result.exit_code)
    # The environment state first, so that the summary, the run folder and the notifications say how it went.
    failures: list[DbUpdaterError] = hooks.finished(result)
    for exc in failures:
        reporter.handle(Notice(f"the environment state in Vault could not be recorded ({exc}); it still says "
                               "'updating'. The history tables in the databases are complete.", Level.ERROR))
    if failures:
        code = code or int(ExitCode.UNREACHABLE)
    elif environment is not None and hooks.executed:
        reporter.handle(Notice(f"environment {environment.name}: state recorded in Vault", Level.DETAIL))
    if not any(p.state.blocks for p in planned):
        reporter.handle(RunFinished(result, None if code == int(result.exit_code) else code))
    return code


COMMAND = Command("apply", "run every pending script of the manifest in order (the default)", add_arguments, run)

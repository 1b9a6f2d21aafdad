"""`apply` (the default): run every pending script of the manifest, each target in order."""

from __future__ import annotations

import argparse

from .. import defaults
from ..model.errors import DbUpdaterError, ExitCode
from ..model.specs import Manifest
from .common import Command, add_environment_options, environment_for, positive, reporter_for, run_options


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
                        help="at most M databases at once through one runner host (default: %(default)s; sshd's "
                             "MaxSessions, 10 by default, bounds what one connection can carry)")
    fanout.add_argument("--keep-going", action="store_true",
                        help="after a failure, let the other databases go on (only the failed one stops); by "
                             "default nothing new starts anywhere and running scripts finish")
    parser.add_argument("--single-transaction", dest="all_single_transaction", action="store_true",
                        help="run each PostgreSQL script in one transaction (psql --single-transaction): a failed "
                             "script leaves nothing behind; MySQL DDL cannot be rolled back, so MySQL rows are "
                             "unaffected")


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from .. import vault
    from ..environments import EnvironmentState, VaultHealth
    from ..execution.executor import apply
    from ..execution.hooks import Hooks, RunHook
    from ..ledger import RunIdentity
    from ..reporting.events import Level, Notice, PlanMade, RunFinished, RunStarted

    reporter = reporter_for(args)
    environment = environment_for(args)
    identity = RunIdentity()
    reporter.handle(RunStarted(manifest, "apply", identity.run_id, shard=args.shard or None,
                               environment=environment.name if environment else None))
    chosen: list[RunHook] = []
    if environment is not None or vault.used():
        chosen.append(VaultHealth(vault.shared()))
    if environment is not None:
        chosen.append(EnvironmentState(environment, manifest, identity))
    hooks = Hooks(chosen)
    planned, result = apply(manifest, run_options(args), reporter, hooks, identity)
    if any(p.state.blocks for p in planned):
        reporter.handle(PlanMade(planned))
        reporter.handle(Notice("refused: nothing ran anywhere. Drifted scripts need a new script instead of an "
                               "edit; scripts in doubt need `resolve` after you checked the database.", Level.ERROR))
    else:
        reporter.handle(RunFinished(result))
    code = int(result.exit_code)
    failures: list[DbUpdaterError] = hooks.finished(result)
    for exc in failures:
        reporter.handle(Notice(f"the environment state in Vault could not be recorded ({exc}); it still says "
                               "'updating'. The history tables in the databases are complete.", Level.ERROR))
    if failures:
        code = code or int(ExitCode.UNREACHABLE)
    elif environment is not None and hooks.executed:
        reporter.handle(Notice(f"environment {environment.name}: state recorded in Vault", Level.DETAIL))
    return code


COMMAND = Command("apply", "run every pending script of the manifest in order (the default)", add_arguments, run)

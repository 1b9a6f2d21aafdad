"""`exec`: run every row's script on its target without the history (ad-hoc checks, reports, Meteor's test mode).

Judged exactly as `apply` judges, with the same exit codes; nothing is read from or written to the history
tables and no lock is taken, so every row runs each time and two `exec` runs may overlap. It is also how an
engine is tested end to end where no server of it can run (replay clients).
"""

from __future__ import annotations

import argparse
import dataclasses

from ..model.errors import DbUpdaterError, ExitCode
from ..model.specs import Manifest
from . import apply
from .common import Command, run_options
from .notify_options import with_notifications
from .report import run_reports


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from .. import vault
    from ..environments import VaultHealth
    from ..execution.executor import apply as walk
    from ..execution.hooks import Hooks
    from ..model.identity import RunIdentity
    from ..reporting.events import RunFinished, RunStarted

    identity = RunIdentity()
    reports = run_reports(args, manifest, identity.run_id)
    reporter, notifier = with_notifications(args, reports.reporter)  # references resolved: exit 2 before any run
    reporter.handle(RunStarted(manifest, "exec", identity.run_id, shard=getattr(args, "shard", None) or None,
                               history=False, argv=reports.argv, report_dir=reports.folder))
    hooks = Hooks([VaultHealth(vault.shared())] if vault.used() else [])
    options = dataclasses.replace(run_options(args), history=False)
    try:
        _, result = walk(manifest, options, reporter, hooks, identity)
    except (DbUpdaterError, KeyboardInterrupt) as stop:  # no result (a runner unreachable): the folder says why
        code = int(getattr(stop, "exit_code", ExitCode.INTERRUPTED))
        reports.document.abort(code, str(stop) or "interrupted")
        notifier.abort(code, str(stop) or "interrupted")
        raise
    reporter.handle(RunFinished(result))
    hooks.finished(result)
    return int(result.exit_code)


COMMAND = Command("exec", "run every row's script on its target without the history: nothing recorded, no lock, "
                  "judged as apply judges", apply.add_run_arguments, run, locking=False, history=False)

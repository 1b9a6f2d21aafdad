"""`wait-ready`: poll until every database answers, through the runners' clients or directly from here."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from .. import defaults
from ..model.errors import ExitCode, UsageError
from ..model.specs import Manifest
from .common import Command, add_environment_options, environment_for, reporter_for, run_options

if TYPE_CHECKING:
    from ..readiness import Probe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--via", choices=("runner", "direct"), default="runner",
                        help="runner: log in with the client on the runner, as a run does (default); direct: with "
                             "the Python drivers from this machine")
    parser.add_argument("--timeout", type=float, default=defaults.WAIT_READY_TIMEOUT, metavar="SECONDS",
                        help="give up after this long (default: %(default)s); exit 3 with the last error")
    add_environment_options(parser)


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..environments import CREATED, RUNNING, now
    from ..model.identity import RunIdentity
    from ..readiness import wait_ready

    reporter = reporter_for(args)
    environment = environment_for(args)
    via, timeout = args.via, args.timeout

    def ready(probe: Probe) -> None:
        reporter.say(f"ready: {probe.db.target_label} after {probe.ready_after:.1f}s ({probe.attempts} "
                     f"attempt{'s' if probe.attempts > 1 else ''})", "green")
        if environment is not None:
            current = environment.read(probe.db) or {}
            if current.get("status") in (None, CREATED):
                environment.mark(probe.db, RUNNING, identity, ready_at=now())

    def retry(probe: Probe) -> None:
        reporter.say(f"waiting for {probe.db.target_label}: {probe.last_error}", "yellow")

    identity = RunIdentity()
    reporter.say(f"waiting up to {timeout:g}s for {len({r.db.key for r in manifest.rows})} database(s) "
                 f"({'directly from here' if via == 'direct' else 'through the runners'})")
    try:
        results = wait_ready(manifest, run_options(args), via=via, timeout=timeout, on_ready=ready, on_retry=retry)
    except ImportError as exc:
        if isinstance(exc, UsageError):
            raise  # from extras.require: names the feature, the module and how to install it
        from ..extras import install_hint

        raise UsageError(f"--via direct needs the Python drivers ({exc.name}): {install_hint('drivers')}") from None
    late = [probe for probe in results if probe.ready_after is None]
    for probe in late:
        reporter.error(f"not ready after {timeout:g}s: {probe.db.target_label}: {probe.last_error}")
    return int(ExitCode.UNREACHABLE if late else ExitCode.OK)


COMMAND = Command("wait-ready", "wait until every database of the manifest answers", add_arguments, run,
                  locking=False)

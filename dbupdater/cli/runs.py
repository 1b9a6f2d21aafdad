"""What the commands that walk targets (`apply`, `exec`, `plan`) share: the reports that listen to a run (the
console, the run document with its run folder and `--output json`, the notifications), the hooks, and the
Run itself. A command says which kinds of step it runs; the Run does the rest.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from ..model.identity import RunIdentity
from ..model.secret import shown
from ..reporting.characters import json_text
from .common import environment_for, reporter_for, run_options

if TYPE_CHECKING:
    from ..environments import Environment
    from ..events import Reporter
    from ..execution.hooks import RunHook
    from ..execution.kinds import StepKind
    from ..execution.run import Run
    from ..model.specs import Manifest
    from ..reporting.document import Document


def add_report_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reports")
    group.add_argument("--report-dir", type=Path, metavar="DIR",
                       help="write the run folder (run.json, junit.xml, report.html) into DIR (created if needed; "
                            "files replaced) instead of runs/<UTC time>-<run id>/ beside the manifest")
    group.add_argument("--no-report", action="store_true", help="write no run folder")
    group.add_argument("--output", choices=("table", "json"), default="table",
                       help="json: the run document (run.json) on stdout, the human output on stderr")


def command_line(args: argparse.Namespace) -> tuple[str, ...]:
    given = getattr(args, "argv", None)
    return tuple(shown(part) for part in (sys.argv[1:] if given is None else given))


def print_document(document: Document) -> None:
    sys.stdout.write(json_text(document, indent=2) + "\n")
    sys.stdout.flush()


def listeners(args: argparse.Namespace, manifest: Manifest, run_id: str) -> tuple[Reporter, Path | None]:
    """The console, the run document (its sinks write the run folder and stdout JSON) and the notifier, as one
    reporter; and the run folder, if one is written. Notification references are resolved here: a bad one is
    exit 2 before anything runs."""
    from ..events import Level, Notice, Reporters
    from ..reporting.document import RunDocument
    from ..reporting.runfolder import RunFolder, default_folder
    from .notify_options import with_notifications

    sinks: list[Callable[[Document], None]] = []
    keepers: list[Callable[[Document], None]] = []  # given the document again when a notice comes after the end
    folder: Path | None = None
    if not getattr(args, "no_report", False):
        folder = (getattr(args, "report_dir", None) or default_folder(manifest.base_dir, run_id)).absolute()

        def warn(text: str) -> None:
            composite.handle(Notice(text, Level.WARNING))

        run_folder = RunFolder(folder, warn)
        sinks.append(run_folder)
        keepers.append(run_folder.rewrite)
    if getattr(args, "output", "table") == "json":
        sinks.append(print_document)
    composite = Reporters([reporter_for(args), RunDocument(sinks, keepers=keepers)])
    reporter, _ = with_notifications(args, composite)
    return reporter, folder


def hooks(environment: Environment | None, manifest: Manifest, identity: RunIdentity) -> list[RunHook]:
    """Vault's health before each step when Vault is used; the environment's state when one is named."""
    from .. import vault
    from ..environments import EnvironmentState, VaultHealth

    chosen: list[RunHook] = []
    if environment is not None or vault.used():
        chosen.append(VaultHealth(vault.shared()))
    if environment is not None:
        chosen.append(EnvironmentState(environment, manifest, identity))
    return chosen


def run_of(args: argparse.Namespace, manifest: Manifest, command: str, kind: StepKind) -> Run:
    """The Run of one command whose rows are all of one kind of step."""
    from ..execution.kinds import every_row
    from ..execution.run import Invocation, Run

    environment = environment_for(args)
    identity = RunIdentity()
    reporter, folder = listeners(args, manifest, identity.run_id)
    invocation = Invocation(command, command_line(args), folder, environment.name if environment else None,
                            getattr(args, "shard", None))
    return Run(manifest, invocation, run_options(args), reporter, every_row(kind),
               hooks(environment, manifest, identity), identity)

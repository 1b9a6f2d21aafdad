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

from ..model.errors import UsageError
from ..model.identity import RunIdentity
from ..model.secret import shown
from ..reporting.characters import json_text
from .common import environment_for, reporter_for, run_options

if TYPE_CHECKING:
    from ..environments import Environment
    from ..events import Reporter
    from ..execution.hooks import RunHook
    from ..execution.kinds import Chooser
    from ..execution.run import Promotion, Run
    from ..model.specs import Manifest
    from ..reporting.console import ConsoleReporter
    from ..reporting.document import Document
    from ..reporting.runfolder import Uploads
    from ..tiers import Tier


def add_report_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reports")
    group.add_argument("--report-dir", type=report_place, metavar="DIR|s3://BUCKET/PREFIX",
                       help="write the run folder (run.json, junit.xml, report.html) into DIR (created if needed; "
                            "files replaced) instead of runs/<UTC time>-<run id>/ beside the manifest; or upload it "
                            "to an S3-compatible bucket as s3://BUCKET/PREFIX/<UTC time>-<run id>/ once written "
                            "there (boto3 configured as for --backup-dir; an upload that fails is a warning)")
    group.add_argument("--no-report", action="store_true", help="write no run folder")
    group.add_argument("--output", choices=("table", "json"), default="table",
                       help="json: the run document (run.json) on stdout, the human output on stderr")


def report_place(text: str) -> Path | str:
    """A folder, or an s3://BUCKET/PREFIX URL (kept as text: a Path would fold its //)."""
    from ..backups.objects import is_bucket_url, split

    if is_bucket_url(text):
        try:
            split(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return text
    return Path(text)


def uploads_to(url: str, base_dir: Path) -> Uploads:
    """Where `--report-dir s3://...` sends run folders, its keys resolved now (a bad reference is exit 2 before
    anything runs)."""
    from ..backups.objects import Bucket
    from ..reporting.upload import PATIENCE, FolderUpload
    from .backup import s3_keys

    return FolderUpload(Bucket(url, s3_keys(base_dir), PATIENCE))


def command_line(args: argparse.Namespace) -> tuple[str, ...]:
    given = getattr(args, "argv", None)
    return tuple(shown(part) for part in (sys.argv[1:] if given is None else given))


def print_document(document: Document) -> None:
    sys.stdout.write(json_text(document, indent=2) + "\n")
    sys.stdout.flush()


def listeners(args: argparse.Namespace, manifest: Manifest, run_id: str,
              console: ConsoleReporter | None = None) -> tuple[Reporter, Path | None]:
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
    console = console or reporter_for(args)
    if not getattr(args, "no_report", False):
        place: Path | str | None = getattr(args, "report_dir", None)
        # An s3:// URL: the folder is written where it would be without --report-dir, then uploaded.
        uploads = uploads_to(place, manifest.base_dir) if isinstance(place, str) else None
        local = place if isinstance(place, Path) else None
        folder = (local or default_folder(manifest.base_dir, run_id)).absolute()

        def warn(text: str) -> None:
            composite.handle(Notice(text, Level.WARNING))

        def said(text: str) -> None:  # the console only: the uploaded run.json need not say where it is
            assert console is not None
            console.handle(Notice(text, Level.INFO))

        run_folder = RunFolder(folder, warn, uploads, said)
        sinks.append(run_folder)
        keepers.append(run_folder.rewrite)
    if getattr(args, "output", "table") == "json":
        sinks.append(print_document)
    composite = Reporters([console, RunDocument(sinks, keepers=keepers)])
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


def run_of(args: argparse.Namespace, manifest: Manifest, command: str, choose: Chooser) -> Run:
    """The Run of one command, each row done by the kind `choose` gives it. The console answers for the
    operator when both ends are a terminal (a pause step asks there); elsewhere nobody can answer."""
    from ..execution.run import Invocation, Run

    promotion = promotion_of(args)
    # `exec` keeps no history, so it moves no environment's state either (a tier's rules still apply to it).
    environment = environment_for(args) if command != "exec" else None
    identity = RunIdentity()
    console = reporter_for(args)
    reporter, folder = listeners(args, manifest, identity.run_id, console)
    invocation = Invocation(command, command_line(args), folder, getattr(args, "environment", None) or None,
                            getattr(args, "shard", None))
    interactive = sys.stdin.isatty() and console.console.is_terminal
    return Run(manifest, invocation, run_options(args), reporter, choose, hooks(environment, manifest, identity),
               identity, console.ask if interactive else None, promotion)


def promotion_of(args: argparse.Namespace) -> Promotion:
    """The tier's rules and the promotion options as the Run takes them (a saved plan is read here: a file that
    is not one is exit 2 before anything is contacted)."""
    from .. import saved_plans
    from ..execution.run import Promotion

    tier: Tier | None = getattr(args, "tier", None)
    policy = tier.policy if tier is not None else None
    loaded = getattr(args, "saved_plan", None)
    if getattr(args, "yes", False) and loaded is None:
        raise UsageError("--yes is accepted only with --plan FILE: an approval names the plan it approves")
    pause = getattr(args, "pause_between_waves", False) or (policy is not None and policy.pause_between_waves)
    if pause and policy is not None and policy.waves is not None and not sys.stdin.isatty():
        raise UsageError(f"tier {tier.name if tier else ''}: pausing between waves asks the operator on a terminal, "
                         "and this run has none (stdin is not a terminal)")
    target = getattr(args, "save_plan", None)
    # How the command saves and runs a plan (restore, copy-db); else `plan --save`, then `apply` or `revert`.
    plan_commands: tuple[str, str] | None = getattr(args, "plan_commands", None)
    then = (plan_commands[1].replace("{plan}", str(target)) if plan_commands
            else f"{'revert' if getattr(args, 'revert', False) else 'apply'} --plan {target}")

    def save(plan: saved_plans.SavedPlan) -> str:
        assert target is not None
        plan.write(target)
        return (f"plan saved to {target}: {plan.runs()} step(s) to run, digest {plan.digest}; run exactly this "
                f"plan with `{then}`")

    return Promotion(
        environment=getattr(args, "environment", None), require_approval=bool(policy and policy.require_approval),
        policy=None if policy is None else policy.data(),
        saved=None if loaded is None else saved_plans.read(loaded), saved_name=f"the saved plan {loaded}",
        yes=getattr(args, "yes", False), save=None if target is None else save,
        waves=None if policy is None else policy.waves, pause_between_waves=pause,
        warnings_are_errors=getattr(args, "warnings_are_errors", False) or bool(policy and policy.warnings_are_errors),
        notes=tuple(f"tier {tier.name if tier else ''} is not protected: the command line loosens its policy: {what}"
                    for what in getattr(args, "loosened", ())), plan_commands=plan_commands)

"""`report`: rebuild report.html and junit.xml from run.json files, and merge the runs of a CI matrix (every
shard's run.json) into one document, one JUnit file and one summary, so a fleet of jobs gives one picture.

Also what the running commands share to write their reports: the run folder (`--report-dir`, `--no-report`)
and `--output json`, wired as listeners of the run's events beside the console.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model.errors import UsageError
from ..model.secret import shown
from .common import Command, reporter_for

if TYPE_CHECKING:
    from ..model.specs import Manifest
    from ..reporting.document import Document, RunDocument
    from ..reporting.events import Reporter


def add_report_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("reports")
    group.add_argument("--report-dir", type=Path, metavar="DIR",
                       help="write the run folder (run.json, junit.xml, report.html) into DIR (created if needed; "
                            "files replaced) instead of runs/<UTC time>-<run id>/ beside the manifest")
    group.add_argument("--no-report", action="store_true", help="write no run folder")
    group.add_argument("--output", choices=("table", "json"), default="table",
                       help="json: the run document (run.json) on stdout, the human output on stderr")


@dataclass
class RunReports:
    """The run's listeners: the console and the run document, whose sinks write the folder and stdout JSON."""

    reporter: Reporter
    document: RunDocument
    folder: Path | None
    argv: tuple[str, ...]


def command_line(args: argparse.Namespace) -> tuple[str, ...]:
    given = getattr(args, "argv", None)
    return tuple(shown(part) for part in (sys.argv[1:] if given is None else given))


def run_reports(args: argparse.Namespace, manifest: Manifest, run_id: str,
                console: Reporter | None = None) -> RunReports:
    from ..reporting.document import RunDocument
    from ..reporting.events import Level, Notice, Reporters
    from ..reporting.runfolder import RunFolder, default_folder

    sinks: list[Callable[[Document], None]] = []
    folder: Path | None = None
    if not getattr(args, "no_report", False):
        folder = getattr(args, "report_dir", None) or default_folder(manifest.base_dir, run_id)
        folder = folder.absolute()

        def warn(text: str) -> None:
            composite.handle(Notice(text, Level.WARNING))

        sinks.append(RunFolder(folder, warn))
    if getattr(args, "output", "table") == "json":
        sinks.append(print_document)
    document = RunDocument(sinks)
    composite = Reporters([console or reporter_for(args), document])
    return RunReports(composite, document, folder, command_line(args))


def print_document(document: Document) -> None:
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


# --- the `report` command ---------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("inputs", nargs="+", type=Path, metavar="RUN",
                        help="run.json files, run folders, or folders searched for run.json (e.g. the downloaded "
                             "artifacts of every shard of a CI matrix)")
    parser.add_argument("-o", "--output-dir", type=Path, metavar="DIR",
                        help="where to write report.html, junit.xml and (when merging) run.json; default: beside a "
                             "single run.json; required when merging several")
    parser.add_argument("--output", choices=("table", "json"), default="table",
                        help="json: the (merged) run document on stdout instead of the summary table")
    parser.add_argument("--exit-zero", action="store_true",
                        help="exit 0 once the report is written, whatever the runs' outcome (by default the exit "
                             "code is the most serious of the runs', so a merge job fails when a shard failed)")


def find_inputs(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            inside = sorted(path.rglob("run.json"))
            if not inside:
                raise UsageError(f"{path}: no run.json in this folder or under it")
            found += inside
        elif path.is_file():
            found.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
    return list(dict.fromkeys(p.resolve() for p in found))


def load(path: Path) -> Document:
    from ..reporting.document import FORMAT, VERSION

    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a readable run.json ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise UsageError(f"{path}: not a dbupdater run document (no \"format\": \"{FORMAT}\")")
    if document.get("version") != VERSION:
        raise UsageError(f"{path}: run document version {document.get('version')!r}; this release reads "
                         f"version {VERSION}")
    run = document.get("run")
    missing = [name for name in ("run", "results", "summary", "manifest", "targets") if name not in document]
    missing += [f"run.{name}" for name in ("id", "exit_code", "started_at", "finished_at", "seconds")
                if not isinstance(run, dict) or name not in run]
    if missing:
        raise UsageError(f"{path}: incomplete run document (missing {', '.join(missing)})")
    return document


def summary(document: Document, stream: Any, color: bool | None) -> None:
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(file=stream, highlight=False, soft_wrap=True, no_color=color is False,
                      force_terminal=color or None, width=None if stream.isatty() else 200)
    merged = document.get("merged")
    if merged:
        runs = Table(title="Runs", title_justify="left")
        for column in ("shard", "run", "exit", "started (UTC)", "seconds", "from"):
            runs.add_column(column, overflow="fold")
        for run in merged["runs"]:
            runs.add_row(str(run["shard"] or "-"), run["run_id"][:8], str(run["exit_code"]), run["started_at"],
                         f"{run['seconds']:.2f}", shown(run["source"]))
        console.print(runs)
    table = Table(title="Targets", title_justify="left")
    for column in ("target", "done", "problems", "not run", "got to"):
        table.add_column(column, overflow="fold")
    for target in document["targets"]:
        style = "bold red" if target["problems"] else ("yellow" if target["not_run"] else "green")
        table.add_row(target["target"], f"{target['done']}/{target['rows']}", str(target["problems"]),
                      str(target["not_run"]), Text(target["got_to"], style=style))
    console.print(table)
    for result in document["results"]:
        if result["status"] in ("failed", "unreachable", "refused", "interrupted"):
            first = f": {result['errors'][0]}" if result["errors"] else ""
            console.print(Text(f"{result['status']}: {result['script']} on {result['target']}: "
                               f"{result['reason']}{first}", style="bold red"))
    for notice in document.get("notices", []):
        if notice["level"] in ("warning", "error"):
            console.print(Text(f"{notice['level']}: {notice['text']}", style="yellow"))
    counts = document["summary"]["counts"]
    parts = [f"{n} {status}" for status, n in counts.items() if n]
    console.print(Text(f"{', '.join(parts) or 'no scripts'} in {document['run']['seconds']:.2f}s "
                       f"(exit {document['run']['exit_code']})", style="bold"))


def run(args: argparse.Namespace) -> int:
    from ..reporting.merge import merge
    from ..reporting.runfolder import render, write_folder

    paths = find_inputs(list(args.inputs))
    documents = [load(path) for path in paths]
    if len(documents) > 1 and args.output_dir is None:
        raise UsageError(f"{len(documents)} run documents to merge: say where the report goes with --output-dir")
    document = merge(documents, [str(path) for path in paths])
    folder = (args.output_dir or paths[0].parent).absolute()
    files = render(document)
    if args.output_dir is None:
        del files["run.json"]  # rebuilding in place: the run's own record stays as the run wrote it
    write_folder(folder, files)
    color = {"auto": None, "always": True, "never": False}[args.color]
    stream = sys.stderr if args.output == "json" else sys.stdout
    summary(document, stream, color)
    print(shown(f"report: {folder / 'report.html'}; JUnit: {folder / 'junit.xml'}"), file=stream)
    if args.output == "json":
        print_document(document)
    return 0 if args.exit_zero else int(document["run"]["exit_code"])


def _no_manifest(manifest: Manifest, args: argparse.Namespace) -> int:
    return run(args)


COMMAND = Command("report", "rebuild report.html and junit.xml from run.json files; merge the runs of every shard "
                  "of a CI matrix into one report", add_arguments, _no_manifest, connects=False, locking=False,
                  history=False, standalone=run)

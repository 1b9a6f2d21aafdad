"""`report`: rebuild report.html and junit.xml from run.json files, and merge the runs of a CI matrix (every
shard's run.json) into one document, one JUnit file and one summary, so a fleet of jobs gives one picture."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model.errors import ExitCode, UsageError
from ..reporting.characters import visible
from .common import Command
from .runs import print_document

if TYPE_CHECKING:
    from ..model.specs import Manifest
    from ..reporting.document import Document


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..reporting.reading import MAX_DOCUMENTS, MAX_SIZE, MIB, WALK_DEPTH, WALK_ENTRIES

    parser.add_argument("inputs", nargs="+", type=Path, metavar="RUN",
                        help="run.json files, run folders, or folders searched for run.json (e.g. the downloaded "
                             f"artifacts of every shard of a CI matrix; at most {WALK_DEPTH} levels deep, "
                             f"{WALK_ENTRIES} entries and {MAX_DOCUMENTS} run documents, never hidden folders, "
                             "symbolic links or the whole file system)")
    parser.add_argument("-o", "--output-dir", type=Path, metavar="DIR",
                        help="where to write report.html, junit.xml and (when merging) run.json; default: beside a "
                             "single run.json; required when merging several")
    parser.add_argument("--output", choices=("table", "json"), default="table",
                        help="json: the (merged) run document on stdout instead of the summary table")
    parser.add_argument("--exit-zero", action="store_true",
                        help="exit 0 once the report is written, whatever the runs' outcome (by default the exit "
                             "code is the most serious of the runs', so a merge job fails when a shard failed)")
    parser.add_argument("--max-size", type=_mebibytes, default=MAX_SIZE, metavar="MIB",
                        help=f"the most a run document, and all the documents of this report together, may hold "
                             f"(default {MAX_SIZE // MIB} MiB). A larger one is refused before it is read: parsed, "
                             "a document takes 5 to 15 times its size in memory")


def _mebibytes(text: str) -> int:
    from ..reporting.reading import MIB

    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= 1 << 20:
        raise argparse.ArgumentTypeError("expected a whole number of MiB from 1 to 1048576")
    return int(text) * MIB


def _output_folder(folder: Path) -> Path:
    """Where the report goes, refused before anything is read when it cannot be a folder."""
    folder = folder.absolute()
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{visible(str(folder))}: not a folder; --output-dir names the folder that receives "
                         "report.html and junit.xml")
    return folder


def _write(folder: Path, files: dict[str, bytes]) -> None:
    from ..reporting.runfolder import write_folder

    try:
        write_folder(folder, files)
    except OSError as exc:  # a read-only folder or file system, /proc, a full disk: the place given is unusable
        why = exc.strerror or type(exc).__name__
        raise UsageError(f"{visible(str(folder))}: the report cannot be written there ({why}); name a folder you "
                         "can write with --output-dir") from None


def summary(document: Document, stream: Any, color: bool | None) -> None:
    """The runs, targets and problems of a document on the terminal. Every value is text, never rich markup (a
    target named `[/red]` is a name), and passes `visible`: a document from disk may hold escape sequences."""
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    def text(value: object, style: str = "") -> Text:
        return Text(visible(str(value)), style=style)

    console = Console(file=stream, highlight=False, soft_wrap=True, no_color=color is False,
                      force_terminal=color or None, width=None if stream.isatty() else 200)
    merged = document.get("merged")
    if merged:
        runs = Table(title="Runs", title_justify="left")
        for column in ("shard", "run", "exit", "started (UTC)", "seconds", "from"):
            runs.add_column(column, overflow="fold")
        for run in merged["runs"]:
            runs.add_row(text(run["shard"] or "-"), text(run["run_id"][:8]), text(run["exit_code"]),
                         text(run["started_at"]), f"{run['seconds']:.2f}", text(run["source"]))
        console.print(runs)
    table = Table(title="Targets", title_justify="left")
    for column in ("target", "done", "problems", "not run", "got to"):
        table.add_column(column, overflow="fold")
    for target in document["targets"]:
        style = "bold red" if target["problems"] else ("yellow" if target["not_run"] else "green")
        table.add_row(text(target["target"]), f"{target['done']}/{target['rows']}", str(target["problems"]),
                      str(target["not_run"]), text(target["got_to"], style))
    console.print(table)
    for result in document["results"]:
        if result["status"] in ("failed", "unreachable", "refused", "interrupted"):
            first = f": {result['errors'][0]}" if result["errors"] else ""
            console.print(text(f"{result['status']}: {result['script']} on {result['target']}: "
                               f"{result['reason']}{first}", "bold red"))
    for notice in document.get("notices", []):
        if notice["level"] in ("warning", "error"):
            console.print(text(f"{notice['level']}: {notice['text']}", "yellow"))
    counts = document["summary"]["counts"]
    parts = [f"{n} {status}" for status, n in counts.items() if n]
    console.print(Text(f"{', '.join(parts) or 'no scripts'} in {document['run']['seconds']:.2f}s "
                       f"(exit {document['run']['exit_code']})", style="bold"))


def run(args: argparse.Namespace) -> int:
    from ..reporting.merge import merge
    from ..reporting.reading import Reading
    from ..reporting.runfolder import FORMATS, render

    output_dir = None if args.output_dir is None else _output_folder(args.output_dir)
    reading = Reading(max_size=args.max_size)
    paths = reading.inputs(list(args.inputs))
    if len(paths) > 1 and output_dir is None:
        raise UsageError(f"{len(paths)} run documents to merge: say where the report goes with --output-dir")
    documents = [reading.document(path) for path in paths]
    document = merge(documents, [visible(str(path)) for path in paths])
    folder = output_dir or paths[0].parent
    # Rebuilding in place, the run's own record stays as the run wrote it.
    _write(folder, render(document, [name for name in FORMATS if output_dir or name != "run.json"]))
    color = {"auto": None, "always": True, "never": False}[args.color]
    stream = sys.stderr if args.output == "json" else sys.stdout
    summary(document, stream, color)
    print(visible(f"report: {folder / 'report.html'}; JUnit: {folder / 'junit.xml'}"), file=stream)
    if args.output == "json":
        print_document(document)
    # The schema allows the tool's own exit codes only (ExitCode): no document sets the process's status.
    return 0 if args.exit_zero else int(ExitCode(document["run"]["exit_code"]))


def _no_manifest(manifest: Manifest, args: argparse.Namespace) -> int:
    return run(args)


COMMAND = Command("report", "rebuild report.html and junit.xml from run.json files; merge the runs of every shard "
                  "of a CI matrix into one report", add_arguments, _no_manifest, connects=False, locking=False,
                  history=False, standalone=run)

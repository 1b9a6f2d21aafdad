"""`backups`: what the store holds (target, time, size, history head), complete backups only (an incomplete
one, a dump that failed or was killed, is named apart); `--output json` for tooling; `--prune --keep N` removes
all but the newest N complete backups of each target. Reads no manifest (`-f` only finds the default folder)
and connects to no runner."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..model.errors import UsageError
from .backup import DEFAULT_FOLDER, add_store_option, store_of
from .common import Command, positive


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", type=Path, metavar="MANIFEST",
                        help=f"the manifest, whose {DEFAULT_FOLDER}/ folder is the default store")
    add_store_option(parser)
    parser.add_argument("--target", metavar="TARGET", help="only this target's backups (as plan and status name it)")
    parser.add_argument("--output", choices=("table", "json"), default="table", help="json: one object per backup")
    parser.add_argument("--prune", action="store_true", help="remove all but the newest --keep N backups per target")
    parser.add_argument("--keep", type=positive, metavar="N", help="with --prune: how many to keep per target")


def human(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} B"


def run(args: argparse.Namespace) -> int:
    if args.prune and args.keep is None:
        raise UsageError("--prune needs --keep N: how many backups of each target to keep")
    if args.keep is not None and not args.prune:
        raise UsageError("--keep is for --prune")
    base = args.file.absolute().parent if args.file is not None else None
    store = store_of(args, base)
    sidecars = [s for s in store.sidecars() if args.target in (None, s.target, s.database)]
    _, incomplete = store.names()
    removed: list[str] = []
    if args.prune:
        per_target: dict[str, list[str]] = {}
        for s in sorted(sidecars, key=lambda s: s.taken_at):
            per_target.setdefault(s.target, []).append(s.name)
        for names in per_target.values():
            for name in names[: max(0, len(names) - args.keep)]:
                store.delete(name)
                removed.append(name)
        sidecars = [s for s in sidecars if s.name not in removed]
    if args.output == "json":
        document = {"store": store.location, "removed": removed, "incomplete": incomplete,
                    "backups": [{"name": s.name, "target": s.target, "engine": s.engine, "taken_at": s.taken_at,
                                 "size": s.size, "sha256": s.sha256, "compression": s.compression,
                                 "tool_version": s.tool_version, "server_version": s.server_version,
                                 "history_head": s.applied} for s in sidecars]}
        sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console(no_color=args.color == "never", force_terminal=args.color == "always" or None,
                      highlight=False, soft_wrap=True)
    if not console.is_terminal:  # a log or a pipe: whole names, to copy into `restore`
        console.width = 240
    table = Table(title=f"backups in {store.location}", title_justify="left")
    for column in ("target", "taken (UTC)", "size", "history head", "name"):
        table.add_column(column, no_wrap=column in ("name", "taken (UTC)", "size"), overflow="fold")
    for s in sidecars:
        table.add_row(s.target, s.taken_at, human(s.size), s.head(), s.name)
    console.print(table)
    for name in removed:
        console.print(f"removed {name}")
    for name in incomplete:
        console.print(f"incomplete (not a backup: its dump failed or was cut off): {name}")
    console.print(f"{len(sidecars)} backup(s)" + (f", {len(removed)} removed" if removed else ""))
    return 0


COMMAND = Command("backups", "list the backup store (target, time, size, history head), --output json; "
                  "--prune --keep N per target", add_arguments, lambda manifest, args: 0, connects=False,
                  history=False, standalone=run)

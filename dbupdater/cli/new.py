"""`new NAME`: the next script file, named as the manifest already names its scripts, with a header comment, and
one row per target appended to the manifest, so that the next run applies it.

The naming is read from the scripts the manifest lists: numbered (`004_name.sql`, `0004-name.sql`), Flyway's
versions (`V3_2__name.sql`: the last part goes up), or timestamps (`20261207120000_name.sql`: now, UTC). When
the manifest mixes styles, or lists no numbered script, it says so and asks for `--style` rather than guess.
Without -f or --environment, and with an environments.toml, every tier's manifest gets the rows (one script,
promoted through every tier).

The manifest is appended to as text (its rows, columns, quoting and line endings are left as they are): it is
the reviewed record of what runs where. Cells are copied from each target's last row, except those that
describe a script rather than a target.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

from ..model.errors import ExitCode, UsageError
from .common import Command, reporter_for

# Cells of a row that belong to its script, not to its target: a new row leaves them empty.
SCRIPT_COLUMNS = {"sql_script_to_run", "repeatable", "single_transaction", "encoding", "script_timeout", "step",
                  "verify_script", "undo_script"}
TARGET_COLUMNS = ("database_type", "database_host", "port", "database")
SEQUENCE = re.compile(r"^(?P<number>[0-9]{1,11})(?P<separator>[_-])(?P<rest>.+)$")
TIMESTAMP = re.compile(r"^(?P<number>[0-9]{14}|[0-9]{12})(?P<separator>[_-])(?P<rest>.+)$")
FLYWAY = re.compile(r"^(?P<prefix>V)(?P<version>[0-9]+(?:[._][0-9]+)*)(?P<separator>__)(?P<rest>.+)$")
STYLES = ("sequence", "flyway", "timestamp")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="what the script does, in a few words (becomes part of the file name)")
    parser.add_argument("-f", "--file", type=Path, action="append", metavar="MANIFEST",
                        help="the manifest to add the script to (repeatable; default: the --environment tier's, or "
                             "every tier's manifest in environments.toml)")
    parser.add_argument("--config", type=Path, metavar="FILE", help="the tiers file (default: ./environments.toml)")
    parser.add_argument("--environment", metavar="NAME", help="add it to this tier's manifest only")
    parser.add_argument("--target", action="append", metavar="DATABASE",
                        help="only for this target: its database name, host/database or host:port/database "
                             "(repeatable; default: every target of the manifest)")
    parser.add_argument("--style", choices=STYLES,
                        help="the naming, when the manifest's scripts do not say it unambiguously (or list none)")
    parser.add_argument("--extension", default=".sql", help="the new file's extension (default: %(default)s)")


@dataclass(frozen=True)
class Listed:
    """A manifest as text and rows."""

    path: Path
    text: str
    header: list[str]
    rows: list[dict[str, str]]

    @property
    def newline(self) -> str:
        return "\r\n" if "\r\n" in self.text else "\n"


def read(path: Path) -> Listed:
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:  # newline="": the line endings as they are
            text = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"{path}: cannot read it as a UTF-8 manifest: {exc}") from None
    reader = csv.DictReader(io.StringIO(text))
    rows = [{key: (value or "").strip() for key, value in row.items() if key is not None} for row in reader
            if any((value or "").strip() for value in row.values() if isinstance(value, str))]
    header = list(reader.fieldnames or [])
    if "sql_script_to_run" not in header:
        raise UsageError(f"{path}: no sql_script_to_run column: not a manifest")
    return Listed(path, text, header, rows)


def slug(name: str) -> str:
    words = re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")
    if not words:
        raise UsageError(f"new: {name!r} has no letters or digits to name a file with")
    return words[:80]


def style_of(names: Sequence[str]) -> str | None:
    """The naming the scripts share; None when they share none (or there are none); UsageError when mixed."""
    found: dict[str, list[str]] = {}
    for name in names:
        if FLYWAY.match(name):
            found.setdefault("flyway", []).append(name)
        elif TIMESTAMP.match(name) and _is_time(TIMESTAMP.match(name)["number"]):  # type: ignore[index]
            found.setdefault("timestamp", []).append(name)
        elif SEQUENCE.match(name):
            found.setdefault("sequence", []).append(name)
    if len(found) > 1:
        examples = "; ".join(f"{style}: {', '.join(sorted(set(names))[:2])}" for style, names in found.items())
        raise UsageError(f"new: the manifest names its scripts in more than one way ({examples}); say which with "
                         "--style " + "|".join(STYLES))
    return next(iter(found), None)


def _is_time(digits: str) -> bool:
    try:
        datetime.strptime(digits, "%Y%m%d%H%M%S" if len(digits) == 14 else "%Y%m%d%H%M")
    except ValueError:
        return False
    return True


def next_name(style: str, names: Sequence[str], words: str, extension: str) -> str:
    """The next file name in `style` after the scripts `names`."""
    if style == "timestamp":
        matches = [TIMESTAMP.match(name) for name in names]
        latest = max((m["number"] for m in matches if m), default="")
        width = len(latest) or 14
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S")[:width]
        if latest and stamp <= latest:  # a clock behind the last script: still after it
            stamp = str(int(latest) + 1)
        separator = next((m["separator"] for m in matches if m and m["number"] == latest), "_")
        return f"{stamp}{separator}{words}{extension}"
    if style == "flyway":
        versions = [m for m in (FLYWAY.match(name) for name in names) if m]
        if not versions:
            return f"V1__{words}{extension}"
        latest = max(versions, key=lambda m: [int(part) for part in re.split(r"[._]", m["version"])])
        parts = re.split(r"([._])", latest["version"])
        parts[-1] = str(int(parts[-1]) + 1)
        return f"V{''.join(parts)}__{words}{extension}"
    numbered = [m for m in (SEQUENCE.match(name) for name in names) if m]
    if not numbered:
        return f"001_{words}{extension}"
    latest = max(numbered, key=lambda m: int(m["number"]))
    number = int(latest["number"]) + 1
    return f"{number:0{len(latest['number'])}d}{latest['separator']}{words}{extension}"


def header(name: str, words: str) -> str:
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"-- {name}: {words.replace('_', ' ')}\n"
            f"-- Created by `remote_database_updater new` on {when} by {getpass.getuser()}.\n"
            "-- Runs once per database, in manifest order. Once it is applied anywhere, do not edit it (that is\n"
            "-- drift, refused): write the next change as a new script.\n")


def target_key(row: dict[str, str]) -> tuple[str, ...]:
    return tuple(row.get(column, "").lower() if column == "database_host" else row.get(column, "")
                 for column in TARGET_COLUMNS)


def matches(row: dict[str, str], wanted: str) -> bool:
    host, port, database = row.get("database_host", ""), row.get("port", ""), row.get("database", "")
    return wanted in (database, f"{host}/{database}", f"{host}:{port}/{database}")


def manifests_of(args: argparse.Namespace) -> list[Path]:
    from .. import tiers

    if args.file:
        return list(dict.fromkeys(args.file))
    found = tiers.find(args.config)
    if found is None:
        raise UsageError("new: name the manifest with -f MANIFEST (or add an environments.toml naming the tiers' "
                         "manifests)")
    if args.environment:
        return [found.get(args.environment).manifest]
    return list(dict.fromkeys(tier.manifest for tier in found.tiers.values()))


def run(args: argparse.Namespace) -> int:
    console = reporter_for(args)
    listed = [read(path) for path in manifests_of(args)]
    words = slug(args.name)
    cells = [row["sql_script_to_run"] for manifest in listed for row in manifest.rows if row.get("sql_script_to_run")]
    names = [PurePosixPath(cell.replace("\\", "/")).name for cell in cells]
    style = args.style or style_of(names)
    if style is None:
        raise UsageError("new: the manifest lists no numbered script, so its naming cannot be read; say which with "
                         "--style " + "|".join(STYLES))
    extension = args.extension if args.extension.startswith(".") else "." + args.extension
    filename = next_name(style, [n for n in names if _style(n) == style], words, extension)
    plans: list[tuple[Listed, str, Path, list[dict[str, str]]]] = []
    for manifest in listed:
        folder_cell = _folder(manifest, style)
        cell = f"{folder_cell}{filename}"
        script = (manifest.path.parent / cell).resolve()
        latest: dict[tuple[str, ...], dict[str, str]] = {}
        for row in manifest.rows:
            latest[target_key(row)] = row  # the target's last row: its current runner and settings
        chosen = list(latest.values())
        if args.target:
            unknown = [wanted for wanted in args.target if not any(matches(row, wanted) for row in chosen)]
            if unknown:
                raise UsageError(f"new: {manifest.path}: no target {unknown[0]!r} (targets: "
                                 f"{', '.join(row.get('database', '') for row in chosen)})")
            chosen = [row for row in chosen if any(matches(row, wanted) for wanted in args.target)]
        if not chosen:
            raise UsageError(f"new: {manifest.path} has no target to add the script for (no rows yet): add one row "
                             "by hand first")
        rows = [{**{column: ("" if column in SCRIPT_COLUMNS else row.get(column, "")) for column in manifest.header},
                 "sql_script_to_run": cell} for row in chosen]
        plans.append((manifest, cell, script, rows))
    written: set[Path] = set()
    for manifest, cell, script, rows in plans:
        if script not in written:
            if script.exists():
                raise UsageError(f"new: {script} exists already; nothing was written")
            script.parent.mkdir(parents=True, exist_ok=True)
            with script.open("x", encoding="utf-8") as handle:  # never overwrite
                handle.write(header(filename, words))
            written.add(script)
            console.say(f"created {script}", "green")
        append(manifest, rows)
        console.say(f"{manifest.path}: {len(rows)} row(s) added for {cell} (one per target); the next run applies "
                    "it", "green")
    return int(ExitCode.OK)


def _style(name: str) -> str | None:
    try:
        return style_of([name])
    except UsageError:
        return None


def _folder(manifest: Listed, style: str) -> str:
    """Where the manifest keeps its scripts, as its cells spell it (the latest numbered script's folder)."""
    cells = [row["sql_script_to_run"] for row in manifest.rows if row.get("sql_script_to_run")]
    same = [cell for cell in cells if _style(PurePosixPath(cell.replace("\\", "/")).name) == style]
    last = (same or cells or [""])[-1]
    slash = max(last.rfind("/"), last.rfind("\\"))
    return last[:slash + 1]


def append(manifest: Listed, rows: list[dict[str, str]]) -> None:
    """Rows added at the end of the manifest as text: what is there stays byte for byte."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=manifest.header, lineterminator=manifest.newline)
    writer.writerows(rows)
    lead = "" if manifest.text.endswith(("\n", "\r")) or not manifest.text else manifest.newline
    with manifest.path.open("a", encoding="utf-8", newline="") as handle:
        handle.write(lead + out.getvalue())


COMMAND = Command("new", "create the next script file, named as the manifest names its scripts, and add a row per "
                  "target to the manifest", add_arguments, lambda manifest, args: int(ExitCode.INTERNAL),
                  connects=False, locking=False, history=False, standalone=run)

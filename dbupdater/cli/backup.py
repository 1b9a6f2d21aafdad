"""`backup`: every target of the manifest (or `--target`), dumped on its runner by the engine's own tool and
streamed into the backup store (`--backup-dir`: a folder, by default `backups/` beside the manifest, or
s3://bucket/prefix), in parallel like `apply`, each with its sidecar. Also what the other backup commands
share: the store option, choosing targets by name, one row per target."""

from __future__ import annotations

import argparse
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from ..model.errors import UnresolvedReference, UsageError
from ..model.specs import Manifest, ManifestRow, first_row_per_database
from . import apply
from .common import Command, references
from .runs import run_of

if TYPE_CHECKING:
    from ..backups import Store
    from ..backups.store import S3Keys
    from ..execution.kinds import Chooser, StepKind
    from ..model.secret import Secret

DEFAULT_FOLDER = "backups"
KEY_VARIABLES = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backup-dir", metavar="DIR|s3://BUCKET/PREFIX",
                        help=f"the backup store: a folder (default: {DEFAULT_FOLDER}/ beside the manifest) or an "
                             "S3-compatible bucket (boto3: the AWS environment and config files, AWS_ENDPOINT_URL; "
                             "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY may hold vault:, env: or file: references)")


def s3_keys(base_dir: Path) -> S3Keys | None:
    """Keys from AWS_* variables that hold references (vault:, env:, file:), resolved and masked; None when
    they hold none (boto3 then reads the environment and its files itself, as the AWS CLI does)."""
    from ..backups.store import S3Keys

    given = {name: os.environ.get(name, "") for name in KEY_VARIABLES}
    if not any(value.startswith(("vault:", "env:", "file:")) for value in given.values()):
        return None
    resolve = references()
    secrets: dict[str, Secret | None] = {}
    for name, value in given.items():
        try:
            secrets[name] = resolve.resolve(value, base_dir) if value else None
        except UnresolvedReference as exc:
            raise UsageError(f"{name}: {exc}") from None
    key, secret = secrets["AWS_ACCESS_KEY_ID"], secrets["AWS_SECRET_ACCESS_KEY"]
    if key is None or secret is None:
        raise UsageError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY: give both (as values or references)")
    return S3Keys(key, secret, secrets["AWS_SESSION_TOKEN"])


def store_of(args: argparse.Namespace, base_dir: Path | None) -> Store:
    from ..backups import open_store

    where = getattr(args, "backup_dir", None)
    if where is None:
        if base_dir is None:
            raise UsageError("say where the backups are: --backup-dir DIR|s3://BUCKET/PREFIX, or -f MANIFEST (its "
                             f"{DEFAULT_FOLDER}/ folder)")
        where = str(base_dir / DEFAULT_FOLDER)
    keys = s3_keys(base_dir or Path.cwd()) if str(where).startswith("s3://") else None
    return open_store(where, keys)


def target_row(manifest: Manifest, name: str, option: str) -> ManifestRow:
    """The first row of the target `name` names: as plan and status name it (engine://host:port/database), or a
    database name when one target of the manifest has it; exit 2 otherwise, naming the candidates."""
    firsts = first_row_per_database(manifest.rows)
    exact = [row for row in firsts if row.db.target_label == name]
    if exact:
        return exact[0]
    named = [row for row in firsts if row.db.database == name]
    if len(named) == 1:
        return named[0]
    if named:
        raise UsageError(f"{option} {name}: {len(named)} targets of the manifest have this database name: "
                         f"{', '.join(row.db.target_label for row in named)}; name one of them")
    known = ", ".join(row.db.target_label for row in firsts[:10])
    raise UsageError(f"{option} {name}: no target of the manifest is called that (targets: {known})")


def acting(row: ManifestRow, what: str) -> ManifestRow:
    """A target's row for a step that runs none of the manifest's scripts (a backup, a restore, a copy), named
    by what it does instead of by the script of the row it was taken from: that name is what the console, the
    run folder and a saved plan show (for a restore or a copy, the name of the history entry it writes)."""
    return replace(row, script_label=what, script_id=what)


def one_row_per_target(manifest: Manifest, rows: list[ManifestRow]) -> Manifest:
    """A manifest of these rows only: a backup or a restore is one step per target, not one per script."""
    return replace(manifest, rows=rows)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_store_option(parser)
    parser.add_argument("--target", action="append", metavar="TARGET",
                        help="back up only this target (as plan and status name it, or its database name when "
                             "unique in the manifest); repeatable. Default: every target of the manifest")
    apply.add_run_arguments(parser)


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..execution.kinds import every_row
    from ..steps.dump import DumpStep, check_dumpable

    rows = ([target_row(manifest, name, "--target") for name in dict.fromkeys(args.target)] if args.target
            else first_row_per_database(manifest.rows))
    check_dumpable(rows)
    store = store_of(args, manifest.base_dir)
    rows = [acting(row, f"backup to {store.location}") for row in rows]
    return run_of(args, one_row_per_target(manifest, rows), "backup", every_row(DumpStep(store))).execute()


COMMAND = Command("backup", "back up every target of the manifest (or --target) with the engine's dump tool on its "
                  "runner, into a folder or an S3-compatible bucket (--backup-dir), each with a sidecar JSON",
                  add_arguments, run)


def backing_up_first(choose: Chooser, manifest: Manifest, args: argparse.Namespace) -> Chooser:
    """`apply --backup-before` (or a tier's backup_before): each kind wrapped so that a target's first row that
    runs takes a backup of the target first (exit 2 before anything when an engine cannot be backed up)."""
    from ..steps.dump import BackupFirst, BackupsBefore, check_dumpable

    check_dumpable(first_row_per_database(manifest.rows))
    store = store_of(args, manifest.base_dir)
    state = BackupsBefore()
    wrapped: dict[int, BackupFirst] = {}

    def chosen(row: ManifestRow) -> StepKind:
        kind = choose(row)
        return wrapped.setdefault(id(kind), BackupFirst(kind, store, state))

    return chosen

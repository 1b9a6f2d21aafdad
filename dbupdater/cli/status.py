"""`status`: the scripts x targets matrix from the history tables (latest entry per script, UTC)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from ..model.errors import ExitCode
from ..model.specs import DbKey, Manifest
from .common import Command, reporter_for, run_options

if TYPE_CHECKING:
    from ..ledger import Entry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", choices=("table", "json"), default="table", help="output format")


def status_records(histories: dict[DbKey, dict[str, Entry]], labels: dict[DbKey, str]) -> list[dict[str, Any]]:
    records = []
    for key, history in histories.items():
        for script, entry in history.items():
            records.append({"target": labels[key], "script": script, "status": entry.status,
                            "finished_at": entry.finished_at, "started_at": entry.started_at,
                            "checksum": entry.checksum, "run_id": entry.run_id, "runner_host": entry.runner_host,
                            "os_user": entry.os_user, "note": entry.note})
    return records


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    import pandas as pd

    from ..execution.pool import Deployment

    with Deployment(manifest, run_options(args)) as deployment:
        histories = deployment.open(lock=False)
    labels = {row.db.key: row.db.target_label for row in manifest.rows}
    records = status_records(histories, labels)
    targets = list(dict.fromkeys(labels.values()))
    scripts = list(dict.fromkeys([row.script_id for row in manifest.rows] + [r["script"] for r in records]))
    frame = pd.DataFrame(records, columns=["target", "script", "status", "finished_at"])
    frame["cell"] = frame["status"] + " " + frame["finished_at"].fillna("")
    matrix = frame.pivot_table(index="script", columns="target", values="cell", aggfunc="first")
    matrix = matrix.reindex(index=scripts, columns=targets)
    if args.output == "json":
        statuses = frame.pivot_table(index="script", columns="target", values="status", aggfunc="first")
        statuses = statuses.reindex(index=scripts, columns=targets)
        document = {
            "targets": targets,
            "scripts": scripts,
            "matrix": {script: {target: (None if pd.isna(value) else value) for target, value in row.items()}
                       for script, row in statuses.iterrows()},
            "history": records,
        }
        print(json.dumps(document, indent=2))
    else:
        reporter_for(args).status_table(matrix)
    return int(ExitCode.OK)


COMMAND = Command("status", "the scripts x targets matrix from the history tables", add_arguments, run,
                  locking=False)

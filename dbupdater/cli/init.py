"""`init [DIR]`: a starter project: manifests/ (one per tier), scripts/ (a first script), environments.toml with
the tiers local, ci, qa, uat, preprod and prod (prod requires approval and walks its databases in waves), and a
.gitignore for run folders, saved plans and backups.

It refuses to overwrite anything: every file it would write is checked first, and when one exists nothing is
written. What it writes validates as it is (`validate --environment qa --without-secrets`), and applies once a
manifest names a real database: the example rows hold placeholders, never a secret (passwords are `env:` and
`vault:` references).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..model.errors import ExitCode, UsageError
from .common import Command, reporter_for

TIERS = ("local", "ci", "qa", "uat", "preprod", "prod")
COLUMNS = ("sql_runner_host", "sql_runner_userid", "sql_runner_password", "sql_runner_port", "sql_runner_key_file",
           "transport", "database_type", "database_host", "database_userid", "database_password", "port", "database",
           "sql_script_to_run")
FIRST_SCRIPT = "001_create_example.sql"

ENVIRONMENTS = """\
# The tiers a change is promoted through, each with its manifest, its state in Vault and its policy.
# `--environment NAME` picks one: `plan --environment qa`, `apply --environment qa`.
# A flag that loosens a protected tier's policy is refused (exit 2): change the policy here, in review.
# Every key: README "Promotion through tiers".

[local]
description = "your machine: the client runs here (transport local)"
manifest = "manifests/local.csv"
record_state = false              # no Vault needed

[ci]
description = "throw-away databases of the pipeline"
manifest = "manifests/ci.csv"
record_state = false

[qa]
manifest = "manifests/qa.csv"
# state_path = "secret/ENVIRONMENTS/{environment}/{database}"   # the default

[uat]
manifest = "manifests/uat.csv"
warnings_are_errors = true

[preprod]
manifest = "manifests/preprod.csv"
protected = true                  # flags may tighten the policy, never loosen it
warnings_are_errors = true
keep_going = false

[prod]
manifest = "manifests/prod.csv"
require_approval = true           # only an approved saved plan: plan --save, then apply --plan (--yes on CI)
warnings_are_errors = true
keep_going = false
parallel = 4
per_runner = 2
script_timeout = "2h"
transports = ["ssh", "winrm"]
waves = ["1", "10%", "100%"]      # one database first, then up to 10%, then the rest; a failure stops the rest
pause_between_waves = false       # true: ask on the terminal before each later wave
backup_before = true              # kept for backups (a later release)
"""

GITIGNORE = """\
# dbupdater: run folders (run.json, junit.xml, report.html), saved plans and backups are artifacts, not sources
runs/
manifests/runs/
plans/
*.plan.json
backups/
"""

SCRIPT = """\
-- 001_create_example.sql: the first change. Runs once per database, in manifest order; once applied anywhere,
-- never edit it (that is drift, refused): write the next change as a new script (`remote_database_updater new`).
CREATE TABLE dbupdater_example (
    id INT NOT NULL PRIMARY KEY,
    name VARCHAR(100) NOT NULL
);
"""


def example_row(tier: str) -> dict[str, str]:
    """One placeholder row per tier: a local PostgreSQL for `local`, a runner over SSH elsewhere; passwords and
    keys as references (never a value)."""
    script = f"../scripts/{FIRST_SCRIPT}"
    if tier == "local":
        return {"transport": "local", "database_type": "PostgreSQL", "database_host": "127.0.0.1",
                "database_userid": "app", "database_password": "env:DBUPDATER_LOCAL_DB_PASSWORD", "port": "5432",
                "database": "app", "sql_script_to_run": script}
    return {"sql_runner_host": f"runner.{tier}.example.com", "sql_runner_userid": "deploy",
            "sql_runner_key_file": f"vault:secret/dbupdater/{tier}/runner#private_key", "transport": "ssh",
            "database_type": "PostgreSQL", "database_host": f"db.{tier}.example.com", "database_userid": "app",
            "database_password": f"vault:secret/dbupdater/{tier}/db#password", "port": "5432", "database": "app",
            "sql_script_to_run": script}


def manifest_text(tier: str) -> str:
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerow({column: "" for column in COLUMNS} | example_row(tier))
    return out.getvalue()


def files(root: Path) -> dict[Path, str]:
    """Everything init writes, by path."""
    written = {root / "environments.toml": ENVIRONMENTS, root / ".gitignore": GITIGNORE,
               root / "scripts" / FIRST_SCRIPT: SCRIPT}
    for tier in TIERS:
        written[root / "manifests" / f"{tier}.csv"] = manifest_text(tier)
    return written


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("directory", nargs="?", type=Path, default=Path("."),
                        help="where to write the project (default: the current directory; created if needed)")


def run(args: argparse.Namespace) -> int:
    console = reporter_for(args)
    root: Path = args.directory
    planned = files(root)
    there = [path for path in planned if path.exists() or path.is_symlink()]
    if there:
        raise UsageError(f"init: {', '.join(str(p) for p in there)} exist(s) already; init overwrites nothing, so "
                         "nothing was written")
    for path, text in planned.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("x", encoding="utf-8") as handle:  # "x": a file that appeared meanwhile is not overwritten
            handle.write(text)
        console.say(f"created {path}", "green")
    console.say("next: put your databases in manifests/*.csv (one row per database and script), then\n"
                "  remote_database_updater validate --environment qa --without-secrets\n"
                "  remote_database_updater apply --environment local\n"
                "  remote_database_updater new add_customers      # the next script, in every tier's manifest\n"
                "  remote_database_updater plan --environment prod --save prod.plan.json; "
                "remote_database_updater apply --environment prod --plan prod.plan.json", "bold")
    return int(ExitCode.OK)


COMMAND = Command("init", "write a starter project: manifests/, scripts/, environments.toml (local, ci, qa, uat, "
                  "preprod, prod) and .gitignore; overwrites nothing", add_arguments,
                  lambda manifest, args: int(ExitCode.INTERNAL), connects=False, locking=False, history=False,
                  standalone=run)

"""`ssh_and_run_database_script`: run ONE script through ONE runner, the fields of a manifest row as options.

Passwords are accepted only as references (env:VAR, file:PATH): a literal value in argv is visible to every
user of the machine through `ps`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from ..manifest import columns, is_reference
from ..model.errors import ManifestError, Problem, UsageError
from . import apply, execute
from .common import (
    EPILOG,
    add_connection_options,
    add_ledger_options,
    add_output_options,
    guarded,
    references,
    setup_logging,
)

PASSWORD_FIELDS = ("sql_runner_password", "database_password")
HELP = {
    "sql_runner_host": "runner host name or address",
    "sql_runner_userid": "SSH user on the runner",
    "sql_runner_password": "SSH password as env:VAR or file:PATH (empty: key or agent)",
    "database_type": "MySQL, MariaDB, PostgreSQL or Postgres (default: inferred from --port)",
    "database_host": "database host as seen from the runner",
    "database_userid": "database user",
    "database_password": "database password as env:VAR or file:PATH",
    "port": "database port",
    "database": "database name",
    "sql_script_to_run": "the SQL script to run (a local file)",
    "sql_runner_port": "SSH port (default: the SSH config's Port, else 22)",
    "sql_runner_key_file": "SSH private key file",
    "transport": "ssh (default) or local",
    "repeatable": "yes: run again whenever the script's content changes",
    "single_transaction": "yes: run the script in one transaction (PostgreSQL)",
    "encoding": "the script file's encoding (default utf-8; e.g. cp1252, latin1, utf-16): converted to UTF-8",
}


def option(field: str) -> str:
    return "--" + field.replace("_", "-")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,  # a CI script's typo must fail, not match a longer option
        prog="ssh_and_run_database_script",
        description="Run one SQL script through one runner host with the database's native client.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    for field in (*columns.REQUIRED, *columns.optional()):
        # Manifest spelling accepted too, so shell scripts can reuse the CSV column names.
        parser.add_argument(option(field), "--" + field, dest=field, default="", metavar="VALUE",
                            help=HELP.get(field) or columns.plugin_columns().get(field, ""))
    parser.add_argument("--no-history", action="store_true",
                        help="run the script without the history tables (like `exec`): nothing recorded, no lock, "
                             "it runs every time; judged and exit codes as usual")
    add_connection_options(parser)
    add_ledger_options(parser)
    add_output_options(parser)
    parser.set_defaults(command="apply")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    setup_logging(args.verbose)

    def body() -> int:
        from .. import manifest as manifest_module

        for field in PASSWORD_FIELDS:
            value = getattr(args, field)
            if value and not is_reference(value):
                raise UsageError(f"{option(field)} takes a reference (env:VAR or file:PATH): a literal "
                                 "password on the command line is visible to every user through ps")
        cells = {field: getattr(args, field) for field in (*columns.REQUIRED, *columns.optional())}
        try:
            manifest = manifest_module.from_mapping("options", Path.cwd(), cells, references=references())
        except ManifestError as exc:
            renamed = [Problem(p.message, None, option(p.column) if p.column else None) for p in exc.problems]
            raise ManifestError("options", renamed) from None
        return (execute.run if args.no_history else apply.run)(manifest, args)

    return guarded(body)

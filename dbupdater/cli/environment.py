"""`environment register | show | mark | remove`: the manifest's databases in an environment's state in Vault."""

from __future__ import annotations

import argparse
import json

from ..model.errors import ExitCode, UsageError
from ..model.specs import Manifest
from .common import Command, add_environment_options, environment_for, reporter_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("register", "show", "mark", "remove"),
                        help="register: status created; mark: set --status; remove: delete the state")
    parser.add_argument("--status", choices=("created", "running", "updating", "updated", "failed"),
                        help="the status for `mark`")
    parser.add_argument("--output", choices=("table", "json"), default="table", help="format for `show`")
    add_environment_options(parser, required=True)


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..environments import unique_databases
    from ..model.identity import RunIdentity

    reporter = reporter_for(args)
    environment = environment_for(args)
    assert environment is not None  # --environment is required
    databases = unique_databases(manifest)
    identity = RunIdentity()
    if args.action == "register":
        environment.register(databases, identity)
    elif args.action == "mark":
        if args.status is None:
            raise UsageError("environment mark needs --status")
        for db in databases:
            environment.mark(db, args.status, identity)
    elif args.action == "remove":
        environment.remove(databases)
    if args.action != "show":
        reporter.say(f"environment {environment.name}: {args.action} done for {len(databases)} database(s)", "green")
        return int(ExitCode.OK)
    records = {environment.path(db): environment.read(db) for db in databases}
    missing = [path for path, record in records.items() if record is None]
    if len(missing) == len(records):
        # A name nobody registered is a mistake in the command (a typo, the wrong --state-path), like a vault:
        # reference to a secret that is not there: exit 2, and no empty table that looks like an answer.
        raise UsageError(f"environment {environment.name} is not registered: none of the manifest's "
                         f"{len(records)} database(s) has a state in Vault (looked at {missing[0]}"
                         f"{' and others' if len(missing) > 1 else ''}); `environment register` records them")
    if missing:
        reporter.warn(f"environment {environment.name}: {len(missing)} of the manifest's {len(records)} databases "
                      "are not registered (`environment register` records them)")
    if args.output == "json":
        print(json.dumps(records, indent=2, default=str))
    else:
        reporter.environment_table(environment.name, records)
    return int(ExitCode.OK)


COMMAND = Command("environment", "register, show, mark or remove the manifest's databases in an environment's "
                                 "state in Vault", add_arguments, run, connects=False)

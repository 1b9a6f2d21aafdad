"""`remote_database_updater`: one module per command (each a `Command`: its options and its body); this
module only builds the parser from them and runs the chosen one. A bare `-f FILE` means `apply -f FILE`."""

from __future__ import annotations

import argparse
import contextlib
import functools
import sys
from collections.abc import Sequence

from .. import __version__
from ..model.errors import ExitCode, UsageError
from . import (
    apply,
    backup,
    backups,
    baseline,
    copy_db,
    environment,
    execute,
    init,
    new,
    plan,
    report,
    resolve,
    restore,
    revert,
    status,
    test,
    validate,
    wait_ready,
)
from .common import (
    ENVIRONMENT_HELP,
    EPILOG,
    Command,
    add_connection_options,
    add_ledger_options,
    add_manifest_options,
    add_output_options,
    guarded,
    references,
    select_tier,
    setup_logging,
)

COMMANDS: tuple[Command, ...] = tuple(module.COMMAND for module in (
    apply, execute, validate, plan, test, revert, status, resolve, baseline, environment, wait_ready, report,
    init, new, backup, backups, restore, copy_db))
SUBCOMMANDS = tuple(command.name for command in COMMANDS)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,  # a CI script's typo must fail, not match a longer option
        prog="remote_database_updater",
        description="Apply the SQL scripts of a manifest CSV, in order and each exactly once, through runner hosts.",
        epilog="A bare `-f FILE` means `apply -f FILE`.\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        sub = subparsers.add_parser(command.name, help=command.help, description=command.help, epilog=EPILOG,
                                    formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False)
        if command.standalone is None:
            add_manifest_options(sub)
            add_connection_options(sub)  # validate accepts them unused: scripts pass the same flags everywhere
        if command.connects and command.history:
            add_ledger_options(sub, locking=command.locking)
        add_output_options(sub)
        command.add_arguments(sub)
        if command.standalone is None:
            with contextlib.suppress(argparse.ArgumentError):  # the commands that record state add their own
                sub.add_argument("--environment", metavar="NAME", help=ENVIRONMENT_HELP)
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    if argv and (argv[0] in SUBCOMMANDS or argv[0] in ("-h", "--help", "--version")):
        return argv
    return ["apply", *argv] if argv else argv


def main(argv: Sequence[str] | None = None) -> int:
    given = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(_with_default_command(given))
    args.argv = given  # the command line as typed, for the run's report (redacted there)
    if args.command is None:
        build_parser().print_help()
        return int(ExitCode.USAGE)
    setup_logging(args.verbose)
    chosen = next(command for command in COMMANDS if command.name == args.command)
    if chosen.standalone is not None:
        return guarded(functools.partial(chosen.standalone, args))

    def body() -> int:
        from .. import manifest as manifest_module

        tier = select_tier(args)  # a flag loosening a protected tier's policy: exit 2 before anything is read
        if args.file is None:
            raise UsageError("-f MANIFEST is required (or --environment NAME naming a tier of environments.toml, "
                             "whose manifest it uses)")
        manifest = manifest_module.load(args.file, args.script_encoding,
                                        references(unread=getattr(args, "without_secrets", False)),
                                        strict=args.strict or (tier is not None and tier.policy.strict))
        if tier is not None:
            from ..tiers import check_rows  # loaded only with a tier (start-up time)

            check_rows(tier, manifest.rows)
        if args.shard:
            from ..model.shards import Shard

            manifest = Shard.parse(args.shard).select(manifest)
        return chosen.run(manifest, args)

    return guarded(body)

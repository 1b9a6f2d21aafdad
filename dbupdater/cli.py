"""`remote_database_updater`: apply a manifest. A bare `-f FILE` means `apply -f FILE`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import __version__
from .interrupts import sigterm_as_interrupt
from .model.errors import DbUpdaterError, ExitCode
from .model.secret import redact

if TYPE_CHECKING:
    from .environments import Environment
    from .manifest import References
    from .model.secret import Secret
    from .model.specs import Manifest
    from .report import ConsoleReporter
    from .runner import RunOptions

SUBCOMMANDS = ("apply", "validate", "plan", "status", "resolve", "baseline", "environment", "wait-ready")
EPILOG = """\
Credential cells may hold references: vault:MOUNT/PATH#KEY (Vault or OpenBao, KV 1 or 2; configured by
VAULT_ADDR, VAULT_TOKEN or VAULT_TOKEN_FILE or ~/.vault-token, VAULT_NAMESPACE, VAULT_CACERT, or AppRole via
VAULT_ROLE_ID and VAULT_SECRET_ID), env:VAR or file:PATH.

exit codes: 0 success (all applied or already applied); 1 a script failed; 2 manifest or usage error
(nothing ran); 3 a runner or database could not be used (unreachable, host key refused, authentication
failed, client missing); 4 internal error; 5 refused by the ledger (drift, a script in doubt, or the lock
held by another run; nothing ran); 130 interrupted (Ctrl-C or SIGTERM).

Ctrl-C once: start nothing new, let running scripts finish. Twice: cancel them on the servers. Three
times: leave at once. SIGTERM cancels running scripts and leaves after a few seconds.
"""


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


def setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("dbupdater")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    from .transports import registry

    registry.add_arguments(parser)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour output (default: auto, on a terminal)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")


def add_ledger_options(parser: argparse.ArgumentParser, *, locking: bool = True) -> None:
    group = parser.add_argument_group("history and locking")
    group.add_argument("--history-schema", metavar="NAME",
                       help="keep the history and lock tables in this database (MySQL) or schema (PostgreSQL) "
                            "instead of the target database itself / its default schema")
    if locking:
        group.add_argument("--lock-timeout", type=float, default=60.0, metavar="SECONDS",
                           help="wait this long for another run's lock on a database (default: %(default)s)")
        group.add_argument("--lock-lease", type=int, default=60, metavar="SECONDS",
                           help="a lock not renewed for this long is free again, e.g. after a killed run "
                                "(default: %(default)s)")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def add_environment_options(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    group = parser.add_argument_group("environment state (in Vault)")
    group.add_argument("--environment", metavar="NAME", required=required,
                       help="record this environment's state in Vault (created, running, updating, updated, failed)")
    group.add_argument("--state-path", metavar="TEMPLATE",
                       default=os.environ.get("DBUPDATER_STATE_PATH", "secret/ENVIRONMENTS/{environment}/{database}"),
                       help="Vault KV path of each database's state; placeholders {environment} {database} {engine} "
                            "{host} {port} {name} (default: %(default)s, or $DBUPDATER_STATE_PATH)")


def _command(commands: Any, name: str, help_text: str, *, connects: bool = True,
             locking: bool = True) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(name, help=help_text, description=help_text, epilog=EPILOG,
                                                          formatter_class=argparse.RawDescriptionHelpFormatter,
                                                          allow_abbrev=False)
    parser.add_argument("-f", "--file", type=Path, required=True, metavar="MANIFEST", help="manifest CSV")
    parser.add_argument("--shard", metavar="I/N",
                        help="only the I-th of N deterministic slices of the manifest's databases (CI matrix "
                             "jobs: 1/4 .. 4/4 together cover every database exactly once)")
    parser.add_argument("--script-encoding", default="utf-8", metavar="ENCODING",
                        help="encoding of scripts whose manifest row leaves the encoding column empty (default: "
                             "%(default)s; e.g. cp1252, latin1, utf-16): they are checked, and converted to UTF-8 "
                             "on the way to the runner")
    add_connection_options(parser)  # validate accepts them unused: scripts pass the same flags everywhere
    if connects:
        add_ledger_options(parser, locking=locking)
    add_output_options(parser)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        allow_abbrev=False,  # a CI script's typo must fail, not match a longer option
        prog="remote_database_updater",
        description="Apply the SQL scripts of a manifest CSV, in order and each exactly once, through runner hosts.",
        epilog="A bare `-f FILE` means `apply -f FILE`.\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    apply = _command(commands, "apply", "run every pending script of the manifest in order (the default)")
    fanout = apply.add_argument_group("parallelism")
    fanout.add_argument("--parallel", type=_positive, default=8, metavar="N",
                        help="run up to N databases at once, each database's scripts in manifest order "
                             "(default: %(default)s); 1 runs the whole manifest strictly in order")
    fanout.add_argument("--per-runner", type=_positive, default=4, metavar="M",
                        help="at most M databases at once through one runner host (default: %(default)s; sshd's "
                             "MaxSessions, 10 by default, bounds what one connection can carry)")
    fanout.add_argument("--keep-going", action="store_true",
                        help="after a failure, let the other databases go on (only the failed one stops); by "
                             "default nothing new starts anywhere and running scripts finish")
    apply.add_argument("--single-transaction", dest="all_single_transaction", action="store_true",
                       help="run each PostgreSQL script in one transaction (psql --single-transaction): a failed "
                            "script leaves nothing behind; MySQL DDL cannot be rolled back, so MySQL rows are "
                            "unaffected")
    _command(commands, "validate", "check the manifest and script files without connecting", connects=False)
    _command(commands, "plan", "connect, log in, read the history and show what apply would do; executes nothing",
             locking=False)
    status = _command(commands, "status", "the scripts x targets matrix from the history tables", locking=False)
    status.add_argument("--output", choices=("table", "json"), default="table", help="output format")
    resolve = _command(commands, "resolve", "settle scripts left running or failed, after you checked the database")
    resolve.add_argument("--script", action="append", default=[], metavar="PATH",
                         help="script as written in the manifest (repeatable)")
    resolve.add_argument("--all", action="store_true", help="every script in doubt in the manifest")
    resolve.add_argument("--mark", choices=("applied", "rerun"), required=True,
                         help="applied: the database has its effect; rerun: run it again (after you undid it)")
    baseline = _command(commands, "baseline", "record pending scripts as applied without running them (adopt an "
                                              "existing database)")
    baseline.add_argument("--up-to", metavar="PATH", help="stop after this script (default: all pending)")
    add_environment_options(apply)
    environment = _command(commands, "environment", "register, show, mark or remove the manifest's databases in "
                                                    "an environment's state in Vault", connects=False)
    environment.add_argument("action", choices=("register", "show", "mark", "remove"),
                             help="register: status created; mark: set --status; remove: delete the state")
    environment.add_argument("--status", choices=("created", "running", "updating", "updated", "failed"),
                             help="the status for `mark`")
    environment.add_argument("--output", choices=("table", "json"), default="table", help="format for `show`")
    add_environment_options(environment, required=True)
    ready = _command(commands, "wait-ready", "wait until every database of the manifest answers", locking=False)
    ready.add_argument("--via", choices=("runner", "direct"), default="runner",
                       help="runner: log in with the client on the runner, as a run does (default); direct: with "
                            "the Python drivers from this machine")
    ready.add_argument("--timeout", type=float, default=120.0, metavar="SECONDS",
                       help="give up after this long (default: %(default)s); exit 3 with the last error")
    add_environment_options(ready)
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    if argv and (argv[0] in SUBCOMMANDS or argv[0] in ("-h", "--help", "--version")):
        return argv
    return ["apply", *argv] if argv else argv


def reporter_for(args: argparse.Namespace) -> ConsoleReporter:
    from .report import ConsoleReporter

    color = {"auto": None, "always": True, "never": False}[args.color]
    return ConsoleReporter(color=color)


def guarded(body: Callable[[], int]) -> int:
    """Map errors to exit codes; everything that reaches the terminal is redacted."""
    try:
        with sigterm_as_interrupt():
            return body()
    except DbUpdaterError as exc:
        print(redact(f"error: {exc}"), file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception:  # last line of defence: never print an unredacted traceback
        print(redact("internal error (a bug; please report it):\n" + traceback.format_exc()), file=sys.stderr)
        return int(ExitCode.INTERNAL)


def run_options(args: argparse.Namespace) -> RunOptions:
    from .runner import RunOptions
    from .transports import registry

    return RunOptions(
        transports=registry.options(args),
        history_schema=getattr(args, "history_schema", None),
        lock_timeout=getattr(args, "lock_timeout", 60.0),
        lock_lease=getattr(args, "lock_lease", 60),
        single_transaction=getattr(args, "all_single_transaction", False),
        parallel=getattr(args, "parallel", 8),
        per_runner=getattr(args, "per_runner", 4),
        keep_going=getattr(args, "keep_going", False),
    )


def references() -> References:
    """Credential references, with vault: resolved by the process's Vault client (made on first use)."""
    from .manifest import References

    def vault_lookup(cell: str) -> Secret:
        from . import vault

        return vault.shared().resolve(cell)

    return References(vault=vault_lookup)


def environment_for(args: argparse.Namespace) -> Environment | None:
    if not getattr(args, "environment", None):
        return None
    from . import vault
    from .environments import Environment

    return Environment(vault.shared(), args.environment, args.state_path)


def dispatch(manifest: Manifest, args: argparse.Namespace) -> int:
    from . import commands

    reporter = reporter_for(args)
    environment = environment_for(args)
    if args.command == "environment":
        assert environment is not None
        return commands.run_environment(manifest, reporter, environment, args.action, args.status, args.output)
    if args.command == "validate":
        reporter.run_started(manifest)
        reporter.say("manifest is valid", "green")
        return int(ExitCode.OK)
    options = run_options(args)
    if args.command == "plan":
        return commands.run_plan(manifest, options, reporter)
    if args.command == "status":
        return commands.run_status(manifest, options, reporter, args.output)
    if args.command == "resolve":
        return commands.run_resolve(manifest, options, reporter, args.script, args.mark, args.all)
    if args.command == "baseline":
        return commands.run_baseline(manifest, options, reporter, args.up_to)
    if args.command == "wait-ready":
        return commands.run_wait_ready(manifest, options, reporter, args.via, args.timeout, environment)
    return commands.run_apply(manifest, options, reporter, environment)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_with_default_command(list(sys.argv[1:] if argv is None else argv)))
    if args.command is None:
        build_parser().print_help()
        return int(ExitCode.USAGE)
    setup_logging(args.verbose)

    def body() -> int:
        from . import manifest as manifest_module

        manifest = manifest_module.load(args.file, args.script_encoding, references())
        if args.shard:
            from .fanout import Shard

            manifest = Shard.parse(args.shard).select(manifest)
        return dispatch(manifest, args)

    return guarded(body)

"""`remote_database_updater`: apply a manifest. A bare `-f FILE` means `apply -f FILE`."""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .errors import DbUpdaterError, ExitCode
from .secrets import redact

SUBCOMMANDS = ("apply", "validate")
EPILOG = """\
exit codes: 0 all applied; 1 a script failed; 2 manifest or usage error (nothing ran);
3 a runner or database could not be used (unreachable, host key refused, authentication failed,
client missing); 4 internal error; 130 interrupted.
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
    group = parser.add_argument_group("runner connections")
    group.add_argument("--known-hosts", type=Path, default=Path("~/.ssh/known_hosts").expanduser(),
                       metavar="FILE", help="known_hosts file to verify runner host keys (default: %(default)s)")
    group.add_argument("--accept-new-host-keys", action="store_true",
                       help="trust and record host keys of runners not yet in known_hosts (trust on first "
                            "use); a changed key is still refused")
    group.add_argument("--connect-timeout", type=float, default=15.0, metavar="SECONDS",
                       help="SSH connect and authentication timeout (default: %(default)s)")


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour output (default: auto, on a terminal)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="remote_database_updater",
        description="Apply the SQL scripts of a manifest CSV, in order, through runner hosts.",
        epilog="A bare `-f FILE` means `apply -f FILE`.\n\n" + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    apply = commands.add_parser("apply", help="run every script of the manifest in order (the default)",
                                epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    apply.add_argument("-f", "--file", type=Path, required=True, metavar="MANIFEST", help="manifest CSV")
    add_connection_options(apply)
    add_output_options(apply)
    validate = commands.add_parser("validate", help="check the manifest and script files without connecting")
    validate.add_argument("-f", "--file", type=Path, required=True, metavar="MANIFEST", help="manifest CSV")
    add_connection_options(validate)  # accepted, unused: scripts pass the same flags to every command
    add_output_options(validate)
    return parser


def _with_default_command(argv: list[str]) -> list[str]:
    if argv and (argv[0] in SUBCOMMANDS or argv[0] in ("-h", "--help", "--version")):
        return argv
    return ["apply", *argv] if argv else argv


def reporter_for(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .report import ConsoleReporter

    color = {"auto": None, "always": True, "never": False}[args.color]
    return ConsoleReporter(color=color)


def guarded(body: Callable[[], int]) -> int:
    """Map errors to exit codes; everything that reaches the terminal is redacted."""
    try:
        return body()
    except DbUpdaterError as exc:
        print(redact(f"error: {exc}"), file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception:  # last line of defence: never print an unredacted traceback
        print(redact("internal error (a bug; please report it):\n" + traceback.format_exc()), file=sys.stderr)
        return 4


def apply_manifest(manifest, args: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    from .runner import run_manifest
    from .transports import SSHOptions

    reporter = reporter_for(args)
    reporter.run_started(manifest)
    options = SSHOptions(args.known_hosts.expanduser(), args.accept_new_host_keys, args.connect_timeout)
    result = run_manifest(manifest, options, reporter)
    reporter.run_finished(result)
    return int(result.exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(_with_default_command(list(sys.argv[1:] if argv is None else argv)))
    if args.command is None:
        build_parser().print_help()
        return int(ExitCode.USAGE)
    setup_logging(args.verbose)

    def body() -> int:
        from . import manifest as manifest_module

        manifest = manifest_module.load(args.file)
        if args.command == "validate":
            reporter = reporter_for(args)
            reporter.run_started(manifest)
            reporter.say("manifest is valid", "green")
            return int(ExitCode.OK)
        return apply_manifest(manifest, args)

    return guarded(body)

"""What every command shares: option groups, logging, the mapping of errors to exit codes, and building the
run's options, reporter, references and environment from parsed arguments (the CLI is where these meet)."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .. import defaults
from ..execution.interrupts import sigterm_as_interrupt
from ..model.errors import DbUpdaterError, ExitCode, UsageError
from ..model.secret import shown

if TYPE_CHECKING:
    from ..environments import Environment
    from ..execution.options import RunOptions
    from ..manifest import References
    from ..model.secret import Secret
    from ..model.specs import Manifest
    from ..reporting.console import ConsoleReporter
    from ..tiers import Tier

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


@dataclass(frozen=True)
class Command:
    """One subcommand: its parser's extras and its body. `connects`: it reaches runners; `history`: it reads or
    writes the history tables; `locking`: it takes the databases' locks."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[Manifest, argparse.Namespace], int]
    connects: bool = True
    locking: bool = True
    history: bool = True
    # A command that reads no manifest (`report`): run instead of `run`, without -f and connection options.
    standalone: Callable[[argparse.Namespace], int] | None = None


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return shown(super().format(record))


def setup_logging(verbose: int) -> None:
    """Debug logging from -vv (or --debug); a single -v streams the clients' output instead."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("%(levelname)s: %(message)s"))
    logger = logging.getLogger("dbupdater")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose >= 2 else logging.INFO)


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    """Each registered transport's options (SSH: known_hosts, host-key trust, connect timeout)."""
    from ..transports import registry

    registry.add_arguments(parser)


def add_output_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                        help="colour output (default: auto, on a terminal)")
    loudness = parser.add_mutually_exclusive_group()
    loudness.add_argument("-q", "--quiet", action="store_true",
                          help="only problems (failed rows, warnings, errors, interrupts, lock waits) and the summary")
    loudness.add_argument("-v", "--verbose", action="count", default=0,
                          help="also stream every line of the clients' output, prefixed by its database; -vv: and "
                               "debug logging on stderr")
    parser.add_argument("--debug", dest="verbose", action="store_const", const=2,
                        help="debug logging on stderr (as -vv)")


def add_ledger_options(parser: argparse.ArgumentParser, *, locking: bool = True) -> None:
    group = parser.add_argument_group("history and locking")
    group.add_argument("--history-schema", metavar="NAME",
                       help="keep the history and lock tables in this database (MySQL) or schema (PostgreSQL, "
                            "SQL Server; Oracle: an existing user's) instead of the target database itself / its "
                            "default schema")
    if locking:
        group.add_argument("--lock-timeout", type=float, default=defaults.LOCK_TIMEOUT, metavar="SECONDS",
                           help="wait this long for another run's lock on a database (default: %(default)s)")
        group.add_argument("--lock-lease", type=int, default=defaults.LOCK_LEASE, metavar="SECONDS",
                           help="a lock not renewed for this long is free again, e.g. after a killed run "
                                "(default: %(default)s)")


def add_manifest_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-f", "--file", type=Path, metavar="MANIFEST",
                        help="manifest CSV (not needed with --environment NAME of a tier: the tier names it)")
    parser.add_argument("--config", type=Path, metavar="FILE",
                        help="the tiers file (default: environments.toml in the current directory, if there is one)")
    parser.add_argument("--shard", metavar="I/N",
                        help="only the I-th of N deterministic slices of the manifest's databases (CI matrix "
                             "jobs: 1/4 .. 4/4 together cover every database exactly once)")
    parser.add_argument("--script-encoding", default=defaults.SCRIPT_ENCODING, metavar="ENCODING",
                        help="encoding of scripts whose manifest row leaves the encoding column empty (default: "
                             "%(default)s; e.g. cp1252, latin1, utf-16): they are checked, and converted to UTF-8 "
                             "on the way to the runner")
    parser.add_argument("--strict", action="store_true",
                        help="refuse blank scripts (empty or white space only; exit 2) instead of recording them as "
                             "applied without starting a client")


def add_environment_options(parser: argparse.ArgumentParser, *, required: bool = False) -> None:
    group = parser.add_argument_group("environment state (in Vault)")
    group.add_argument("--environment", metavar="NAME", required=required, help=ENVIRONMENT_HELP)
    parser.set_defaults(state_required=required)  # the command is about the state itself (`environment`)
    group.add_argument("--state-path", metavar="TEMPLATE",
                       help="Vault KV path of each database's state; placeholders {environment} {database} {engine} "
                            "{host} {port} {name} (default: the tier's state_path, else $DBUPDATER_STATE_PATH, else "
                            f"{defaults.STATE_PATH})")


FILE_NAME = "environments.toml"
ENVIRONMENT_HELP = ("the environment: a tier of environments.toml (its manifest, state path and policy), and the "
                    "name its state has in Vault (created, running, updating, updated, failed)")


def select_tier(args: argparse.Namespace) -> Tier | None:
    """The tier `--environment` names in environments.toml (or `--config`), applied to the arguments: its
    manifest when -f is not given, its state path, its policy combined with the flags (a flag loosening a
    protected tier's policy is exit 2, before anything is read or contacted). None without a tiers file, or
    without --environment: everything as before tiers existed."""
    name = getattr(args, "environment", None)
    args.tier = None
    if not name and getattr(args, "config", None) is None:
        return None  # no tier asked for: no tiers file read, nor its module loaded (start-up time)
    from .. import tiers

    found = tiers.find(getattr(args, "config", None))
    if found is None or not name:
        if getattr(args, "config", None) is not None and not name:
            raise UsageError("--config names a tiers file: choose a tier with --environment NAME")
        return None
    tier = found.get(name)
    args.tier = tier
    given = getattr(args, "file", None)
    if given is None:
        args.file = tier.manifest
    elif given.resolve() != tier.manifest.resolve() and tier.policy.protected:
        raise tiers.TierError(f"tier {tier.name} is protected: it applies {tier.manifest}, not -f {given}")
    if tier.state_path and not getattr(args, "state_path", None):
        args.state_path = tier.state_path
    if hasattr(args, "parallel"):  # the commands that walk targets
        effective = tiers.combine(tier, tiers.Given(args.parallel, args.per_runner, args.keep_going,
                                                    args.all_script_timeout))
        args.parallel, args.per_runner = effective.parallel, effective.per_runner
        args.all_script_timeout = effective.script_timeout
        args.loosened = effective.overridden
    return tier


def duration(text: str) -> float:
    from ..model.durations import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def guarded(body: Callable[[], int]) -> int:
    """Map errors to exit codes; everything that reaches the terminal is redacted."""
    try:
        with sigterm_as_interrupt(), _closing_consoles():
            return body()
    except DbUpdaterError as exc:
        print(shown(f"error: {exc}"), file=sys.stderr)
        return int(exc.exit_code)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return int(ExitCode.INTERRUPTED)
    except Exception:  # last line of defence: never print an unredacted traceback
        print(shown("internal error (a bug; please report it):\n" + traceback.format_exc()), file=sys.stderr)
        return int(ExitCode.INTERNAL)


_CONSOLES: list[ConsoleReporter] = []


@contextlib.contextmanager
def _closing_consoles() -> Iterator[None]:
    """A live view ends on every way out, before an error is printed: the terminal is left as it was found."""
    try:
        yield
    finally:
        while _CONSOLES:
            _CONSOLES.pop().close()


def reporter_for(args: argparse.Namespace) -> ConsoleReporter:
    from ..reporting.console import ConsoleReporter, Verbosity

    color = {"auto": None, "always": True, "never": False}[args.color]
    verbose = getattr(args, "verbose", 0)
    verbosity = (Verbosity.QUIET if getattr(args, "quiet", False) else
                 Verbosity.VERBOSE if verbose else Verbosity.NORMAL)
    # `--output json`: the document owns stdout, so people read stderr.
    stream = sys.stderr if getattr(args, "output", None) == "json" else None
    # Debug logging writes to stderr on its own, which would tear a live area: plain lines then.
    console = ConsoleReporter(stream, color=color, verbosity=verbosity, live=False if verbose >= 2 else None)
    _CONSOLES.append(console)
    return console


def run_options(args: argparse.Namespace) -> RunOptions:
    from ..execution.options import RunOptions
    from ..transports import registry

    return RunOptions(
        transports=registry.options(args),
        history_schema=getattr(args, "history_schema", None),
        lock_timeout=getattr(args, "lock_timeout", defaults.LOCK_TIMEOUT),
        lock_lease=getattr(args, "lock_lease", defaults.LOCK_LEASE),
        single_transaction=getattr(args, "all_single_transaction", False),
        parallel=getattr(args, "parallel", None) or defaults.PARALLEL,
        per_runner=getattr(args, "per_runner", defaults.PER_RUNNER),  # None: as --parallel, bounded
        keep_going=getattr(args, "keep_going", False),
        script_timeout=getattr(args, "all_script_timeout", None),
    )


def references(*, unread: bool = False) -> References:
    """Credential references, with vault: resolved by the process's Vault client (made on first use).
    `unread` (validate --without-secrets): references are checked for their form only and never read, so a
    CI job given no secrets validates everything else."""
    from ..manifest import References

    if unread:
        return _unread()

    def vault_lookup(cell: str) -> Secret:
        from .. import vault

        return vault.shared().resolve(cell)

    return References(vault=vault_lookup)


UNREAD = "-----BEGIN VALUE NOT READ (validate --without-secrets)-----"


def _unread() -> References:
    """References checked for their form only, never resolved (validate --without-secrets): the value stands in
    (a key reference reads as a key, not as a path, so no file is looked for)."""
    from .. import vault
    from ..manifest import References
    from ..model.errors import UnresolvedReference
    from ..model.secret import Secret

    class Unread(References):
        reads = False

        def resolve(self, cell: str, base_dir: Path) -> Secret:
            if cell.startswith("env:") and not cell[4:].isidentifier():
                raise UnresolvedReference(f"{cell}: not an environment variable's name")
            if cell.startswith("vault:"):
                path, _, key = cell[6:].partition("#")
                problem = vault.path_problem(path) if path else "names no path"
                if problem or not key:
                    why = problem or "names no #KEY"
                    raise UnresolvedReference(f"{cell}: {why} (the form is vault:MOUNT/PATH#KEY)")
            if cell.startswith(("env:", "file:", "vault:")):
                return Secret(UNREAD)
            return super().resolve(cell, base_dir)

    return Unread()


def environment_for(args: argparse.Namespace) -> Environment | None:
    """The environment whose state in Vault a command records (None: none named, or a tier that records none)."""
    tier: Tier | None = getattr(args, "tier", None)
    if tier is not None and not tier.record_state and getattr(args, "state_required", False):
        raise UsageError(f"tier {tier.name} records no state in Vault (record_state = false in {FILE_NAME})")
    if not getattr(args, "environment", None) or (tier is not None and not tier.record_state):
        return None
    from .. import vault
    from ..environments import Environment

    template = (getattr(args, "state_path", None) or os.environ.get("DBUPDATER_STATE_PATH") or defaults.STATE_PATH)
    return Environment(vault.shared(), args.environment, template)

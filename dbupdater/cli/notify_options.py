"""`--notify` and `--notify-hmac-secret` for `apply` and `exec`: read, checked and resolved before anything runs
(a bad value is exit 2), then a `Notifier` listening to the run.

Every notification URL is handled as a secret from the moment the command line is parsed (a Slack incoming
webhook's URL is its credential; a webhook's may carry a token), so it is masked in everything the tool
writes, the recorded command line of the run folder included.

A URL with a user name or password in it (`https://user:password@host/`) is refused: the HTTP client would
take `user:password@host` for the host name and every post would fail at the end of the run, after the
deployment, when a refusal before anything runs is what a user can act on. A receiver authenticates the tool
by the body's HMAC signature (`--notify-hmac-secret`, the secret never sent) or a token in the URL's path or
query, read through a reference.
"""

from __future__ import annotations

import argparse
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from ..manifest.references import PREFIXES, is_reference
from ..model.errors import UnresolvedReference, UsageError
from ..model.secret import Secret

if TYPE_CHECKING:
    from ..events import Reporter
    from ..manifest import References
    from ..reporting.notify import Notifier

KINDS = ("slack", "webhook")


def notify_value(text: str) -> tuple[str, str]:
    """KIND:URL or KIND:REFERENCE, checked as far as it can be without resolving anything."""
    from ..reporting.notify import check_url  # loaded only when the option is used (start-up time)

    kind, _, value = text.partition(":")
    if kind not in KINDS or not value:
        raise argparse.ArgumentTypeError(f"expected slack:URL or webhook:URL, the URL possibly a reference "
                                         f"(KIND:{'|KIND:'.join(PREFIXES)}...)")
    if not is_reference(value):
        Secret(value)  # masked from now on, wherever it might surface
        problem = check_url(value, kind) or credentials_problem(value)
        if problem:
            raise argparse.ArgumentTypeError(f"{kind}: {problem}")
    return kind, value


def credentials_problem(url: str) -> str | None:
    """Why a URL with user information is refused (see the module's docstring), or None; the message never
    repeats the URL, and the password in it is masked from now on."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return None  # check_url says what is wrong with it
    if "@" not in parts.netloc:
        return None
    if parts.password:
        Secret(parts.password)
    return ("the URL holds a user name or password (user:password@host), which this HTTP client would take for "
            "part of the host name; sign the body with --notify-hmac-secret, or put the receiver's token in the "
            "URL's path or query (through env:, file: or vault:)")


def secret_reference(text: str) -> str:
    if not is_reference(text):
        raise argparse.ArgumentTypeError("must be a reference (env:VAR, file:PATH or vault:MOUNT/PATH#KEY): a secret "
                                         "on the command line is visible to every user of the machine through ps")
    return text


def add_notify_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("notifications (at the end of the run; never change the exit code)")
    group.add_argument("--notify", action="append", type=notify_value, default=[], metavar="KIND:URL",
                       help="post the run's outcome: slack:URL (a Slack incoming webhook) or webhook:URL (a JSON "
                            "body); the URL may be a reference (slack:vault:MOUNT/PATH#KEY, env:VAR, file:PATH); "
                            "repeatable; each gets 10 s")
    group.add_argument("--notify-hmac-secret", type=secret_reference, metavar="REFERENCE",
                       help="sign webhook bodies with HMAC-SHA256 of this secret (env:, file: or vault: reference): "
                            "header X-Dbupdater-Signature: sha256=HEX over the exact body bytes, and "
                            "X-Dbupdater-Timestamp (the body's sent_at, which the signature covers)")


def notifier_for(args: argparse.Namespace) -> Notifier:
    """The run's notifier (with no destinations when none were asked for), every reference resolved now."""
    from ..reporting.notify import Destination, Notifier, check_url
    from .common import references

    given: list[tuple[str, str]] = getattr(args, "notify", None) or []
    hmac_reference: str | None = getattr(args, "notify_hmac_secret", None)
    refs = references()
    destinations: list[Destination] = []
    literal_slack = False
    for kind, value in given:
        if is_reference(value):
            url = _resolve(refs, value, f"--notify {kind}:{value}").reveal().strip()
            problem = check_url(url, kind) or credentials_problem(url)
            if problem:
                raise UsageError(f"--notify {kind}:{value}: what the reference holds is {problem}")
        else:
            url, literal_slack = value, literal_slack or kind == "slack"
        destinations.append(Destination(kind, Secret(url)))
    secret = None
    if hmac_reference is not None:
        if not any(kind == "webhook" for kind, _ in given):
            raise UsageError("--notify-hmac-secret signs webhook notifications, but no --notify webhook:URL is given")
        secret = _resolve(refs, hmac_reference, f"--notify-hmac-secret {hmac_reference}")
        if not secret.reveal():
            raise UsageError(f"--notify-hmac-secret {hmac_reference}: the secret is empty")
    notifier = Notifier(destinations, secret)
    notifier.literal_slack = literal_slack
    return notifier


def with_notifications(args: argparse.Namespace, reporter: Reporter) -> tuple[Reporter, Notifier | None]:
    """The run's reporter with the notifier listening too; its warnings go to the reporter as notices. Without
    --notify (nor --notify-hmac-secret) there is none, and the HTTP client is not even loaded (start-up time)."""
    from ..events import Level, Notice, Reporters

    if not getattr(args, "notify", None) and getattr(args, "notify_hmac_secret", None) is None:
        return reporter, None
    notifier = notifier_for(args)
    composite = Reporters([reporter, notifier])

    def warn(text: str) -> None:
        composite.handle(Notice(text, Level.WARNING))

    notifier.warn = warn
    if notifier.literal_slack:
        warn("a Slack webhook URL is on the command line, where `ps` shows it to every user of this machine: "
             "use slack:env:VAR, slack:file:PATH or slack:vault:MOUNT/PATH#KEY")
    return composite, notifier


def _resolve(refs: References, cell: str, where: str) -> Secret:
    try:
        return refs.resolve(cell, Path.cwd())
    except UnresolvedReference as exc:
        raise UsageError(f"{where}: {exc}") from None

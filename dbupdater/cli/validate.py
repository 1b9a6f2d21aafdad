"""`validate`: the manifest and every script checked (references resolved), nothing connected to."""

from __future__ import annotations

import argparse

from ..model.errors import ExitCode
from ..model.specs import Manifest
from .common import Command, reporter_for


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--without-secrets", action="store_true",
                        help="check everything but the secrets' values: env:, file: and vault: references are "
                             "checked for their form and never read (a CI job given no secrets, and no Vault)")


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..events import Level, Notice

    console = reporter_for(args)  # no run: only what the manifest says, and that it is valid
    console.run_started(manifest)
    console.notice(Notice("manifest is valid", Level.SUCCESS))
    return int(ExitCode.OK)


COMMAND = Command("validate", "check the manifest and script files without connecting", add_arguments, run,
                  connects=False)

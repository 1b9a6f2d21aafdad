"""`exec`: run every row's script on its target without the history (ad-hoc checks, reports, Meteor's test mode).

Judged exactly as `apply` judges, with the same exit codes; nothing is read from or written to the history
tables and no lock is taken, so every row runs each time and two `exec` runs may overlap. It is also how an
engine is tested end to end where no server of it can run (replay clients).
"""

from __future__ import annotations

import argparse

from ..model.specs import Manifest
from . import apply
from .common import Command
from .runs import run_of


def run(manifest: Manifest, args: argparse.Namespace) -> int:
    from ..steps import chooser

    return run_of(args, manifest, "exec", chooser(history=False)).execute()


COMMAND = Command("exec", "run every row's script on its target without the history: nothing recorded, no lock, "
                  "judged as apply judges", apply.add_run_arguments, run, locking=False, history=False)

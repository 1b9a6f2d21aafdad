"""The follower run as `copy-db --from SOURCE --to DEST --follow` / `--detach` runs it on a complete copy (the
manifest's first row is the source, the second the destination), for tests/test_follow.py while the command
line's cross-engine branch is being written: the same kinds of step, through the same Run.

    python tests/follow_driver.py MANIFEST KNOWN_HOSTS SCHEMA follow|detach [zero-dates]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dbupdater.conversion.catalog import catalog_sql, read_catalog
from dbupdater.conversion.model import ConversionPlan, TranslationOptions
from dbupdater.conversion.translate import translate
from dbupdater.events import Event, Notice, OutputLine, RunFinished, StepFinished
from dbupdater.execution.kinds import StepContext
from dbupdater.execution.options import RunOptions
from dbupdater.execution.run import Invocation, Run
from dbupdater.manifest import reader
from dbupdater.model.secret import redact
from dbupdater.model.specs import ManifestRow
from dbupdater.steps.follow import FollowedSource, FollowStep
from dbupdater.transports import registry


class Lines:
    def handle(self, event: Event) -> None:
        if isinstance(event, OutputLine):
            print(redact(event.line), flush=True)
        elif isinstance(event, Notice):
            print(redact(event.text), flush=True)
        elif isinstance(event, StepFinished):
            print(f"{event.outcome.step}: {event.outcome.status.value}: {redact(event.outcome.reason)}", flush=True)
        elif isinstance(event, RunFinished):
            print(f"finished: exit {event.exit_code}", flush=True)


def main(argv: list[str]) -> int:
    manifest_path, known_hosts, schema, mode, *rest = argv
    manifest = reader.load(Path(manifest_path))
    source = manifest.rows[0]

    def plan_of(context: StepContext) -> ConversionPlan:
        rows = context.deployment.channel(source).rows(catalog_sql(source.db.database))
        return translate(read_catalog(source.db.database, rows),
                         TranslationOptions(schema=schema, zero_dates=rest[0] if rest else "discard"))

    follow = FollowStep(source, plan_of, zero_dates=rest[0] if rest else "discard", detach=mode == "detach")
    reads = FollowedSource()

    def choose(row: ManifestRow) -> FollowStep | FollowedSource:
        return reads if row is source else follow

    options = RunOptions(transports=registry.options(argparse.Namespace(known_hosts=Path(known_hosts))))
    run = Run(manifest, Invocation("copy-db", tuple(argv)), options, Lines(), choose)
    return run.execute()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

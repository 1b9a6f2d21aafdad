"""Shards: a deterministic slice of a manifest's databases, so a CI matrix runs one fleet on many machines."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .errors import UsageError
from .specs import Manifest, targets

DIGITS = re.compile(r"[0-9]{1,9}")


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based, as CI matrices count
    count: int

    @classmethod
    def parse(cls, text: str) -> Shard:
        left, sep, right = text.partition("/")
        # ASCII digits only (`²` is a digit to str.isdigit, not to int()); nine at most, as run.json allows.
        if not (sep and DIGITS.fullmatch(left) and DIGITS.fullmatch(right) and 1 <= int(left) <= int(right)):
            raise UsageError(f"--shard {text!r}: expected I/N with 1 <= I <= N <= 999999999, e.g. 2/8")
        return cls(int(left), int(right))

    def select(self, manifest: Manifest) -> Manifest:
        """Targets sorted by (engine, host, port, database) dealt round-robin: disjoint, covering, balanced,
        and the same on every machine whatever order the manifest lists them in."""
        keys = sorted(targets(manifest.rows))
        mine = {key for position, key in enumerate(keys) if position % self.count == self.index - 1}
        rows = [row for row in manifest.rows if row.db.key in mine]
        note = f"shard {self.index}/{self.count}: {len(mine)} of {len(keys)} target(s), {len(rows)} script(s)"
        return replace(manifest, rows=rows, notes=[*manifest.notes, note])

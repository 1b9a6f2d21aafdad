"""Turn manifest rows and the databases' history into a plan: what each row would do, before anything runs."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from .checksum import VERSION, checksum
from .ledger import IN_DOUBT, NOT_APPLIED, SUCCESS, Entry
from .model.specs import DbKey, ManifestRow


class RowState(Enum):
    PENDING = "pending"
    CHANGED = "pending (repeatable, changed)"
    APPLIED = "applied"
    DRIFTED = "drifted"
    IN_DOUBT = "in doubt"

    @property
    def runs(self) -> bool:
        return self in (RowState.PENDING, RowState.CHANGED)

    @property
    def blocks(self) -> bool:
        return self in (RowState.DRIFTED, RowState.IN_DOUBT)


@dataclass
class PlannedRow:
    index: int
    row: ManifestRow
    checksum: str
    state: RowState
    detail: str = ""
    entry: Entry | None = None


def plan_rows(rows: list[ManifestRow], histories: dict[DbKey, dict[str, Entry]]) -> list[PlannedRow]:
    planned: list[PlannedRow] = []
    seen: dict[tuple[DbKey, str], int] = {}
    digests: dict[Path, str] = {}
    for index, row in enumerate(rows, start=1):
        digest = digests.get(row.script) or digests.setdefault(row.script, checksum(row.script))
        entry = histories.get(row.db.key, {}).get(row.script_id)
        state, detail = _state(row, digest, entry)
        first = seen.setdefault((row.db.key, row.script_id), index)
        if first != index and state.runs:
            state, detail = RowState.APPLIED, f"runs earlier in this manifest (row {first})"
        planned.append(PlannedRow(index, row, digest, state, detail, entry))
    return planned


def every_row(rows: list[ManifestRow]) -> list[PlannedRow]:
    """`exec`'s plan: every row runs, as listed (no history says otherwise)."""
    digests: dict[Path, str] = {}
    return [PlannedRow(index, row, digests.get(row.script) or digests.setdefault(row.script, checksum(row.script)),
                       RowState.PENDING, "exec: no history")
            for index, row in enumerate(rows, start=1)]


def _state(row: ManifestRow, digest: str, entry: Entry | None) -> tuple[RowState, str]:
    if entry is None or entry.status in NOT_APPLIED:
        return RowState.PENDING, "" if entry is None else f"last attempt {entry.describe()}"
    if entry.status in IN_DOUBT:
        return RowState.IN_DOUBT, (f"{entry.describe()}: it may be partially applied. Check the database, then "
                                   "run `resolve --mark applied` or `resolve --mark rerun` for this script")
    if entry.status != SUCCESS:
        return RowState.IN_DOUBT, f"unknown status {entry.status!r} in the history table"
    if entry.checksum == digest and entry.checksum_version == VERSION:
        return RowState.APPLIED, entry.describe()
    if row.repeatable:
        return RowState.CHANGED, f"content changed since {entry.describe()}"
    return RowState.DRIFTED, (f"applied with checksum {entry.checksum} ({entry.describe()}), but the file now has "
                              f"{digest}: an applied script must not change; add a new script instead")

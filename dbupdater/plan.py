"""Turn manifest rows and the databases' history into a plan: what each row would do, before anything runs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
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
    NOTHING = "nothing to do"  # a kind of step has nothing to do on this row (`test`: no verify script)

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
    step: str = "script"  # the kind of step that will do the row
    action: str = ""  # what that kind says it will do on the target, in a few words


Indexed = Iterable[tuple[int, ManifestRow]]  # rows with their 1-based place in the manifest
Histories = Mapping[DbKey, Mapping[str, Entry]]


class Digests:
    """Each script file's checksum, read once however many rows name it."""

    def __init__(self) -> None:
        self._known: dict[Path, str] = {}

    def __call__(self, path: Path) -> str:
        return self._known.get(path) or self._known.setdefault(path, checksum(path))


def plan_rows(rows: list[ManifestRow], histories: Histories) -> list[PlannedRow]:
    return plan_history(enumerate(rows, start=1), histories)


def plan_history(rows: Indexed, histories: Histories, step: str = "script",
                 digests: Digests | None = None) -> list[PlannedRow]:
    """Each row against its target's history: pending, applied, drifted or in doubt; a script listed twice
    for one target runs at its first place only."""
    planned: list[PlannedRow] = []
    seen: dict[tuple[DbKey, str], int] = {}
    digest_of = digests or Digests()
    restores: dict[DbKey, str | None] = {}
    for index, row in rows:
        digest = digest_of(row.script)
        entry = histories.get(row.db.key, {}).get(row.script_id)
        if row.db.key not in restores:
            restores[row.db.key] = failed_restore(histories.get(row.db.key, {}))
        state, detail = _state(row, digest, entry)
        if restores[row.db.key] is not None:
            state, detail = RowState.IN_DOUBT, str(restores[row.db.key])
        first = seen.setdefault((row.db.key, row.script_id), index)
        if first != index and state.runs:
            state, detail = RowState.APPLIED, f"runs earlier in this manifest (row {first})"
        planned.append(PlannedRow(index, row, digest, state, detail, entry, step))
    return planned


RESTORE = "restore "  # the history's entries of restores (`steps.restore`): `restore <backup>`
COPY = "copy from "  # and of copies (`steps.copy`, `steps.convert`): `copy from <target>[ (mysql to postgresql)]`


def failed_restore(history: Mapping[str, Entry]) -> str | None:
    """Why nothing may run on a target whose latest restore (or copy) failed or never finished: the database
    may hold part of a backup and part of what was there, so neither the history nor the scripts can be
    trusted until a restore succeeds."""
    restores = [entry for script, entry in history.items() if script.startswith((RESTORE, COPY))]
    if not restores:
        return None
    latest = max(restores, key=lambda entry: entry.id)
    if latest.status == SUCCESS:
        return None
    note = f"{': ' + latest.note if latest.note else ''}"
    if latest.script.startswith(COPY):
        return (f"its latest copy did not succeed ({latest.script}: {latest.describe()}{note}): the database may "
                "hold part of a copy; copy again (a copy that succeeds clears this)")
    return (f"its latest restore did not succeed ({latest.script[len(RESTORE):]}: {latest.describe()}"
            f"{note}): the database may be partly restored; restore a backup again (a restore that succeeds "
            "clears this)")


def every_row(rows: Indexed, step: str = "exec", digests: Digests | None = None) -> list[PlannedRow]:
    """A plan without history (`exec`): every row runs, as listed."""
    digest_of = digests or Digests()
    return [PlannedRow(index, row, digest_of(row.script), RowState.PENDING, "exec: no history", step=step)
            for index, row in rows]


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

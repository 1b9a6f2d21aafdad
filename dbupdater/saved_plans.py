"""Saved plans and approvals: "save the plan, apply exactly that plan".

`plan --save plan.json` writes what a run would do (every row's script checksum and state, every target with
its history state, the manifest's digest, the tier and the tool version) and a digest over all of it (sha256
of a canonical JSON). `apply --plan plan.json` rebuilds the same from what the databases say while it holds
their locks, and goes ahead only when both are equal; otherwise it names exactly what changed (a script
edited, a target added or removed, a target whose history moved, another manifest or tool version).

An approval names a plan by its digest: who approved it, on which host, when, and how (typed the tier's name on
a terminal, or `--yes` after the CI platform's own approval). It is recorded in every target's history, in the
environment state in Vault, in run.json and the report.

A saved plan holds no secret: names, addresses, checksums and history ids only (every string through `shown`).
"""

from __future__ import annotations

import getpass
import hashlib
import json
import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from . import __version__
from .ledger import Entry
from .model.errors import DbUpdaterError, ExitCode, UsageError
from .model.secret import shown
from .model.specs import DbKey, Manifest
from .plan import PlannedRow

FORMAT = "dbupdater-plan"
VERSION = 1
# Fields that describe the saving, not the plan: outside the digest (the same plan saved twice is one plan).
UNSIGNED = ("digest", "saved_at", "saved_by", "manifest_source")


class PlanChanged(DbUpdaterError):
    """The databases, scripts or manifest are no longer what the saved plan says (exit 5): nothing ran."""

    exit_code = ExitCode.REFUSED


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def canonical(data: Mapping[str, Any]) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def digest_of(data: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical({k: v for k, v in data.items() if k not in UNSIGNED})).hexdigest()


def file_digest(path: Path) -> str | None:
    try:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _entry(entry: Entry) -> dict[str, Any]:
    return {"id": entry.id, "status": entry.status, "checksum": entry.checksum, "run_id": entry.run_id}


@dataclass(frozen=True)
class SavedPlan:
    """A plan as saved: plain data with its digest."""

    data: dict[str, Any]

    @property
    def digest(self) -> str:
        return str(self.data["digest"])

    @property
    def environment(self) -> str | None:
        value = self.data.get("environment")
        return None if value is None else str(value)

    def runs(self) -> int:
        return sum(1 for row in self.data["rows"] if row["runs"])

    def write(self, path: Path) -> None:
        """Atomically, so a CI artifact is never half a plan."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text(json.dumps(self.data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        partial.replace(path)


def build(manifest: Manifest, planned: Sequence[PlannedRow], histories: Mapping[DbKey, Mapping[str, Entry]], *,
          environment: str | None, shard: str | None, policy: Mapping[str, Any] | None) -> SavedPlan:
    """The plan as it stands: every row of the manifest (as sharded), every target and its history."""
    source = Path(manifest.source)
    targets: dict[DbKey, dict[str, Any]] = {}
    for p in planned:
        key = p.row.db.key
        if key not in targets:
            history = histories.get(key, {})
            targets[key] = {"target": shown(p.row.db.target_label),
                            "history": {shown(script): _entry(entry) for script, entry in sorted(history.items())}}
    rows = [{"index": p.index, "line": p.row.line, "script": shown(p.row.script_id), "checksum": p.checksum,
             "target": shown(p.row.db.target_label), "state": p.state.value, "runs": p.state.runs}
            for p in planned]
    data: dict[str, Any] = {
        "format": FORMAT, "version": VERSION, "tool_version": __version__, "environment": environment,
        "shard": shard, "manifest_sha256": file_digest(source) if source.is_file() else None,
        "manifest_source": shown(manifest.source), "policy": None if policy is None else dict(policy),
        "targets": list(targets.values()), "rows": rows,
        "saved_at": utc_now(), "saved_by": f"{getpass.getuser()}@{socket.gethostname()}",
    }
    data["digest"] = digest_of(data)
    return SavedPlan(data)


def read(path: Path) -> SavedPlan:
    """A saved plan from its file; a file that is not one is a usage error (exit 2) naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"--plan {path}: cannot read it: {exc.strerror or exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"--plan {path}: not a saved plan (not JSON: {exc})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UsageError(f"--plan {path}: not a saved plan (format is not {FORMAT!r}); `plan --save` writes one")
    if data.get("version") != VERSION:
        raise UsageError(f"--plan {path}: saved plan version {data.get('version')!r}; this release reads {VERSION}")
    for key, kind in (("rows", list), ("targets", list), ("digest", str)):
        if not isinstance(data.get(key), kind):
            raise UsageError(f"--plan {path}: {key} is missing or not a {kind.__name__}")
    return SavedPlan(data)


def _short(checksum: str | None) -> str:
    """Enough of a digest to tell two apart in a sentence."""
    if not checksum:
        return "none"
    kind, _, value = checksum.rpartition(":")
    return f"{kind}:{value[:12]}" if kind else value[:12]


def _history(entry: Mapping[str, Any] | None) -> str:
    if entry is None:
        return "no entry"
    return f"{entry['status']} (entry {entry['id']}, run {str(entry['run_id'])[:8]})"


def differences(saved: SavedPlan, now: SavedPlan) -> list[str]:
    """What differs between the plan as saved and the plan as it stands, one sentence per difference (empty:
    the same plan). When this run is one shard of a plan saved for the whole manifest, only its targets are
    compared (the manifest's digest still covers the others)."""
    old, new = saved.data, now.data
    found: list[str] = []
    if digest_of(old) != old["digest"]:
        found.append("the plan file was edited after it was saved (its digest does not match its content)")
    for key, words in (("tool_version", "tool version"), ("environment", "environment")):
        if old.get(key) != new.get(key):
            found.append(f"{words}: the plan was saved for {old.get(key)!r}, this run is {new.get(key)!r}")
    if old.get("manifest_sha256") != new.get("manifest_sha256"):
        found.append(f"the manifest changed: {new.get('manifest_source')} is {_short(new.get('manifest_sha256'))}, "
                     f"the plan was saved from {_short(old.get('manifest_sha256'))}")
    before, after = old.get("policy") or {}, new.get("policy") or {}
    for key in sorted(before.keys() | after.keys()):
        if before.get(key) != after.get(key):
            found.append(f"the tier's policy changed: {key} was {before.get(key)!r}, is {after.get(key)!r}")
    partial = old.get("shard") is None and new.get("shard") is not None
    if not partial and old.get("shard") != new.get("shard"):
        found.append(f"shard: the plan was saved for {old.get('shard')!r}, this run is {new.get('shard')!r}")
    old_targets = {t["target"]: t for t in old["targets"]}
    new_targets = {t["target"]: t for t in new["targets"]}
    if partial:
        old_targets = {name: t for name, t in old_targets.items() if name in new_targets}
    for name in old_targets.keys() - new_targets.keys():
        found.append(f"target {name} was removed")
    for name in new_targets.keys() - old_targets.keys():
        found.append(f"target {name} was added")
    moved: set[str] = set()
    for name in sorted(old_targets.keys() & new_targets.keys()):
        before, after = old_targets[name]["history"], new_targets[name]["history"]
        for script in sorted(before.keys() | after.keys()):
            if before.get(script) != after.get(script):
                moved.add(name)
                found.append(f"target {name}: its history moved since the plan: {script} is now "
                             f"{_history(after.get(script))}, was {_history(before.get(script))}")
    old_rows = {(r["target"], r["script"], r["line"]): r for r in old["rows"] if r["target"] in old_targets}
    new_rows = {(r["target"], r["script"], r["line"]): r for r in new["rows"]}
    edited: dict[tuple[str, str, str], list[str]] = {}
    for row in sorted(old_rows.keys() & new_rows.keys()):
        a, b = old_rows[row], new_rows[row]
        if a["checksum"] != b["checksum"]:
            edited.setdefault((row[1], a["checksum"], b["checksum"]), []).append(row[0])
        elif a["state"] != b["state"] and row[0] not in moved:  # else its history said it already
            found.append(f"line {row[2]}: {row[1]} on {row[0]} is now {b['state']}, was {a['state']}")
    for (script, was, is_), where in edited.items():
        found.append(f"script {script} was edited (checksum {_short(is_)}, the plan has {_short(was)}) on "
                     f"{', '.join(where)}")
    for row in sorted(old_rows.keys() - new_rows.keys()):
        if row[0] in new_targets:
            found.append(f"line {row[2]}: {row[1]} on {row[0]} is no longer in the manifest")
    for row in sorted(new_rows.keys() - old_rows.keys()):
        if row[0] in old_targets:
            found.append(f"line {row[2]}: {row[1]} on {row[0]} was added to the manifest")
    return found


@dataclass(frozen=True)
class Approval:
    """Who approved which plan, when and how. `by`: the person (on CI, the platform's approver when it says
    so: DBUPDATER_APPROVED_BY, else the pipeline's actor), `host` where the approval was given."""

    by: str
    host: str
    at: str
    digest: str
    method: str  # "typed the tier's name on a terminal", "--yes (approved on the CI platform)"
    environment: str | None = None

    @classmethod
    def now(cls, digest: str, method: str, environment: str | None) -> Approval:
        who = (os.environ.get("DBUPDATER_APPROVED_BY") or os.environ.get("GITHUB_ACTOR")
               or os.environ.get("GITLAB_USER_LOGIN") or getpass.getuser())
        return cls(shown(who), socket.gethostname(), utc_now(), digest, method, environment)

    def note(self) -> str:
        """As the history's note column holds it: one line, searchable (`note LIKE 'approved %'`)."""
        tier = f" for {self.environment}" if self.environment else ""
        return f"approved {self.digest} by {self.by}@{self.host} at {self.at}{tier} ({self.method})"

    def data(self) -> dict[str, Any]:
        return {"by": self.by, "host": self.host, "at": self.at, "digest": self.digest, "method": self.method,
                "environment": self.environment}

"""Environment state in Vault: which databases an environment has, where they are, and how they are doing.

One key/value secret per database, at a path made from a template (default
`secret/ENVIRONMENTS/{environment}/{database}`). The status moves through the lifecycle
`created -> running -> updating -> updated | failed`: bring-up scripts register (`created`) and mark a
database `running` once it answers; every apply moves it to `updating`, then to `updated` or `failed`.
On a KV version 2 mount every change is kept as a version, so the history of an environment is there too.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

from . import defaults
from .execution.hooks import StopRun
from .model.errors import DbUpdaterError, UnreachableError, UsageError
from .model.identity import RunIdentity
from .model.outcome import RunResult, Status
from .model.specs import DatabaseSpec, Manifest, ManifestRow, first_row_per_database
from .plan import PlannedRow
from .saved_plans import Approval
from .vault import TokenRejected, Vault, VaultUnavailable, path_problem

CREATED, RUNNING, UPDATING, UPDATED, FAILED = "created", "running", "updating", "updated", "failed"
STATUSES = (CREATED, RUNNING, UPDATING, UPDATED, FAILED)
SAFE = re.compile(r"[^A-Za-z0-9._-]+")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class StateNotRecorded(UnreachableError):
    """The run ended, but its end could not be written to the environment's state in Vault (exit 3)."""


def now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def database_id(db: DatabaseSpec) -> str:
    """A path-safe, stable name for one database: engine, host, port and name."""
    return SAFE.sub("_", f"{db.engine}-{db.host}-{db.port}-{db.database}")


class Environment:
    def __init__(self, vault: Vault, name: str, template: str = defaults.STATE_PATH) -> None:
        if not NAME.match(name):
            raise UsageError(f"environment name {name!r}: use letters, digits, '.', '_' or '-' (at most 64)")
        if "{database}" not in template:
            raise UsageError(f"state path {template!r} must contain {{database}}, or all databases share one entry")
        problem = path_problem(template.strip("/"))
        if problem:
            raise UsageError(f"state path {template!r}: {problem}")
        self.vault = vault
        self.name = name
        self.template = template

    def path(self, db: DatabaseSpec) -> str:
        try:
            return self.template.format(environment=self.name, database=database_id(db), engine=db.engine,
                                        host=SAFE.sub("_", db.host), port=db.port, name=SAFE.sub("_", db.database))
        except (KeyError, IndexError, ValueError) as exc:
            raise UsageError(f"state path {self.template!r}: unknown placeholder {exc}") from None

    def read(self, db: DatabaseSpec) -> dict[str, Any] | None:
        return self.vault.read(self.path(db))

    def _update(self, db: DatabaseSpec, status: str | None, identity: RunIdentity | None, **fields: Any) -> None:
        def change(current: dict[str, Any] | None) -> dict[str, Any]:
            record = current or {"environment": self.name, "database_id": database_id(db), "created_at": now()}
            stamp = now()
            record.update(engine=db.engine, host=db.host, port=db.port, database=db.database, updated_at=stamp)
            if identity is not None:
                record["updated_by"] = f"{identity.os_user}@{identity.host}"
            if status is not None and record.get("status") != status:
                record["status"], record["status_since"] = status, stamp
            record.update(fields)
            return record

        self.vault.update(self.path(db), change)

    def register(self, dbs: Iterable[DatabaseSpec], identity: RunIdentity) -> None:
        for db in dbs:
            self._update(db, CREATED, identity)

    def mark(self, db: DatabaseSpec, status: str, identity: RunIdentity, **fields: Any) -> None:
        self._update(db, status, identity, **fields)

    def remove(self, dbs: Iterable[DatabaseSpec]) -> None:
        for db in dbs:
            self.vault.delete(self.path(db))

    def run_started(self, dbs: Iterable[DatabaseSpec], identity: RunIdentity,
                    approval: Approval | None = None) -> None:
        """`approval`: the approved plan the run applies, kept as `last_approval` (who, host, when, the plan's
        digest, how); on KV 2 every earlier approval stays in the entry's versions."""
        extra = {} if approval is None else {"last_approval": approval.data()}
        for db in dbs:
            self._update(db, UPDATING, identity, last_run_id=identity.run_id, last_run_started_at=now(),
                         last_run_finished_at="", **extra)

    def run_finished(self, manifest: Manifest, result: RunResult, identity: RunIdentity) -> None:
        for db, counts in counts_per_database(manifest, result).items():
            ok = counts["failed"] == counts["unreachable"] == counts["interrupted"] == counts["refused"] == 0
            complete = ok and counts["not run"] == 0
            self._update(db, UPDATED if complete else FAILED, identity, last_run_id=identity.run_id,
                         last_run_finished_at=now(), last_run_counts=counts,
                         last_run_result="updated" if complete else _summary(counts))


def unique_databases(manifest: Manifest) -> list[DatabaseSpec]:
    return [row.db for row in first_row_per_database(manifest.rows)]


def counts_per_database(manifest: Manifest, result: RunResult) -> dict[DatabaseSpec, dict[str, int]]:
    by_key = {db.key: db for db in unique_databases(manifest)}
    counts = {db: dict.fromkeys((s.value for s in Status), 0) for db in by_key.values()}
    for outcome in result.outcomes:
        counts[by_key[outcome.row.db.key]][outcome.status.value] += 1
    return counts


def _summary(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status}" for status, n in counts.items() if n)


class EnvironmentState:
    """A run hook: the state moves to `updating` before the first script, to `updated` or `failed` at the end."""

    def __init__(self, environment: Environment, manifest: Manifest, identity: RunIdentity) -> None:
        self.environment = environment
        self.manifest = manifest
        self.identity = identity
        self.approval: Approval | None = None

    def approved(self, approval: Approval) -> None:
        """The run applies an approved plan: recorded with the state as the run starts."""
        self.approval = approval

    def executing(self, planned: list[PlannedRow]) -> None:
        self.environment.run_started(unique_databases(self.manifest), self.identity, self.approval)

    def before_script(self, row: ManifestRow) -> None:
        pass

    def finished(self, result: RunResult) -> str | None:
        try:
            self.environment.run_finished(self.manifest, result, self.identity)
        except DbUpdaterError as exc:
            raise StateNotRecorded(f"the environment state in Vault could not be recorded ({exc}); it still says "
                                   "'updating'. The history tables in the databases are complete.") from exc
        return f"environment {self.environment.name}: state recorded in Vault"


class VaultHealth:
    """A run hook: Vault (token included) must still answer before each script, so state is never left
    silently stale and references are never read from a Vault that no longer trusts us."""

    def __init__(self, vault: Vault) -> None:
        self.vault = vault
        self._checked_at = 0.0
        self._guard = threading.Lock()

    def executing(self, planned: list[PlannedRow]) -> None:
        pass

    def before_script(self, row: ManifestRow) -> None:
        with self._guard:  # parallel workers: one check a second is enough
            if time.monotonic() - self._checked_at < 1.0:
                return
            self._check()
            self._checked_at = time.monotonic()

    def finished(self, result: RunResult) -> str | None:
        return None

    def _check(self) -> None:
        for attempt in range(3):  # a blip of a second or two is not worth stopping a deployment for
            try:
                self.vault.check()
                return
            except VaultUnavailable as exc:
                if attempt == 2 or isinstance(exc, TokenRejected):
                    raise StopRun(f"{exc}; nothing more runs (scripts done so far are in the history "
                                  "tables)") from None
                time.sleep(1.0)

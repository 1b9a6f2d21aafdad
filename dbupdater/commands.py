"""The bodies of the subcommands; the CLI only parses arguments and maps errors to exit codes."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from .ledger import RERUN, SUCCESS, Entry, RunIdentity
from .model.errors import DbUpdaterError, ExitCode, UsageError
from .model.specs import Manifest, first_row_per_database
from .plan import DbKey, RowState, plan_rows
from .report import ConsoleReporter
from .runner import Deployment, RunOptions, apply

if TYPE_CHECKING:
    from .environments import Environment
    from .readiness import Probe


def run_apply(manifest: Manifest, options: RunOptions, reporter: ConsoleReporter,
              environment: Environment | None = None) -> int:
    from . import vault
    from .environments import RunHooks, unique_databases

    reporter.run_started(manifest)
    identity = RunIdentity()
    hooks = None
    if environment is not None or vault.used():
        hooks = RunHooks(vault.shared(), environment, unique_databases(manifest), identity)
    planned, result = apply(manifest, options, reporter, hooks, identity)
    if any(p.state.blocks for p in planned):
        reporter.plan_table(planned)
        reporter.error("refused: nothing ran anywhere. Drifted scripts need a new script instead of an edit; "
                       "scripts in doubt need `resolve` after you checked the database.")
    else:
        reporter.run_finished(result)
    code = int(result.exit_code)
    if environment is not None and hooks is not None and hooks.started:
        try:
            environment.run_finished(manifest, result, identity)
        except DbUpdaterError as exc:
            reporter.error(f"the environment state in Vault could not be recorded ({exc}); it still says "
                           "'updating'. The history tables in the databases are complete.")
            code = code or int(ExitCode.UNREACHABLE)
        else:
            reporter.say(f"environment {environment.name}: state recorded in Vault", "dim")
    return code


def run_environment(manifest: Manifest, reporter: ConsoleReporter, environment: Environment, action: str,
                    status: str | None, output: str) -> int:
    from .environments import unique_databases

    databases = unique_databases(manifest)
    identity = RunIdentity()
    if action == "register":
        environment.register(databases, identity)
    elif action == "mark":
        if status is None:
            raise UsageError("environment mark needs --status")
        for db in databases:
            environment.mark(db, status, identity)
    elif action == "remove":
        environment.remove(databases)
    if action != "show":
        reporter.say(f"environment {environment.name}: {action} done for {len(databases)} database(s)", "green")
        return int(ExitCode.OK)
    records = {environment.path(db): environment.read(db) for db in databases}
    if output == "json":
        print(json.dumps(records, indent=2, default=str))
    else:
        reporter.environment_table(environment.name, records)
    return int(ExitCode.OK)


def run_wait_ready(manifest: Manifest, options: RunOptions, reporter: ConsoleReporter, via: str, timeout: float,
                   environment: Environment | None) -> int:
    from .environments import CREATED, RUNNING, now
    from .readiness import wait_ready

    def ready(probe: Probe) -> None:
        reporter.say(f"ready: {probe.db.target_label} after {probe.ready_after:.1f}s ({probe.attempts} "
                     f"attempt{'s' if probe.attempts > 1 else ''})", "green")
        if environment is not None:
            current = environment.read(probe.db) or {}
            if current.get("status") in (None, CREATED):
                environment.mark(probe.db, RUNNING, identity, ready_at=now())

    def retry(probe: Probe) -> None:
        reporter.say(f"waiting for {probe.db.target_label}: {probe.last_error}", "yellow")

    identity = RunIdentity()
    reporter.say(f"waiting up to {timeout:g}s for {len({r.db.key for r in manifest.rows})} database(s) "
                 f"({'directly from here' if via == 'direct' else 'through the runners'})")
    try:
        results = wait_ready(manifest, options, via=via, timeout=timeout, on_ready=ready, on_retry=retry)
    except ImportError as exc:
        if isinstance(exc, UsageError):
            raise  # from extras.require: names the feature, the module and how to install it
        from .extras import install_hint

        raise UsageError(f"--via direct needs the Python drivers ({exc.name}): {install_hint('drivers')}") from None
    late = [probe for probe in results if probe.ready_after is None]
    for probe in late:
        reporter.error(f"not ready after {timeout:g}s: {probe.db.target_label}: {probe.last_error}")
    return int(ExitCode.UNREACHABLE if late else ExitCode.OK)


def run_plan(manifest: Manifest, options: RunOptions, reporter: ConsoleReporter) -> int:
    reporter.run_started(manifest)
    with Deployment(manifest, options) as deployment:
        histories = deployment.open(lock=False)
        # one query per database, in manifest order
        holders = {row.db.key: deployment.ledger(row).holder() for row in first_row_per_database(manifest.rows)}
    planned = plan_rows(manifest.rows, histories)
    reporter.plan_table(planned)
    for key, holder in holders.items():
        if holder is not None:
            reporter.note(f"{_label(key)} is locked right now by {holder.describe()}")
    pending = sum(1 for p in planned if p.state.runs)
    if any(p.state.blocks for p in planned):
        reporter.error("the run would be refused (see drifted / in doubt above); nothing was executed")
        return int(ExitCode.REFUSED)
    reporter.say(f"the run can go ahead: {pending} script(s) to apply; nothing was executed", "green")
    return int(ExitCode.OK)


def _label(key: DbKey) -> str:
    engine, host, port, database = key
    return f"{engine}://{host}:{port}/{database}"


def status_records(manifest: Manifest, histories: dict[DbKey, dict[str, Entry]]) -> list[dict[str, Any]]:
    records = []
    for key, history in histories.items():
        for script, entry in history.items():
            records.append({"target": _label(key), "script": script, "status": entry.status,
                            "finished_at": entry.finished_at, "started_at": entry.started_at,
                            "checksum": entry.checksum, "run_id": entry.run_id, "runner_host": entry.runner_host,
                            "os_user": entry.os_user, "note": entry.note})
    return records


def run_status(manifest: Manifest, options: RunOptions, reporter: ConsoleReporter, output: str) -> int:
    import pandas as pd

    with Deployment(manifest, options) as deployment:
        histories = deployment.open(lock=False)
    records = status_records(manifest, histories)
    targets = list(dict.fromkeys(_label(row.db.key) for row in manifest.rows))
    scripts = list(dict.fromkeys([row.script_id for row in manifest.rows] + [r["script"] for r in records]))
    frame = pd.DataFrame(records, columns=["target", "script", "status", "finished_at"])
    frame["cell"] = frame["status"] + " " + frame["finished_at"].fillna("")
    matrix = frame.pivot_table(index="script", columns="target", values="cell", aggfunc="first")
    matrix = matrix.reindex(index=scripts, columns=targets)
    if output == "json":
        statuses = frame.pivot_table(index="script", columns="target", values="status", aggfunc="first")
        statuses = statuses.reindex(index=scripts, columns=targets)
        document = {
            "targets": targets,
            "scripts": scripts,
            "matrix": {script: {target: (None if pd.isna(value) else value) for target, value in row.items()}
                       for script, row in statuses.iterrows()},
            "history": records,
        }
        print(json.dumps(document, indent=2))
    else:
        reporter.status_table(matrix)
    return int(ExitCode.OK)


def run_resolve(manifest: Manifest, options: RunOptions, reporter: ConsoleReporter, scripts: list[str],
                mark: str, resolve_all: bool) -> int:
    if not scripts and not resolve_all:
        raise UsageError("name the scripts to resolve with --script (repeatable), or use --all")
    status = SUCCESS if mark == "applied" else RERUN
    with Deployment(manifest, options) as deployment:
        histories = deployment.open(lock=True, on_wait=reporter)
        planned = plan_rows(manifest.rows, histories)
        chosen = [p for p in planned if p.state is RowState.IN_DOUBT
                  and (resolve_all or p.row.script_id in scripts or p.row.script_label in scripts)]
        if not chosen:
            raise UsageError("no script in doubt matches; `plan` shows each script's state")
        who = deployment.identity
        for p in chosen:
            assert p.entry is not None
            note = (f"resolved by {who.os_user}@{who.host}: marked {mark}; was {p.entry.status} "
                    f"(run {p.entry.run_id[:8]})")
            deployment.ledger(p.row).set_status(p.entry, status, p.checksum, note)
            reporter.say(f"{p.row.script_id} on {p.row.db.target_label}: {p.entry.status} -> "
                         f"{'applied' if status == SUCCESS else 'to be run again'}", "green")
    return int(ExitCode.OK)


def run_baseline(manifest: Manifest, options: RunOptions, reporter: ConsoleReporter, up_to: str | None) -> int:
    rows = manifest.rows
    if up_to is not None:
        matches = [i for i, row in enumerate(rows) if up_to in (row.script_id, row.script_label)]
        if not matches:
            raise UsageError(f"--up-to {up_to!r} names no script of the manifest")
        rows = rows[: matches[-1] + 1]
    with Deployment(manifest, options) as deployment:
        histories = deployment.open(lock=True, on_wait=reporter)
        planned = plan_rows(rows, histories)
        blocked = [p for p in planned if p.state.blocks]
        if blocked:
            reporter.plan_table(blocked)
            reporter.error("baseline refused: resolve the scripts in doubt or drifted first; nothing was recorded")
            return int(ExitCode.REFUSED)
        who = deployment.identity
        count = 0
        for p in planned:
            if p.state.runs:
                deployment.ledger(p.row).baseline(p.row.script_id, p.checksum, 1,
                                                  f"baseline by {who.os_user}@{who.host}: marked applied, not run")
                count += 1
        reporter.say(f"baseline: {count} script(s) marked applied without running", "green")
    return int(ExitCode.OK)


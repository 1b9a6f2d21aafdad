"""Run documents made in memory, every field of the schema present, for tests of what reads and writes them
(`report`'s reader, junit.xml, report.html, merging) without running anything."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from dbupdater.reporting.document import FORMAT, VERSION, summarise, summarise_targets

# Fields whose strings are free text (any string is valid there); the others are times, enums or patterns.
CONSTRAINED = {"format", "status", "state", "level", "step", "started_at", "finished_at", "at", "shard", "sha256",
               "name", "got_to"}


def result(index: int, status: str, target: str = "mysql://db:3306/app", **changes: Any) -> dict[str, Any]:
    ran = status not in ("not run", "skipped")
    made = {
        "index": index, "line": index + 1, "script": f"{index:03d}_step.sql", "script_id": f"{index:03d}_step.sql",
        "target": target, "engine": "mysql", "database": "mysql app@db:3306/app", "runner": "deploy@runner1",
        "status": status, "reason": "exit 1" if status == "failed" else "", "exit_code": 1 if ran else None,
        "seconds": 1.25 if ran else 0.0, "started_at": "2024-05-01T12:00:01.000Z" if ran else None,
        "start_offset": 1.0 if ran else None, "end_offset": 2.25 if ran else None,
        "warnings": ["Warning 1365: Division by 0"] if ran else [], "omitted_warnings": 0,
        "errors": ["ERROR 1146 (42S02) at line 2: Table 'app.t' doesn't exist"] if status == "failed" else [],
        "omitted_errors": 0,
        "output": {"lines": [{"stream": "stdout", "text": "1 row affected"},
                             {"stream": "stderr", "text": "ERROR 1146"}], "omitted_lines": 3,
                   "omitted_bytes": 120} if ran else None,
    }
    made.update(changes)
    return made


def document(shard: str | None = None, run_id: str = "5f0c3a9e1b2d4c6e8f00112233445566", exit_code: int = 1,
             results: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A run document as a run writes it: a failure, a success, a row never run, with plan, notices and waits."""
    results = results if results is not None else [
        result(1, "applied"), result(2, "failed"), result(3, "not run"),
        result(4, "applied", target="postgresql://db:5432/app")]
    plan_rows = [{
        "index": r["index"], "line": r["line"], "script": r["script"], "script_id": r["script_id"],
        "checksum": "0" * 64, "target": r["target"], "database": r["database"], "runner": r["runner"],
        "state": "pending", "runs": True, "blocks": False, "detail": "",
        "history": {"status": "failed", "checksum": "1" * 64, "started_at": "2024-04-30 10:00:00",
                    "finished_at": None, "run_id": "0123456789abcdef", "runner_host": "ci-7", "os_user": "deploy",
                    "note": "earlier try"},
    } for r in results]
    return {
        "format": FORMAT, "version": VERSION, "tool": {"name": "dbupdater", "version": "0.2.0"},
        "run": {"id": run_id, "command": "apply", "argv": ["apply", "-f", "manifest.csv"], "environment": "qa",
                "shard": shard, "history": True, "report_dir": "/srv/ci/runs/x",
                "started_at": "2024-05-01T12:00:00.000Z", "finished_at": "2024-05-01T12:00:05.500Z",
                "seconds": 5.5, "exit_code": exit_code,
                "interrupted": False, "error": None},
        "manifest": {"source": "/srv/ci/manifest.csv", "sha256": "sha256:" + "a" * 64, "rows": len(results),
                     "targets": 2, "runners": 1, "notes": ["shard note"], "warnings": ["plain passwords"]},
        "plan": {"parallel": 8, "per_runner": 8, "caps": {"run": "2 databases on 1 runner: all 2 at once"},
                 "rows": plan_rows},
        "results": results, "targets": summarise_targets(results), "summary": summarise(results, exit_code),
        "notices": [{"level": "warning", "text": "notification to webhook http://127.0.0.1:9/*** failed"}],
        "interrupts": [{"step": "wait", "running": 1, "at": "2024-05-01T12:00:03.000Z"}],
        "lock_waits": [{"target": "mysql://db:3306/app", "holder": "run 0123 on ci-7",
                        "at": "2024-05-01T12:00:00.500Z"}],
    }


def free_text_paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place of a document holding free text, as a path of keys and indexes."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in CONSTRAINED:
                yield from free_text_paths(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from free_text_paths(item, (*path, index))
    elif isinstance(value, str):
        yield path


def with_text(original: dict[str, Any], texts: dict[tuple[Any, ...], str]) -> dict[str, Any]:
    """A copy with the text at each path replaced; summaries recomputed as a run would."""
    changed = copy.deepcopy(original)
    for path, text in texts.items():
        holder: Any = changed
        for step in path[:-1]:
            holder = holder[step]
        holder[path[-1]] = text
    changed["targets"] = summarise_targets(changed["results"])
    changed["summary"] = summarise(changed["results"], changed["run"]["exit_code"])
    return changed


def canonical(value: Any) -> Any:
    """The value as any JSON reader gets it back: a high and a low surrogate side by side are one character."""
    return json.loads(json.dumps(value))


def write(folder: Path, value: Any, name: str = "run.json") -> Path:
    """The document as a file; ASCII JSON, so lone surrogates travel as `\\ud800` escapes as a hostile file has."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(json.dumps(value), encoding="utf-8")
    return path

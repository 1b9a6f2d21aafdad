"""The run document (run.json): what a run did, built from its events as plain data, so that every file of the
run folder (JUnit, HTML), `--output json` and `report` read one structure instead of each following the run.

Every string that came from the manifest, a client or an error passes `shown()`: the document holds no secret
and no control character, so a file written from it is safe to upload as a CI artifact.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from itertools import repeat
from pathlib import Path
from typing import Any

from .. import __version__
from ..events import (
    Approved,
    Event,
    Interrupted,
    Notice,
    OutputLine,
    OutputLines,
    PlanMade,
    RunAborted,
    RunFinished,
    RunPlanned,
    RunStarted,
    StepFinished,
    StepNotice,
    StepStarted,
    WaitingForLock,
)
from ..model.outcome import Outcome, RunResult, Status
from ..model.secret import shown
from ..plan import PlannedRow

FORMAT = "dbupdater-run"
VERSION = 1
# Client output kept per script: the last lines, within a byte budget (a failure is explained by its end).
EXCERPT_LINES = 50
EXCERPT_BYTES = 16 * 1024
# A step's progress lines kept (StepNotice: the last ones; a copy of many tables says a line for each).
PROGRESS_LINES = 500
# Error and warning lines kept per script (the first ones: the first error is the cause, the rest follow).
MESSAGE_LINES = 50
MESSAGE_CHARS = 2000  # characters of one kept line

Document = dict[str, Any]
Sink = Callable[[Document], None]


def schema() -> dict[str, Any]:
    """The JSON Schema of this document (package data), for tools and tests that check a run.json."""
    text = resources.files(__package__).joinpath("schema", "run.schema.json").read_text(encoding="utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def utc(moment: float) -> str:
    return datetime.fromtimestamp(moment, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def moment(text: str) -> float:
    """The instant a time of the document (`utc`'s form) stands for; ValueError when it is not one."""
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} names no time zone")
    return parsed.timestamp()


def clean(text: str, limit: int = MESSAGE_CHARS) -> str:
    text = shown(text)
    return text if len(text) <= limit else f"{text[:limit]} [... {len(text) - limit} more characters]"


def digest(path: Path) -> str | None:
    try:
        with path.open("rb") as handle:
            hasher = hashlib.sha256()
            while chunk := handle.read(1 << 16):
                hasher.update(chunk)
            return "sha256:" + hasher.hexdigest()
    except OSError:
        return None


class Excerpt:
    """The last lines of one script's output within EXCERPT_LINES and EXCERPT_BYTES, counting what was cut.

    Every line a script prints passes through `add` (100 MB of short lines is a million calls), so it only
    appends to a ring of the last EXCERPT_LINES and counts; the byte bound is applied when the excerpt is
    written. What is kept is the same either way: the longest run of last lines within both bounds (at least
    one line), since a line dropped for either bound could never come back."""

    def __init__(self) -> None:
        self.lines: deque[tuple[str, str]] = deque(maxlen=EXCERPT_LINES)
        self.added = 0
        self.added_bytes = 0

    def add(self, stream: str, line: str) -> None:
        # Kept as it came and cleaned only when written (the byte bound counts characters, near enough to bytes
        # for a cap; what was cut is counted in bytes: isascii() is a flag, not a scan).
        self.lines.append((stream, line))
        self.added += 1
        self.added_bytes += len(line) if line.isascii() else len(line.encode())

    def extend(self, stream: str, lines: Sequence[str]) -> None:
        """`add` for each line, in C: a chunk of a million-line output is one call."""
        self.lines.extend(zip(repeat(stream), lines[-EXCERPT_LINES:]))
        self.added += len(lines)
        text = "".join(lines)
        self.added_bytes += len(text) if text.isascii() else len(text.encode())

    def kept(self) -> list[tuple[str, str]]:
        kept: list[tuple[str, str]] = []
        size = 0
        for stream, line in reversed(self.lines):
            size += len(line)
            if kept and size > EXCERPT_BYTES:
                break
            kept.append((stream, line))
        kept.reverse()
        return kept

    def data(self) -> dict[str, Any]:
        kept = self.kept()
        kept_bytes = sum(len(line.encode()) for _, line in kept)
        return {"lines": [{"stream": stream, "text": clean(text)} for stream, text in kept],
                "omitted_lines": self.added - len(kept), "omitted_bytes": self.added_bytes - kept_bytes}


class Progress:
    """A step's progress lines (StepNotice): the last PROGRESS_LINES, each `ongoing` one replacing the ongoing one
    just before it, so that a follower's lag said every few seconds for hours does not push out what was done."""

    def __init__(self) -> None:
        self.lines: deque[str] = deque(maxlen=PROGRESS_LINES)
        self.added = 0
        self.ongoing = False

    def add(self, text: str, ongoing: bool) -> None:
        if ongoing and self.ongoing and self.lines:
            self.lines[-1] = text
        else:
            self.lines.append(text)
            self.added += 1
        self.ongoing = ongoing

    def data(self) -> dict[str, Any]:
        return {"lines": [clean(line) for line in self.lines], "omitted_lines": self.added - len(self.lines)}


def _bounded(lines: Iterable[str]) -> tuple[list[str], int]:
    lines = list(lines)
    return [clean(line) for line in lines[:MESSAGE_LINES]], max(0, len(lines) - MESSAGE_LINES)


def plan_entry(p: PlannedRow) -> dict[str, Any]:
    row, entry = p.row, p.entry
    return {
        "index": p.index, "line": row.line, "script": clean(row.script_label), "script_id": clean(row.script_id),
        "checksum": p.checksum, "target": clean(row.db.target_label), "database": clean(row.db.label),
        "runner": clean(row.runner.label), "state": p.state.value, "runs": p.state.runs, "blocks": p.state.blocks,
        "detail": clean(p.detail), "step": p.step, "action": clean(p.action),
        "history": None if entry is None else {
            "status": entry.status, "checksum": entry.checksum, "started_at": entry.started_at,
            "finished_at": entry.finished_at, "run_id": entry.run_id, "runner_host": clean(entry.runner_host or ""),
            "os_user": clean(entry.os_user or ""), "note": clean(entry.note or ""),
        },
    }


@dataclass
class _Step:
    started: float | None = None
    finished: float | None = None


class RunDocument:
    """A listener that builds the run document; at RunFinished (or RunAborted) it hands the document to its sinks
    (the run folder, `--output json`). Sinks run once, in order; one that raises does not stop the others.

    A notice that comes after the end still belongs to the run: notifications are posted after the document
    was handed out (they listen after it, and may take their 10 s), and a failed one is a warning the run folder
    must hold too. It is added to the document, which is handed again to the `keepers` (the run folder, which
    rewrites its files); `--output json` printed it already."""

    def __init__(self, sinks: Iterable[Sink] = (), *, keepers: Iterable[Sink] = (),
                 clock: Callable[[], float] = time.time) -> None:
        self.sinks = list(sinks)
        self.keepers = list(keepers)
        self._amending = False
        self.clock = clock
        self._lock = threading.Lock()
        self.started = clock()
        self.run: dict[str, Any] = {"id": "", "command": "", "argv": [], "environment": None, "shard": None,
                                    "history": True, "report_dir": None}
        self.manifest: dict[str, Any] = {}
        self.plan: dict[str, Any] | None = None
        self.notices: list[dict[str, str]] = []
        self.interrupts: list[dict[str, Any]] = []
        self.waits: list[dict[str, str]] = []
        self.steps: dict[int, _Step] = {}
        self.excerpts: dict[int, Excerpt] = {}
        self.progress: dict[int, Progress] = {}
        self.done: Document | None = None

    def handle(self, event: Event) -> None:
        if type(event) is OutputLines or type(event) is OutputLine:  # every line a client prints comes here:
            with self._lock:  # no clock, no new Excerpt each time
                excerpt = self.excerpts.get(event.outcome.index)
                if excerpt is None:
                    excerpt = self.excerpts[event.outcome.index] = Excerpt()
                if isinstance(event, OutputLines):
                    excerpt.extend(event.stream, event.lines)
                else:
                    excerpt.add(event.stream, event.line)
            return
        now = self.clock()
        late = False
        with self._lock:
            if isinstance(event, StepStarted):
                self.steps.setdefault(event.outcome.index, _Step()).started = now
            elif isinstance(event, StepNotice):
                self.progress.setdefault(event.outcome.index, Progress()).add(event.text, event.ongoing)
            elif isinstance(event, StepFinished):
                self.steps.setdefault(event.outcome.index, _Step()).finished = now
            elif isinstance(event, RunStarted):
                self._started(event, now)
            elif isinstance(event, RunPlanned):
                self.plan = {"parallel": event.parallel, "per_runner": event.per_runner,
                             "caps": {clean(k): clean(v) for k, v in event.caps.items()},
                             "rows": [plan_entry(p) for p in event.planned]}
            elif isinstance(event, PlanMade) and self.plan is None:
                self.plan = {"parallel": None, "per_runner": None, "caps": {},
                             "rows": [plan_entry(p) for p in event.planned]}
            elif isinstance(event, Notice):
                notice = {"level": event.level.value, "text": clean(event.text)}
                self.notices.append(notice)
                if self.done is not None:
                    self.done["notices"].append(notice)
                    if not self._amending:  # a keeper's own warning while it writes is kept, not rewritten
                        late = self._amending = True
            elif isinstance(event, Interrupted):
                self.interrupts.append({"step": event.step.value, "running": event.running, "at": utc(now)})
            elif isinstance(event, Approved):
                self.run["approval"] = {key: None if value is None else clean(str(value))
                                        for key, value in event.approval.data().items()}
            elif isinstance(event, WaitingForLock):
                self.waits.append({"target": clean(event.db.target_label), "holder": clean(event.holder.describe()),
                                   "at": utc(now)})
        if isinstance(event, RunFinished):
            self.finish(event.result, exit_code=event.exit_code)
        elif isinstance(event, RunAborted):
            self.abort(event.exit_code, event.error)
        if late:
            self._amend()

    def _amend(self) -> None:
        with self._lock:
            assert self.done is not None
            snapshot = {**self.done, "notices": list(self.done["notices"])}
        try:
            for keeper in self.keepers:
                keeper(snapshot)
        finally:
            with self._lock:
                self._amending = False

    def _started(self, event: RunStarted, now: float) -> None:
        self.started = now
        manifest = event.manifest
        self.run = {**self.run, "id": event.run_id, "command": event.command, "argv": [clean(a) for a in event.argv],
                    "environment": None if event.environment is None else clean(event.environment),
                    "shard": event.shard, "history": event.history,
                    "report_dir": None if event.report_dir is None else clean(str(event.report_dir))}
        source = Path(manifest.source)
        self.manifest = {"source": clean(manifest.source), "sha256": digest(source) if source.is_file() else None,
                         "rows": len(manifest.rows), "targets": len({row.db.key for row in manifest.rows}),
                         "runners": len({row.runner for row in manifest.rows}),
                         "notes": [clean(n) for n in manifest.notes], "warnings": [clean(w) for w in manifest.warnings]}

    def _result(self, outcome: Outcome) -> dict[str, Any]:
        step = self.steps.get(outcome.index, _Step())
        warnings, more_warnings = _bounded(outcome.warnings)
        errors, more_errors = _bounded(outcome.errors)
        excerpt = self.excerpts.get(outcome.index)
        if excerpt is None and outcome.stdout_tail:  # a step without OutputLine events: keep what the outcome has
            excerpt = Excerpt()
            for line in outcome.stdout_tail:
                excerpt.add("stdout", line)
        row = outcome.row
        return {
            "index": outcome.index, "step": outcome.step, "line": row.line, "script": clean(row.script_label),
            "script_id": clean(row.script_id), "target": clean(row.db.target_label), "engine": row.db.engine,
            "database": clean(row.db.label), "runner": clean(row.runner.label), "status": outcome.status.value,
            "reason": clean(outcome.reason), "exit_code": outcome.exit_code, "seconds": round(outcome.seconds, 3),
            "started_at": None if step.started is None else utc(step.started),
            "start_offset": None if step.started is None else round(step.started - self.started, 3),
            "end_offset": None if step.finished is None else round(step.finished - self.started, 3),
            "warnings": warnings, "omitted_warnings": more_warnings, "errors": errors, "omitted_errors": more_errors,
            "output": None if excerpt is None else excerpt.data(),
            "progress": None if outcome.index not in self.progress else self.progress[outcome.index].data(),
        }

    def document(self, result: RunResult, *, exit_code: int | None = None, error: str | None = None) -> Document:
        finished = self.clock()
        with self._lock:
            results = [self._result(outcome) for outcome in result.outcomes]
            code = int(result.exit_code) if exit_code is None else exit_code
            run = {**self.run, "started_at": utc(self.started), "finished_at": utc(finished),
                   "seconds": round(result.seconds or finished - self.started, 3), "exit_code": code,
                   "interrupted": result.interrupted, "error": None if error is None else clean(error)}
            return {
                "format": FORMAT, "version": VERSION,
                "tool": {"name": "dbupdater", "version": __version__},
                "run": run, "manifest": dict(self.manifest), "plan": self.plan,
                "results": results, "targets": summarise_targets(results),
                "summary": summarise(results, code),
                "notices": list(self.notices), "interrupts": list(self.interrupts), "lock_waits": list(self.waits),
            }

    def finish(self, result: RunResult, *, exit_code: int | None = None, error: str | None = None) -> None:
        """Complete the document and hand it to the sinks, once."""
        if self.done is not None:
            return
        self.done = self.document(result, exit_code=exit_code, error=error)
        for sink in self.sinks:
            sink(self.done)

    def abort(self, exit_code: int, error: str) -> None:
        """The run ended by an error before it had a result (a runner unreachable, a lock timeout): the folder
        still says what was planned and why it ended."""
        self.finish(RunResult([], self.clock() - self.started), exit_code=exit_code, error=error)


PROBLEMS = (Status.FAILED.value, Status.UNREACHABLE.value, Status.REFUSED.value, Status.INTERRUPTED.value)


def summarise(results: list[dict[str, Any]], exit_code: int) -> dict[str, Any]:
    counts = {status.value: 0 for status in Status}
    for result in results:
        counts[result["status"]] = counts.get(result["status"], 0) + 1
    return {"exit_code": exit_code, "counts": counts, "rows": len(results),
            "targets": len({r["target"] for r in results}), "problems": sum(counts[p] for p in PROBLEMS)}


def summarise_targets(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """How far each target got, as the console's Targets table says it."""
    grouped: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        grouped.setdefault(result["target"], []).append(result)
    targets = []
    for target, rows in grouped.items():
        done = [r for r in rows if r["status"] in (Status.APPLIED.value, Status.SKIPPED.value)]
        bad = [r for r in rows if r["status"] in PROBLEMS]
        waiting = [r for r in rows if r["status"] == Status.NOT_RUN.value]
        if bad:
            got_to = f"stopped at {bad[0]['script']} ({bad[0]['status']})"
        elif waiting:
            got_to = f"not started after {done[-1]['script']}" if done else "not started"
        else:
            got_to = "complete"
        offsets = [r["start_offset"] for r in rows if r["start_offset"] is not None]
        ends = [r["end_offset"] for r in rows if r["end_offset"] is not None]
        targets.append({"target": target, "engine": rows[0]["engine"], "rows": len(rows), "done": len(done),
                        "problems": len(bad), "not_run": len(waiting), "got_to": got_to,
                        "seconds": round(sum(r["seconds"] for r in rows), 3),
                        "span": [min(offsets), max(ends)] if offsets and ends else None})
    return targets

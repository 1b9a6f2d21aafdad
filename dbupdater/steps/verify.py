"""Verify scripts: checks run on a target after its script (`apply`), or on their own over everything applied
(`test`: the test stage of a pipeline as one command).

A verify script runs through the engine's client like any script and fails when its client fails or the
engine's judge finds an error. A query after a line `-- dbupdater: expect empty` must return no rows: it is
rewritten, on the way to the runner, as a count of its rows printed after a marker, so every engine says it
in its own output (a `SELECT` of constants prints the marker in every client; the count is the first line
after it that is a whole number). The result is recorded in the target's history under the script's id with
`#verify` appended (its own checksum, fenced like a script's `running` row), so `status` shows it and the plan
of the script itself is untouched.
"""

from __future__ import annotations

import dataclasses
import re
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..checksum import VERSION
from ..engines import Engine
from ..engines import registry as engines
from ..execution.kinds import Histories, LinesSink, StepContext
from ..ledger import Entry, Ledger, recorded
from ..model.errors import DbUpdaterError
from ..model.outcome import Outcome, Status
from ..model.specs import DbKey, ManifestRow
from ..plan import Digests, PlannedRow, RowState, plan_history
from .client import CANCEL_FIRST, Ready, run_script
from .draft import Draft
from .ledgered import finish, refused

EXPECT_EMPTY = re.compile(r"^\s*--\s*dbupdater:\s*expect\s+empty\s*$", re.IGNORECASE)
MARKER = "dbupdater-expect-empty"
COUNT = re.compile(r"^[\s|]*(\d+)[\s|]*$")
SUFFIX = "#verify"


@dataclass(frozen=True)
class Expectation:
    number: int
    line: int  # of the marked query in the verify script


def rewrite(text: str, from_dual: str = "") -> tuple[str, list[Expectation]]:
    """The verify script as it runs: each query after an `expect empty` line becomes a count of its rows,
    after a marker line; what the script says otherwise is unchanged."""
    lines = text.splitlines()
    out: list[str] = []
    found: list[Expectation] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        out.append(line)
        index += 1
        if not EXPECT_EMPTY.match(line):
            continue
        start = index
        statement: list[str] = []
        while index < len(lines):
            statement.append(lines[index])
            index += 1
            if lines[index - 1].rstrip().endswith(";"):
                break
        query = "\n".join(statement).strip().rstrip(";").strip()
        if not query:
            continue
        number = len(found) + 1
        found.append(Expectation(number, start + 1))
        out.append(f"SELECT '{MARKER} {number}' AS dbupdater_marker{from_dual};")
        out.append(f"SELECT COUNT(*) AS dbupdater_rows FROM (\n{query}\n) dbupdater_q;")  # noqa: S608 - the verify script's own query
    return "\n".join(out) + "\n", found


class Counts:
    """The row counts of the expected-empty queries, read from a client's stdout as it streams: a marker line,
    then the first line after it that is a whole number. Only the counts are kept, never the output (a verify
    script may print a lot)."""

    def __init__(self) -> None:
        self.found: dict[int, int] = {}
        self.seen: set[int] = set()
        self._waiting: int | None = None

    def feed(self, line: str) -> None:
        if MARKER in line and "dbupdater_marker" not in line:  # the value, not the column's header
            rest = line.split(MARKER, 1)[1].split()
            number = rest[0].strip("|") if rest else ""
            if number.isdigit():
                self._waiting = int(number)
                self.seen.add(self._waiting)
            return
        if self._waiting is not None and (match := COUNT.match(line)):
            self.found[self._waiting] = int(match.group(1))
            self._waiting = None

    def unmet(self, expectations: list[Expectation]) -> str | None:
        """Why an expectation was not met (rows came back, or no count could be read), or None."""
        for expectation in expectations:
            if expectation.number not in self.seen:
                return f"the query expected empty at line {expectation.line} did not run"
            count = self.found.get(expectation.number)
            if count is None:
                return f"the row count of the query expected empty at line {expectation.line} could not be read"
            if count:
                return f"the query expected empty at line {expectation.line} returned {count} row(s)"
        return None


def unmet(stdout: list[str], expectations: list[Expectation]) -> str | None:
    """`Counts.unmet` over lines already read."""
    counts = Counts()
    for line in stdout:
        counts.feed(line)
    return counts.unmet(expectations)


class Rewritten:
    """Each verify script rewritten once per run, kept in a private temporary folder until the run ends."""

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="dbupdater-verify-")
        self._made: dict[tuple[Path, str, str], tuple[Path, list[Expectation]]] = {}
        self._lock = threading.Lock()

    def get(self, row: ManifestRow, engine: Engine) -> tuple[Path, list[Expectation]]:
        assert row.verify is not None
        key = (row.verify, row.encoding, engine.dialect.from_dual)
        with self._lock:
            made = self._made.get(key)
            if made is None:
                text, expectations = rewrite(row.verify.read_text(encoding=row.encoding), engine.dialect.from_dual)
                path = Path(self._folder.name) / f"{len(self._made) + 1:05d}-{row.verify.name}"
                path.write_text(text, encoding="utf-8")
                made = self._made[key] = (path, expectations)
        return made


class Verifier:
    """Runs a row's verify script on its target and records the result; shared by the script kind (after a
    script) and the verify kind (`test`)."""

    def __init__(self) -> None:
        self.rewritten = Rewritten()
        self.digests = Digests()
        self.seen: dict[tuple[DbKey, str], Entry | None] = {}  # the history each verify entry had when planned

    def remember(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> None:
        for _, row in rows:
            if row.verify is not None:
                self.seen[(row.db.key, row.script_id + SUFFIX)] = histories.get(row.db.key, {}).get(
                    row.script_id + SUFFIX)

    def after(self, planned: PlannedRow, context: StepContext, draft: Draft, *, record: bool = True) -> None:
        """The row's script applied: its verify script decides whether the row stands. A failed verify fails
        the row (the target stops) while the history keeps the script applied, as it is, and the verify
        failed (`record`; `exec` records nothing)."""
        row = planned.row
        check = Draft(planned.index, row, "verify")
        self.verify(row, context, check, context.on_lines, record=record)
        if check.status is Status.APPLIED:
            draft.reason += f"; verified by {row.verify_id}"
            return
        draft.status = check.status
        draft.reason = f"applied, but its verify script {row.verify_id} failed: {check.reason}"
        draft.exit_code = check.exit_code
        draft.errors = [*draft.errors, *check.errors]
        draft.warnings = [*draft.warnings, *check.warnings]

    def verify(self, row: ManifestRow, context: StepContext, draft: Draft,
               on_lines: LinesSink | None = None, *, record: bool = True) -> None:
        """Fill `draft` with the verify script's verdict; record it in the history (unless not `record`)."""
        assert row.verify is not None
        deployment = context.deployment
        engine = engines.get(row.db.engine)
        path, expectations = self.rewritten.get(row, engine)
        counts = Counts()

        def feed(stream: str, lines: list[str]) -> None:
            if stream == "stdout" and expectations:
                for line in lines:
                    counts.feed(line)
            if on_lines is not None:
                on_lines(stream, lines)

        try:
            ledger = deployment.ledger(row) if record else None
            session = deployment.session(row.runner)
            remote = session.upload(path, "utf-8")
            on = Ready(session, remote, session.credentials(row.db), engine, session.client(engine))
        except DbUpdaterError as exc:
            draft.status, draft.reason = Status.UNREACHABLE, f"the verify script did not start: {exc}"
            return
        verify_id = row.script_id + SUFFIX
        entry = self.seen.get((row.db.key, verify_id))
        verified = PlannedRow(draft.index, row, self.digests(row.verify), RowState.PENDING, entry=entry)
        if ledger is not None:
            try:
                ledger.mark_running(verify_id, verified.checksum, VERSION, entry)
            except DbUpdaterError as exc:
                refused(ledger, _as(verified, verify_id), draft, f"the verify script did not start: {exc}",
                        [str(exc)])
                return
        run_script(on, row, draft, False, "", feed, row.script_timeout or context.options.script_timeout,
                   CANCEL_FIRST)
        if draft.status is Status.APPLIED and (why := counts.unmet(expectations)):
            draft.status, draft.reason = Status.FAILED, why
        if ledger is not None:
            self.seen[(row.db.key, verify_id)] = None  # written by this run: a second verify in it is not fenced
            _record(ledger, _as(verified, verify_id), draft, context)


def _as(planned: PlannedRow, script_id: str) -> PlannedRow:
    """The planned verify entry under its own id in the history."""
    return dataclasses.replace(planned, row=dataclasses.replace(planned.row, script_id=script_id))


def _record(ledger: Ledger, planned: PlannedRow, draft: Draft, context: StepContext) -> None:
    status = recorded(draft.status)
    if draft.status is Status.UNREACHABLE:
        return  # nobody can tell: the history keeps it running, and `status` shows it
    finish(ledger, planned, status, draft, context)


class VerifyStep:
    """`test`: run the verify script of every applied row; rows not applied yet, or without a verify script,
    have nothing to check."""

    name = "verify"
    history = True

    def __init__(self) -> None:
        self.verifier = Verifier()
        self._digests = Digests()

    def plan(self, rows: Sequence[tuple[int, ManifestRow]], histories: Histories) -> list[PlannedRow]:
        self.verifier.remember(rows, histories)
        planned = []
        for p in plan_history(rows, histories, self.name, self._digests):
            if p.state.blocks:
                planned.append(p)
            elif p.row.verify is None:
                planned.append(_nothing(p, "no verify script"))
            elif p.state is not RowState.APPLIED:
                planned.append(_nothing(p, "not applied yet: nothing to verify"))
            else:
                planned.append(dataclasses.replace(p, state=RowState.PENDING, detail=f"verify {p.row.verify_id}"))
        return planned

    def describe(self, planned: PlannedRow) -> str:
        if planned.row.verify is None:
            return "nothing: no verify script"
        return f"run {planned.row.verify_id} to check {planned.row.script_label}"

    def run(self, planned: PlannedRow, context: StepContext) -> Outcome:
        draft = Draft(planned.index, planned.row, self.name)
        self.verifier.verify(planned.row, context, draft, context.on_lines)
        if draft.status is Status.APPLIED:
            draft.reason = f"verified by {planned.row.verify_id}"
        return draft.outcome()


def _nothing(p: PlannedRow, why: str) -> PlannedRow:
    return dataclasses.replace(p, state=RowState.NOTHING, detail=why)

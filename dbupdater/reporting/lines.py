"""The console's lines for rows: each names its script, its database and its runner, because with many
databases in parallel the lines of different databases interleave, and a line that does not say which
script on which database it is about tells nobody anything.

Every string passes through `shown()` (secrets masked, control characters escaped) and becomes a rich
`Text`, so manifest values and client output are never parsed as markup.
"""

from __future__ import annotations

from rich.text import Text

from ..model.outcome import Outcome, Status
from ..model.secret import shown
from ..model.specs import ManifestRow

STYLES = {
    Status.APPLIED: "green",
    Status.SKIPPED: "dim green",
    Status.REFUSED: "bold red",
    Status.FAILED: "bold red",
    Status.UNREACHABLE: "bold red",
    Status.INTERRUPTED: "bold yellow",
    Status.NOT_RUN: "dim",
}
PROBLEMS = {Status.FAILED, Status.UNREACHABLE, Status.REFUSED, Status.INTERRUPTED}
MAX_SHOWN_LINES = 25  # warning or error lines of one row
SHOWN_LINE = 2000  # characters of one client output line on screen


def short(line: str) -> str:
    return line if len(line) <= SHOWN_LINE else f"{line[:SHOWN_LINE]} [... {len(line) - SHOWN_LINE} more characters]"


def text(value: str, style: str = "") -> Text:
    return Text(shown(value), style=style)


def where(row: ManifestRow) -> str:
    """script on target via runner: the three things that tell rows apart."""
    return f"{row.script_label} on {row.db.target_label} via {row.runner.label}"


PLAIN = (None, "script", "exec")  # kinds whose rows are the manifest's scripts, named by them


def kind(outcome: Outcome) -> str:
    """The kind of step, said where it is not the plain script (a command, a pause, a verify, an undo) and the
    row's name does not say it already."""
    return "" if says_its_kind(outcome.step, outcome.row.script_label) else f"{outcome.step} "


def says_its_kind(step: str | None, name: str) -> bool:
    """Whether a row's name is enough to tell what kind of step does it (what the run document's readers,
    junit among them, ask too)."""
    return step in PLAIN or named_by_action(step, name)


def named_by_action(step: str | None, name: str) -> bool:
    """A row named by what it does rather than by a script (`backup to <store>`, `restore <backup>`, `copy from
    <target>`): its outcome's reason (where the backup went, what the history now holds) is worth a line."""
    return step not in PLAIN and name.startswith(f"{step} ")


def started(outcome: Outcome, total: int) -> Text:
    return text(f"[{outcome.index}/{total}] {'start':<8} {kind(outcome)}{where(outcome.row)}")


def finished(outcome: Outcome, total: int) -> list[Text]:
    """The row's line, then its warnings and errors (bounded), or the last output lines of a failure that
    printed no error."""
    head = f"[{outcome.index}/{total}] {outcome.status.value:<8} {kind(outcome)}{where(outcome.row)}"
    if outcome.status is Status.SKIPPED:
        return [text(f"{head}  ({outcome.reason})", "dim")]
    if outcome.status is not Status.NOT_RUN:
        head += f"  {outcome.seconds:.2f}s"
    if outcome.status is Status.APPLIED and outcome.reason and named_by_action(outcome.step, outcome.row.script_label):
        head += f"  {outcome.reason}"
    if outcome.status is not Status.APPLIED:
        if outcome.exit_code is not None:
            head += f", exit {outcome.exit_code}"
        if outcome.reason:
            head += f"  {outcome.reason}"
    lines = [text(head, STYLES[outcome.status])]
    lines += [text(f"    warning: {short(line)}", "yellow") for line in outcome.warnings[:MAX_SHOWN_LINES]]
    lines += [text(f"    {short(line)}", "red") for line in outcome.errors[:MAX_SHOWN_LINES]]
    hidden = max(0, len(outcome.warnings) - MAX_SHOWN_LINES) + max(0, len(outcome.errors) - MAX_SHOWN_LINES)
    if hidden:
        lines.append(text(f"    ... {hidden} more lines", "dim"))
    if outcome.status is Status.FAILED and not outcome.errors and outcome.stdout_tail:
        lines.append(text("    last output lines:", "dim"))
        lines += [text(f"    | {short(line)}", "dim") for line in outcome.stdout_tail[-5:]]
    return lines


def output(outcome: Outcome, stream: str, line: str) -> Text:
    """`-v`: one line of a client's output as it streams, prefixed by its database (stderr lines marked)."""
    mark = "|" if stream == "stdout" else f"{stream} |"
    return text(f"  {outcome.row.db.target_label} {mark} {short(line)}", "" if stream == "stdout" else "yellow")


def notice(outcome: Outcome, line: str) -> Text:
    """A step's progress (a table copied, a follower's lag), prefixed by its database like -v's lines."""
    return text(f"  {outcome.row.db.target_label}: {short(line)}")

"""The live view on a terminal: a line per script running now (its database, its place in that database's
rows, the script, how long it has run) and an overall bar with counts and the time left; finished rows,
notices and interrupts are printed above it and scroll away.

Threads: events come from every worker, and rich redraws from its own refresh thread, which takes rich's
lock and then draws the picture (`render`). So the picture is drawn from state behind a lock of its own
that is never held while printing; a lock held across a print would deadlock against the redraw.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections import Counter
from dataclasses import dataclass

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ..model.outcome import Outcome
from ..model.secret import shown
from .estimates import Estimates, duration
from .lines import PROBLEMS, kind

REFRESH_PER_SECOND = 4
BAR_WIDTH = 30


@dataclass
class Running:
    outcome: Outcome
    since: float
    spinner: Spinner
    state: str = ""  # the step's latest progress that the next replaces (a follower's lag)


def counts_text(counts: Counter[str], waiting: int, running: int) -> str:
    return (f"applied {counts['applied']}  skipped {counts['skipped']}  failed {counts['failed']}  "
            f"waiting {waiting}  running {running}")


def bar(done: int, total: int, width: int = BAR_WIDTH) -> Text:
    filled = width * done // max(1, total)
    return Text.assemble(("━" * filled, "green"), ("─" * (width - filled), "dim"))


class LiveView:
    """The live area of one run: `start()` once, `stop()` as often as wanted. The estimates are the
    reporter's (it keeps them whether or not a live view shows them)."""

    def __init__(self, console: Console, estimates: Estimates, total: int,
                 place: dict[int, tuple[int, int]]) -> None:
        self.console = console
        self.estimates = estimates
        self.total = total
        self.place = place  # manifest index -> (n, rows of its target)
        self.running: dict[int, Running] = {}
        self.counts: Counter[str] = Counter()
        self.finished = 0
        self.began = time.monotonic()
        self._state = threading.Lock()
        # The view itself is the renderable, drawn from the state at each refresh and at each line printed
        # above it (a picture taken at the last refresh would show a finished row as running).
        self.live = Live(self, console=console, refresh_per_second=REFRESH_PER_SECOND, transient=True,
                         redirect_stdout=True, redirect_stderr=True)

    def start(self) -> None:
        atexit.register(self.stop)  # the last resort: never leave the cursor hidden
        self.live.start()

    def stop(self) -> None:
        """Remove the live area (idempotent); what was printed above it stays."""
        self.live.stop()
        atexit.unregister(self.stop)

    def step_started(self, outcome: Outcome) -> None:
        with self._state:
            self.running[outcome.index] = Running(outcome, time.monotonic(), Spinner("dots"))

    def step_notice(self, outcome: Outcome, text: str) -> None:
        with self._state:
            running = self.running.get(outcome.index)
            if running is not None:
                running.state = text

    def step_finished(self, outcome: Outcome) -> None:
        with self._state:
            self.running.pop(outcome.index, None)
            self.finished += 1
            name = "failed" if outcome.status in PROBLEMS else outcome.status.value
            self.counts[name] += 1

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        yield self.render()

    def render(self) -> RenderableType:
        now = time.monotonic()
        with self._state:
            running = sorted(self.running.values(), key=lambda r: r.outcome.index)
            counts, finished = Counter(self.counts), self.finished
        left = self.estimates.left(now)
        rows = Table.grid(padding=(0, 2))
        for _ in range(6):
            rows.add_column(no_wrap=True, overflow="ellipsis")
        room = max(1, self.console.height - 3)  # the bar stays on screen however many targets run
        shown_rows = running if len(running) <= room else running[:room - 1]
        for item in shown_rows:
            row = item.outcome.row
            n, of = self.place.get(item.outcome.index, (0, 0))
            rows.add_row(item.spinner, Text(shown(row.db.target_label), style="bold"),
                         f"{n}/{of}" if of else "", Text(shown(kind(item.outcome) + row.script_label), style="cyan"),
                         duration(now - item.since, tenths=True), Text(shown(item.state), style="dim"))
        if len(shown_rows) < len(running):
            rows.add_row("", Text(f"... and {len(running) - len(shown_rows)} more running", style="dim"),
                         "", "", "", "")
        overall = Table.grid(padding=(0, 2))
        overall.add_row(bar(finished, self.total), f"{finished}/{self.total}",
                        counts_text(counts, self.total - finished - len(running), len(running)),
                        f"elapsed {duration(now - self.began)}", Text(str(left), style="bold"))
        return Group(rows, overall) if running else overall

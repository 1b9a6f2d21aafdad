"""The ideal fan-out time: the makespan of the per-target floor times on N parallel slots.

Each target's scripts run in order, so a target is one job whose length is the sum of its scripts' floor
times. Jobs are placed by LPT list scheduling (longest job first; whenever a slot frees up, start the longest
waiting job whose runner has fewer than ``per_runner`` jobs running), which is within 4/3 of the optimum
and, with many similar jobs, practically optimal. The trivial lower bound is reported next to it.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Hashable, Sequence


def lpt_makespan(jobs: Sequence[tuple[float, Hashable]], slots: int, per_runner: int) -> float:
    """``jobs`` are (seconds, runner); returns the finishing time of the last job."""
    if slots < 1 or per_runner < 1:
        raise ValueError("slots and per_runner must be at least 1")
    waiting = sorted(jobs, key=lambda job: job[0], reverse=True)
    running: list[tuple[float, int, Hashable]] = []  # (end, tie-breaker, runner)
    busy: Counter[Hashable] = Counter()
    now, serial = 0.0, 0
    while waiting or running:
        while len(running) < slots:
            pick = next((i for i, (_, runner) in enumerate(waiting) if busy[runner] < per_runner), None)
            if pick is None:
                break
            seconds, runner = waiting.pop(pick)
            busy[runner] += 1
            serial += 1
            heapq.heappush(running, (now + seconds, serial, runner))
        end, _, runner = heapq.heappop(running)
        now = end
        busy[runner] -= 1
    return now


def lower_bound(jobs: Sequence[tuple[float, Hashable]], slots: int, per_runner: int) -> float:
    """No schedule beats the longest job, the total over the slots, or one runner's work over its cap."""
    if not jobs:
        return 0.0
    per_runner_total: dict[Hashable, float] = {}
    for seconds, runner in jobs:
        per_runner_total[runner] = per_runner_total.get(runner, 0.0) + seconds
    return max(max(s for s, _ in jobs), sum(s for s, _ in jobs) / slots,
               max(per_runner_total.values()) / per_runner)

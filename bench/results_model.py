"""What a benchmark run collects: per workload, per approach, every sample; plus the derived ideal."""

from __future__ import annotations

from dataclasses import dataclass, field

from .measure import Sample, median
from .schedule import lower_bound, lpt_makespan


@dataclass
class Line:
    """One approach on one workload."""

    id: str
    label: str
    samples: list[Sample] = field(default_factory=list)
    na: str | None = None

    @property
    def ok_seconds(self) -> list[float]:
        return [s.seconds for s in self.samples if s.ok and s.seconds is not None]

    @property
    def errors(self) -> list[str]:
        return [s.error for s in self.samples if s.error]

    @property
    def median(self) -> float | None:
        """Only over complete sets: one failed repetition and the approach has no figure."""
        return None if self.errors or not self.samples else median(self.ok_seconds)

    @property
    def cpu_seconds(self) -> float | None:
        """Median controller CPU time (user + system) over the runs that have it."""
        return median([s.cpu_seconds for s in self.samples if s.ok and s.cpu_seconds is not None])

    @property
    def peak_rss_kb(self) -> int | None:
        values = [s.rss_kb for s in self.samples if s.rss_kb]
        return max(values) if values else None


@dataclass
class WorkloadResult:
    key: str
    title: str
    targets: int
    rows: int
    runners: int
    skipped: str | None = None
    lines: dict[str, Line] = field(default_factory=dict)

    def line(self, approach_id: str) -> Line | None:
        return self.lines.get(approach_id)

    def ideal_samples(self, slots: int, per_runner: int) -> list[tuple[float, float]]:
        """(LPT makespan, lower bound) of the floor's per-target times, per repetition."""
        floor = self.lines.get("a")
        out = []
        for sample in floor.samples if floor else []:
            if not sample.ok:
                continue
            jobs = [(sum(times), runner) for _, runner, times in sample.detail.get("per_target", [])]
            out.append((lpt_makespan(jobs, slots, per_runner), lower_bound(jobs, slots, per_runner)))
        return out

    def baseline(self, slots: int, per_runner: int) -> float | None:
        """The floor (one target) or the ideal (several): what every ratio divides by."""
        floor = self.lines.get("a")
        if floor is None or floor.median is None:
            return None
        return median([makespan for makespan, _ in self.ideal_samples(slots, per_runner)])

    def median_of(self, approach_id: str) -> float | None:
        line = self.lines.get(approach_id)
        return line.median if line else None

"""What every approach provides, and the shared way a timed child process becomes a Sample."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

from ..measure import Proc, Sample, tail
from ..settings import SLOW_WORKLOADS, Settings
from ..testbed import Testbed
from ..workloads import Workload


class Approach(ABC):
    id: ClassVar[str]      # row id in the results: a, a_par, b, c, d, e
    key: ClassVar[str]     # the --only letter that selects it
    label: ClassVar[str]
    slow: ClassVar[bool] = False  # a round trip or more per row: skips SLOW_WORKLOADS unless --slow-baselines

    def __init__(self, bed: Testbed, settings: Settings, logs: Path) -> None:
        self.bed = bed
        self.settings = settings
        self.logs = logs

    def unavailable(self) -> str | None:
        """Why this approach cannot run on this machine at all (shown as n/a), or None."""
        return None

    def not_applicable(self, workload: Workload) -> str | None:
        """Why this approach does not apply to ``workload`` (shown as n/a), or None."""
        if self.slow and workload.key in SLOW_WORKLOADS and self.settings.size == "full" and \
                not self.settings.slow_baselines:
            return (f"skipped: {workload.rows:,} rows at a round trip or more each take minutes per repetition "
                    "(--slow-baselines runs it)")
        return None

    def describe(self) -> str:
        """The label with the exact settings used, for the report."""
        return self.label

    def version(self) -> str | None:
        """The version of the third-party tool this approach runs, for the report."""
        return None

    def prepare(self, workload: Workload) -> None:
        """Files the timed runs need (manifest, playbook, project); never timed."""
        return None

    @abstractmethod
    def run(self, workload: Workload, rep: int) -> Sample:
        """One timed run against freshly reset databases."""

    def cleanup(self, workload: Workload) -> None:
        """After each run, outside the timed region."""
        return None

    # --- helpers -----------------------------------------------------------------------------------------

    def workdir(self, workload: Workload) -> Path:
        path = self.bed.work / self.id / workload.key
        path.mkdir(parents=True, exist_ok=True)
        return path

    def log_path(self, workload: Workload, rep: int, suffix: str = "") -> Path:
        return self.logs / f"{workload.key}-{self.id}-rep{rep + 1}{suffix}.log"

    def sample_from(self, proc: Proc, what: str) -> Sample:
        """Exit code 0 and no secret in the output, or an error carrying the (redacted) end of the log."""
        text = proc.log.read_text(encoding="utf-8", errors="replace") if proc.log.exists() else ""
        error = None
        if self.bed.leaked(text):
            proc.log.write_text(self.bed.redact(text), encoding="utf-8")
            error = f"{what} printed a secret (redacted in the log)"
        if proc.timed_out:
            error = f"{what} killed after {self.settings.timeout:.0f}s"
        elif proc.code != 0:
            error = f"{what} exited {proc.code}: {self.bed.redact(tail(proc.log, 6))}"
        return Sample(proc.seconds, rss_kb=proc.rss_kb, cpu_seconds=proc.cpu_seconds, error=error, log=str(proc.log))


def copy_numbered(scripts: list[Path], folder: Path) -> list[Path]:
    """Copies named NNN-<name>, so any tool that sorts or keys by file name keeps the manifest order."""
    folder.mkdir(parents=True, exist_ok=True)
    copies = []
    for number, script in enumerate(scripts, start=1):
        copy = folder / f"{number:03d}-{script.name}"
        shutil.copyfile(script, copy)
        copies.append(copy)
    return copies

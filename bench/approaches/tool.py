"""(b) dbupdater itself: one ``apply`` of a manifest, as a user runs it, from process start to exit.

The manifest uses the rig's SSH key, the database password as a ``file:`` reference (a 0600 file), and the
rig's known_hosts. ``--parallel N --per-runner M`` are passed when ``apply --help`` lists them; a build
without them runs sequentially and the report says so. ``BENCH_TOOL_ENTRY=path/to/remote_database_updater.py``
measures another checkout (or a patched entry point) instead of this one.

(f) is the same with ``BENCH_BEFORE_ENTRY=path/to/remote_database_updater.py``: another build beside this one,
in the same run (interleaved with it), for a before/after of a change (e.g. ``git archive`` of the commit
before it, unpacked elsewhere).

Each build is measured as installed: the entry point and its ``dbupdater`` package are copied into the bench's
work folder at the start, with their byte code compiled (``compileall``), as pip compiles a package it installs.
Run from the tree with ``PYTHONDONTWRITEBYTECODE`` set, every start compiled about 150 modules again (about
120 ms of CPU); and an edit made in the tree while the bench runs changes nothing that is measured.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import ClassVar

from ..measure import Sample, run_timed
from ..settings import PROJECT_DIR
from ..workloads import Workload
from .base import Approach

DEFAULT_ENTRY = PROJECT_DIR / "remote_database_updater.py"
# Another checkout or a patched entry point can be measured the same way (the report names it).
ENTRY = Path(os.environ.get("BENCH_TOOL_ENTRY") or DEFAULT_ENTRY).resolve()
BEFORE_ENTRY = os.environ.get("BENCH_BEFORE_ENTRY", "")
HEADER = ["sql_runner_host", "sql_runner_userid", "sql_runner_password", "sql_runner_port", "sql_runner_key_file",
          "database_type", "database_host", "database_userid", "database_password", "port", "database",
          "sql_script_to_run"]


def source_fingerprint() -> str:
    """A hash of the entry point and the dbupdater package next to it: tells whether the tool changed mid-run."""
    digest = hashlib.sha256()
    for path in [ENTRY, *sorted((ENTRY.parent / "dbupdater").rglob("*.py"))]:
        with contextlib.suppress(OSError):
            digest.update(str(path).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def frozen_build(entry: Path, folder: Path) -> Path:
    """A copy of `entry` and the dbupdater package beside it in `folder`, byte code compiled; its entry point."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(entry, folder / entry.name)
    shutil.copytree(entry.parent / "dbupdater", folder / "dbupdater", ignore=shutil.ignore_patterns("__pycache__"),
                    dirs_exist_ok=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(folder / "dbupdater")], env=built_env(write=True),
                   check=True, timeout=600, stdout=subprocess.DEVNULL)
    return folder / entry.name


def built_env(*, write: bool = False) -> dict[str, str]:
    """The environment a frozen build runs in: its own __pycache__ is read (a PYTHONPYCACHEPREFIX would send
    Python elsewhere for byte code), and written only by compileall."""
    drop = {"PYTHONPYCACHEPREFIX", *(("PYTHONDONTWRITEBYTECODE",) if write else ())}
    return {key: value for key, value in os.environ.items() if key not in drop}


def tool_options(entry: Path = ENTRY) -> set[str]:
    """Which of --parallel / --per-runner this build of ``apply`` accepts."""
    proc = subprocess.run([sys.executable, str(entry), "apply", "--help"], capture_output=True, text=True,
                          cwd=PROJECT_DIR, check=False, timeout=120, env=built_env())
    return {flag for flag in ("--parallel", "--per-runner") if flag in proc.stdout}


class Tool(Approach):
    id = "b"
    key = "b"
    label = "(b) dbupdater"
    entry: ClassVar[Path] = ENTRY
    _options: set[str] | None = None
    _built: Path | None = None

    @property
    def built(self) -> Path:
        """The entry point of this build's frozen copy (made on first use)."""
        if self._built is None:
            self._built = frozen_build(self.entry, self.bed.work / f"build-{self.id}")
        return self._built

    @property
    def options(self) -> set[str]:
        if self._options is None:
            self._options = tool_options(self.built)
        return self._options

    @property
    def parallel_build(self) -> bool:
        return "--parallel" in self.options

    def flags(self) -> list[str]:
        flags = []
        if "--parallel" in self.options:
            flags += ["--parallel", str(self.settings.parallel)]
        if "--per-runner" in self.options:
            flags += ["--per-runner", str(self.settings.per_runner)]
        return flags

    def describe(self) -> str:
        entry = "" if self.entry == DEFAULT_ENTRY else f" [entry point {self.entry}]"
        if not self.parallel_build:
            return f"{self.label} (sequential build: apply has no --parallel yet){entry}"
        return f"{self.label} {' '.join(self.flags())}{entry}"

    def manifest(self, workload: Workload) -> Path:
        return self.workdir(workload) / "manifest.csv"

    def ledger_manifest(self, workload: Workload) -> Path:
        """`--ledgers existing`: one `SELECT 1;` per database, applied untimed before each run."""
        return self.workdir(workload) / "ledger-manifest.csv"

    def _write_manifest(self, path: Path, workload: Workload, scripts: list[Path]) -> None:
        bed = self.bed
        with path.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(HEADER)
            for target in workload.targets:
                runner = bed.runner(target.runner)
                for script in scripts:
                    writer.writerow([runner.host, bed.info.runner_user, "", str(runner.port), bed.info.runner_key_file,
                                     "MySQL", bed.db_host, bed.app_user, f"file:{bed.password_file}",
                                     str(bed.mysql_port), target.database, str(script)])
        path.chmod(0o600)

    def prepare(self, workload: Workload) -> None:
        self._write_manifest(self.manifest(workload), workload, workload.scripts)
        if self.settings.ledgers == "existing":
            first = self.workdir(workload) / "0000_ledger_in_place.sql"
            first.write_text("-- dbupdater bench: the ledger put in place before the timed run\nSELECT 1;\n",
                             encoding="utf-8")
            self._write_manifest(self.ledger_manifest(workload), workload, [first])

    def argv(self, workload: Workload) -> list[str]:
        return [sys.executable, str(self.built), "apply", "-f", str(self.manifest(workload)),
                "--known-hosts", self.bed.info.known_hosts, "--color", "never", *self.flags()]

    def validate_ms(self, workload: Workload, repeat: int = 3) -> float:
        """``validate`` of a prepared manifest: process start, imports and manifest checks, no connection."""
        times = []
        argv = [sys.executable, str(self.built), "validate", "-f", str(self.manifest(workload)), "--color", "never"]
        for _ in range(repeat):
            started = time.perf_counter()
            subprocess.run(argv, capture_output=True, cwd=PROJECT_DIR, check=True, timeout=120, env=built_env())
            times.append(time.perf_counter() - started)
        return statistics.median(times) * 1000

    def run(self, workload: Workload, rep: int) -> Sample:
        if self.settings.ledgers == "existing":  # untimed: the ledger as every later deployment finds it
            argv = [sys.executable, str(self.built), "apply", "-f", str(self.ledger_manifest(workload)),
                    "--known-hosts", self.bed.info.known_hosts, "--color", "never", "--no-report", *self.flags()]
            subprocess.run(argv, capture_output=True, cwd=PROJECT_DIR, check=True, timeout=self.settings.timeout,
                           env=built_env())
        proc = run_timed(self.argv(workload), self.log_path(workload, rep), timeout=self.settings.timeout,
                         cwd=PROJECT_DIR, env=built_env())
        return self.sample_from(proc, "dbupdater")


class ToolBefore(Tool):
    id = "f"
    key = "f"
    label = "(f) dbupdater, the build of BENCH_BEFORE_ENTRY"
    entry = Path(BEFORE_ENTRY).resolve() if BEFORE_ENTRY else DEFAULT_ENTRY

    def unavailable(self) -> str | None:
        return None if BEFORE_ENTRY else "BENCH_BEFORE_ENTRY is not set"

"""MySQL to PostgreSQL: `python -m bench.copy [--size-mb 1024] [--repeat 1] [--only sakila,generated]`.

Sakila (from ../shared/corpus/mysql, skipped with a message when absent) and a generated database of about
--size-mb (bench/copy/data.py), each copied from the rig's MariaDB into a fresh database of its PostgreSQL by
dbupdater's `copy-db`, pgloader (its defaults, and with fewer prefetched rows) and pg_chameleon's `init_replica`
(bench/copy/approaches.py says exactly what each runs and where), and by a floor: copy-db's own SQL through the
native clients on the runner (bench/copy/floor.py); in one run, approaches interleaved per repetition. Each
result is checked row for row against the source afterwards, independently of the types each tool chose
(bench/copy/check.py); neither set-up nor the check is timed.

Results: a markdown table on stdout and in bench/results/copy.md (JSON with every sample beside it; the last 200
lines of each run's output in bench/results/logs/copy/). The rig is the benchmark's own (name dbcp, subnet 27, ports
29700+) unless --rig-* name another; `--keep-rig` leaves it up, `--keep-data` then reuses the source databases.
pg_chameleon needs MariaDB's binary log in ROW format with full row images under a server id, which the rig's
MariaDB has (environment_creators/mariadb.py). Root only.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from environment_creators.errors import RigError

from ..settings import CORPUS_DIR, RigParams, _csv, _positive
from ..testbed import Testbed
from . import approaches as ways
from .check import CheckResult, check
from .data import Source, generated, sakila
from .floor import FLOOR

log = logging.getLogger("bench")
RESULTS = Path(__file__).resolve().parent.parent / "results"
SOURCES = ("sakila", "generated")
SHORT = {"floor": FLOOR, "tool": ways.TOOL, "pgloader": ways.PGLOADER,
         "pgloader-prefetch": ways.PGLOADER_PREFETCH, "chameleon": ways.PG_CHAMELEON}


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.copy", description=__doc__, allow_abbrev=False,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=_positive, default=1024, help="generated database size (default 1024)")
    parser.add_argument("--repeat", type=_positive, default=1, help="repetitions of each approach (median shown)")
    parser.add_argument("--only", type=lambda v: _csv(v, SOURCES, "--only"), default=SOURCES,
                        metavar="sakila,generated", help="source databases to copy (default: both)")
    parser.add_argument("--approaches", type=lambda v: _csv(v, tuple(SHORT), "--approaches"), default=tuple(SHORT),
                        metavar="floor,tool,pgloader,pgloader-prefetch,chameleon",
                        help="approaches to run (default: all)")
    parser.add_argument("--parallel", type=_positive,
                        help="copy-db's --parallel N, and the floor's tables at once (default: the tool's own, 4)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default: bench/results)")
    parser.add_argument("--rig-name", default="dbcp")
    parser.add_argument("--rig-root", type=Path, default=Path("/tmp/dbupdater-bench-copy-rig"))
    parser.add_argument("--rig-subnet", type=int, default=27)
    parser.add_argument("--rig-base-port", type=int, default=29700)
    parser.add_argument("--keep-rig", action="store_true", help="leave the rig up afterwards")
    parser.add_argument("--keep-data", action="store_true", help="reuse source databases an earlier run left")
    return parser.parse_args(argv)


@dataclass
class Sample:
    seconds: float | None
    rss_kb: int | None = None
    cpu_seconds: float | None = None
    error: str | None = None
    check: CheckResult | None = None


@dataclass
class Row:
    source: Source
    approach: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def median(self) -> float | None:
        times = [s.seconds for s in self.samples if s.seconds is not None]
        return statistics.median(times) if times and len(times) == len(self.samples) else None

    def verdict(self) -> str:
        errors = [s.error for s in self.samples if s.error]
        if errors:
            return f"failed: {errors[-1].splitlines()[0]}"
        checks = [s.check for s in self.samples if s.check is not None]
        wrong = [c for c in checks if not c.identical]
        return (wrong or checks)[-1].summary() if checks else ""


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _version(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=30)
    except OSError:
        return "absent"
    return (proc.stdout or proc.stderr).strip().splitlines()[0] if (proc.stdout or proc.stderr).strip() else "?"


class Bench:
    def __init__(self, bed: Testbed, args: argparse.Namespace) -> None:
        self.bed = bed
        self.args = args
        self.rows: list[Row] = []
        self.context: dict[str, Any] = {"load_before": _load()}
        self.unavailable: dict[str, str] = {}

    def sources(self) -> list[Source]:
        rig, keep = self.bed.rig, self.args.keep_data
        found: list[Source] = []
        if "sakila" in self.args.only:
            source = sakila(rig, CORPUS_DIR / "mysql", keep=keep)
            if source is None:
                message = f"sakila skipped: the corpus is absent ({CORPUS_DIR / 'mysql'})"
                log.warning("%s", message)
                self.context["skipped"] = message
            else:
                found.append(source)
        if "generated" in self.args.only:
            found.append(generated(rig, self.args.size_mb, keep=keep))
        return found

    def run(self) -> None:
        chosen = [SHORT[a] for a in self.args.approaches]
        if {ways.PGLOADER, ways.PGLOADER_PREFETCH} & set(chosen) and (why := ways.install_pgloader()):
            self.unavailable[ways.PGLOADER] = self.unavailable[ways.PGLOADER_PREFETCH] = why
        if ways.PG_CHAMELEON in chosen:
            if why := ways.install_chameleon():
                self.unavailable[ways.PG_CHAMELEON] = why
            else:
                self.context["binlog"] = self.bed.rig.mysql_exec(
                    "SELECT CONCAT_WS(' ', @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id)").strip()
        self.context["versions"] = {
            "mariadb": self.bed.rig.mysql_exec("SELECT VERSION()").strip(),
            "postgresql": self.bed.rig.psql_exec("SHOW server_version").strip(),
            "pgloader": _version(["pgloader", "--version"]),
            "pg_chameleon": next((line.split(":", 1)[1].strip() for line in _pip_show() if line.startswith("Version:")),
                                 "absent")}
        runner = ways.Approaches(self.bed, self.bed.work / "logs", self.args.parallel)
        for source in self.sources():
            log.info("%s: %.0f MB, %d rows", source.database, source.size_mb, source.rows)
            rows = {name: Row(source, name) for name in chosen}
            self.rows.extend(rows.values())
            target = ways.Target(source, f"copy_{source.key}")
            for _ in range(self.args.repeat):
                for name in chosen:
                    rows[name].samples.append(self.sample(runner, name, target))
            self.bed.rig.drop_postgres_database(target.dest)
        self.context["load_after"] = _load()

    def sample(self, runner: ways.Approaches, name: str, target: ways.Target) -> Sample:
        if name in self.unavailable:
            return Sample(None, error=self.unavailable[name])
        log.info("%s: %s ...", target.source.database, name)
        try:
            proc = runner.run(name, target)
        except (ways.NotAvailable, RuntimeError, RigError) as exc:
            log.warning("%s: %s: %s", target.source.database, name, exc)
            return Sample(None, error=str(exc))
        started = time.monotonic()
        result = check(self.bed.info, target.source.database, target.dest)
        result.seconds = time.monotonic() - started
        log.info("%s: %s: %.1fs, peak RSS %.0f MB; check (%.0fs): %s", target.source.database, name, proc.seconds,
                 proc.rss_kb / 1024, result.seconds, result.summary())
        return Sample(proc.seconds, proc.rss_kb, proc.cpu_seconds, check=result)

    # --- results ---------------------------------------------------------------------------------------------

    def table(self) -> str:
        lines = ["| database | approach | seconds | MB/s | x floor | x fastest correct peer | peak RSS | CPU s "
                 "| row-for-row check |", "|---|---|---|---|---|---|---|---|---|"]
        for row in self.rows:
            same = [r for r in self.rows if r.source is row.source]
            peers = [r.median for r in same if r.approach not in (ways.TOOL, FLOOR)
                     and r.verdict().startswith("identical")]
            fastest = min((p for p in peers if p), default=None)
            floor = next((r.median for r in same if r.approach == FLOOR), None)
            seconds = row.median
            rss = [s.rss_kb for s in row.samples if s.rss_kb]
            cpu = [s.cpu_seconds for s in row.samples if s.cpu_seconds is not None]
            where = "controller" if row.approach == ways.TOOL else "its processes"
            name = row.approach.replace("|", "\\|")
            name = f"**{name}**" if row.approach == ways.TOOL else name
            verdict = row.verdict().replace("|", "\\|").replace("\n", " ")
            lines.append(
                f"| {row.source.key} ({row.source.size_mb:.0f} MB, {row.source.rows} rows) | {name} | "
                f"{f'{seconds:.2f}' if seconds else 'n/a'} | "
                f"{f'{row.source.size_mb / seconds:.1f}' if seconds else ''} | "
                f"{f'{seconds / floor:.2f}' if seconds and floor else ''} | "
                f"{f'{seconds / fastest:.2f}' if seconds and fastest else ''} | "
                f"{f'{max(rss) / 1024:.1f} MB ({where})' if rss else ''} | "
                f"{f'{statistics.median(cpu):.1f}' if cpu else ''} | {verdict} |")
        versions = self.context.get("versions", {})
        notes = [
            "",
            f"Medians of {self.args.repeat} run(s); seconds from process start to exit; MB/s over the source's InnoDB "
            "data_length. x floor: seconds over the floor's (copy-db's own SQL through mysql | psql on the runner, "
            "no SSH, no controller, no checksums). x fastest correct peer: seconds over the fastest of pgloader and "
            "pg_chameleon whose copy was identical. Peak RSS: the tool's is this controller's (wait4); the others' "
            "the largest of their processes on the runner. CPU s: user + system of the "
            "timed process tree on this machine (the tool's clients run on the runner and the servers are not "
            "counted).",
            f"Machine: {os.cpu_count()} CPUs shared by the servers, the runner's sshd and the approaches, and by other "
            f"people's work at the same time (load average before {self.context.get('load_before')}, after "
            f"{self.context.get('load_after')}).",
            "Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()) + ".",
        ]
        if "binlog" in self.context:
            notes.append(f"MariaDB binary log (log_bin, format, row image, server id): {self.context['binlog']}.")
        if "skipped" in self.context:
            notes.append(self.context["skipped"] + ".")
        return "\n".join(lines + notes) + "\n"

    def to_json(self) -> dict[str, Any]:
        return {"context": self.context, "size_mb": self.args.size_mb, "repeat": self.args.repeat,
                "parallel": self.args.parallel,
                "rows": [{"database": r.source.database, "source_mb": round(r.source.size_mb, 1),
                          "source_rows": r.source.rows, "approach": r.approach, "median_seconds": r.median,
                          "verdict": r.verdict(),
                          "samples": [{"seconds": s.seconds, "peak_rss_kb": s.rss_kb, "cpu_seconds": s.cpu_seconds,
                                       "error": s.error, "check": s.check.to_json() if s.check else None}
                                      for s in r.samples]} for r in self.rows]}


def _pip_show() -> list[str]:
    pip = ways.CHAMELEON_VENV / "bin" / "pip"
    if not pip.exists():
        return []
    proc = subprocess.run([str(pip), "show", "pg-chameleon"], capture_output=True, text=True, check=False)
    return proc.stdout.splitlines()


def _keep_logs(logs: Path, kept: Path, lines: int = 200) -> None:
    """The last lines of each run's output beside the results (pg_chameleon logs every row it drops: whole logs
    of a 1 GB run are hundreds of MB)."""
    shutil.rmtree(kept, ignore_errors=True)
    if not logs.is_dir():
        return
    kept.mkdir(parents=True)
    for path in sorted(logs.iterdir()):
        with path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - lines * 400))
            tail = handle.read().splitlines()[-lines:]
        (kept / path.name).write_bytes(b"\n".join(tail) + b"\n")


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("mysql.connector").setLevel(logging.WARNING)
    args = parse(argv)
    if os.geteuid() != 0:
        print("python -m bench.copy: run as root (the rig's runner user, network namespaces, servers)",
              file=sys.stderr)
        return 2
    bed = Testbed(RigParams(args.rig_name, args.rig_root, 1, args.rig_subnet, args.rig_base_port))
    bed.up()
    try:
        bench = Bench(bed, args)
        bench.run()
        text = bench.table()
        sys.stdout.write(text)
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "copy.md").write_text(text, encoding="utf-8")
        (args.out / "copy.json").write_text(json.dumps(bench.to_json(), indent=2) + "\n", encoding="utf-8")
        _keep_logs(bed.work / "logs", args.out / "logs" / "copy")
    finally:
        bed.close(keep_rig=args.keep_rig)
    # The tool failing or copying wrongly is an error of this run; a peer's is one of its findings.
    tool = [s for r in bench.rows if r.approach == ways.TOOL for s in r.samples]
    return 1 if any(s.error or (s.check is not None and not s.check.identical) for s in tool) else 0


if __name__ == "__main__":
    sys.exit(main())

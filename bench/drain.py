"""How fast the tool drains a client's output, against the raw SSH channel: ``python -m bench.drain``.

For each engine (MariaDB's mysql, PostgreSQL's psql), one query prints ``--mb`` megabytes in lines of
``--line-chars`` characters on one runner. The *raw* figure is the same client command the tool runs (its
options, the script in a file on the runner) over a bare paramiko channel whose output is read and thrown away:
what the client and the SSH channel themselves cost. The *tool* figure is ``exec`` of a one-row manifest running
that script, from process start to exit (start-up, connection, copy, line splitting, judging, events), with its
peak RSS and controller CPU, run from a copy with its byte code compiled (bench/approaches/tool.py).
``--before PATH`` measures another build's entry point too, interleaved with this one. Medians of ``--repeat``
runs with their spread; the figures go to stdout as one Markdown table; no test asserts them.
"""

from __future__ import annotations

import argparse
import csv
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from .approaches.tool import built_env, frozen_build
from .measure import run_timed
from .settings import PROJECT_DIR, RigParams
from .testbed import Testbed, write_private

RIG = RigParams(name="dbd", root=Path("/tmp/dbupdater-drain-rig"), runners=1, subnet_index=9, base_port=28300)
DATABASE = "drain"
ENGINES = ("mysql", "postgresql")


@dataclass(frozen=True)
class Client:
    """One engine's client as the tool runs it, and where its password lives."""

    display: str  # the manifest's database_type
    port: int
    user: str
    password_file: Path  # on the controller: the manifest's `file:` reference
    query: Callable[[int, int], str]  # (rows, characters per line) -> SQL printing them
    raw: Callable[[str], str]  # the script's path on the runner -> the shell line the tool would run


def _pgpass_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")


def clients(bed: Testbed) -> dict[str, Client]:
    """The engines' clients with the options dbupdater gives them (engines/mysql, engines/postgresql)."""
    info, host = bed.info, bed.db_host
    pg = info.postgres
    pgpass = write_private(bed.runner_dir / "pgpass", f"*:*:*:{_pgpass_value(pg.app_user)}:"
                           f"{_pgpass_value(pg.app_password)}\n", owner=bed.runner_uid)
    mysql = ["mysql", f"--defaults-extra-file={bed.runner_cnf}", "--default-character-set=utf8mb4", "--batch",
             "--show-warnings", "--connect-timeout=15", f"--host={host}", f"--port={bed.mysql_port}",
             f"--user={bed.app_user}", f"--database={DATABASE}"]
    psql = ["env", f"PGPASSFILE={pgpass}", "PGCLIENTENCODING=UTF8", "psql", "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1",
            f"--host={host}", f"--port={pg.port}", f"--username={pg.app_user}", f"--dbname=dbname={DATABASE}"]
    return {
        "mysql": Client("MySQL", bed.mysql_port, bed.app_user, bed.password_file,
                        # MariaDB's SEQUENCE engine: seq_1_to_N is a table of N rows, no data needed.
                        lambda rows, chars: f"SELECT REPEAT('x', {chars}) FROM seq_1_to_{rows};",
                        lambda path: f"{shlex.join(mysql)} < {shlex.quote(path)}"),
        "postgresql": Client("PostgreSQL", pg.port, pg.app_user,
                             write_private(bed.work / "pg-password", pg.app_password + "\n"),
                             lambda rows, chars: f"SELECT repeat('x', {chars}) FROM generate_series(1, {rows});",
                             lambda path: shlex.join([*psql, "-f", path])),
    }


def raw(bed: Testbed, line: str) -> tuple[float, float, int]:
    """Seconds, this process's CPU seconds (paramiko's threads included) and bytes of stdout for one command over
    a bare channel, read in 64 KiB pieces and dropped."""
    runner = bed.runner(1)
    client = paramiko.SSHClient()
    client.load_host_keys(bed.info.known_hosts)
    client.connect(runner.host, runner.port, bed.info.runner_user, key_filename=bed.info.runner_key_file,
                   look_for_keys=False, allow_agent=False)
    try:
        started, cpu = time.perf_counter(), time.process_time()
        channel = client.get_transport().open_session()  # type: ignore[union-attr]
        channel.exec_command(line)
        size = 0
        while data := channel.recv(65536):
            size += len(data)
        status = channel.recv_exit_status()
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
        if status != 0:
            raise RuntimeError(f"the raw client exited with {status}: {channel.recv_stderr(4096)!r}")
        return seconds, cpu, size
    finally:
        client.close()


def manifest(bed: Testbed, folder: Path, engine: Client, script: Path) -> Path:
    path = folder / f"manifest-{engine.display}.csv"
    runner = bed.runner(1)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["sql_runner_host", "sql_runner_userid", "sql_runner_password", "sql_runner_port",
                         "sql_runner_key_file", "database_type", "database_host", "database_userid",
                         "database_password", "port", "database", "sql_script_to_run"])
        writer.writerow([runner.host, bed.info.runner_user, "", runner.port, bed.info.runner_key_file, engine.display,
                         bed.db_host, engine.user, f"file:{engine.password_file}", engine.port, DATABASE, script.name])
    return path


@dataclass
class Series:
    seconds: list[float] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def shown(self) -> str:
        if not self.seconds:
            return "-"
        return f"{statistics.median(self.seconds):.2f} s ({min(self.seconds):.2f}-{max(self.seconds):.2f})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drain", description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="megabytes of output (default: %(default)s)")
    parser.add_argument("--line-chars", type=int, nargs="+", default=[100], metavar="N",
                        help="characters per output line, one measurement per value (default: %(default)s)")
    parser.add_argument("--engines", default=",".join(ENGINES), help="comma-separated (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, medians reported (default: %(default)s)")
    parser.add_argument("--keep-rig", action="store_true", help="leave the rig up afterwards")
    parser.add_argument("--rig-name", default=RIG.name, help="another rig than %(default)s (engineers side by side)")
    parser.add_argument("--rig-subnet", type=int, default=RIG.subnet_index)
    parser.add_argument("--rig-base-port", type=int, default=RIG.base_port)
    parser.add_argument("--tool", type=Path, default=PROJECT_DIR / "remote_database_updater.py",
                        help="the entry point to measure")
    parser.add_argument("--before", type=Path, help="another build's entry point, measured interleaved with --tool")
    args = parser.parse_args(argv)
    chosen = [name.strip() for name in args.engines.split(",") if name.strip()]
    if unknown := [name for name in chosen if name not in ENGINES]:
        parser.error(f"--engines: pick from {','.join(ENGINES)} (got {','.join(unknown)})")
    rig = RIG if args.rig_name == RIG.name else RigParams(args.rig_name, Path(f"/tmp/dbupdater-drain-{args.rig_name}"),
                                                          1, args.rig_subnet, args.rig_base_port)
    bed = Testbed(rig)
    bed.up()
    builds = {name: frozen_build(entry, bed.work / f"build-{name}")
              for name, entry in (("tool", args.tool), ("before", args.before)) if entry is not None}
    folder = Path(tempfile.mkdtemp(prefix="dbupdater-drain-"))
    lines = ["| engine | output | raw SSH channel (CPU) | dbupdater exec | ratio | tool CPU | tool peak RSS |"
             + (" before | ratio | before CPU |" if args.before else ""),
             "|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if args.before else "")]
    try:
        bed.rig.create_mysql_database(DATABASE)
        bed.rig.create_postgres_database(DATABASE, bed.info.postgres.app_user)
        engines = clients(bed)
        for name in chosen:
            engine = engines[name]
            for chars in args.line_chars:
                rows = args.mb * 1_000_000 // chars
                script = folder / f"big-{name}-{chars}.sql"
                script.write_text(engine.query(rows, chars) + "\n", encoding="utf-8")
                on_runner = write_private(bed.runner_dir / script.name, script.read_text(), owner=bed.runner_uid)
                path = manifest(bed, folder, engine, script)
                raws: list[float] = []
                raw_cpu: list[float] = []
                runs = {build: Series() for build in builds}
                size = 0
                for rep in range(args.repeat):
                    seconds, cpu, size = raw(bed, engine.raw(str(on_runner)))
                    raws.append(seconds)
                    raw_cpu.append(cpu)
                    for build, entry in (builds.items() if rep % 2 == 0 else reversed(builds.items())):
                        tool_argv = [sys.executable, str(entry), "exec", "-f", str(path), "--known-hosts",
                                     bed.info.known_hosts, "--color", "never", "-q", "--no-report"]
                        proc = run_timed(tool_argv, folder / f"{build}-{name}-{chars}-{rep}.log", timeout=900,
                                         cwd=PROJECT_DIR, env=built_env())
                        if proc.code != 0:
                            print(f"{build} exited with {proc.code}; see {proc.log}", file=sys.stderr)
                            return 1
                        runs[build].seconds.append(proc.seconds)
                        runs[build].rss_mb.append(proc.rss_kb / 1024)
                        runs[build].cpu.append(proc.cpu_seconds)
                    print(f"drain {name} {chars}: raw {raws[-1]:.2f} s, "
                          + ", ".join(f"{b} {s.seconds[-1]:.2f} s" for b, s in runs.items()), file=sys.stderr)
                base = statistics.median(raws)
                tool = runs["tool"]
                row = (f"| {engine.display} | {size / 1e6:.0f} MB in {rows:,} lines of {chars} | "
                       f"{base:.2f} s ({min(raws):.2f}-{max(raws):.2f}; {statistics.median(raw_cpu):.2f} s) | "
                       f"{tool.shown()} | "
                       f"{statistics.median(tool.seconds) / base:.2f}x | {statistics.median(tool.cpu):.2f} s | "
                       f"{max(tool.rss_mb):.0f} MB |")
                if "before" in runs:
                    before = runs["before"]
                    row += (f" {before.shown()} | {statistics.median(before.seconds) / base:.2f}x | "
                            f"{statistics.median(before.cpu):.2f} s |")
                lines.append(row)
        print("\n".join(lines))
        print(f"(medians of {args.repeat}, min-max in brackets; CPU: user + system seconds of the controller's "
              "process: the tool's, or the raw reader's)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        bed.close(keep_rig=args.keep_rig)
    return 0


if __name__ == "__main__":
    sys.exit(main())

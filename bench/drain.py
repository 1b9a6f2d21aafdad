"""How fast the tool drains a client's output, against the raw SSH channel: ``python -m bench.drain``.

One MariaDB query prints ``--mb`` megabytes (1000-character lines) on one runner. The *raw* figure is that
query's client run over a bare paramiko channel whose output is read and thrown away: what the SSH channel
itself costs. The *tool* figure is ``exec`` of a one-row manifest running the same query, from process start to
exit (start-up, connection, copy, line splitting, judging, events, the run folder), with its peak RSS. Medians
of ``--repeat`` runs, and their ratio. The figures go to stdout as one Markdown table; no test asserts them.
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
from pathlib import Path

import paramiko

from .measure import run_timed
from .settings import PROJECT_DIR, RigParams
from .testbed import Testbed

RIG = RigParams(name="dbd", root=Path("/tmp/dbupdater-drain-rig"), runners=1, subnet_index=9, base_port=28300)
DATABASE = "drain"
LINE = 1000  # characters per output line


def query(megabytes: int) -> str:
    # MariaDB's SEQUENCE engine: seq_1_to_N is a table of N rows, no data needed.
    return f"SELECT REPEAT('x', {LINE}) FROM seq_1_to_{megabytes * 1000};"


def raw(bed: Testbed, sql: str) -> tuple[float, int]:
    """Seconds and bytes for the client's output over a bare channel, read in 64 KiB pieces and dropped."""
    runner = bed.runner(1)
    client = paramiko.SSHClient()
    client.load_host_keys(bed.info.known_hosts)
    client.connect(runner.host, runner.port, bed.info.runner_user, key_filename=bed.info.runner_key_file,
                   look_for_keys=False, allow_agent=False)
    try:
        command = (f"mysql --defaults-extra-file={shlex.quote(str(bed.runner_cnf))} --batch -N "
                   f"--host={bed.db_host} --port={bed.mysql_port} {DATABASE} -e {shlex.quote(sql)}")
        started = time.perf_counter()
        channel = client.get_transport().open_session()  # type: ignore[union-attr]
        channel.exec_command(command)
        size = 0
        while data := channel.recv(65536):
            size += len(data)
        status = channel.recv_exit_status()
        seconds = time.perf_counter() - started
        if status != 0:
            raise RuntimeError(f"the raw client exited with {status}: {channel.recv_stderr(4096)!r}")
        return seconds, size
    finally:
        client.close()


def manifest(bed: Testbed, folder: Path, sql: str) -> Path:
    (folder / "big.sql").write_text(sql + "\n", encoding="utf-8")
    path = folder / "manifest.csv"
    runner = bed.runner(1)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["sql_runner_host", "sql_runner_userid", "sql_runner_password", "sql_runner_port",
                         "sql_runner_key_file", "database_type", "database_host", "database_userid",
                         "database_password", "port", "database", "sql_script_to_run"])
        writer.writerow([runner.host, bed.info.runner_user, "", runner.port, bed.info.runner_key_file, "MySQL",
                         bed.db_host, bed.app_user, f"file:{bed.password_file}", bed.mysql_port, DATABASE, "big.sql"])
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drain", description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=100, help="megabytes of output (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each, medians reported (default: %(default)s)")
    parser.add_argument("--keep-rig", action="store_true", help="leave the rig up afterwards")
    parser.add_argument("--rig-name", default=RIG.name, help="another rig than %(default)s (engineers side by side)")
    parser.add_argument("--rig-subnet", type=int, default=RIG.subnet_index)
    parser.add_argument("--rig-base-port", type=int, default=RIG.base_port)
    parser.add_argument("--tool", type=Path, default=PROJECT_DIR / "remote_database_updater.py",
                        help="the entry point to measure (another checkout's, for a before/after)")
    args = parser.parse_args(argv)
    rig = RIG if args.rig_name == RIG.name else RigParams(args.rig_name, Path(f"/tmp/dbupdater-drain-{args.rig_name}"),
                                                          1, args.rig_subnet, args.rig_base_port)
    bed = Testbed(rig)
    bed.up()
    folder = Path(tempfile.mkdtemp(prefix="dbupdater-drain-"))
    try:
        bed.rig.create_mysql_database(DATABASE)
        sql = query(args.mb)
        path = manifest(bed, folder, sql)
        tool_argv = [sys.executable, str(args.tool), "exec", "-f", str(path),
                     "--known-hosts", bed.info.known_hosts, "--color", "never", "-q", "--no-report"]
        raws, tools, rss = [], [], []
        size = 0
        for rep in range(args.repeat):
            seconds, size = raw(bed, sql)
            raws.append(seconds)
            proc = run_timed(tool_argv, folder / f"tool-{rep}.log", timeout=600, cwd=PROJECT_DIR)
            if proc.code != 0:
                print(f"the tool exited with {proc.code}; see {proc.log}", file=sys.stderr)
                return 1
            tools.append(proc.seconds)
            rss.append(proc.rss_kb)
        raw_median, tool_median = statistics.median(raws), statistics.median(tools)
        print(f"| output | raw SSH channel | dbupdater exec | ratio | tool peak RSS |\n|---|---:|---:|---:|---:|\n"
              f"| {size / 1e6:.0f} MB in {args.mb * 1000} lines | {raw_median:.2f} s | {tool_median:.2f} s | "
              f"{tool_median / raw_median:.2f}x | {max(rss) / 1024:.0f} MB |")
        print(f"(medians of {args.repeat}; raw {[round(s, 2) for s in raws]}, tool {[round(s, 2) for s in tools]})")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        bed.close(keep_rig=args.keep_rig)
    return 0


if __name__ == "__main__":
    sys.exit(main())

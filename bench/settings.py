"""Command-line options of ``python -m bench`` and the rig parameters (options override environment)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_DIR = BENCH_DIR.parent
CORPUS_DIR = PROJECT_DIR.parent / "shared" / "corpus"

APPROACHES = {
    "a": "floor: mysql run directly on the runner",
    "b": "dbupdater",
    "c": "sequential: one SSH connection per row",
    "d": "Ansible (copy + shell)",
    "e": "sqitch (from the controller)",
    "f": "dbupdater, another build (BENCH_BEFORE_ENTRY): before/after in one run",
}
WORKLOADS = ("sakila", "ddl", "fanout", "many", "wide")
DEFAULT_WORKLOADS = WORKLOADS
# Issue 23's workloads of 1,000 rows each (1,000 tiny scripts; 200 databases x 5). The approaches that take an SSH
# connection or an Ansible task round per row (c, d) need 5 to 7 minutes per repetition of each at full size, most
# of an hour in all: they skip these two unless --slow-baselines is given.
SLOW_WORKLOADS = ("many", "wide")


@dataclass(frozen=True)
class RigParams:
    """The benchmark's own rig; the defaults keep it apart from bring_up.sh's (dbu) and the suite's (dbt)."""

    name: str = "dbb"
    root: Path = Path("/tmp/dbupdater-bench-rig")
    runners: int = 8
    subnet_index: int = 3
    base_port: int = 27600


@dataclass(frozen=True)
class Settings:
    size: str
    repeat: int
    parallel: int
    per_runner: int
    approaches: tuple[str, ...]
    workloads: tuple[str, ...]
    out: Path
    rig: RigParams
    keep_rig: bool
    timeout: float
    slow_baselines: bool = False
    # "new": every database starts empty, so dbupdater's first run also creates its ledger (3 tables); "existing":
    # dbupdater's ledger is put in place (untimed) before each of its runs, as on every deployment after the first.
    ledgers: str = "new"


def _csv(value: str, allowed: tuple[str, ...] | dict[str, str], what: str) -> tuple[str, ...]:
    items = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip()))
    unknown = [v for v in items if v not in allowed]
    if unknown or not items:
        raise argparse.ArgumentTypeError(f"{what}: pick from {','.join(allowed)} (got {value!r})")
    return items


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return number


def build_parser() -> argparse.ArgumentParser:
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="python -m bench", allow_abbrev=False,
        description="Benchmark dbupdater against the native-client floor, a one-connection-per-row script, "
                    "Ansible and sqitch on a private rig. Writes a markdown table and JSON to --out.",
        epilog="approaches: " + "; ".join(f"{k} = {v}" for k, v in APPROACHES.items()) +
               ". Rig options default to $BENCH_RIG_NAME, $BENCH_RIG_ROOT, $BENCH_RIG_SUBNET, $BENCH_RIG_BASE_PORT, "
               "$BENCH_RIG_RUNNERS, else name dbb, /tmp/dbupdater-bench-rig, subnet 3, ports 27600+, 8 runners.")
    parser.add_argument("--size", choices=("full", "tiny"), default="full",
                        help="full: the published workloads; tiny: a few seconds, to prove the benchmark works")
    parser.add_argument("--repeat", type=_positive, help="measured repetitions (default: 3 full, 1 tiny)")
    parser.add_argument("--parallel", type=_positive, default=8,
                        help="parallelism N for dbupdater, Ansible forks, sqitch and the ideal (default: 8)")
    parser.add_argument("--per-runner", type=_positive,
                        help="at most M targets at once per runner host, for dbupdater (if it has --per-runner), "
                             "the measured parallel floor and the ideal schedule (default: N, i.e. no extra cap)")
    parser.add_argument("--only", type=lambda v: _csv(v, APPROACHES, "--only"), default=tuple(APPROACHES),
                        metavar="a,b,...", help="approaches to run (default: all)")
    parser.add_argument("--workloads", type=lambda v: _csv(v, WORKLOADS, "--workloads"), default=DEFAULT_WORKLOADS,
                        metavar="sakila,ddl,fanout,many,wide",
                        help=f"workloads to run (default: {','.join(DEFAULT_WORKLOADS)})")
    parser.add_argument("--out", type=Path, default=BENCH_DIR / "results", help="results folder (default: %(default)s)")
    parser.add_argument("--keep-rig", action="store_true", default=env.get("BENCH_KEEP_RIG") == "1",
                        help="leave the rig running afterwards (also BENCH_KEEP_RIG=1); a rig that was already up "
                             "is always left up")
    parser.add_argument("--slow-baselines", action="store_true",
                        help="run the sequential script (c) and Ansible (d) on the full-size many and wide workloads "
                             "too (about 45 more minutes for 3 repetitions)")
    parser.add_argument("--ledgers", choices=("new", "existing"), default="new",
                        help="new (default): dbupdater creates its ledger tables in the timed run, as on a first "
                             "deployment; existing: they are put in place (untimed) before each of its runs, as on "
                             "every later deployment (the other approaches are unchanged)")
    parser.add_argument("--timeout", type=float, default=1800.0,
                        help="seconds before one run of one approach is killed (default: %(default)s)")
    rig = parser.add_argument_group("rig")
    rig.add_argument("--rig-name", default=env.get("BENCH_RIG_NAME", RigParams.name))
    rig.add_argument("--rig-root", type=Path, default=Path(env.get("BENCH_RIG_ROOT", str(RigParams.root))))
    rig.add_argument("--rig-subnet", type=int, default=int(env.get("BENCH_RIG_SUBNET", RigParams.subnet_index)),
                     help="runners live in 10.231.I.0/24")
    rig.add_argument("--rig-base-port", type=int, default=int(env.get("BENCH_RIG_BASE_PORT", RigParams.base_port)))
    rig.add_argument("--rig-runners", type=_positive, default=int(env.get("BENCH_RIG_RUNNERS", RigParams.runners)))
    return parser


def parse(argv: list[str] | None = None) -> Settings:
    args = build_parser().parse_args(argv)
    repeat = args.repeat or (3 if args.size == "full" else 1)
    return Settings(
        size=args.size, repeat=repeat, parallel=args.parallel, per_runner=args.per_runner or args.parallel,
        approaches=tuple(k for k in APPROACHES if k in args.only),
        workloads=tuple(w for w in WORKLOADS if w in args.workloads),
        out=args.out.resolve(),
        rig=RigParams(args.rig_name, args.rig_root, args.rig_runners, args.rig_subnet, args.rig_base_port),
        keep_rig=args.keep_rig, timeout=args.timeout, slow_baselines=args.slow_baselines, ledgers=args.ledgers)

"""Bring the rig up, run every selected approach on every workload, write and print the report.

Repetitions interleave the approaches (rep 1: a, b, c, ...; rep 2: a, b, c, ...), so a slow phase of the
machine hits all of them alike. Before each run the workload's databases are dropped and created again;
after it, the result in the databases is checked. Neither is timed. Exit 0 when every run worked (targets
missed or not are reported, not enforced: a benchmark is not a timed test), 1 when a run failed, 2 on usage
errors, 3 when the rig could not be brought up.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from environment_creators.errors import RigError

from . import anatomy, approaches, report, settings, workloads
from .approaches.base import Approach
from .approaches.tool import Tool, source_fingerprint
from .measure import Sample
from .results_model import Line, WorkloadResult
from .testbed import Testbed

log = logging.getLogger("bench")


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "?"
    return out.strip().splitlines()[0] if out.strip() else "?"


def environment(bed: Testbed, chosen: list[Approach], tool_parallel: bool | None) -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError, StopIteration):
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    from dbupdater import __version__

    commit = _first_line(["git", "-C", str(settings.PROJECT_DIR), "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", str(settings.PROJECT_DIR), "diff", "--quiet", "HEAD", "--", "dbupdater",
                            "remote_database_updater.py"], capture_output=True, check=False).returncode == 1
    commit += " + uncommitted changes" if dirty else ""
    build = "" if tool_parallel is None else ", parallel build" if tool_parallel else ", sequential build"
    versions = {
        "dbupdater": f"{__version__} (commit {commit}{build})",
        "MariaDB server": bed.sql("SELECT VERSION()").strip(),
        "mysql client": _first_line(["mysql", "--version"]),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }
    for approach in chosen:
        if approach.unavailable() is None and (version := approach.version()):
            versions[approach.label.split(" ", 1)[1]] = version
    return {
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} CPU(s) {cpu}, load {os.getloadavg()[0]:.2f}",
        "cpus": os.cpu_count(),
        "rig": f"{bed.params.name} ({bed.mode} mode, {len(bed.info.runners)} runners)",
        "versions": versions,
    }


def run_workload(bed: Testbed, conf: settings.Settings, workload: workloads.Workload,
                 chosen: list[Approach]) -> WorkloadResult:
    result = WorkloadResult(workload.key, workload.title, len(workload.targets), workload.rows,
                            workload.runners_used(), workload.skipped)
    if workload.skipped:
        say(f"[{workload.key}] skipped: {workload.skipped}")
        return result
    active = []
    for approach in chosen:
        line = Line(approach.id, approach.describe())
        line.na = approach.unavailable() or approach.not_applicable(workload)
        if line.na is None:
            try:
                approach.prepare(workload)
                active.append(approach)
            except Exception as exc:  # shown in the table, never hidden
                line.samples.append(Sample(None, error=f"preparing failed: {exc!r}"))
        result.lines[approach.id] = line
    for rep in range(conf.repeat):
        for approach in active:
            sample = measure_once(bed, workload, approach, rep)
            result.lines[approach.id].samples.append(sample)
            status = "ok" if sample.ok else f"ERROR {sample.error}"
            seconds = "-" if sample.seconds is None else f"{sample.seconds:.2f}s"
            say(f"[{workload.key} {rep + 1}/{conf.repeat}] {approach.id:<5} {seconds:>9}  {status}")
    try:
        workloads.drop(bed, workload)
    except RigError as exc:
        log.warning("dropping the %s databases failed: %s", workload.key, bed.redact(str(exc))[:300])
    return result


def measure_once(bed: Testbed, workload: workloads.Workload, approach: Approach, rep: int) -> Sample:
    try:
        workloads.reset(bed, workload)
        sample = approach.run(workload, rep)
    except Exception as exc:  # a bug or a broken rig: reported in the table, never hidden
        sample = Sample(None, error=f"{type(exc).__name__}: {bed.redact(str(exc))[:500]}")
    if sample.ok:
        try:
            problem = workload.verify(bed)
        except RigError as exc:
            problem = f"check failed: {bed.redact(str(exc)).strip()[:300]}"
        if problem:
            sample.error = f"wrong result: {problem}"
    try:
        approach.cleanup(workload)
    except Exception as exc:
        log.warning("cleanup after %s failed: %s", approach.id, exc)
    return sample


def ssh_costs(bed: Testbed, env: dict[str, Any], repeat: int) -> None:
    """The per-operation SSH costs behind the per-script overhead (see bench/anatomy.py)."""
    try:
        costs = anatomy.measure(bed, repeat)
    except Exception as exc:  # reported, never hidden
        env["ssh_costs_error"] = bed.redact(f"{type(exc).__name__}: {exc}")[:300]
        say(f"bench: measuring SSH operation costs failed: {env['ssh_costs_error']}")
        return
    env["ssh_costs"] = {"repeat": repeat, "costs": [vars(c) for c in costs]}
    for cost in costs:
        say(f"bench: {cost.operation}: {cost.default_ms:.1f} ms (TCP_NODELAY: {cost.nodelay_ms:.1f} ms)")
    try:
        calls = anatomy.tool_calls(bed, repeat)
    except Exception as exc:  # reported, never hidden
        env["ssh_costs"]["tool_calls_error"] = bed.redact(f"{type(exc).__name__}: {exc}")[:300]
        say(f"bench: measuring dbupdater's client calls failed: {env['ssh_costs']['tool_calls_error']}")
        return
    env["ssh_costs"]["tool_calls"] = [vars(c) for c in calls]
    for call in calls:
        say(f"bench: {call.operation}: {call.ms:.1f} ms ({call.low_ms:.1f}-{call.high_ms:.1f})")


def write_outputs(conf: settings.Settings, text: str, data: dict[str, Any], stamp: str) -> list[Path]:
    conf.out.mkdir(parents=True, exist_ok=True)
    latest = "latest" if conf.size == "full" else f"latest-{conf.size}"
    paths = []
    for name in (f"bench-{conf.size}-{stamp}", latest):
        md, js = conf.out / f"{name}.md", conf.out / f"{name}.json"
        md.write_text(text, encoding="utf-8")
        js.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
        paths += [md, js]
    return paths


def main(argv: list[str] | None = None) -> int:
    conf = settings.parse(argv)
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s", stream=sys.stderr)
    logging.getLogger("paramiko").setLevel(logging.WARNING)
    if os.geteuid() != 0:
        say("bench: the rig needs root (runner users, network namespaces, private servers)")
        return 2
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    logs = conf.out / "logs" / stamp
    bed = Testbed(conf.rig)
    started = time.monotonic()
    try:
        try:
            bed.up()
        except RigError as exc:
            say(f"bench: the rig could not be brought up: {exc}")
            return 3
        chosen = approaches.selected(bed, conf, logs)
        tool = next((a for a in chosen if isinstance(a, Tool)), None)
        tool_parallel = tool.parallel_build if tool else None
        fingerprint = source_fingerprint()
        env = environment(bed, chosen, tool_parallel)
        say(f"bench: {conf.size} size, {conf.repeat} repetition(s), N={conf.parallel}, per runner "
            f"{conf.per_runner}; rig {env['rig']}; logs in {logs}")
        for approach in chosen:
            say(f"bench:   {approach.describe()}")
        built = workloads.build(conf.workloads, conf.size, bed.work / "scripts", len(bed.info.runners))
        results = [run_workload(bed, conf, w, chosen) for w in built]
        if {"b", "c"} & set(conf.approaches):
            ssh_costs(bed, env, 15 if conf.size == "full" else 5)
        prepared = [w for w in built if not w.skipped]
        if tool is not None and prepared and "ssh_costs" in env:
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                env["ssh_costs"]["validate_ms"] = tool.validate_ms(prepared[-1])
                env["ssh_costs"]["validate_rows"] = prepared[-1].rows
    finally:
        bed.close(keep_rig=conf.keep_rig)
    env["machine"] += f" (load {os.getloadavg()[0]:.2f} at the end)"
    env["tool_source"] = {"at_start": fingerprint, "at_end": source_fingerprint()}
    if tool is not None and env["tool_source"]["at_start"] != env["tool_source"]["at_end"]:
        say("bench: dbupdater's source changed during the run; the copy made at the start was measured")
    found = report.checks(results, conf, bool(tool_parallel))
    env["seconds"] = round(time.monotonic() - started, 1)
    text = report.markdown(results, conf, env, found)
    paths = write_outputs(conf, text, report.document(results, conf, env, found), stamp)
    print(text)
    say("bench: wrote " + ", ".join(str(p) for p in paths))
    failed = [f"{r.key}/{line.id}" for r in results for line in r.lines.values() if line.errors]
    if failed:
        say(f"bench: {len(failed)} approach(es) failed: {', '.join(failed)} (see the notes column and the logs)")
        return 1
    return 0

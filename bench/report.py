"""The markdown table, the JSON document and the spec's targets (PASS / MISS / not measured)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .results_model import WorkloadResult
from .settings import Settings

SAKILA_FLOOR_MAX = 1.10
FANOUT_IDEAL_MAX = 1.5
ONE_TARGET_MAX = 1.25  # issue 23: one target within 1.25x of the floor
MEASURED_FLOOR_MAX = 1.5  # issue 23: several targets within 1.5x of the floor measured on N workers
ANSIBLE_MIN = 5.0
SEQUENTIAL_MIN = 10.0


@dataclass(frozen=True)
class Check:
    target: str
    measured: str
    verdict: str  # PASS, MISS, not measured
    why: str = ""


def _ratio(top: float | None, bottom: float | None) -> float | None:
    return top / bottom if top is not None and bottom else None


def checks(results: list[WorkloadResult], settings: Settings, tool_parallel: bool) -> list[Check]:
    by_key = {r.key: r for r in results}
    n, m = settings.parallel, settings.per_runner
    size_note = "" if settings.size == "full" else " (tiny size: not the published workload)"
    out: list[Check] = []

    def missing(workload: str, *ids: str) -> str | None:
        result = by_key.get(workload)
        if result is None:
            return f"workload {workload} not run"
        if result.skipped:
            return result.skipped
        for approach_id in ids:
            line = result.line(approach_id)
            if line is None:
                return f"approach {approach_id} not selected"
            if line.na:
                return f"approach {approach_id}: {line.na}"
            if line.median is None:
                return f"approach {approach_id} failed"
        return None

    def compare(name: str, workload: str, ids: tuple[str, str], limit: float, *, at_most: bool,
                vs_baseline: bool) -> None:
        why = missing(workload, *ids)
        if why is not None:
            out.append(Check(name, "-", "not measured", why))
            return
        result = by_key[workload]
        if vs_baseline:
            ratio = _ratio(result.median_of(ids[1]), result.baseline(n, m))
            text = f"{ratio:.2f}x" if ratio else "-"
        else:
            ratio = _ratio(result.median_of(ids[0]), result.median_of(ids[1]))
            text = f"{ratio:.1f}x faster" if ratio else "-"
        if ratio is None:
            out.append(Check(name, "-", "not measured", "no baseline"))
            return
        good = ratio <= limit if at_most else ratio >= limit
        why = "" if tool_parallel or workload != "fanout" else "sequential build of dbupdater (no --parallel)"
        out.append(Check(name + size_note, text, "PASS" if good else "MISS", why))

    compare(f"Sakila load: dbupdater <= {SAKILA_FLOOR_MAX:.2f}x the floor", "sakila", ("a", "b"), SAKILA_FLOOR_MAX,
            at_most=True, vs_baseline=True)
    compare(f"fan-out: dbupdater within {FANOUT_IDEAL_MAX}x of the ideal", "fanout", ("a", "b"), FANOUT_IDEAL_MAX,
            at_most=True, vs_baseline=True)
    for key, what in (("sakila", "Sakila load"), ("ddl", "small DDL scripts"), ("many", "tiny scripts")):
        compare(f"{what}: dbupdater <= {ONE_TARGET_MAX:.2f}x the floor", key, ("a", "b"), ONE_TARGET_MAX,
                at_most=True, vs_baseline=True)
    for key, what in (("fanout", "fan-out"), ("wide", "wide fan-out")):
        why = missing(key, "a_par", "b")
        ratio = None if why else _ratio(by_key[key].median_of("b"), by_key[key].median_of("a_par"))
        name = f"{what}: dbupdater within {MEASURED_FLOOR_MAX}x of the floor measured on {n} workers{size_note}"
        if ratio is None:
            out.append(Check(name, "-", "not measured", why or "no baseline"))
        else:
            out.append(Check(name, f"{ratio:.2f}x", "PASS" if ratio <= MEASURED_FLOOR_MAX else "MISS",
                             "what this machine's cores allow, unlike the ideal"))
    compare(f"fan-out: dbupdater >= {ANSIBLE_MIN:.0f}x faster than Ansible", "fanout", ("d", "b"), ANSIBLE_MIN,
            at_most=False, vs_baseline=False)
    compare(f"fan-out: dbupdater >= {SEQUENTIAL_MIN:.0f}x faster than sequential", "fanout", ("c", "b"),
            SEQUENTIAL_MIN, at_most=False, vs_baseline=False)
    rss = [(r.key, line.peak_rss_kb) for r in results if (line := r.line("b")) and line.peak_rss_kb]
    out.append(Check("controller peak RSS of dbupdater reported",
                     ", ".join(f"{k} {kb / 1024:.0f} MB" for k, kb in rss) or "-",
                     "REPORTED" if rss else "not measured"))
    return out


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def markdown(results: list[WorkloadResult], settings: Settings, env: dict[str, Any], found: list[Check]) -> str:
    n, m = settings.parallel, settings.per_runner
    lines = [
        f"# dbupdater benchmark ({settings.size} size)",
        "",
        f"{env['date']} on {env['machine']}; rig {env['rig']}. Median of {settings.repeat} run(s) each, every run "
        f"on freshly created databases; parallelism N = {n} (at most {m} per runner). Ratios divide by the floor "
        "(one target) or by the ideal (several targets: the LPT schedule of the floor's per-target times on N "
        "slots). Controller CPU: user + system seconds of the controller-side processes; peak RSS: the largest "
        "process of the controller-side tree; both from wait4.",
        "",
    ]
    if settings.ledgers == "existing":
        lines += ["dbupdater's ledger was in place before each of its runs (`--ledgers existing`: put there, untimed, "
                  "by an apply of one `SELECT 1;` per database, as every deployment after the first finds it); "
                  "the other approaches start from the same fresh databases as always.", ""]
    source = env.get("tool_source", {})
    if source and source.get("at_start") != source.get("at_end"):
        lines += ["dbupdater's source changed during this run; what was measured is the copy of it made at the "
                  "start (bench/approaches/tool.py).", ""]
    cpus = env.get("cpus") or 0
    if cpus < n:
        lines += [f"This machine has {cpus} CPU(s) for N = {n} slots: the ideal assumes {n} independent slots, the "
                  "floor measured on N workers shows what the machine actually gives.", ""]
    for result in results:
        lines.append(f"## {result.title}")
        lines.append("")
        if result.skipped:
            lines += [f"Skipped: {result.skipped}", ""]
            continue
        base = result.baseline(n, m)
        lines += ["| approach | median s | min-max s | x floor/ideal | runs ok | controller CPU s | peak RSS | notes |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for line in result.lines.values():
            if line.na:
                lines.append(f"| {_cell(line.label)} | n/a | | | | | | {_cell(line.na)} |")
                continue
            ok = line.ok_seconds
            spread = f"{min(ok):.2f}-{max(ok):.2f}" if ok else "-"
            ratio = _ratio(line.median, base)
            rss = f"{line.peak_rss_kb / 1024:.0f} MB" if line.peak_rss_kb and line.id not in ("a", "a_par") else ""
            note = f"ERROR: {line.errors[0][:300]}" if line.errors else ""
            cpu = _seconds(line.cpu_seconds) if line.cpu_seconds is not None else ""
            times = "-" if ratio is None else f"{ratio:.2f}x"
            lines.append(f"| {_cell(line.label)} | {_seconds(line.median)} | {spread} | {times} | "
                         f"{len(ok)}/{len(line.samples)} | {cpu} | {rss} | {_cell(note)} |")
            if line.id == "a" and result.targets > 1:
                ideal = result.ideal_samples(n, m)
                bound = min((b for _, b in ideal), default=None)
                lines.append(f"| ideal: LPT schedule of the floor's per-target times on {n} slots | {_seconds(base)} | "
                             f"| 1.00x | | | | lower bound {_seconds(bound)} s |")
        lines.append("")
    costs = env.get("ssh_costs")
    if costs:
        lines += [f"## SSH operation costs (runner 1, one paramiko connection, median of {costs['repeat']})", "",
                  "What an SSH-based approach pays per script on top of the client. Nagle's algorithm (on unless "
                  "the socket sets TCP_NODELAY) holds small packets until the peer's delayed ACK: about 40 ms per "
                  "round trip.", "", "| operation | default socket, ms | TCP_NODELAY, ms |", "|---|---:|---:|"]
        lines += [f"| {c['operation']} | {c['default_ms']:.1f} | {c['nodelay_ms']:.1f} |" for c in costs["costs"]]
        if "validate_ms" in costs:
            lines.append(f"| dbupdater `validate` of a {costs['validate_rows']}-row manifest (process start, imports, "
                         f"checks; no connection) | {costs['validate_ms']:.0f} | |")
        lines.append("")
        if costs.get("tool_calls"):
            lines += ["dbupdater's own client calls on runner 1 (its transport, persistent session and ledger): per "
                      "script, and per target (the opening and the release, once each whatever the number of "
                      "scripts).", "", "| call | median ms | min-max ms |", "|---|---:|---:|"]
            lines += [f"| {c['operation'].removeprefix('dbupdater: ')} | {c['ms']:.1f} | {c['low_ms']:.1f}-"
                      f"{c['high_ms']:.1f} |" for c in costs["tool_calls"]]
            lines.append("")
        elif costs.get("tool_calls_error"):
            lines += [f"dbupdater's own client calls: ERROR: {costs['tool_calls_error']}", ""]
    elif env.get("ssh_costs_error"):
        lines += ["## SSH operation costs", "", f"ERROR: {env['ssh_costs_error']}", ""]
    lines += ["## Targets", "", "| target | measured | result | note |", "|---|---|---|---|"]
    lines += [f"| {_cell(c.target)} | {c.measured} | **{c.verdict}** | {_cell(c.why)} |" for c in found]
    lines += ["", "Versions: " + "; ".join(f"{k} {v}" for k, v in env["versions"].items()), ""]
    return "\n".join(lines)


def document(results: list[WorkloadResult], settings: Settings, env: dict[str, Any], found: list[Check]
             ) -> dict[str, Any]:
    n, m = settings.parallel, settings.per_runner
    return {
        "settings": {"size": settings.size, "repeat": settings.repeat, "parallel": n, "per_runner": m,
                     "approaches": list(settings.approaches), "workloads": list(settings.workloads),
                     "ledgers": settings.ledgers},
        "environment": env,
        "workloads": [{
            "key": r.key, "title": r.title, "targets": r.targets, "rows": r.rows, "runners": r.runners,
            "skipped": r.skipped, "baseline_seconds": None if r.skipped else r.baseline(n, m),
            "ideal": [{"lpt_makespan": a, "lower_bound": b} for a, b in r.ideal_samples(n, m)],
            "approaches": [{
                "id": line.id, "label": line.label, "na": line.na, "median_seconds": line.median,
                "peak_rss_kb": line.peak_rss_kb, "controller_cpu_seconds": line.cpu_seconds,
                "samples": [{"seconds": s.seconds, "rss_kb": s.rss_kb, "cpu_seconds": s.cpu_seconds, "error": s.error,
                             "log": s.log,
                             **({"per_target": s.detail["per_target"]} if "per_target" in s.detail else {})}
                            for s in line.samples],
            } for line in r.lines.values()],
        } for r in results],
        "targets": [{"target": c.target, "measured": c.measured, "result": c.verdict, "note": c.why} for c in found],
    }

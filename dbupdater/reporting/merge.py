"""Many run documents as one: the shards of a CI matrix (or several runs) become one document of the same shape,
so the HTML, the JUnit file and the summary of a fleet of jobs are made by the same code as those of one run.

Each result keeps the run it came from (`run_id`, `shard`), and its timeline offsets are moved onto the
earliest run's clock, so the merged timeline shows the shards side by side as they ran.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

from .document import FORMAT, VERSION, Document, moment, summarise, summarise_targets

# The code of the whole from the codes of its parts: the most serious wins, as RunResult.exit_code decides.
SEVERITY = (130, 4, 3, 2, 5, 1, 0)
MISSING_LISTED = 100  # missing shards named (the rest are counted)


def worst(codes: list[int]) -> int:
    if not codes:
        return 0
    return min(codes, key=lambda code: SEVERITY.index(code) if code in SEVERITY else -1)


def missing_shards(present: set[int], total: int) -> tuple[list[str], int]:
    """The first MISSING_LISTED shards of `total` that are not present, and how many are missing in all: a
    document may claim a shard count of a billion, which is no reason to count to it."""
    listed = list(islice((f"{i}/{total}" for i in range(1, total + 1) if i not in present), MISSING_LISTED))
    return listed, total - len({i for i in present if 1 <= i <= total})


def _shifted(value: float | None, by: float) -> float | None:
    return None if value is None else round(value + by, 3)


def merge(documents: list[Document], sources: list[str] | None = None) -> Document:
    """One document from several; the same run given twice counts once."""
    unique: dict[str, tuple[Document, str]] = {}
    for position, document in enumerate(documents):
        key = document["run"]["id"] or f"#{position}"
        unique.setdefault(key, (document, sources[position] if sources else f"#{position + 1}"))
    if not unique:
        raise ValueError("nothing to merge")
    runs = sorted(unique.values(), key=lambda pair: (pair[0]["run"].get("shard") or "", pair[0]["run"]["started_at"]))
    if len(runs) == 1:
        return runs[0][0]
    start = min(moment(document["run"]["started_at"]) for document, _ in runs)
    end = max(moment(document["run"]["finished_at"]) for document, _ in runs)
    results: list[dict[str, Any]] = []
    plan_rows: list[dict[str, Any]] = []
    notices: list[dict[str, str]] = []
    shards = []
    for document, source in runs:
        run = document["run"]
        by = moment(run["started_at"]) - start
        origin = {"run_id": run["id"], "shard": run.get("shard")}
        for result in document["results"]:
            results.append({**result, **origin, "start_offset": _shifted(result.get("start_offset"), by),
                            "end_offset": _shifted(result.get("end_offset"), by)})
        for row in (document.get("plan") or {}).get("rows", []):
            plan_rows.append({**row, **origin})
        label = run.get("shard") or run["id"][:8]
        notices += [{**notice, "text": f"[{label}] {notice['text']}"} for notice in document.get("notices", [])]
        if run.get("error"):
            notices.append({"level": "error", "text": f"[{label}] {run['error']}"})
        shards.append({"run_id": run["id"], "shard": run.get("shard"), "command": run.get("command"),
                       "exit_code": run["exit_code"], "started_at": run["started_at"],
                       "finished_at": run["finished_at"], "seconds": run["seconds"], "source": source,
                       "manifest_sha256": document.get("manifest", {}).get("sha256"),
                       "counts": document["summary"]["counts"]})
    digests = {shard["manifest_sha256"] for shard in shards}
    if len(digests) > 1:
        notices.append({"level": "warning", "text": "the runs merged here read different manifests (their sha256 "
                                                    "differ): the picture may mix versions"})
    first = runs[0][0]
    code = worst([shard["exit_code"] for shard in shards])
    shard_counts = {str(shard["shard"]).partition("/")[2] for shard in shards if shard["shard"]}
    missing: list[str] = []
    if len(shard_counts) == 1:
        total = int(shard_counts.pop())
        present = {int(str(shard["shard"]).partition("/")[0]) for shard in shards if shard["shard"]}
        missing, absent = missing_shards(present, total)
        if missing:
            more = f" and {absent - len(missing)} more" if absent > len(missing) else ""
            notices.append({"level": "warning",
                            "text": f"shards missing from this report: {', '.join(missing)}{more}"})
    commands = sorted({str(shard["command"]) for shard in shards})
    parallel = [(document.get("plan") or {}).get("parallel") for document, _ in runs]
    return {
        "format": FORMAT, "version": VERSION, "tool": first["tool"],
        "run": {"id": "merged-" + "-".join(shard["run_id"][:8] for shard in shards),
                "command": commands[0] if len(commands) == 1 else ",".join(commands), "argv": [],
                "environment": first["run"].get("environment"), "shard": None, "history": first["run"]["history"],
                "report_dir": None, "started_at": min(shard["started_at"] for shard in shards),
                "finished_at": max(shard["finished_at"] for shard in shards),
                "seconds": round(max(0.0, end - start), 3),
                "exit_code": code, "interrupted": any(document["run"]["interrupted"] for document, _ in runs),
                "error": None, "approval": first["run"].get("approval")},  # one plan, approved once, for every shard
        "manifest": {**first["manifest"], "rows": sum(d["manifest"].get("rows", 0) for d, _ in runs),
                     "targets": sum(d["manifest"].get("targets", 0) for d, _ in runs)},
        "plan": {"parallel": parallel[0] if len(set(parallel)) == 1 else None, "per_runner": None, "caps": {},
                 "rows": plan_rows},
        "results": results, "targets": summarise_targets(results), "summary": summarise(results, code),
        "notices": notices, "interrupts": [], "lock_waits": [w for d, _ in runs for w in d.get("lock_waits", [])],
        "merged": {"runs": shards, "missing_shards": missing},
    }

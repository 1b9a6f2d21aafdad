"""The benchmark still works: one tiny run, on its own rig. Not a timed test: no figure is asserted.

Runs the floor, dbupdater and the sequential baseline; Ansible and sqitch too when they are already
installed (bench/run.sh installs them; this test never does). The rig (name dbbt, subnet 10.231.4.0/24,
ports 27650+) is apart from the suite's (dbt) and from the benchmark's own (dbb); DBU_TEST_BENCH_RIG_NAME,
_SUBNET and _PORT pick another (engineers side by side on one machine).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CORPUS, ROOT

_NAME = os.environ.get("DBU_TEST_BENCH_RIG_NAME", "dbbt")
RIG_ENV = {"BENCH_RIG_NAME": _NAME,
           "BENCH_RIG_ROOT": "/tmp/dbupdater-bench-test-rig" + ("" if _NAME == "dbbt" else f"-{_NAME}"),
           "BENCH_RIG_SUBNET": os.environ.get("DBU_TEST_BENCH_RIG_SUBNET", "4"),
           "BENCH_RIG_BASE_PORT": os.environ.get("DBU_TEST_BENCH_RIG_PORT", "27650"), "BENCH_RIG_RUNNERS": "2"}


def _optional_approaches() -> str:
    extra = ""
    playbook = ROOT / "bench" / ".venv-ansible" / "bin" / "ansible-playbook"
    if playbook.exists() or shutil.which("ansible-playbook"):
        extra += ",d"
    dbd = subprocess.run(["perl", "-MDBD::mysql", "-e", "1"], capture_output=True, check=False) if shutil.which(
        "perl") else None
    if shutil.which("sqitch") and dbd is not None and dbd.returncode == 0:
        extra += ",e"
    return extra


def test_bench_tiny_run_produces_a_report(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("the benchmark's rig needs root (runner user, network namespaces, private servers)")
    only = "a,b,c" + _optional_approaches()
    argv = [sys.executable, "-m", "bench", "--size", "tiny", "--only", only, "--out", str(tmp_path)]
    if os.environ.get("DBU_KEEP_RIG") == "1":
        argv.append("--keep-rig")
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, **RIG_ENV})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    report = (tmp_path / "latest-tiny.md").read_text()
    assert report.strip() in proc.stdout  # printed too
    assert "## Targets" in report and "(b) dbupdater" in report
    data = json.loads((tmp_path / "latest-tiny.json").read_text())
    # every workload runs by default; at tiny size the sequential script (c) and Ansible (d) run on many and wide
    # too (at full size they skip them unless --slow-baselines)
    assert [w["key"] for w in data["workloads"]] == ["sakila", "ddl", "fanout", "many", "wide"]
    for workload in data["workloads"]:
        if workload["key"] == "sakila" and not (CORPUS / "mysql").is_dir():
            assert "corpus is absent" in workload["skipped"]
            continue
        assert workload["skipped"] is None
        medians = {a["id"]: a["median_seconds"] for a in workload["approaches"] if not a["na"]}
        assert set(only.split(",")) <= {key[0] for key in medians}, medians
        assert all(value is not None and value > 0 for value in medians.values()), medians
        assert workload["baseline_seconds"] > 0
    tool = [a for w in data["workloads"] if not w["skipped"] for a in w["approaches"] if a["id"] == "b"]
    assert all(a["peak_rss_kb"] > 0 for a in tool)
    assert not Path(RIG_ENV["BENCH_RIG_ROOT"]).exists() or os.environ.get("DBU_KEEP_RIG") == "1"


def test_bench_with_ledgers_in_place_times_dbupdater_after_an_untimed_apply(tmp_path: Path) -> None:
    """`--ledgers existing`: dbupdater's ledger is put in place before each of its timed runs; the report says so,
    and the timed run finds every database's history there (the ledger's first row, then the workload's)."""
    if os.geteuid() != 0:
        pytest.skip("the benchmark's rig needs root (runner user, network namespaces, private servers)")
    argv = [sys.executable, "-m", "bench", "--size", "tiny", "--only", "a,b", "--workloads", "fanout",
            "--ledgers", "existing", "--out", str(tmp_path)]
    if os.environ.get("DBU_KEEP_RIG") == "1":
        argv.append("--keep-rig")
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=600,
                          env={**os.environ, **RIG_ENV})
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    assert "dbupdater's ledger was in place before each of its runs" in (tmp_path / "latest-tiny.md").read_text()
    data = json.loads((tmp_path / "latest-tiny.json").read_text())
    assert data["settings"]["ledgers"] == "existing"
    (fanout,) = data["workloads"]
    tool = next(a for a in fanout["approaches"] if a["id"] == "b")
    assert tool["median_seconds"] is not None and tool["median_seconds"] > 0, tool


COPY_RIG = ["--rig-name", "dbcpt", "--rig-root", "/tmp/dbupdater-bench-copy-test-rig", "--rig-subnet", "10",
            "--rig-base-port", "27900"]


def test_bench_copy_tiny_run_checks_every_approach(tmp_path: Path) -> None:
    """bench.copy on a 2 MB generated database: the floor's and the tool's copies are identical row for row, and
    each peer that is installed (never installed here) ran and was checked. Its own rig (dbcpt, subnet 10, ports
    27900+)."""
    if os.geteuid() != 0:
        pytest.skip("the benchmark's rig needs root (runner user, network namespaces, private servers)")
    from bench.copy.approaches import CHAMELEON

    approaches = ["floor", "tool"] + (["pgloader"] if shutil.which("pgloader") else []) + \
        (["chameleon"] if CHAMELEON.exists() else [])
    argv = [sys.executable, "-m", "bench.copy", "--only", "generated", "--size-mb", "2", "--approaches",
            ",".join(approaches), "--out", str(tmp_path), *COPY_RIG]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]

    assert (tmp_path / "copy.md").read_text().strip() in proc.stdout
    rows = json.loads((tmp_path / "copy.json").read_text())["rows"]
    assert len(rows) == len(approaches)
    floor, tool = rows[:2]
    assert floor["approach"].startswith("floor") and floor["verdict"] == "identical", floor
    assert tool["approach"] == "dbupdater copy-db" and tool["verdict"] == "identical", tool
    assert tool["samples"][0]["peak_rss_kb"] > 0
    for row in rows[2:]:  # a peer may copy wrongly (that is a finding), but it ran and was checked
        sample = row["samples"][0]
        assert sample["error"] is None and sample["seconds"] > 0 and sample["check"]["tables"], row
    assert not Path(COPY_RIG[3]).exists()

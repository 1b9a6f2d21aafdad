"""(c) The one-connection-per-row baseline (``bench/seqclient.py``), run as its own process and timed whole."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..measure import Sample, run_timed
from ..settings import PROJECT_DIR
from ..workloads import Workload
from .base import Approach


class Sequential(Approach):
    id = "c"
    key = "c"
    label = "(c) sequential: new SSH connection + scp + mysql per row"
    slow = True

    def plan(self, workload: Workload) -> Path:
        return self.workdir(workload) / "plan.json"

    def prepare(self, workload: Workload) -> None:
        bed = self.bed
        rows = [{"host": bed.runner(t.runner).host, "port": bed.runner(t.runner).port, "database": t.database,
                 "script": str(script)} for t in workload.targets for script in workload.scripts]
        plan = {"known_hosts": bed.info.known_hosts, "key_file": bed.info.runner_key_file,
                "user": bed.info.runner_user, "cnf": str(bed.controller_cnf), "db_host": bed.db_host,
                "db_port": bed.mysql_port, "rows": rows}
        self.plan(workload).write_text(json.dumps(plan, indent=1), encoding="utf-8")

    def run(self, workload: Workload, rep: int) -> Sample:
        proc = run_timed([sys.executable, "-m", "bench.seqclient", str(self.plan(workload))],
                         self.log_path(workload, rep), timeout=self.settings.timeout, cwd=PROJECT_DIR)
        return self.sample_from(proc, "the sequential script")

"""(a) The floor: the mysql client run directly on the runner host, timed there, script by script.

Scripts and a 0600 option file are placed in a folder owned by the runner user beforehand (the floor does
not move files). A small bash driver runs inside the runner's network namespace as the runner user and reads
bash's ``$EPOCHREALTIME`` around each ``mysql`` call, so the floor is the client's own time: no SSH, no
process start-up of the driver, no Python. The client gets the same options dbupdater gives it.

``a_par`` runs the same drivers on N worker threads (at most M per runner), timed on the controller: the
floor actually executed in parallel, to compare with the computed ideal.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..measure import Sample
from ..settings import Settings
from ..testbed import Testbed, owner_group
from ..workloads import Target, Workload
from .base import Approach, copy_numbered

DRIVER = r"""#!/bin/bash
# Runs on the runner as the runner user: times each script with the mysql client, one line per script.
set -u
cnf=$1 host=$2 port=$3 db=$4
shift 4
for script in "$@"; do
    t0=$EPOCHREALTIME
    mysql --defaults-extra-file="$cnf" --batch --show-warnings --connect-timeout=15 \
        --host="$host" --port="$port" --database="$db" < "$script" > /dev/null
    rc=$?
    t1=$EPOCHREALTIME
    echo "TIMING $rc $t0 $t1"
    if [ "$rc" -ne 0 ]; then exit "$rc"; fi
done
"""


class Floor(Approach):
    id = "a"
    key = "a"
    label = "(a) floor: mysql on the runner (sum of client times)"

    def __init__(self, bed: Testbed, settings: Settings, logs: Path) -> None:
        super().__init__(bed, settings, logs)
        self._scripts: dict[str, list[Path]] = {}

    def describe(self) -> str:
        where = "in its network namespace" if self.bed.mode == "netns" else "(loopback rig: runner = local user)"
        return f"{self.label}; {where}"

    @property
    def driver(self) -> Path:
        return self.bed.runner_dir / "floor-driver.sh"

    def prepare(self, workload: Workload) -> None:
        uid = self.bed.runner_uid
        gid = owner_group(uid)
        if not self.driver.exists():
            self.driver.write_text(DRIVER, encoding="utf-8")
            self.driver.chmod(0o700)
            os.chown(self.driver, uid, gid)
        folder = self.bed.runner_dir / workload.key
        copies = copy_numbered(workload.scripts, folder)
        for path in [folder, *copies]:
            os.chown(path, uid, gid)
            path.chmod(0o700 if path.is_dir() else 0o600)
        self._scripts[workload.key] = copies

    def run_target(self, workload: Workload, target: Target) -> list[float]:
        """The client's time for each script of one target, measured on the runner."""
        argv = [*self.bed.runner_prefix(target.runner), "bash", str(self.driver), str(self.bed.runner_cnf),
                self.bed.db_host, str(self.bed.mysql_port), target.database,
                *map(str, self._scripts[workload.key])]
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": f"/home/{self.bed.info.runner_user}",
               "LANG": "C.UTF-8"}
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=self.settings.timeout,
                              check=False)
        times = []
        for line in proc.stdout.splitlines():
            parts = line.split()
            if len(parts) == 4 and parts[0] == "TIMING":
                if parts[1] != "0":
                    break
                times.append(float(parts[3]) - float(parts[2]))
        if proc.returncode != 0 or len(times) != len(workload.scripts):
            detail = self.bed.redact((proc.stderr or proc.stdout).strip())[-600:]
            raise FloorError(f"mysql on runner {target.runner} for {target.database} failed "
                             f"(exit {proc.returncode}) after {len(times)} script(s): {detail}")
        return times

    def run(self, workload: Workload, rep: int) -> Sample:
        per_target: list[tuple[str, int, list[float]]] = []
        try:
            for target in workload.targets:
                per_target.append((target.database, target.runner, self.run_target(workload, target)))
        except (FloorError, subprocess.TimeoutExpired) as exc:
            return Sample(None, error=str(exc))
        total = sum(sum(times) for _, _, times in per_target)
        return Sample(total, detail={"per_target": per_target})


class FloorError(Exception):
    pass


class FloorParallel(Floor):
    id = "a_par"
    key = "a"
    label = "(a) floor, N workers (measured wall time)"

    def describe(self) -> str:
        return (f"(a) floor on {self.settings.parallel} workers, at most {self.settings.per_runner} per runner "
                "(measured wall time)")

    def not_applicable(self, workload: Workload) -> str | None:
        return None if workload.multi_target else "one target: same as the floor"

    def run(self, workload: Workload, rep: int) -> Sample:
        errors: list[str] = []
        started = time.perf_counter()
        run_pool(workload.targets, self.settings.parallel, self.settings.per_runner,
                 lambda target: self.run_target(workload, target), errors)
        seconds = time.perf_counter() - started
        return Sample(seconds, error=errors[0] if errors else None)


def run_pool(targets: list[Target], slots: int, per_runner: int, job: Callable[[Target], object],
             errors: list[str]) -> None:
    """Run ``job`` for every target on ``slots`` threads, in manifest order, at most ``per_runner`` per runner.

    A free slot takes the first waiting target whose runner is under its cap; after an error nothing new starts.
    """
    waiting = list(targets)
    busy: dict[int, int] = {}
    cond = threading.Condition()

    def worker() -> None:
        while True:
            with cond:
                while True:
                    if errors or not waiting:
                        return
                    pick = next((t for t in waiting if busy.get(t.runner, 0) < per_runner), None)
                    if pick is not None:
                        break
                    cond.wait()
                waiting.remove(pick)
                busy[pick.runner] = busy.get(pick.runner, 0) + 1
            try:
                job(pick)
            except Exception as exc:  # reported in the table, never hidden
                with cond:
                    errors.append(str(exc))
            finally:
                with cond:
                    busy[pick.runner] -= 1
                    cond.notify_all()

    threads = [threading.Thread(target=worker, name=f"bench-floor-{i}") for i in range(min(slots, len(targets)))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

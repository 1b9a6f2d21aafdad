"""(e) sqitch (Debian package) deploying from the controller straight to the database (no runner).

Each script is one sqitch change (deploy script only, ``--no-verify``); each target gets its own registry
database (``sqitch_<db>``: sqitch keys its registry by project, so a shared one would call the second target
up to date). Targets are deployed by N processes at once. No password is given to sqitch (it would put it on
mysql's command line): its DBI connection reads the 0600 option file named in the target URI
(``mysql_read_default_file``), and the mysql client it spawns reads the same file as ``~/.my.cnf`` (HOME is a
private folder).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from ..measure import Proc, Sample, run_timed
from ..workloads import Target, Workload, registry_db
from .base import Approach, copy_numbered
from .floor import run_pool

CONF = """\
[core]
\tengine = mysql
\ttop_dir = .
[user]
\tname = bench
\temail = bench@example.invalid
"""


def sqitch_missing() -> str | None:
    if shutil.which("sqitch") is None:
        return "sqitch is not installed (bench/run.sh: apt-get install -y sqitch libdbd-mysql-perl)"
    probe = subprocess.run(["perl", "-MDBD::mysql", "-e", "1"], capture_output=True, check=False)
    if probe.returncode != 0:
        return "DBD::mysql is missing (apt-get install -y libdbd-mysql-perl)"
    return None


class Sqitch(Approach):
    id = "e"
    key = "e"
    label = "(e) sqitch"
    _version: str | None = None

    def unavailable(self) -> str | None:
        return sqitch_missing()

    def version(self) -> str:
        if self._version is None:
            try:
                out = subprocess.run(["sqitch", "--version"], capture_output=True, text=True, check=False,
                                     timeout=120).stdout
            except OSError:  # not installed: `unavailable` says so where the table needs it
                out = ""
            self._version = out.strip().removeprefix("sqitch ") or "?"
        return self._version

    def describe(self) -> str:
        return (f"{self.label} ({self.version()}): deploy from the controller to the database, "
                f"{self.settings.parallel} targets at a time")

    @property
    def home(self) -> Path:
        return self.bed.work / self.id / "home"

    def prepare(self, workload: Workload) -> None:
        if not (self.home / ".my.cnf").exists():
            self.home.mkdir(parents=True, exist_ok=True, mode=0o700)
            shutil.copyfile(self.bed.controller_cnf, self.home / ".my.cnf")
            (self.home / ".my.cnf").chmod(0o600)
        project = self.workdir(workload)
        changes = copy_numbered(workload.scripts, project / "deploy")
        lines = ["%syntax-version=1.0.0", f"%project=bench_{workload.key}", ""]
        for number, change in enumerate(changes, start=1):
            name = f"c{number:03d}"
            change.rename(change.with_name(f"{name}.sql"))
            lines.append(f"{name} 2024-01-01T00:{number // 60:02d}:{number % 60:02d}Z bench <bench@example.invalid> "
                         f"# {change.name}")
        (project / "sqitch.plan").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (project / "sqitch.conf").write_text(CONF, encoding="utf-8")

    def uri(self, target: Target) -> str:
        return (f"db:mysql://{self.bed.app_user}@127.0.0.1:{self.bed.mysql_port}/{target.database}"
                f"?mysql_read_default_file={self.home / '.my.cnf'}&mysql_read_default_group=client")

    def run(self, workload: Workload, rep: int) -> Sample:
        project = self.workdir(workload)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home), "LANG": "C.UTF-8"}
        procs: list[Proc] = []
        lock = threading.Lock()

        def deploy(target: Target) -> None:
            argv = ["sqitch", "deploy", "--no-verify", "--registry", registry_db(target.database), self.uri(target)]
            proc = run_timed(argv, self.log_path(workload, rep, f"-{target.database}"), timeout=self.settings.timeout,
                             env=env, cwd=project)
            with lock:
                procs.append(proc)
            sample = self.sample_from(proc, f"sqitch deploy to {target.database}")
            if sample.error:
                raise RuntimeError(sample.error)

        errors: list[str] = []
        started = time.perf_counter()
        run_pool(workload.targets, self.settings.parallel, len(workload.targets), deploy, errors)
        seconds = time.perf_counter() - started
        rss = max((p.rss_kb for p in procs), default=None)
        return Sample(seconds, rss_kb=rss, cpu_seconds=sum(p.cpu_seconds for p in procs),
                      error=errors[0] if errors else None,
                      log=str(procs[0].log) if len(procs) == 1 else None)

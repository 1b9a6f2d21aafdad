"""A private S3-compatible server for the rig: moto's standalone server (`moto[server]` from PyPI; no S3
server is installed on this machine), for tests of backups kept in a bucket.

Started on first use (`Rig.s3()`), like the latin1 MariaDB: few tests need it and `up` stays quick. It listens
on 127.0.0.1 at the rig's base port + 6 (inside the rig's own range, below the kernel's ephemeral ports),
keeps everything in memory, and accepts any access key: the rig hands out fixed test keys, which are no
secret. `down` stops it.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import RigError
from .system import find_pids, make_dir, pid_runs, port_free, read_pid, terminate, wait_for

DIR = "s3"
HOST = "127.0.0.1"
REGION = "us-east-1"
ACCESS_KEY = "dbupdater-rig-test-key"  # moto takes any key; fixed, so tests can name them (not secrets)
SECRET_KEY = "dbupdater-rig-test-secret"


@dataclass(frozen=True)
class S3Endpoint:
    url: str

    def env(self) -> dict[str, str]:
        """The usual AWS environment that boto3 (and the tool) read to reach this server."""
        return {"AWS_ENDPOINT_URL": self.url, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
                "AWS_DEFAULT_REGION": REGION}


class MotoS3:
    def __init__(self, root: Path, port: int) -> None:
        self.dir = root / DIR
        self.port = port
        self.pid_file = self.dir / "moto.pid"
        self.log_file = self.dir / "moto.log"

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def _needle(self) -> str:
        return f"moto.server -H {HOST} -p {self.port}"

    def healthy(self) -> bool:
        if not pid_runs(read_pid(self.pid_file), self._needle()):
            return False
        try:
            with urllib.request.urlopen(self.url + "/moto-api/", timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def ensure(self, timeout: float = 60) -> S3Endpoint:
        if self.healthy():
            return S3Endpoint(self.url)
        self.stop()
        if not port_free(HOST, self.port):
            raise RigError(f"port {self.port} on {HOST} is taken: the rig's S3 server cannot start there")
        make_dir(self.dir, mode=0o700)
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", HOST, "-p", str(self.port)],
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.pid_file.write_text(f"{proc.pid}\n")
        wait_for(self.healthy, timeout=timeout, what=f"moto's S3 server on {self.url}",
                 failed=lambda: None if proc.poll() is None else f"it exited with {proc.returncode}; see "
                                                                  f"{self.log_file}")
        return S3Endpoint(self.url)

    def stop(self) -> None:
        """The server of this rig's pid file (whatever port it was given), and any on this rig's port."""
        pid = read_pid(self.pid_file)
        pids = [pid] if pid is not None and pid_runs(pid, "moto.server -H ") else []
        pids += find_pids(re.escape(self._needle()) + "( |$)")
        if pids:
            terminate(pids, timeout=10)
        self.pid_file.unlink(missing_ok=True)

"""Passwords made of every special character (for the runner's SSH login and for a database user on each
server) never appear in any process's argv or environment while runs are in flight (every process on the
machine: the runners share its PID space), nor in any file the runs write (the run folder, the runner's
temp space outside the 0600 credentials files, the runners' sshd logs), nor in any output, in any of the
forms the tool writes them in. The password also carries a shell payload, whose canary must not appear.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import secrets
import stat
import subprocess
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from environment_creators.mariadb import quote_string
from environment_creators.postgres import quote_literal

from ..conftest import Workspace, new_target
from ..test_ledger import start
from . import tally
from .support import effect_script, effects, latest, runner_uid

TOKEN = secrets.token_hex(4)
CANARY = Path(f"/tmp/adv-canary-{TOKEN}-pw")
# Every ASCII punctuation character, a space, non-ASCII letters and an emoji, and a command substitution.
SPECIAL = "p@ss \"w'o#r\\d;$(touch " + str(CANARY) + ")`id`|&<>*?![]{}~^%=+,:./-_é€😀"


def forms(secret: str) -> list[str]:
    """The password and every escaped form it is written in (option file, pgpass, conninfo, URL)."""
    mysql = secret.replace("\\", "\\\\").replace('"', '\\"')
    pgpass = secret.replace("\\", "\\\\").replace(":", "\\:")
    conninfo = secret.replace("\\", "\\\\").replace("'", "\\'")
    return [secret, mysql, pgpass, conninfo, urllib.parse.quote(secret, safe=""), secret[5:25]]


@pytest.fixture
def passwords(rig, info, workspace: Workspace) -> Iterator[dict[str, str]]:  # type: ignore[no-untyped-def]
    """A runner password and a user per server, each SPECIAL with its own suffix, in file: references."""
    runner_pw = SPECIAL + "-r" + secrets.token_hex(3)
    users = {"mysql": (f"advm{TOKEN}", SPECIAL + "-m" + secrets.token_hex(3)),
             "postgresql": (f"advp{TOKEN}", SPECIAL + "-p" + secrets.token_hex(3))}
    subprocess.run(["chpasswd"], input=f"{info.runner_user}:{runner_pw}\n", text=True, check=True)
    rig.mysql_exec(f"CREATE USER '{users['mysql'][0]}'@'%' IDENTIFIED BY {quote_string(users['mysql'][1])}; "
                   f"GRANT ALL PRIVILEGES ON *.* TO '{users['mysql'][0]}'@'%'")
    rig.psql_exec(f"CREATE ROLE {users['postgresql'][0]} LOGIN SUPERUSER PASSWORD "
                  f"{quote_literal(users['postgresql'][1])}")
    for name, value in (("runner.pw", runner_pw), *((f"{e}.pw", users[e][1]) for e in users)):
        path = workspace.dir / name
        path.write_text(value + "\n", encoding="utf-8")
        path.chmod(0o600)
    try:
        yield {"runner": runner_pw, **{e: users[e][1] for e in users}, **{e + "_user": users[e][0] for e in users}}
    finally:
        subprocess.run(["chpasswd"], input=f"{info.runner_user}:{info.runner_password}\n", text=True, check=True)
        rig.mysql_exec(f"DROP USER IF EXISTS '{users['mysql'][0]}'@'%'")
        rig.psql_exec(f"DROP ROLE IF EXISTS {users['postgresql'][0]}")


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as handle:
            return handle.read(1 << 20)
    except OSError:
        return b""


def scan_processes(needles: list[bytes]) -> bool:
    """Every process's argv and environment; whether a native client was among them (else it proved little)."""
    client = False
    for proc in glob.glob("/proc/[0-9]*"):
        for name in ("cmdline", "environ"):
            data = _read(f"{proc}/{name}")
            client = client or b"--defaults-extra-file=" in data or b"PGPASSFILE=" in data
            for needle in needles:
                assert needle not in data, f"a password is in {proc}/{name}: {data[:300]!r}"
    return client


def scan_runner_temp(needles: list[bytes], uid: int) -> None:
    """A file of the runner user's in /tmp holding a password must be a 0600 file in a 0700 private
    directory (the credentials file the client reads), nothing else."""
    for top in glob.glob("/tmp/*"):
        try:
            if os.lstat(top).st_uid != uid:
                continue
        except OSError:
            continue
        for path in [top] if not os.path.isdir(top) else glob.glob(top + "/**", recursive=True):
            if os.path.isdir(path) or not any(needle in _read(path) for needle in needles):
                continue
            parent = os.stat(os.path.dirname(path))
            assert os.path.basename(os.path.dirname(path)).startswith("dbupdater."), path
            assert stat.S_IMODE(parent.st_mode) == 0o700 and stat.S_IMODE(os.stat(path).st_mode) == 0o600, path


def scan_files(needles: list[bytes], paths: list[Path]) -> int:
    count = 0
    for base in paths:
        for path in [base] if base.is_file() else base.rglob("*"):
            if path.is_file() and path.suffix != ".pw":
                count += 1
                data = path.read_bytes()
                for needle in needles:
                    assert needle not in data, f"a password is in {path}"
    return count


def test_no_password_anywhere_while_runs_are_in_flight(workspace: Workspace, rig, info, passwords: dict[str, str],  # type: ignore[no-untyped-def]
                                                       run_tool) -> None:
    targets = [dataclasses.replace(new_target(rig, info, engine), user=passwords[engine + "_user"],
                                   password=passwords[engine]) for engine in ("mysql", "postgresql")]
    for target in targets:
        engine = target.engine
        for script, sleep in (("001.sql", 2.5), ("002.sql", 0)):
            workspace.row(target, workspace.script(f"{engine}-{script}", effect_script(target, script, sleep)),
                          sql_runner_password="file:runner.pw", database_userid=passwords[engine + "_user"],
                          database_password=f"file:{engine}.pw")
    manifest = workspace.write()
    secrets_ = [passwords["runner"], passwords["mysql"], passwords["postgresql"]]
    needles = sorted({form.encode() for secret in secrets_ for form in forms(secret)}, key=len)
    uid = runner_uid()
    try:
        proc = start(workspace, info, "-v")
        sweeps, clients = 0, 0
        while proc.poll() is None:
            clients += scan_processes(needles)
            scan_runner_temp(needles, uid)
            sweeps += 1
        out, _ = proc.communicate()
        tally.add("process scans", sweeps)
        assert proc.returncode == 0, out
        assert sweeps >= 5 and clients >= 2, f"{sweeps} sweeps, {clients} saw a client: the scan proved little"
        for needle in needles:
            assert needle.decode() not in out, "a password is in the run's output"
        again = run_tool("-f", str(manifest), "-v")  # everything applied: the skip path's output too
        assert again.code == 0, again.text
        assert all(needle.decode() not in again.text for needle in needles)
        written = scan_files(needles, [workspace.dir, *Path(info.root, "ssh").glob("runner*/sshd.log")])
        assert written >= 3, written
        scan_runner_temp(needles, uid)
        assert not CANARY.exists(), "the password's command substitution was executed"
        for target in targets:
            assert latest(target) == {f"{target.engine}-001.sql": "success", f"{target.engine}-002.sql": "success"}
            assert sum(effects(target).values()) == 2
    finally:
        CANARY.unlink(missing_ok=True)
        for target in targets:
            target.drop()

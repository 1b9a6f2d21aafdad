"""Secrets stay secret, values never become code, host keys are verified, and failures to connect exit 3."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .adversarial.support import private_dirs
from .conftest import HEADER, ROOT, Target, Workspace, run_sampled, secret_values
from .test_notify import server  # noqa: F401  (the fixture: a real HTTP server on 127.0.0.1)


def test_no_secret_in_any_process_while_a_script_runs(workspace: Workspace, target: Target, info) -> None:
    workspace.row(target, workspace.script("slow.sql", target.sleep(4) + "\nCREATE TABLE slept (id INT);\n"))
    argv = [sys.executable, str(ROOT / "remote_database_updater.py"), "-f", str(workspace.write()),
            "--known-hosts", info.known_hosts, "--color", "never"]
    code, out, clients = run_sampled(argv, secret_values(info),
                                     lambda text: "--defaults-extra-file" in text or "PGPASSFILE" in text,
                                     deadline=60)
    assert code == 0, out
    assert clients, "the native client was never observed running; the check proved nothing"
    assert "slept" in target.tables()


def test_private_directory_is_0700_and_removed(workspace: Workspace, target: Target, info) -> None:
    workspace.row(target, workspace.script("slow.sql", target.sleep(3) + "\n"))
    workspace.row(target, workspace.script("bad.sql", "SELEC 1;\n"))
    before = private_dirs()  # this rig's runner's only: other rigs on the machine make theirs meanwhile
    argv = [sys.executable, str(ROOT / "remote_database_updater.py"), "-f", str(workspace.write()),
            "--known-hosts", info.known_hosts]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    modes = set()
    while proc.poll() is None:
        for path in private_dirs() - before:
            try:
                stat = os.stat(path)
            except FileNotFoundError:
                continue
            modes.add((oct(stat.st_mode & 0o777), stat.st_uid))
            for child in glob.glob(path + "/*"):
                with contextlib.suppress(FileNotFoundError):
                    modes.add((oct(os.stat(child).st_mode & 0o777), "file"))
        time.sleep(0.05)
    assert proc.returncode == 1
    runner_uid = int(subprocess.run(["id", "-u", info.runner_user], capture_output=True, text=True).stdout)
    assert ("0o700", runner_uid) in modes, modes
    assert {mode for mode, kind in modes if kind == "file"} <= {"0o600"}
    assert private_dirs() - before == set(), "the private directory was left behind"


@pytest.mark.parametrize("field", ["database", "database_userid", "script_name", "runner_user"])
def test_injection_attempts_execute_nothing(workspace: Workspace, target: Target, run_tool, field: str,
                                            info) -> None:
    marker = f"dbu-pwned-{os.urandom(4).hex()}"
    # A file name cannot hold "/", so that payload touches a relative path: the shell's working directory.
    relative = f"x;touch {marker};$(touch {marker})`touch {marker}`"
    absolute = f"x; touch /tmp/{marker}; $(touch /tmp/{marker}) `touch /tmp/{marker}`"
    overrides = {"database": {"database": absolute}, "database_userid": {"database_userid": absolute},
                 "runner_user": {"sql_runner_userid": absolute}}.get(field, {})
    script = workspace.script(f"{relative}.sql" if field == "script_name" else "plain.sql",
                              "CREATE TABLE injected_ok (id INT);\n")
    workspace.row(target, script, **overrides)
    result = run_tool("-f", str(workspace.write()))
    runner_home = Path(pwd.getpwnam(info.runner_user).pw_dir)
    for place in (Path("/tmp"), runner_home, ROOT, workspace.dir, Path.cwd()):
        assert not (place / marker).exists(), f"a manifest value was executed by a shell (found in {place})"
    if field == "script_name":
        assert result.code == 0, result.text
        assert "injected_ok" in target.tables()
    else:
        assert result.code == 3, result.text  # unknown database / user / SSH user: nothing ran
        assert "injected_ok" not in target.tables()


def test_wrong_ssh_password_exits_3(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("x.sql", "CREATE TABLE nope (id INT);\n"), sql_runner_password="wrong-pw")
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 3, result.text
    assert "authentication failed" in result.text
    assert "nope" not in target.tables()


def test_wrong_database_password_exits_3(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("x.sql", "CREATE TABLE nope (id INT);\n"), database_password="wrong-pw")
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 3, result.text
    assert "cannot connect to or log in to the database" in result.text


def test_unreachable_runner_exits_3(workspace: Workspace, target: Target, run_tool, info) -> None:
    workspace.row(target, workspace.script("x.sql", "SELECT 1;\n"), sql_runner_host="127.0.0.1",
                  sql_runner_port="1")  # nothing listens on port 1
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 3, result.text
    assert "unreachable" in result.text


def test_unreachable_database_exits_3(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("x.sql", "SELECT 1;\n"), port="1")
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 3, result.text


def test_missing_client_exits_3(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("x.sql", "SELECT 1;\n"), database_host="127.0.0.1")
    workspace.rows[-1]["transport"] = "local"
    result = run_tool("-f", str(workspace.write(header=[*HEADER, "transport"])), env={"PATH": "/nonexistent"})
    assert result.code == 3, result.text
    assert "client is not installed or not on PATH" in result.text


class TestHostKeys:
    def test_unknown_host_key_is_refused(self, workspace: Workspace, target: Target, run_tool, tmp_path) -> None:
        workspace.row(target, workspace.script("x.sql", "CREATE TABLE nope (id INT);\n"))
        empty = tmp_path / "known_hosts"
        empty.write_text("")
        result = run_tool("-f", str(workspace.write()), "--known-hosts", str(empty), known_hosts=False)
        assert result.code == 3, result.text
        assert "is not in" in result.text and "--accept-new-host-keys" in result.text
        assert "nope" not in target.tables()
        assert empty.read_text() == ""

    def test_accept_new_records_the_key_then_verifies_it(self, workspace: Workspace, target: Target, run_tool,
                                                        tmp_path, info) -> None:
        workspace.row(target, workspace.script("x.sql", "SELECT 1;\n"))
        path = workspace.write()
        known = tmp_path / "kh" / "known_hosts"
        first = run_tool("-f", str(path), "--known-hosts", str(known), "--accept-new-host-keys", known_hosts=False)
        assert first.code == 0, first.text
        assert "trusted new host key" in first.err
        recorded = known.read_text()
        assert info.runners[0].host in recorded and oct(known.stat().st_mode & 0o777) == "0o600"
        again = run_tool("-f", str(path), "--known-hosts", str(known), known_hosts=False)
        assert again.code == 0, again.text

    def test_changed_host_key_is_refused_even_with_accept_new(self, workspace: Workspace, target: Target,
                                                              run_tool, tmp_path, info) -> None:
        workspace.row(target, workspace.script("x.sql", "SELECT 1;\n"))
        wrong_key = tmp_path / "other"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(wrong_key)], check=True)
        runner = info.runners[0]
        host = runner.host if runner.port == 22 else f"[{runner.host}]:{runner.port}"
        known = tmp_path / "known_hosts"
        known.write_text(f"{host} {wrong_key.with_suffix('.pub').read_text().split()[0]} "
                         f"{wrong_key.with_suffix('.pub').read_text().split()[1]}\n")
        result = run_tool("-f", str(workspace.write()), "--known-hosts", str(known), "--accept-new-host-keys",
                          known_hosts=False)
        assert result.code == 3, result.text
        assert "HOST KEY MISMATCH" in result.text


WEBHOOK_PASSWORD = "hook-Pa55word-7f3e"


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
@pytest.mark.parametrize("given", ["literal", "reference"])
def test_a_webhook_url_with_user_and_password_is_refused_before_anything_runs(  # type: ignore[no-untyped-def]
        workspace: Workspace, target: Target, run_tool, server, given: str) -> None:  # noqa: F811
    """`http://user:password@host/` passed the URL checks, then every post failed at the end of the run (the
    HTTP client took `user:password@host` for the host name). Refused up front: exit 2, naming the option,
    never printing the password, nothing run and nothing posted."""
    hook = server(204)
    url = hook.url().replace("://", f"://deploy:{WEBHOOK_PASSWORD}@")
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE notified (id INT);\n"))
    value, env = (f"webhook:{url}", {}) if given == "literal" else ("webhook:env:DBU_TEST_HOOK", {"DBU_TEST_HOOK": url})
    result = run_tool("-f", str(workspace.write()), "--notify", value, env=env)
    assert result.code == 2, result.text
    assert "--notify" in result.text and "user name or password" in result.text
    assert WEBHOOK_PASSWORD not in result.text
    assert target.tables() == set() and hook.received == []

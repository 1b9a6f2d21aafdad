"""A runner whose sshd allows few channels per connection (MaxSessions): the run opens more connections instead of
failing (issue 13). A second sshd of the test's own, beside runner 1 (its network namespace, its host key, its
user), started and stopped with the rig's own functions.
"""

from __future__ import annotations

import re
import shutil
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from environment_creators import runners
from environment_creators.info import RunnerInfo
from environment_creators.layout import Layout

from .conftest import Target, Workspace

EXTRA = 90  # the index of the extra sshd in the rig's layout of runners


@dataclass(frozen=True)
class _WithExtra(Layout):
    """The rig's layout, with runner EXTRA's files in a folder of the test's own."""

    extra: Path = Path()

    def runner_dir(self, index: int) -> Path:
        return self.extra if index == EXTRA else super().runner_dir(index)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@dataclass
class LimitedRunner:
    host: str
    port: int
    known_hosts: Path
    log: Path

    def refusals(self) -> int:
        """Channels sshd refused for MaxSessions, by its log (LogLevel VERBOSE says so for each)."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return len(re.findall(r"(?i)too many sessions|no more sessions|session_new: ", text))


@pytest.fixture
def limited_runner(rig, info, tmp_path: Path) -> Iterator[Callable[[int], LimitedRunner]]:  # type: ignore[no-untyped-def]
    started: list[_WithExtra] = []

    def start(max_sessions: int) -> LimitedRunner:
        base = rig.layout
        layout = _WithExtra(base.root, tmp_path / "limited-sshd")
        layout.extra.mkdir(mode=0o755)
        for suffix in ("", ".pub"):  # runner 1's host key: the same machine, another port
            shutil.copy2(base.host_key(1).with_name(base.host_key(1).name + suffix),
                         layout.host_key(EXTRA).with_name(layout.host_key(EXTRA).name + suffix))
        first = info.runners[0]
        port = 2222 if first.netns else _free_port(first.host)
        runner = RunnerInfo(f"{first.name}-limited", first.host, port, first.netns)
        runners.write_sshd_config(layout, EXTRA, runner, info.runner_user)
        config = layout.sshd_config(EXTRA)
        config.write_text(config.read_text().replace("MaxSessions 100", f"MaxSessions {max_sessions}"))
        key_type, key = layout.host_key(EXTRA).with_suffix(".pub").read_text().split()[:2]
        known = tmp_path / "known_hosts"  # the test's own: the rig's file stays as it is
        known.write_text(f"[{runner.host}]:{runner.port} {key_type} {key}\n")
        started.append(layout)
        runners.start_sshd(layout, EXTRA, runner)
        return LimitedRunner(runner.host, runner.port, known, layout.sshd_log(EXTRA))

    yield start
    for layout in started:
        runners.stop_sshd(layout, EXTRA)


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_six_databases_through_a_runner_allowing_two_sessions(workspace: Workspace, target: Target, rig,
                                                              limited_runner, run_tool) -> None:
    sshd = limited_runner(2)
    others = [target.sibling(f"{target.name}_{n}") for n in range(5)]
    names = [target.name] + [other.name for other in others]
    try:
        script = workspace.script("001_slow.sql", "SELECT SLEEP(1);\nCREATE TABLE done_here (id INT);\n")
        for db in (target, *others):
            workspace.row(db, script, sql_runner_host=sshd.host, sql_runner_port=str(sshd.port))
        began = time.monotonic()
        result = run_tool("-f", str(workspace.write()), "--parallel", "6", "--known-hosts", str(sshd.known_hosts),
                          known_hosts=False)
        took = time.monotonic() - began
        assert result.code == 0, result.text
        assert result.text.count("applied") >= 6
        for name in names:
            assert target.rows(f"SELECT script, status FROM {name}.dbupdater_history") == [["001_slow.sql", "success"]]
        # The 6 ran at once, not 2 at a time (which would take at least 3 s of sleeping).
        assert took < 3 + 2.5, f"took {took:.1f}s"
        assert "opening another connection" in result.text
        print(f"6 databases through MaxSessions 2: {took:.2f}s, {result.text.count('refused a channel')} extra "
              "connection(s)")
    finally:
        for other in others:
            other.drop()


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_a_runner_refusing_every_session_is_unreachable_not_a_loop(workspace: Workspace, target: Target,
                                                                   limited_runner, run_tool) -> None:
    sshd = limited_runner(0)  # MaxSessions 0: no sessions at all
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE t (id INT);\n"),
                  sql_runner_host=sshd.host, sql_runner_port=str(sshd.port))
    began = time.monotonic()
    result = run_tool("-f", str(workspace.write()), "--known-hosts", str(sshd.known_hosts), known_hosts=False,
                      timeout=60)
    assert result.code == 3, result.text
    assert "refused a channel" in result.text and "MaxSessions" in result.text
    assert time.monotonic() - began < 20

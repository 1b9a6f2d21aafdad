"""The suite's parameters come from the engine registry: every registered engine, each through its peer.

`engine` is every name `dbupdater.engines.registry.engines()` holds at collection; `peer` fails the case when
the engine has no peer, and skips it, saying why, when the test (or its parameter) is marked
`needs(Capability...)` and the peer cannot honour that; `db` is a fresh database of the peer; `tool` runs
the real command line on its manifest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dbupdater.engines import registry
from environment_creators.info import RigInfo
from environment_creators.rig import Rig

from ..conftest import ROOT, Result, secret_values
from .peers import Capability, Database, Peer, peer_for


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(*capabilities): the peer must offer these (peers.Capability)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "engine" in metafunc.fixturenames:
        metafunc.parametrize("engine", sorted(registry.engines()))


@pytest.fixture
def peer(engine: str, request: pytest.FixtureRequest) -> Peer:
    needed = [capability for marker in request.node.iter_markers("needs") for capability in marker.args]
    assert all(isinstance(capability, Capability) for capability in needed), needed
    return peer_for(engine, needed)


@pytest.fixture
def db(peer: Peer, rig: Rig, info: RigInfo, tmp_path: Path) -> Iterator[Database]:
    with peer.database(rig, info, tmp_path) as database:
        yield database


@dataclass
class Tool:
    """The real command line on the database's manifest, in a subprocess; no secret in any output."""

    run_tool: Callable[..., Result]
    info: RigInfo
    db: Database

    def leaks(self, text: str) -> list[str]:
        return [value for value in [*secret_values(self.info), *self.db.secrets] if value in text]

    def __call__(self, command: str, *args: str, manifest: Path | None = None,
                 env: dict[str, str] | None = None) -> Result:
        result = self.run_tool(command, "-f", str(manifest or self.db.manifest()), *args, env=env)
        assert not self.leaks(result.text), "a secret value appeared in the tool's output"
        return result

    def start(self, command: str, *args: str) -> subprocess.Popen[str]:
        """The same, running in the background (stdout and stderr together, line by line)."""
        argv = [sys.executable, str(ROOT / "remote_database_updater.py"), command, "-f",
                str(self.db.folder / "manifest.csv"), *args, "--color", "never", "--known-hosts", self.info.known_hosts]
        return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                                env=dict(os.environ), bufsize=1)


@pytest.fixture
def tool(run_tool: Callable[..., Result], info: RigInfo, db: Database) -> Tool:
    return Tool(run_tool, info, db)

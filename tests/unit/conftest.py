"""Fixtures of the unit layer: the stub engine and fake transport registered for one test, and a repository.

Nothing here may use the rig (tests/conftest.py starts it only for tests that ask for it): a unit test that
asks for it, directly or through another fixture, fails at once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .fakes import Harness, Repo, installed


@pytest.fixture(autouse=True)
def _no_rig(request: pytest.FixtureRequest) -> None:
    assert "rig" not in request.fixturenames, "unit tests must not bring up the rig"


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    """Fake runners and stub databases under tmp_path, registered for this test only. SIGINT raises
    KeyboardInterrupt as Python's own handler does, noting where it landed (see Harness.press)."""
    fake = Harness(tmp_path / "fake")
    previous = signal.signal(signal.SIGINT, fake.on_sigint)
    try:
        with installed(fake):
            yield fake
    finally:
        signal.signal(signal.SIGINT, previous)
        fake.close()


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")

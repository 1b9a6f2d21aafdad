"""A target whose latest restore (or copy) failed or never finished may hold part of a backup and part of
what was there: nothing runs on it until a restore succeeds."""

from __future__ import annotations

import json

import pytest

from dbupdater.model.errors import ExitCode

from .fakes import Harness, Repo
from .test_loop import main


def record_restore(harness: Harness, database: str, status: str) -> None:
    harness.query(database, "INSERT INTO dbupdater_history (script, checksum, checksum_version, status, started_at, "
                            f"run_id) VALUES ('restore shop--20261207T090000.000Z.sql.zst', 'sha256:x', 1, '{status}', "
                            "'2026-12-07 09:00:00', 'r1')")


def test_a_failed_restore_blocks_its_target_until_a_restore_succeeds(
        harness: Harness, repo: Repo, capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("001.sql", "ok"))
    repo.row("b", repo.script("001.sql", "ok"))
    assert main(repo) == ExitCode.OK
    repo.row("a", repo.script("002.sql", "ok"))
    record_restore(harness, "a", "failed")
    assert main(repo) == ExitCode.REFUSED
    assert harness.ran_on("a") == ["001.sql"]
    capsys.readouterr()
    assert main(repo, "plan", "--output", "json", "--no-report") == ExitCode.REFUSED
    rows = json.loads(capsys.readouterr().out)["plan"]["rows"]
    assert [row["state"] for row in rows] == ["in doubt", "applied", "in doubt"]
    assert rows[0]["detail"].startswith("its latest restore did not succeed (shop--20261207T090000.000Z.sql.zst")
    assert "may be partly restored" in rows[0]["detail"]
    record_restore(harness, "a", "success")
    assert main(repo) == ExitCode.OK
    assert harness.ran_on("a") == ["001.sql", "002.sql"]

"""`validate --without-secrets` checks what a CI job without secrets can check: a key file the manifest names
(`file:PATH` or a plain path) is a secret like a password, so it is not looked for there; without the option a
missing key file is still exit 2 naming its line and column."""

from __future__ import annotations

import pytest

from dbupdater import cli
from dbupdater.model.errors import ExitCode

from .fakes import HEADER, Harness, Repo


@pytest.mark.parametrize("cell", ["file:/run/secrets/runner_ssh_key_not_here", "keys/deploy_key_not_here"])
def test_a_key_file_is_not_looked_for_without_secrets(harness: Harness, repo: Repo, cell: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    repo.row("a", repo.script("1.sql", "ok"), sql_runner_key_file=cell)
    manifest = repo.write(header=[*HEADER, "sql_runner_key_file"])
    assert cli.main(["validate", "-f", str(manifest), "--without-secrets", "--color", "never"]) == ExitCode.OK
    capsys.readouterr()
    assert cli.main(["validate", "-f", str(manifest), "--color", "never"]) == ExitCode.USAGE
    assert "line 2, column sql_runner_key_file" in capsys.readouterr().err

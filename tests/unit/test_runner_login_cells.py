"""A runner's user and port cells (manifest/rows.py): empty leaves them to the transport's own configuration
where the kind has one (SSH: ~/.ssh/config, else OpenSSH's defaults), the manifest's value wins when given, and
bad values are still refused with the row and the column named, exit 2, before anything connects."""

from __future__ import annotations

from pathlib import Path

import pytest

from dbupdater import cli
from dbupdater.manifest import load
from dbupdater.model.errors import ExitCode, ManifestError
from dbupdater.transports import registry

HEADER = ["sql_runner_host", "sql_runner_userid", "sql_runner_password", "sql_runner_port", "database_type",
          "database_host", "database_userid", "database_password", "port", "database", "sql_script_to_run",
          "transport"]


def _manifest(tmp_path: Path, *rows: dict[str, str]) -> Path:
    (tmp_path / "s.sql").write_text("SELECT 1;\n", encoding="utf-8")
    lines = [",".join(HEADER)]
    for cells in rows:
        row = {"sql_runner_host": "db-runner-3", "sql_runner_userid": "", "sql_runner_password": "",
               "sql_runner_port": "", "database_type": "MySQL", "database_host": "db1", "database_userid": "app",
               "database_password": "", "port": "3306", "database": "shop", "sql_script_to_run": "s.sql",
               "transport": "", **cells}
        lines.append(",".join(row[name] for name in HEADER))
    path = tmp_path / "m.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _problems(path: Path) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(ManifestError) as caught:
        load(path)
    return [(p.line, p.column, p.message) for p in caught.value.problems]


def test_ssh_rows_may_leave_user_port_and_password_to_the_ssh_config(tmp_path: Path) -> None:
    (row,) = load(_manifest(tmp_path, {})).rows
    assert (row.runner.transport, row.runner.host, row.runner.user, row.runner.port) == ("ssh", "db-runner-3", "", 0)
    assert row.runner.password is None and row.runner.key_file is None  # the config's key, or the agent
    assert row.runner.label == "db-runner-3"
    assert registry.get("ssh").login_from_config


def test_the_manifests_user_and_port_win_when_given(tmp_path: Path) -> None:
    rows = load(_manifest(tmp_path, {"sql_runner_userid": "alice", "sql_runner_port": "22"},
                          {"sql_runner_userid": "bob", "sql_runner_port": "2222", "database": "other"})).rows
    assert [(row.runner.user, row.runner.port) for row in rows] == [("alice", 22), ("bob", 2222)]
    assert [row.runner.label for row in rows] == ["alice@db-runner-3", "bob@db-runner-3:2222"]


@pytest.mark.parametrize("port", ["0", "65536", "22x", "-1", "\uff12\uff12"])  # the last: full-width digits
def test_a_bad_port_is_still_refused_naming_row_and_column(tmp_path: Path, port: str) -> None:
    found = _problems(_manifest(tmp_path, {"sql_runner_port": port}))
    assert found == [(2, "sql_runner_port", f"{port!r} is not a port number (1-65535)")]


def test_a_kind_without_a_configuration_still_needs_its_user_and_takes_its_default_port(tmp_path: Path) -> None:
    found = _problems(_manifest(tmp_path, {"transport": "winrm", "sql_runner_password": "pw"}))
    assert found == [(2, "sql_runner_userid", "is empty")]
    (row,) = load(_manifest(tmp_path, {"transport": "winrm", "sql_runner_userid": "deploy",
                                       "sql_runner_password": "pw"})).rows
    assert (row.runner.user, row.runner.port) == ("deploy", registry.get("winrm").default_port)
    assert not registry.get("winrm").login_from_config


def test_validate_exits_2_on_a_bad_runner_port_and_0_on_empty_cells(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    good = _manifest(tmp_path, {})
    assert cli.main(["validate", "-f", str(good), "--color", "never"]) == ExitCode.OK
    bad = _manifest(tmp_path, {"sql_runner_port": "ssh"})
    assert cli.main(["validate", "-f", str(bad), "--color", "never"]) == ExitCode.USAGE
    err = capsys.readouterr().err
    assert "line 2" in err and "sql_runner_port" in err and "'ssh' is not a port number" in err

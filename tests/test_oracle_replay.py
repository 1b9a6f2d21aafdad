"""The Oracle engine end to end on the rig's real SSH runners, with a replay `sqlplus` answering recorded real
outputs (../shared/clients/samples; no Oracle server runs here).

Each test writes a manifest and scripts, runs the real tool (`exec`: the history needs a server), and checks
the verdict and exit code for one trap of sqlplus.md, and what the client received: argv, environment names,
the stdin session (CONNECT password masked by the replay) and the script file. `tests/replay/sqlplus` says
how it chooses its answer and its exit code.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from .conftest import HEADER, write_manifest

HERE = Path(__file__).resolve().parent
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "clients"
SAMPLES = SHARED / "samples"
REPLAY = HERE / "replay" / "sqlplus"
PASSWORD = "p@ss\"w'o#r\\d;$(id) &x"
COLUMNS = [*HEADER, "oracle_sid", "oracle_alias", "oracle_wallet", "oracle_define"]

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"the recorded sqlplus outputs are not here ({SAMPLES})")


@dataclass
class Replay:
    logs: Path

    def calls(self) -> list[dict[str, Any]]:
        found = []
        for call in sorted(self.logs.glob("call-*"), key=lambda p: int(p.name.split("-")[1])):
            data = json.loads((call / "call.json").read_text(encoding="utf-8"))
            data["scripts"] = [p.read_text(encoding="utf-8") for p in sorted(call.glob("script*.sql"))]
            found.append(data)
        return found


@pytest.fixture
def sqlplus(info) -> Iterator[Replay]:  # type: ignore[no-untyped-def]
    """Our sqlplus first on the runners' PATH for this test (mysql and psql stay the real ones)."""
    bin_dir = Path(info.replay_bin)
    logs = Path(tempfile.mkdtemp(prefix="dbu-sqlplus-replay-"))
    logs.chmod(0o1777)  # the runner user writes its records here
    installed = [bin_dir / "sqlplus", bin_dir / "sqlplus.logdir", bin_dir / "sqlplus-samples"]
    shutil.copyfile(REPLAY, installed[0])
    installed[0].chmod(0o755)
    installed[1].write_text(str(logs) + "\n", encoding="utf-8")
    installed[1].chmod(0o644)
    shutil.copytree(SAMPLES, installed[2], dirs_exist_ok=True)
    for path in [installed[2], *installed[2].iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    try:
        yield Replay(logs)
    finally:
        installed[0].unlink(missing_ok=True)
        installed[1].unlink(missing_ok=True)
        shutil.rmtree(installed[2], ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)


def row(info, script: str, **overrides: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    runner = info.runners[0]
    values = {"sql_runner_host": runner.host, "sql_runner_userid": info.runner_user,
              "sql_runner_password": info.runner_password, "sql_runner_port": str(runner.port),
              "database_type": "Oracle", "database_host": "oracle.example", "database_userid": "app",
              "database_password": PASSWORD, "port": "1521", "database": "ORCLPDB1", "sql_script_to_run": script}
    values.update(overrides)
    return values


def write(tmp_path: Path, scripts: dict[str, str], info, **overrides: str) -> Path:  # type: ignore[no-untyped-def]
    rows = []
    for name, text in scripts.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
        rows.append(row(info, name, **overrides))
    return write_manifest(tmp_path / "manifest.csv", COLUMNS, rows)


def run_exec(run_tool, manifest: Path):  # type: ignore[no-untyped-def]
    result = run_tool("exec", "-f", str(manifest))
    assert PASSWORD not in result.text and "p@ss" not in result.text
    return result


def assert_clean(call: dict[str, Any]) -> None:
    """No password in argv or any environment string; the password reached sqlplus only on stdin."""
    assert call["argv"][1:] == ["-S", "-L", "/nolog"]
    assert not any("p@ss" in arg for arg in call["argv"])
    digest = hashlib.sha256(PASSWORD.encode()).hexdigest()
    assert not any("p@ss" in value or digest in value for value in call["env"].values())
    assert call["env"]["NLS_LANG"] == "AMERICAN_AMERICA.AL32UTF8"
    assert call["env"]["SQLPATH"] == call["env"]["ORACLE_PATH"]
    assert f'<sha256:{digest},len:{len(PASSWORD)}>' in call["stdin"]  # the CONNECT line carried it


# --- the happy path: invocation, session, upload -----------------------------------------------------------


def test_a_clean_script_applies_and_the_session_is_as_documented(tmp_path, info, run_tool, sqlplus) -> None:
    manifest = write(tmp_path, {"001_init.sql": "CREATE TABLE t (n NUMBER);\n"}, info)
    result = run_exec(run_tool, manifest)
    assert result.code == 0, result.text
    (call,) = sqlplus.calls()
    assert_clean(call)
    lines = call["stdin"].splitlines()
    assert lines[:4] == ["SET ECHO OFF", "SET DEFINE OFF", "WHENEVER OSERROR EXIT 9", "WHENEVER SQLERROR EXIT 3"]
    assert lines[4].startswith("CONNECT app/<sha256:") and lines[4].endswith('@//oracle.example:1521/"ORCLPDB1"')
    assert lines[5] == "WHENEVER SQLERROR EXIT 4 ROLLBACK"
    script_line = next(line for line in lines if line.startswith("@"))
    assert script_line.endswith("-001_init.sql") and call["env"]["SQLPATH"] in script_line
    assert "user_errors" in call["stdin"] and lines[-1] == "EXIT"
    assert call["scripts"] == ["CREATE TABLE t (n NUMBER);\n"]


def test_dollar_space_and_at_in_a_file_name_never_reach_sqlplus(tmp_path, info, run_tool, sqlplus) -> None:
    """sqlplus-sp2-0310-dollar-in-filename-exit0.txt: `@v.$install.sql` fails with SP2-0310 and exit 0. The
    tool names the upload itself, so the script runs (and SP2-0310 would fail the row: next test)."""
    manifest = write(tmp_path, {"v.$install @x y.sql": "SELECT 1 FROM dual;\n"}, info)
    result = run_exec(run_tool, manifest)
    assert result.code == 0, result.text
    (call,) = sqlplus.calls()
    script_line = next(line for line in call["stdin"].splitlines() if line.startswith("@"))
    assert "$" not in script_line and " " not in script_line and "@" not in script_line[1:]
    assert call["scripts"] == ["SELECT 1 FROM dual;\n"]


# --- traps: each fails the row (exit 1) whatever sqlplus's own exit code ------------------------------------

FAILING = {
    # exit 4 (our WHENEVER SQLERROR EXIT 4) after an ORA- error
    "sqlplus-ora-00942-exit0-no-whenever.txt": 1,
    "sqlplus-docs-whenever-sqlerror-ora-00904.txt": 1,
    "sqlplus-pls-00201-ora-06550-block-exit0.txt": 1,
    "sqlplus-plsql-error-at-line-ora-06502.txt": 1,
    "sqlplus-ora-12505-in-plsql-call-stack.txt": 1,  # a TNS code, but from the script (no "ERROR:" login form)
    "sqlplus-ora-20000-raise-application-error-with-and-without-whenever.txt": 1,
    "sqlplus-show-errors-procedure-and-pls-00905.txt": 1,
    "sqlplus-ora-00942-view-listing-exit0.txt": 1,
    # SP2- errors: WHENEVER never fires, sqlplus exits 0
    "sqlplus-sp2-0734-sp2-0042-blank-lines.txt": 1,
    "sqlplus-sp2-0734-then-ora-00904-star-marker.txt": 1,
    "sqlplus-sp2-0310-sp2-0606-nested-scripts.txt": 1,
    "sqlplus-sp2-0310-unable-to-open-file.txt": 1,
    "sqlplus-show-errors-package-body-format.txt": 1,
}


@pytest.mark.parametrize("sample", sorted(FAILING))
def test_recorded_failures_fail_the_row(sample: str, tmp_path, info, run_tool, sqlplus) -> None:
    manifest = write(tmp_path, {"001.sql": f"-- replay: {sample}\nSELECT 1 FROM dual;\n",
                                "002.sql": "CREATE TABLE never (n NUMBER);\n"}, info)
    result = run_exec(run_tool, manifest)
    assert result.code == FAILING[sample], result.text
    calls = sqlplus.calls()
    assert len(calls) == 1  # the target stopped: 002 never ran
    assert_clean(calls[0])


def test_whenever_sqlerror_continue_in_the_script_still_fails_on_the_ora_line(tmp_path, info, run_tool,
                                                                              sqlplus) -> None:
    """The script turns our WHENEVER off: sqlplus exits 0 (sqlplus-ora-00942-exit0-no-whenever.txt), the
    ORA- line still fails the row."""
    manifest = write(tmp_path, {"001.sql": "WHENEVER SQLERROR CONTINUE\n-- replay: "
                                           "sqlplus-ora-00942-exit0-no-whenever.txt\n"}, info)
    result = run_exec(run_tool, manifest)
    assert result.code == 1, result.text
    assert "exited 0 but reported an error" in result.text and "ORA-00942" in result.text


def test_compilation_errors_fail_by_the_warning_line_and_by_user_errors(tmp_path, info, run_tool, sqlplus) -> None:
    """sqlplus.md §6: only "Warning: ... created with compilation errors." and no SQL error; the USER_ERRORS
    check after the script makes it one (exit 5), and the line itself fails the row even if the check could
    not run (the script's own EXIT 0)."""
    warning = "-- replay-text: Warning: Package Body created with compilation errors.\n"
    manifest = write(tmp_path, {"001.sql": warning}, info)
    result = run_exec(run_tool, manifest)
    assert result.code == 1, result.text
    assert "compilation errors" in result.text
    manifest = write(tmp_path, {"002.sql": warning + "EXIT 0\n"}, info)
    result = run_exec(run_tool, manifest)
    assert result.code == 1, result.text
    assert "exited 0 but reported an error" in result.text


def test_ampersand_is_text_with_define_off(tmp_path, info, run_tool, sqlplus) -> None:
    """sqlplus-enter-value-for-ampersand.txt: with SET DEFINE OFF on its own line, 'JOHN & TOM Ltd' is text."""
    script = "-- replay: sqlplus-enter-value-for-ampersand.txt\nINSERT INTO abc VALUES ('JOHN & TOM Ltd');\n"
    result = run_exec(run_tool, write(tmp_path, {"001.sql": script}, info))
    assert result.code == 0, result.text


def test_declared_variables_keep_define_on_and_an_undeclared_one_fails(tmp_path, info, run_tool, sqlplus) -> None:
    script = "-- replay: sqlplus-enter-value-for-ampersand.txt\nINSERT INTO &owner..abc VALUES ('JOHN &TOM Ltd');\n"
    result = run_exec(run_tool, write(tmp_path, {"001.sql": script}, info, oracle_define="owner=APP;other=x y"))
    assert result.code == 1, result.text
    assert "Enter value for tom" in result.text
    (call,) = sqlplus.calls()
    assert "SET DEFINE ON" in call["stdin"] and 'DEFINE owner = "APP"' in call["stdin"]
    assert "SET DEFINE OFF" not in call["stdin"].split("CONNECT")[0]


# --- the database cannot be used: exit 3 ------------------------------------------------------------------


@pytest.mark.parametrize("sample", ["sqlplus-ora-12541-sp2-0751-L-exit1.txt", "sqlplus-ora-12514-wrapped-line.txt",
                                    "sqlplus-connect-ora-01017-no-longer-connected.txt"])
def test_login_failures_are_unreachable(sample: str, tmp_path, info, run_tool, sqlplus) -> None:
    manifest = write(tmp_path, {"001.sql": f"-- replay: {sample}\n"}, info)
    result = run_exec(run_tool, manifest)
    assert result.code == 3, result.text
    assert "cannot connect to or log in" in result.text
    assert_clean(sqlplus.calls()[0])


def test_client_missing_is_unreachable(tmp_path, info, run_tool) -> None:
    """No replay installed and no sqlplus on the runner: the shell's 127."""
    if (Path(info.replay_bin) / "sqlplus").exists() or shutil.which("sqlplus"):
        pytest.skip("a sqlplus is installed")
    result = run_exec(run_tool, write(tmp_path, {"001.sql": "SELECT 1 FROM dual;\n"}, info))
    assert result.code == 3, result.text
    assert "sqlplus client is not installed" in result.text


# --- manifest options -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("overrides", "connect"), [
    ({"oracle_sid": "yes", "database": "ORCL"},
     "@(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=oracle.example)(PORT=1521))(CONNECT_DATA=(SID=ORCL)))"),
    ({"oracle_alias": "PROD_HA"}, "@PROD_HA"),
    ({"oracle_wallet": "yes", "oracle_alias": "prod_wallet", "database_password": ""}, "CONNECT /@prod_wallet"),
])
def test_connect_identifiers(overrides: dict[str, str], connect: str, tmp_path, info, run_tool, sqlplus) -> None:
    result = run_exec(run_tool, write(tmp_path, {"001.sql": "SELECT 1 FROM dual;\n"}, info, **overrides))
    assert result.code == 0, result.text
    (call,) = sqlplus.calls()
    line = next(line for line in call["stdin"].splitlines() if line.startswith("CONNECT"))
    assert line.endswith(connect)
    if overrides.get("oracle_wallet"):
        assert line == connect  # no user, no password


@pytest.mark.parametrize(("column", "value"), [("oracle_alias", "two words"), ("oracle_define", "no-equals"),
                                               ("oracle_sid", "maybe")])
def test_bad_option_cells_are_exit_2_naming_row_and_column(column: str, value: str, tmp_path, info,
                                                           run_tool) -> None:
    result = run_tool("validate", "-f", str(write(tmp_path, {"001.sql": "SELECT 1 FROM dual;\n"}, info,
                                                   **{column: value})))
    assert result.code == 2, result.text
    assert f"line 2, column {column}" in result.text


def test_the_replay_records_are_private(sqlplus) -> None:
    assert stat.S_IMODE(os.stat(sqlplus.logs).st_mode) & 0o1000  # sticky: runners cannot remove others' records

"""SQL Server end to end through the rig's real SSH runners, with a replay `sqlcmd` answering recorded outputs.

No SQL Server runs here. The replay client (tests/replay/sqlcmd) is installed first on the runners' PATH for
each test and removed after; it records the argv, the environment's names (the password only as a hash),
the script it was pointed at, and answers with the real output of ../shared/clients/samples/ that the
script's `-- replay: <sample>` line names, exiting as the real client would. Everything else is real: the
manifest, SSH, the copy, the shell rendering the command, streaming, the verdict and the exit code
(`exec`: judged as apply judges, without the history a replay cannot keep).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .conftest import HEADER, write_manifest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "clients"
SAMPLES = SHARED / "samples"
REPLAY = ROOT / "tests" / "replay" / "sqlcmd"
PASSWORD = "Sq1-pw'$(id);\"x\\y #z"  # hostile for every shell and for sqlcmd's $(var) substitution
OPTIONAL = ("trust_server_certificate", "sqlcmd_variables")

pytestmark = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"{SAMPLES} is absent: the recorded sqlcmd "
                                "outputs the replay answers with live outside the project")


@dataclass
class Replay:
    log_dir: Path

    def calls(self) -> list[dict]:  # type: ignore[type-arg]
        found = sorted(self.log_dir.glob("*.json"), key=lambda p: int(p.stem))
        return [json.loads(path.read_text()) for path in found]

    def copy(self, number: int) -> bytes:
        return (self.log_dir / f"{number}-input0.sql").read_bytes()


@pytest.fixture
def replay(info) -> Iterator[Replay]:  # type: ignore[no-untyped-def]
    """The replay sqlcmd in the runners' replay bin for this test only (mysql and psql stay the real ones)."""
    bin_dir = Path(info.replay_bin)
    log_dir = Path(tempfile.mkdtemp(prefix="dbu-sqlcmd-replay-"))
    log_dir.chmod(0o777)  # the runner user writes its records here
    target = bin_dir / "sqlcmd"
    shutil.copyfile(REPLAY, target)
    target.chmod(0o755)
    config = bin_dir / "sqlcmd.json"
    config.write_text(json.dumps({"log_dir": str(log_dir), "samples": str(SAMPLES)}))
    config.chmod(0o644)
    try:
        yield Replay(log_dir)
    finally:
        target.unlink(missing_ok=True)
        config.unlink(missing_ok=True)
        shutil.rmtree(log_dir, ignore_errors=True)


def manifest(workspace, info, script_text: str, **cells: str) -> Path:  # type: ignore[no-untyped-def]
    workspace.script("001.sql", script_text)
    runner = info.runners[0]
    row = {"sql_runner_host": runner.host, "sql_runner_userid": info.runner_user,
           "sql_runner_password": info.runner_password, "sql_runner_port": str(runner.port),
           "database_type": "SQLServer", "database_host": "mssql1.example", "database_userid": "app",
           "database_password": PASSWORD, "port": "1433", "database": "shop", "sql_script_to_run": "001.sql",
           **cells}
    # Only the optional columns a test sets: the manifest reader refuses an empty cell in a plugin's column.
    columns = [*HEADER, *(column for column in OPTIONAL if column in cells)]
    return write_manifest(workspace.dir / "manifest.csv", columns, [row])


def run_exec(run_tool, path: Path):  # type: ignore[no-untyped-def]
    result = run_tool("exec", "-f", str(path))
    assert PASSWORD not in result.text
    return result


def assert_clean_invocation(call: dict) -> None:  # type: ignore[type-arg]
    """What every invocation must look like on the runner, whatever the trap."""
    argv = call["argv"]
    assert argv[-2] == "-i" and len(call["inputs"]) == 1, argv  # nothing after -i for go-sqlcmd to swallow
    for flag in ("-N", "-b", "-I", "-r0"):
        assert flag in argv, (flag, argv)
    assert argv[argv.index("-V") + 1] == "11"
    assert "-P" not in argv and "-X" not in argv and "-f" not in argv
    assert call["password"] == {"sha256": hashlib.sha256(PASSWORD.encode()).hexdigest(), "length": len(PASSWORD)}
    assert not call["password_in_argv"] and not call["password_in_other_env"]
    assert not any(PASSWORD in arg for arg in argv)
    assert "SQLCMDPASSWORD" in call["env_names"]
    assert call["env"]["LC_ALL"] == "C.UTF-8"


@pytest.mark.parametrize("build", ["odbc", "go"])
def test_which_sqlcmd_is_asked_once_per_runner_and_run(run_tool, workspace, info, replay, build: str) -> None:
    """`sqlcmd --version` (sheet s. 0) once per runner, whatever the number of scripts; on a POSIX runner
    neither build gets `-f` (Linux ODBC sqlcmd lacks it, go-sqlcmd rejects it)."""
    config = Path(info.replay_bin) / "sqlcmd.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "build": build}))
    workspace.script("002.sql", "SELECT 2\n")
    path = manifest(workspace, info, "SELECT 1\n")
    rows = path.read_text().splitlines()
    path.write_text("\n".join([*rows, rows[1].replace("001.sql", "002.sql")]) + "\n")
    result = run_exec(run_tool, path)
    assert result.code == 0, result.text
    assert (replay.log_dir / "probes.log").read_text().split() == [build]
    calls = replay.calls()
    assert len(calls) == 2
    for call in calls:
        assert_clean_invocation(call)


def test_a_clean_script_runs_once_with_its_batches_untouched(run_tool, workspace, info, replay) -> None:
    text = "PRINT N'Größe';\nGO\nCREATE TABLE t (id INT);\nGO 2\n-- a comment with $(not_a_variable)\nSELECT 1\n"
    result = run_exec(run_tool, manifest(workspace, info, text))
    assert result.code == 0, result.text
    [call] = replay.calls()
    assert_clean_invocation(call)
    assert replay.copy(1) == text.encode("utf-8")  # GO lines and all: the client splits batches, not us
    argv = call["argv"]
    assert argv[argv.index("-S") + 1] == "mssql1.example,1433"
    assert argv[argv.index("-d") + 1] == "shop" and argv[argv.index("-U") + 1] == "app"
    assert "-x" in argv and "-C" not in argv


# (sample, client flavour, manifest cells, tool exit code, text the tool must show)
TRAPS = [
    ("sqlcmd-odbc-msg208-stdin-prompts.txt", "odbc", {}, 1, "Invalid object name 'ORDERLINES'"),
    ("sqlcmd-odbc-msg208-stdin-prompts.txt", "go", {}, 1, "sqlcmd exited with 16"),
    ("go-sqlcmd-r0-b-stderr-message-only.txt", "go", {}, 1, 'Must declare the scalar variable "@badvar"'),
    ("go-sqlcmd-syntax-error-setvar-comment.txt", "go", {}, 1, "Syntax error at line X near command"),
    ("sqlcmd-odbc-vs-go-missing-r-file.txt", "odbc", {}, 1, "Invalid filename"),
    ("sqlcmd-odbc-vs-go-missing-r-file.txt", "go", {}, 1, "The system cannot find the file specified"),
    ("go-sqlcmd-scripting-variable-not-defined.txt", "go", {}, 0, ""),
    ("go-sqlcmd-scripting-variable-not-defined.txt", "go", {"sqlcmd_variables": "yes"}, 1,
     "'client_name' scripting variable not defined"),
    ("go-sqlcmd-rows-affected-singular.txt", "go", {}, 0, ""),
    ("sqlcmd-odbc11-login-failed-server-log.txt", "odbc", {}, 3, "cannot connect to or log in"),
    ("sqlcmd-odbc13-login-timeout-network.txt", "odbc", {}, 3, "cannot connect to or log in"),
    ("sqlcmd-odbc17-login-timeout-delay.txt", "odbc", {}, 3, "cannot connect to or log in"),
    ("sqlcmd-odbc18-self-signed-cert-no-C.txt", "odbc", {}, 3, "TLS certificate was not accepted"),
    ("sqlcmd-odbc18-self-signed-cert-openssl3.txt", "odbc", {}, 3, "trust_server_certificate=yes"),
    ("sqlcmd-odbc18-self-signed-cert-openssl3.txt", "odbc", {"trust_server_certificate": "yes"}, 0, ""),
]


@pytest.mark.parametrize(("sample", "flavour", "cells", "code", "shown"), TRAPS,
                         ids=[f"{t[0].removesuffix('.txt')}-{t[1]}-{'-'.join(t[2]) or 'default'}" for t in TRAPS])
def test_every_trap_of_the_fact_sheet(run_tool, workspace, info, replay, sample, flavour, cells, code,
                                      shown) -> None:  # type: ignore[no-untyped-def]
    text = f"-- replay: {sample} {flavour}\nSELECT 1;\nGO\n"
    result = run_exec(run_tool, manifest(workspace, info, text, **cells))
    assert result.code == code, result.text
    assert shown in result.text
    [call] = replay.calls()
    assert_clean_invocation(call)
    assert ("-C" in call["argv"]) == (cells.get("trust_server_certificate") == "yes")
    assert ("-x" in call["argv"]) == (cells.get("sqlcmd_variables") != "yes")


def test_a_named_instance_reaches_sqlcmd_as_one_argument(run_tool, workspace, info, replay) -> None:
    result = run_exec(run_tool, manifest(workspace, info, "SELECT 1;\n", database_host="mssql1.example\\SQLEXPRESS"))
    assert result.code == 0, result.text
    [call] = replay.calls()
    assert call["argv"][call["argv"].index("-S") + 1] == "mssql1.example\\SQLEXPRESS"


def test_a_host_with_a_port_after_a_comma_is_a_manifest_problem(run_tool, workspace, info, replay) -> None:
    result = run_exec(run_tool, manifest(workspace, info, "SELECT 1;\n", database_host="mssql1.example,1433"))
    assert result.code == 2, result.text
    assert "line 2, column database_host" in result.text
    assert replay.calls() == []

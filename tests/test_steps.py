"""Steps that are not SQL, on the real rig (both servers): a command run on the runner under a script's rules,
and a pause for the operator (a pseudo-terminal answers; a pipe cannot)."""

from __future__ import annotations

import os
import sys

import pexpect
import pytest

from .conftest import HEADER, ROOT, Target, Workspace, run_sampled, secret_values

STEP_HEADER = [*HEADER, "step"]

READS_ITS_TARGET = (
    "#!/bin/sh\nset -e\n"
    "stat -c 'mode=%a' \"$DBUPDATER_TARGET_FILE\"\n"
    "python3 -c 'import json, os; t = json.load(open(os.environ[\"DBUPDATER_TARGET_FILE\"])); "
    "print(\"db=\" + t[\"database\"], \"has-password=\" + str(bool(t[\"password\"])))'\n"
    "echo \"a note on stderr\" >&2\n"
)


def command(workspace: Workspace, name: str, text: str) -> str:
    script = workspace.script(name, text)
    (workspace.dir / script).chmod(0o755)
    return script


def test_a_command_step_reads_its_target_file_and_is_recorded(workspace: Workspace, target: Target,
                                                              run_tool) -> None:
    workspace.row(target, workspace.script("01_create.sql", "CREATE TABLE before_command (id INT);\n"))
    workspace.row(target, command(workspace, "02_fix.sh", READS_ITS_TARGET), step="command")
    workspace.row(target, workspace.script("03_after.sql", "CREATE TABLE after_command (id INT);\n"))
    manifest = str(workspace.write(header=STEP_HEADER))
    result = run_tool("-f", manifest, "-v")
    assert result.code == 0, result.text
    assert "mode=600" in result.out and f"db={target.name}" in result.out and "has-password=True" in result.out
    assert "a note on stderr" in result.out  # a success's stderr is shown as warnings, not a failure
    assert {"before_command", "after_command"} <= target.tables()
    history = target.rows("SELECT script, status FROM dbupdater_history ORDER BY id")
    assert history == [["01_create.sql", "success"], ["02_fix.sh", "success"], ["03_after.sql", "success"]]
    again = run_tool("-f", manifest)
    assert again.code == 0 and "3 skipped" in again.out, again.text
    # An edited command is drift, like an edited script.
    (workspace.dir / "02_fix.sh").write_text(READS_ITS_TARGET + "echo changed\n")
    assert run_tool("-f", manifest).code == 5


def test_a_command_that_exits_1_halts_the_run_like_a_failed_script(workspace: Workspace, target: Target,
                                                                   run_tool) -> None:
    workspace.row(target, command(workspace, "01_fails.sh", "#!/bin/sh\necho 'cannot restart the service' >&2\n"
                                                            "exit 1\n"), step="command")
    workspace.row(target, workspace.script("02_never.sql", "CREATE TABLE never_made (id INT);\n"))
    result = run_tool("-f", str(workspace.write(header=STEP_HEADER)))
    assert result.code == 1, result.text
    assert "the command exited with 1" in result.out and "cannot restart the service" in result.out
    assert "never_made" not in target.tables()
    assert target.rows("SELECT script, status FROM dbupdater_history") == [["01_fails.sh", "failed"]]


def test_no_password_in_any_process_while_a_command_step_runs(workspace: Workspace, target: Target, info) -> None:
    workspace.row(target, command(workspace, "slow.sh", "#!/bin/sh\nsleep 3\ncat \"$DBUPDATER_TARGET_FILE\" "
                                                        ">/dev/null\n"), step="command")
    argv = [sys.executable, str(ROOT / "remote_database_updater.py"), "-f", str(workspace.write(header=STEP_HEADER)),
            "--known-hosts", info.known_hosts, "--color", "never"]
    # Caught running: its process's environment holds the variable (the shell that ran its line used to show it
    # in its own argv; the session loop's subshell execs the command, which gets it as its environment).
    code, out, seen = run_sampled(argv, secret_values(info),
                                  lambda text: "DBUPDATER_TARGET_FILE=" in text or "-slow.sh" in text, deadline=60)
    assert code == 0, out
    assert seen, "the command was never observed running; the check proved nothing"


def test_a_pause_stops_a_run_that_has_no_operator(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("01_create.sql", "CREATE TABLE first_done (id INT);\n"))
    workspace.row(target, workspace.script("02_check.txt", "Check the replica lag on the dashboard.\n"), step="pause")
    workspace.row(target, workspace.script("03_after.sql", "CREATE TABLE after_pause (id INT);\n"))
    result = run_tool("-f", str(workspace.write(header=STEP_HEADER)))
    assert result.code == 5, result.text
    assert "waits for an operator, and this run has none" in result.out
    assert "first_done" in target.tables() and "after_pause" not in target.tables()
    assert target.rows("SELECT script FROM dbupdater_history") == [["01_create.sql"]]


@pytest.mark.parametrize(("answer", "continues"), [("", True), ("no", False)])
def test_a_pause_asks_on_a_terminal(workspace: Workspace, target: Target, info, answer: str,
                                    continues: bool) -> None:
    workspace.row(target, workspace.script("01_create.sql", "CREATE TABLE first_done (id INT);\n"))
    workspace.row(target, workspace.script("02_check.txt", "Check the replica lag on the dashboard.\n"), step="pause")
    workspace.row(target, workspace.script("03_after.sql", "CREATE TABLE after_pause (id INT);\n"))
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    environ.update({"TERM": "xterm-256color", "NO_COLOR": "1"})
    argv = [str(ROOT / "remote_database_updater.py"), "-f", str(workspace.write(header=STEP_HEADER)),
            "--known-hosts", info.known_hosts]
    child = pexpect.spawn(sys.executable, argv, cwd=str(ROOT), env=environ, dimensions=(50, 200),
                          encoding="utf-8", codec_errors="replace", timeout=120)
    child.expect("Check the replica lag on the dashboard")
    child.expect("Enter continues; anything else stops: ")
    child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    if continues:
        assert child.exitstatus == 0, child.before
        assert "after_pause" in target.tables()
        history = target.rows("SELECT script, status FROM dbupdater_history ORDER BY id")
        assert history == [["01_create.sql", "success"], ["02_check.txt", "success"], ["03_after.sql", "success"]]
    else:
        assert child.exitstatus == 5, child.before
        assert "the operator answered 'no'" in child.before
        assert "after_pause" not in target.tables()


def test_an_approved_saved_plan_passes_its_pauses_without_an_operator(workspace: Workspace, target: Target,
                                                                     run_tool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    workspace.row(target, workspace.script("01_create.sql", "CREATE TABLE first_done (id INT);\n"))
    workspace.row(target, workspace.script("02_check.txt", "Check the replica lag on the dashboard.\n"), step="pause")
    workspace.row(target, workspace.script("03_after.sql", "CREATE TABLE after_pause (id INT);\n"))
    manifest = str(workspace.write(header=STEP_HEADER))
    plan = tmp_path / "plan.json"
    saved = run_tool("plan", "-f", manifest, "--save", str(plan))
    assert saved.code == 0, saved.text
    result = run_tool("-f", manifest, "--plan", str(plan), "--yes")
    assert result.code == 0, result.text
    assert "after_pause" in target.tables()
    history = target.rows("SELECT script, status FROM dbupdater_history ORDER BY id")
    assert history == [["01_create.sql", "success"], ["02_check.txt", "success"], ["03_after.sql", "success"]]

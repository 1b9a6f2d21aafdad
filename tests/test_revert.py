"""Undo scripts and `revert` on the real rig (both servers): newest application first, recorded as `undone`,
applied again by the next run; a row without an undo script stops the revert; an edited undo script is
drift; a revert is confirmed or nothing runs."""

from __future__ import annotations

from .conftest import HEADER, Target, Workspace

UNDO_HEADER = [*HEADER, "undo_script"]


def three_rows(workspace: Workspace, target: Target, second_undo: bool = True) -> str:
    workspace.row(target, workspace.script("01_log.sql", "CREATE TABLE undo_log (name VARCHAR(20));\n"))
    for name in ("two", "three"):
        number = "02" if name == "two" else "03"
        undo = "" if name == "two" and not second_undo else workspace.script(
            f"undo/{number}_{name}.sql", f"DROP TABLE {name};\nINSERT INTO undo_log (name) VALUES ('{name}');\n")
        workspace.row(target, workspace.script(f"{number}_{name}.sql", f"CREATE TABLE {name} (id INT);\n"),
                      undo_script=undo)
    return str(workspace.write(header=UNDO_HEADER))


def statuses(target: Target) -> dict[str, str]:
    latest: dict[str, str] = {}
    for script, status in target.rows("SELECT script, status FROM dbupdater_history ORDER BY id"):
        latest[script] = status
    return latest


def test_revert_runs_undo_scripts_newest_first_and_the_next_run_applies_them_again(
        workspace: Workspace, target: Target, run_tool) -> None:
    manifest = three_rows(workspace, target)
    assert run_tool("-f", manifest).code == 0
    planned = run_tool("plan", "-f", manifest, "--revert", "--steps", "2")
    assert planned.code == 0, planned.text
    assert "undo with undo/03_three.sql" in planned.out and {"two", "three"} <= target.tables()
    result = run_tool("revert", "-f", manifest, "--steps", "2", "--yes")
    assert result.code == 0, result.text
    assert target.rows("SELECT name FROM undo_log") == [["three"], ["two"]]  # newest first
    assert not {"two", "three"} & target.tables()
    latest = statuses(target)
    assert (latest["01_log.sql"], latest["02_two.sql"], latest["03_three.sql"]) == ("success", "undone", "undone")
    again = run_tool("-f", manifest)
    assert again.code == 0 and "2 applied" in again.out, again.text
    assert {"two", "three"} <= target.tables()


def test_a_row_without_an_undo_script_stops_the_revert_before_it(workspace: Workspace, target: Target,
                                                                 run_tool) -> None:
    manifest = three_rows(workspace, target, second_undo=False)
    assert run_tool("-f", manifest).code == 0
    result = run_tool("revert", "-f", manifest, "--to", "01_log.sql", "--yes")
    assert result.code == 5, result.text
    assert "02_two.sql has no undo script" in result.out
    assert "three" not in target.tables() and "two" in target.tables()
    latest = statuses(target)
    assert (latest["02_two.sql"], latest["03_three.sql"]) == ("success", "undone")


def test_an_edited_undo_script_is_drift(workspace: Workspace, target: Target, run_tool) -> None:
    manifest = three_rows(workspace, target)
    assert run_tool("-f", manifest).code == 0
    (workspace.dir / "undo" / "03_three.sql").write_text("DROP TABLE three;\n")
    refused = run_tool("revert", "-f", manifest, "--steps", "1", "--yes")
    assert refused.code == 5 and "its undo script undo/03_three.sql changed" in refused.out, refused.text
    assert "three" in target.tables()
    assert run_tool("-f", manifest).code == 5


def test_a_revert_nobody_confirmed_runs_nothing(workspace: Workspace, target: Target, run_tool) -> None:
    manifest = three_rows(workspace, target)
    assert run_tool("-f", manifest).code == 0
    result = run_tool("revert", "-f", manifest, "--steps", "1")
    assert result.code == 2 and "run it on a terminal to confirm it, or pass --yes" in result.err, result.text
    assert "three" in target.tables()
    assert run_tool("revert", "-f", manifest, "--to", "09_missing.sql", "--yes").code == 2


def test_a_revert_is_confirmed_on_a_terminal_by_typing_revert(workspace: Workspace, target: Target, info,
                                                              run_tool) -> None:
    import os
    import sys

    import pexpect

    from .conftest import ROOT

    manifest = three_rows(workspace, target)
    assert run_tool("-f", manifest).code == 0
    environ = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    environ.update({"TERM": "xterm-256color", "NO_COLOR": "1"})
    for answer, code in (("yes", 5), ("revert", 0)):
        argv = [str(ROOT / "remote_database_updater.py"), "revert", "-f", manifest, "--steps", "1",
                "--known-hosts", info.known_hosts]
        child = pexpect.spawn(sys.executable, argv, cwd=str(ROOT), env=environ, dimensions=(50, 200),
                              encoding="utf-8", codec_errors="replace", timeout=120)
        child.expect("undo/03_three.sql")  # the plan is shown before the question
        child.expect("Type revert to go on: ")
        child.sendline(answer)
        child.expect(pexpect.EOF)
        child.close()
        assert child.exitstatus == code, child.before
        assert ("three" in target.tables()) is (code != 0)


def test_a_tier_that_requires_approval_reverts_only_an_approved_saved_plan(workspace: Workspace, target: Target,
                                                                           run_tool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    manifest = three_rows(workspace, target)
    config = workspace.dir / "environments.toml"
    config.write_text("[prod]\nmanifest = 'manifest.csv'\nrecord_state = false\nrequire_approval = true\n")
    tier = ("--config", str(config), "--environment", "prod")
    applied = tmp_path / "apply.plan.json"
    assert run_tool("plan", *tier, "--save", str(applied)).code == 0
    assert run_tool("apply", *tier, "--plan", str(applied), "--yes").code == 0
    plain = run_tool("revert", *tier, "--steps", "1", "--yes")
    assert plain.code == 5 and "three" in target.tables(), plain.text
    reverting = tmp_path / "revert.plan.json"
    saved = run_tool("plan", *tier, "--revert", "--steps", "1", "--save", str(reverting))
    assert saved.code == 0 and "undo with undo/03_three.sql" in saved.out, saved.text
    result = run_tool("revert", *tier, "--steps", "1", "--plan", str(reverting), "--yes")
    assert result.code == 0, result.text
    assert "three" not in target.tables()
    assert statuses(target)["03_three.sql"] == "undone"
    notes = target.rows("SELECT note FROM dbupdater_history WHERE script = '03_three.sql' ORDER BY id")
    assert notes[-1][0].startswith("approved sha256:"), notes
    del manifest

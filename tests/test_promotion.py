"""Promotion through tiers on the real rig (MariaDB, PostgreSQL, sshd runners, OpenBao): a prod tier that requires
approval refuses a plain apply (exit 5) and a loosening flag (exit 2); `plan --save` then `apply --plan --yes`
applies, with the approver in every target's history and in the environment state in Vault; an edited script,
a changed manifest and a target whose history moved are each refused, naming what changed; typing the tier's
name on a pseudo-terminal approves and anything else refuses; a failing script in the first wave leaves every
later target untouched; no secret in any saved plan."""

from __future__ import annotations

import json
import os
import secrets
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pexpect
import pytest

from .conftest import ROOT, Target, Workspace, fresh_targets, secret_values


@pytest.fixture
def vault(rig) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return rig.vault_env()  # type: ignore[no-any-return]


@pytest.fixture
def pair(rig, info) -> Iterator[list[Target]]:  # type: ignore[no-untyped-def]
    """One fresh database on each server."""
    with fresh_targets(rig, info, ["mysql", "postgresql"]) as made:
        yield made


def tiers(workspace: Workspace, **extra: str) -> tuple[Path, str]:
    """environments.toml with a prod tier (its own state path in Vault, so tests never share state)."""
    prefix = f"ENVIRONMENTS-test-{secrets.token_hex(4)}"
    values = {"manifest": '"manifest.csv"', "state_path": f'"secret/{prefix}/{{environment}}/{{database}}"',
              "require_approval": "true", "parallel": "4", "keep_going": "false", **extra}
    lines = ["[prod]", *(f"{key} = {value}" for key, value in values.items())]
    path = workspace.dir / "environments.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path, prefix


def state(rig, prefix: str) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    client = rig.vault_client()
    keys = client.secrets.kv.v2.list_secrets(path=f"{prefix}/prod", mount_point="secret")["data"]["keys"]
    return {name: client.secrets.kv.v2.read_secret_version(path=f"{prefix}/prod/{name}", mount_point="secret",
                                                           raise_on_deleted_version=True)["data"]["data"]
            for name in keys}


def history(target: Target) -> list[list[str]]:
    return target.rows("SELECT script, status, note FROM dbupdater_history ORDER BY id")


def two_scripts(workspace: Workspace, pair: list[Target]) -> None:
    for target in pair:
        workspace.row(target, workspace.script("001_create.sql", "CREATE TABLE promoted (id INT);\n"))
        workspace.row(target, workspace.script("002_fill.sql", "INSERT INTO promoted VALUES (1);\n"))
    workspace.write()


def test_prod_refuses_a_plain_apply_and_a_loosening_flag(workspace: Workspace, pair: list[Target], run_tool,
                                                         vault) -> None:
    two_scripts(workspace, pair)
    config, _ = tiers(workspace)
    plain = run_tool("apply", "--config", str(config), "--environment", "prod", env=vault)
    assert plain.code == 5, plain.text
    assert "tier prod requires an approved plan (require_approval)" in plain.text
    for flags, policy in ((["--keep-going"], "keep_going = false (asked --keep-going)"),
                          (["--parallel", "64"], "parallel = 4 (asked --parallel 64)")):
        loosened = run_tool("apply", "--config", str(config), "--environment", "prod", *flags, env=vault)
        assert loosened.code == 2, loosened.text
        assert "tier prod is protected" in loosened.text and policy in loosened.text
    for target in pair:
        assert "promoted" not in target.tables()


def test_plan_save_then_apply_plan_applies_and_records_the_approver(workspace: Workspace, pair: list[Target],
                                                                    run_tool, vault, rig, info) -> None:
    two_scripts(workspace, pair)
    config, prefix = tiers(workspace)
    saved = workspace.dir / "plan.json"
    planned = run_tool("plan", "--config", str(config), "--environment", "prod", "--save", str(saved), env=vault)
    assert planned.code == 0, planned.text
    text = saved.read_text(encoding="utf-8")
    for value in secret_values(info):
        assert value not in text, "a secret in the saved plan"
    digest = json.loads(text)["digest"]
    folder = workspace.dir / "run"
    applied = run_tool("apply", "--config", str(config), "--environment", "prod", "--plan", str(saved), "--yes",
                       "--report-dir", str(folder), env={**vault, "DBUPDATER_APPROVED_BY": "alice"})
    assert applied.code == 0, applied.text
    for target in pair:
        rows = history(target)
        assert [row[:2] for row in rows] == [["001_create.sql", "success"], ["002_fill.sql", "success"]]
        assert all(row[2].startswith(f"approved {digest} by alice@") for row in rows), rows
        # queryable as the column it is
        assert target.rows("SELECT COUNT(*) FROM dbupdater_history WHERE note LIKE 'approved sha256:%'") == [["2"]]
    recorded = state(rig, prefix)
    assert len(recorded) == 2
    for entry in recorded.values():
        assert entry["status"] == "updated"
        assert entry["last_approval"]["digest"] == digest and entry["last_approval"]["by"] == "alice"
    document = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    assert document["run"]["approval"]["by"] == "alice"
    assert '"approval":{"by":"alice"' in (folder / "report.html").read_text(encoding="utf-8")
    status = run_tool("status", "--config", str(config), "--environment", "prod", "--output", "json", env=vault)
    assert status.code == 0, status.text
    assert f"approved {digest}" in status.out


def test_what_changed_since_the_plan_is_refused_by_name(workspace: Workspace, pair: list[Target], run_tool,
                                                        vault) -> None:
    two_scripts(workspace, pair)
    config, _ = tiers(workspace)
    saved = workspace.dir / "plan.json"

    def save() -> None:
        result = run_tool("plan", "--config", str(config), "--environment", "prod", "--save", str(saved), env=vault)
        assert result.code == 0, result.text

    def refused(*words: str) -> None:
        result = run_tool("apply", "--config", str(config), "--environment", "prod", "--plan", str(saved), "--yes",
                          env=vault)
        assert result.code == 5, result.text
        flat = " ".join(result.text.split())
        for said in words:
            assert said in flat, flat

    save()
    workspace.script("002_fill.sql", "INSERT INTO promoted VALUES (2);\n")  # edited after the plan
    refused("script 002_fill.sql was edited", pair[0].name, pair[1].name)

    save()
    workspace.rows.pop()  # the manifest loses a row
    workspace.write()
    refused("the manifest changed", f"002_fill.sql on postgresql://{pair[1].host}:{pair[1].port}/{pair[1].name} is "
            "no longer in the manifest")

    save()
    other = Workspace(workspace.dir, workspace.info)
    other.row(pair[0], "001_create.sql")  # someone applies the first script to one target meanwhile
    moved = run_tool("-f", str(other.write("other.csv")), env=vault)
    assert moved.code == 0, moved.text
    refused(f"{pair[0].name}: its history moved since the plan: 001_create.sql is now success")
    assert "promoted" not in pair[1].tables()


@pytest.mark.parametrize("answer", ["prod", "yes"])
def test_typing_the_tiers_name_on_a_terminal_approves(workspace: Workspace, pair: list[Target], info, vault,
                                                      answer: str) -> None:
    two_scripts(workspace, pair)
    config, _ = tiers(workspace)
    environ = {**os.environ, **vault, "TERM": "xterm-256color", "NO_COLOR": "1"}
    argv = [str(ROOT / "remote_database_updater.py"), "apply", "--config", str(config), "--environment", "prod",
            "--known-hosts", info.known_hosts]
    child = pexpect.spawn(sys.executable, argv, cwd=str(ROOT), env=environ, dimensions=(50, 200),
                          encoding="utf-8", codec_errors="replace", timeout=120)
    child.expect("002_fill.sql")  # the plan is shown before the question
    child.expect("Type the tier's name \\(prod\\) to approve; anything else refuses: ")
    child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    if answer == "prod":
        assert child.exitstatus == 0, child.before
        for target in pair:
            assert all("typed the tier's name on a terminal" in row[2] for row in history(target))
    else:
        assert child.exitstatus == 5, child.before
        assert "not approved (the answer was not 'prod')" in child.before
        for target in pair:
            assert "promoted" not in target.tables()


def test_a_failure_in_the_first_wave_leaves_later_targets_untouched(workspace: Workspace, rig, info, run_tool,
                                                                    vault) -> None:
    with fresh_targets(rig, info, ["mysql", "postgresql", "mysql", "postgresql"]) as made:
        workspace.row(made[0], workspace.script("001_bad.sql", "CREATE TABLE broken (id INT;\n"))
        for target in made[1:]:
            workspace.row(target, workspace.script("001_good.sql", "CREATE TABLE waved (id INT);\n"))
        workspace.write()
        config, _ = tiers(workspace, require_approval="false", waves='["1", "50%", "100%"]')
        folder = workspace.dir / "run"
        result = run_tool("apply", "--config", str(config), "--environment", "prod", "--report-dir", str(folder),
                          env=vault)
        assert result.code == 1, result.text
        for target in made[1:]:
            assert "waved" not in target.tables() and "dbupdater_history" in target.tables()
            assert target.rows("SELECT COUNT(*) FROM dbupdater_history") == [["0"]]
        document = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        never = [r for r in document["results"] if r["status"] == "not run"]
        assert {r["target"] for r in never} == {r["target"] for r in document["results"][1:]}
        assert all("never started (wave 1 had a problem (001_bad.sql failed" in r["reason"] for r in never)
        assert "3 target(s) never started" in result.text


@pytest.mark.parametrize(("first", "made"), [("003_first.sql", "004_add_index.sql"),
                                             ("V3_2__first.sql", "V3_3__add_index.sql"),
                                             ("20200101120000_first.sql", None)])
def test_new_follows_the_naming_and_the_next_run_applies_it(workspace: Workspace, pair: list[Target], run_tool,
                                                             first: str, made: str | None) -> None:
    for target in pair:
        workspace.row(target, workspace.script(f"sql/{first}", "CREATE TABLE first_one (id INT);\n"))
    manifest = workspace.write()
    assert run_tool("-f", str(manifest)).code == 0
    created = run_tool("new", "Add index", "-f", str(manifest), known_hosts=False)
    assert created.code == 0, created.text
    scripts = sorted(path.name for path in (workspace.dir / "sql").iterdir() if path.name != first)
    assert len(scripts) == 1 and (made is None or scripts == [made])
    applied = run_tool("-f", str(manifest))
    assert applied.code == 0, applied.text
    for target in pair:
        assert target.rows("SELECT script, status FROM dbupdater_history ORDER BY id")[-1] == \
            [f"sql/{scripts[0]}", "success"]


def test_init_makes_a_layout_that_validates_and_applies(workspace: Workspace, pair: list[Target], run_tool) -> None:
    root = workspace.dir / "project"
    made = run_tool("init", str(root), known_hosts=False)
    assert made.code == 0, made.text
    config = root / "environments.toml"
    for tier in ("qa", "prod"):
        checked = run_tool("validate", "--config", str(config), "--environment", tier, "--without-secrets",
                           known_hosts=False)
        assert checked.code == 0, checked.text
    # The user names real databases in the local tier's manifest (here: the rig's, through its runners).
    local = Workspace(root / "manifests", workspace.info)
    for target in pair:
        local.row(target, "../scripts/001_create_example.sql")
    local.write("local.csv")
    assert run_tool("validate", "--config", str(config), "--environment", "local", known_hosts=False).code == 0
    applied = run_tool("apply", "--config", str(config), "--environment", "local")
    assert applied.code == 0, applied.text
    for target in pair:
        assert "dbupdater_example" in target.tables()
    again = run_tool("new", "add customers", "--config", str(config), "--environment", "local", known_hosts=False)
    assert again.code == 0, again.text
    assert run_tool("apply", "--config", str(config), "--environment", "local").code == 0
    for target in pair:
        assert target.rows("SELECT script FROM dbupdater_history ORDER BY id")[-1] == \
            ["../scripts/002_add_customers.sql"]


@pytest.mark.parametrize("answer", ["y", "n"])
def test_pause_between_waves_asks_on_the_terminal(workspace: Workspace, pair: list[Target], info, vault,
                                                 answer: str) -> None:
    for target in pair:
        workspace.row(target, workspace.script("001_create.sql", "CREATE TABLE paused (id INT);\n"))
    workspace.write()
    config, _ = tiers(workspace, require_approval="false", waves='["1", "100%"]')
    environ = {**os.environ, **vault, "TERM": "xterm-256color", "NO_COLOR": "1"}
    argv = [str(ROOT / "remote_database_updater.py"), "apply", "--config", str(config), "--environment", "prod",
            "--pause-between-waves", "--known-hosts", info.known_hosts]
    child = pexpect.spawn(sys.executable, argv, cwd=str(ROOT), env=environ, dimensions=(50, 200),
                          encoding="utf-8", codec_errors="replace", timeout=120)
    child.expect("wave 1 of 2 finished without a failure; wave 2 has 1 target")
    child.expect("Start wave 2\\? \\[y/N\\] ")
    assert "paused" in pair[0].tables() and "paused" not in pair[1].tables()  # the first wave is done, no more
    child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    if answer == "y":
        assert child.exitstatus == 0, child.before
        assert "paused" in pair[1].tables()
    else:
        assert child.exitstatus == 5, child.before
        assert "the operator did not start wave 2" in child.before
        assert pair[1].rows("SELECT COUNT(*) FROM dbupdater_history") == [["0"]]

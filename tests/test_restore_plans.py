"""Restores and copies into a tier that requires approval, approved in CI through a saved plan, on the real rig:
`restore BACKUP --save-plan FILE` saves what would be restored where and runs nothing; `restore BACKUP --plan FILE
--yes` restores exactly that, the approval in the history; another backup, another target, an apply of the plan
and a second use are refused by name with nothing restored. The same for `copy-db --save-plan / --saved-plan`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Target, Workspace, fresh_targets, secret_values
from .test_backups import backups_json, fingerprint, seed
from .test_notify import server  # noqa: F401 (a fixture: HTTP servers in the test that keep what they receive)


def tier(workspace: Workspace, manifest: Path) -> list[str]:
    """A prod tier over the manifest that requires approval; the options that name it."""
    config = workspace.dir / "environments.toml"
    config.write_text(f'[prod]\nmanifest = "{manifest.name}"\nrecord_state = false\nrequire_approval = true\n',
                      encoding="utf-8")
    return ["--environment", "prod", "--config", str(config)]


def applied_on_both(workspace: Workspace, target: Target, other: Target, run_tool) -> Path:  # type: ignore[no-untyped-def]
    """A manifest of one script on `target` (runner 1) and `other` (runner 2), applied on both."""
    for where, runner in ((target, 1), (other, 2)):
        workspace.row(where, workspace.script("001.sql", "CREATE TABLE applied_one (id INT);\n"), runner=runner)
    manifest = workspace.write()
    assert run_tool("-f", str(manifest)).code == 0
    return manifest


def last_history(target: Target) -> tuple[str, str, str]:
    """The latest history row's script, status and note (which may hold the separators of `rows`)."""
    script, status = target.rows("SELECT script, status FROM dbupdater_history ORDER BY id DESC LIMIT 1")[0]
    note = target.query("SELECT note FROM dbupdater_history ORDER BY id DESC LIMIT 1").strip()
    return script, status, note


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_a_saved_restore_plan_approved_in_ci_restores_exactly_that_backup_into_that_target(
        workspace: Workspace, target: Target, run_tool, info, server) -> None:  # noqa: F811
    seed(target)
    other = target.sibling(target.name + "_other")
    try:
        manifest = applied_on_both(workspace, target, other, run_tool)
        plain, approved = server(), server()
        assert run_tool("backup", "-f", str(manifest), "--target", target.name,
                        "--notify", f"webhook:{plain.url()}").code == 0
        assert json.loads(plain.one()["body"])["approval"] is None  # nobody approved this one
        (first,) = backups_json(run_tool, "-f", str(manifest))["backups"]
        before = fingerprint(target)
        target.query("DELETE FROM items WHERE id > 10")
        prod = tier(workspace, manifest)
        plan = workspace.dir / "restore.plan.json"

        saved = run_tool("restore", first["name"], *prod, "--save-plan", str(plan))
        assert saved.code == 0, saved.text
        assert f"restore {first['name']} --environment prod --plan {plan} --yes" in saved.text
        assert fingerprint(target) != before  # saving restores nothing
        rows = json.loads(plan.read_text(encoding="utf-8"))["rows"]
        assert [(r["script"], r["target"]) for r in rows] == [(f"restore {first['name']}", first["target"])]
        assert rows[0]["checksum"] == first["sha256"]
        for secret in secret_values(info):
            assert secret not in plan.read_text(encoding="utf-8")

        # Another backup, another target, or the plan given to apply: refused by name, nothing restored.
        assert run_tool("backup", "-f", str(manifest), "--target", target.name).code == 0
        second = next(b for b in backups_json(run_tool, "-f", str(manifest))["backups"] if b["name"] != first["name"])
        wrong = run_tool("restore", second["name"], *prod, "--plan", str(plan), "--yes")
        assert wrong.code == 5, wrong.text
        assert f"restore {first['name']} on {first['target']}" in wrong.text
        assert f"restore {second['name']}" in wrong.text
        elsewhere = run_tool("restore", first["name"], "--into", other.name, *prod, "--plan", str(plan), "--yes")
        assert elsewhere.code == 5 and f"/{other.name}" in elsewhere.text, elsewhere.text
        applied = run_tool("apply", *prod, "--plan", str(plan), "--yes")
        assert applied.code == 5 and "not what would run now" in applied.text, applied.text
        assert fingerprint(target) != before and other.rows("SELECT COUNT(*) FROM dbupdater_history") == [["1"]]

        restored = run_tool("restore", first["name"], *prod, "--plan", str(plan), "--yes",
                            "--notify", f"webhook:{approved.url()}")
        assert restored.code == 0, restored.text
        assert fingerprint(target) == before
        script, status, note = last_history(target)
        assert (script, status) == (f"restore {first['name']}", "success")
        assert note.startswith("approved sha256:") and "for prod" in note
        body = json.loads(approved.one()["body"])  # the channel hears who approved what ran
        digest = json.loads(plan.read_text(encoding="utf-8"))["digest"]
        assert body["outcome"] == "succeeded" and body["approval"]["digest"] == digest
        assert body["approval"]["environment"] == "prod" and "--yes" in body["approval"]["method"]
        from dbupdater.reporting.notify import Notifier

        assert f"approved by {body['approval']['by']}" in json.dumps(Notifier([]).slack_message(body))

        again = run_tool("restore", first["name"], *prod, "--plan", str(plan), "--yes")  # a plan is used once
        assert again.code == 5 and "its history moved since the plan" in again.text, again.text
        assert f"restore {first['name']} --environment prod --save-plan plan.json" in again.text
    finally:
        other.drop()


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_a_saved_copy_plan_approved_in_ci_copies_exactly_that_source_into_that_target(
        workspace: Workspace, target: Target, run_tool) -> None:
    seed(target, rows=300)
    copy = target.sibling(target.name + "_copy")
    try:
        manifest = applied_on_both(workspace, target, copy, run_tool)
        prod = tier(workspace, manifest)
        plan = workspace.dir / "copy.plan.json"
        refused = run_tool("copy-db", "--from", target.name, "--to", copy.name, *prod, "--yes")
        assert refused.code == 5 and f"copy-db --from {target.name} --to {copy.name} --environment prod --save-plan" \
            in refused.text, refused.text

        saved = run_tool("copy-db", "--from", target.name, "--to", copy.name, *prod, "--save-plan", str(plan))
        assert saved.code == 0, saved.text
        assert "items" not in copy.tables()  # saving copies nothing
        backwards = run_tool("copy-db", "--from", copy.name, "--to", target.name, *prod, "--saved-plan", str(plan),
                             "--yes")
        assert backwards.code == 5 and "is not a plan of this command" in backwards.text, backwards.text
        assert fingerprint(target) != [["0", ""]] and "items" not in copy.tables()

        copied = run_tool("copy-db", "--from", target.name, "--to", copy.name, *prod, "--saved-plan", str(plan),
                          "--yes")
        assert copied.code == 0, copied.text
        assert fingerprint(copy) == fingerprint(target)
        script, status, note = last_history(copy)
        assert (script, status) == (f"copy from {target.engine}://{target.host}:{target.port}/{target.name}", "success")
        assert note.startswith("approved sha256:")
    finally:
        copy.drop()


def test_a_saved_plan_of_a_copy_across_engines_covers_its_translation(workspace: Workspace, rig, info,
                                                                       run_tool) -> None:  # type: ignore[no-untyped-def]
    """MySQL to PostgreSQL into a tier that requires approval: the saved plan names the translation's checksum, so
    a source whose schema changed after the approval is refused by name with nothing changed, and the approved
    copy runs exactly once approved."""
    with fresh_targets(rig, info, ["mysql", "postgresql"]) as (source, destination):
        source.query("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(20)); "
                     "INSERT INTO items VALUES (1, 'one'), (2, 'two');")
        workspace.script("noop.sql", "SELECT 1;\n")
        workspace.row(source, "noop.sql", runner=1)
        workspace.row(destination, "noop.sql", runner=2)
        manifest = workspace.write()
        prod = tier(workspace, manifest)
        plan = workspace.dir / "across.plan.json"
        command = ("copy-db", "-f", str(manifest), "--from", source.name, "--to", destination.name, *prod)
        refused = run_tool(*command, "--yes")
        assert refused.code == 5 and "--save-plan" in refused.text, refused.text

        saved = run_tool(*command, "--save-plan", str(plan))
        assert saved.code == 0, saved.text
        held = json.loads(plan.read_text(encoding="utf-8"))
        assert any("translation " in row["script"] for row in held["rows"]), held["rows"]
        assert destination.rows("SELECT count(*) FROM pg_namespace WHERE nspname = "
                                f"'{source.name}'") == [["0"]]  # saving copies nothing

        source.query("ALTER TABLE items ADD COLUMN price DECIMAL(8, 2)")
        changed = run_tool(*command, "--saved-plan", str(plan), "--yes")
        assert changed.code == 5 and "is not a plan of this command" in changed.text, changed.text
        assert destination.rows(f"SELECT count(*) FROM pg_namespace WHERE nspname = '{source.name}'") == [["0"]]

        source.query("ALTER TABLE items DROP COLUMN price")  # the schema as approved again
        copied = run_tool(*command, "--saved-plan", str(plan), "--yes")
        assert copied.code == 0, copied.text
        assert destination.rows(f'SELECT id, name FROM "{source.name}".items ORDER BY id') == [["1", "one"],
                                                                                             ["2", "two"]]
        script, status, note = last_history(destination)
        assert status == "success" and script.startswith("copy from ") and note.startswith("approved sha256:")

"""Backups, restores and copies on the real rig: the engines' own dump tools on the rig's SSH runners, streamed
into a folder store or an S3-compatible bucket (moto's server), restored and copied back; the history says
what each database holds; no password anywhere."""

from __future__ import annotations

import json

from .conftest import Target, Workspace, secret_values


def seed(target: Target, rows: int = 50) -> None:
    if target.engine == "mysql":
        target.query("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(50), price DECIMAL(8,2)) ENGINE=InnoDB")
        target.query("INSERT INTO items SELECT seq, CONCAT('item ', seq), seq * 1.5 FROM seq_1_to_" + str(rows))
        target.query("CREATE TRIGGER items_name BEFORE INSERT ON items FOR EACH ROW SET NEW.name = UPPER(NEW.name)")
        target.query("CREATE PROCEDURE item_count() SELECT COUNT(*) FROM items")
    else:  # as the app user, who owns what it backs up and restores
        app = target.rig.psql_exec  # type: ignore[attr-defined]
        app("CREATE TABLE items (id INT PRIMARY KEY, name TEXT, price NUMERIC(8,2))", target.name, admin=False)
        app(f"INSERT INTO items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, {rows}) g", target.name,
            admin=False)
        app("CREATE FUNCTION item_count() RETURNS bigint LANGUAGE sql AS 'SELECT COUNT(*) FROM items'", target.name,
            admin=False)


def fingerprint(target: Target) -> list[list[str]]:
    if target.engine == "mysql":
        return target.rows("CHECKSUM TABLE items")
    return target.rows("SELECT COUNT(*), md5(string_agg(i::text, ',' ORDER BY id)) FROM items i")


def backups_json(run_tool, *args: str) -> dict:  # type: ignore[no-untyped-def,type-arg]
    result = run_tool("backups", *args, "--output", "json", known_hosts=False)
    assert result.code == 0, result.text
    return json.loads(result.out)  # type: ignore[no-any-return]


def test_backup_then_restore_gives_the_same_data_and_history(workspace: Workspace, target: Target, run_tool,
                                                             info) -> None:
    seed(target)
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE applied_one (id INT);\n"))
    manifest = workspace.write()
    assert run_tool("-f", str(manifest)).code == 0
    before = fingerprint(target)

    made = run_tool("backup", "-f", str(manifest))
    assert made.code == 0, made.text
    listed = backups_json(run_tool, "-f", str(manifest))
    (backup,) = listed["backups"]
    assert backup["target"] == f"{target.engine}://{target.host}:{target.port}/{target.name}"
    assert backup["history_head"] == ["001.sql"]
    assert listed["incomplete"] == []
    folder = workspace.dir / "backups"
    sidecar = json.loads((folder / (backup["name"] + ".json")).read_text())
    assert sidecar["size"] == (folder / backup["name"]).stat().st_size > 0
    assert sidecar["tool"] in ("mysqldump", "pg_dump") and sidecar["server_version"]
    for secret in secret_values(info):
        assert secret not in (folder / (backup["name"] + ".json")).read_text()
        assert secret not in backup["name"]

    target.query("DELETE FROM items WHERE id > 10")
    target.query("DROP TABLE applied_one")
    assert fingerprint(target) != before
    refused = run_tool("restore", backup["name"], "-f", str(manifest))
    assert refused.code == 2 and "--yes" in refused.text  # no terminal, no --yes: nothing runs
    restored = run_tool("restore", backup["name"], "-f", str(manifest), "--yes")
    assert restored.code == 0, restored.text
    assert fingerprint(target) == before
    assert "applied_one" in target.tables()
    plan = run_tool("plan", "-f", str(manifest))
    assert plan.code == 0 and "0 script(s) to apply" in plan.text, plan.text
    history = target.rows("SELECT script, status FROM dbupdater_history ORDER BY id")
    assert history[-1] == [f"restore {backup['name']}", "success"]

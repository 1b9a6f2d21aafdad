"""Real-world scripts from ../shared/corpus through real runners: DELIMITER blocks, triggers, COPY data."""

from __future__ import annotations

import pytest

from .conftest import CORPUS, Target, Workspace

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"the shared corpus is absent ({CORPUS})")


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_sakila_schema_and_data(workspace: Workspace, target: Target, run_tool, rig) -> None:
    # Sakila creates and USEs its own `sakila` schema; the target database is just where the client logs in.
    workspace.row(target, str(CORPUS / "mysql" / "sakila-schema.sql"))
    workspace.row(target, str(CORPUS / "mysql" / "sakila-data.sql"))
    try:
        result = run_tool("-f", str(workspace.write()), timeout=600)
        assert result.code == 0, result.text[-3000:]
        counts = rig.mysql_exec("SELECT (SELECT COUNT(*) FROM film), (SELECT COUNT(*) FROM rental), "
                                "(SELECT COUNT(*) FROM payment), (SELECT COUNT(*) FROM information_schema.triggers "
                                "WHERE trigger_schema = 'sakila')", "sakila").split()
        assert counts == ["1000", "16044", "16049", "6"]
        assert rig.mysql_exec("SELECT COUNT(*) FROM film_text", "sakila").strip() == "1000"  # filled by a trigger
    finally:
        rig.mysql_exec("DROP DATABASE IF EXISTS sakila")


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_pagila_schema_and_copy_data(workspace: Workspace, target: Target, run_tool) -> None:
    # Pagila's pg_dump assigns ownership to `postgres`, so it runs as that superuser, as its README says.
    for name in ("pagila-schema.sql", "pagila-data.sql"):
        workspace.row(target, str(CORPUS / "postgres" / name), database_userid=target.admin_user,
                      database_password=target.admin_password)
    result = run_tool("-f", str(workspace.write()), timeout=600)
    assert result.code == 0, result.text[-3000:]
    assert target.rows("SELECT (SELECT COUNT(*) FROM film), (SELECT COUNT(*) FROM rental), "
                       "(SELECT COUNT(*) FROM payment)") == [["1000", "16044", "16049"]]

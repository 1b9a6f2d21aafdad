"""Vault references, redaction and environment state against the rig's real OpenBao server."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from .conftest import Target, Workspace
from .test_ledger import history, start, wait_for
from .test_notify import server  # noqa: F401  (the fixture: a real HTTP server on 127.0.0.1)


@pytest.fixture
def vault(rig, info) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """The environment a run needs to reach the rig's OpenBao (the token stays in its 0600 file)."""
    return rig.vault_env()  # type: ignore[no-any-return]


def ref(info, secret: str, key: str, mount: str = "secret") -> str:  # type: ignore[no-untyped-def]
    return f"vault:{mount}/{info.vault_prefix}/{secret}#{key}"


def db_secret(target: Target) -> str:
    return "mysql" if target.engine == "mysql" else "postgres"


def referenced_row(workspace: Workspace, target: Target, info, script: str, *, mount: str = "secret",
                   runner: int = 1, key_auth: bool = False) -> dict[str, str]:  # type: ignore[no-untyped-def]
    overrides = {"database_password": ref(info, db_secret(target), "password", mount)}
    if key_auth:
        overrides |= {"sql_runner_password": "", "sql_runner_key_file": ref(info, "runner", "private_key", mount)}
    else:
        overrides["sql_runner_password"] = ref(info, "runner", "password", mount)
    return workspace.row(target, script, runner, **overrides)


def started(target: Target) -> bool:
    try:
        return ["001.sql", "running"] in history(target)
    except Exception:  # the history table does not exist yet
        return False


def state(rig, environment: str) -> dict[str, dict[str, Any]]:  # type: ignore[no-untyped-def]
    client = rig.vault_client()
    try:
        keys = client.secrets.kv.v2.list_secrets(path=f"ENVIRONMENTS/{environment}", mount_point="secret")
    except Exception:  # nothing registered: hvac raises InvalidPath
        return {}
    return {name: client.secrets.kv.v2.read_secret_version(path=f"ENVIRONMENTS/{environment}/{name}",
                                                           mount_point="secret", raise_on_deleted_version=True)
            ["data"]["data"] for name in keys["data"]["keys"]}


@pytest.mark.parametrize("mount", ["secret", "kv1"], ids=["kv2", "kv1"])
def test_references_resolve_from_kv1_and_kv2_with_password_and_key(workspace: Workspace, target: Target, info,
                                                                   run_tool, vault, mount: str) -> None:
    referenced_row(workspace, target, info, workspace.script("001.sql", "CREATE TABLE by_ref (id INT);\n"),
                   mount=mount)
    referenced_row(workspace, target, info, workspace.script("002.sql", "INSERT INTO by_ref VALUES (7);\n"),
                   mount=mount, runner=2, key_auth=True)
    result = run_tool("-f", str(workspace.write()), env=vault)
    assert result.code == 0, result.text
    assert "plain passwords" not in result.text
    assert target.rows("SELECT id FROM by_ref") == [["7"]]


def test_env_reference_and_plain_password_warning_once(workspace: Workspace, target: Target, info, run_tool,
                                                       vault) -> None:
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE plain_a (id INT);\n"),
                  database_password="env:DBU_TEST_DB_PASSWORD")
    workspace.row(target, workspace.script("002.sql", "CREATE TABLE plain_b (id INT);\n"))
    workspace.row(target, workspace.script("003.sql", "CREATE TABLE plain_c (id INT);\n"))
    result = run_tool("-f", str(workspace.write()), env={"DBU_TEST_DB_PASSWORD": target.password})
    assert result.code == 0, result.text
    assert result.text.count("plain passwords") == 1
    assert "lines 2, 3, 4" in result.text  # the runner password is plain on every row


def test_approle_login(workspace: Workspace, target: Target, rig, info, run_tool) -> None:
    referenced_row(workspace, target, info, workspace.script("001.sql", "CREATE TABLE approle (id INT);\n"))
    secret_id = rig.vault_secret_id()
    env = {"VAULT_ADDR": info.vault_addr, "VAULT_ROLE_ID": info.vault_role_id, "VAULT_SECRET_ID": secret_id,
           "VAULT_TOKEN_FILE": "/nonexistent"}
    result = run_tool("-f", str(workspace.write()), env=env)
    assert result.code == 0, result.text
    assert secret_id not in result.text


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_missing_path_or_key_is_a_manifest_error_and_nothing_runs(workspace: Workspace, target: Target, info,
                                                                  run_tool, vault) -> None:
    referenced_row(workspace, target, info, workspace.script("001.sql", "CREATE TABLE never (id INT);\n"))
    workspace.row(target, workspace.script("002.sql", "CREATE TABLE never2 (id INT);\n"),
                  database_password=f"vault:secret/{info.vault_prefix}/nosuch#password")
    workspace.row(target, workspace.script("003.sql", "CREATE TABLE never3 (id INT);\n"),
                  database_password=ref(info, "mysql", "nokey"))
    result = run_tool("validate", "-f", str(workspace.write()), env=vault)
    assert result.code == 2, result.text
    assert f"line 3, column database_password: vault:secret/{info.vault_prefix}/nosuch#password" in result.text
    assert "line 4, column database_password" in result.text and "no key 'nokey'" in result.text
    assert "keys: admin_password, admin_user, password, user" in result.text
    applied = run_tool("-f", str(workspace.dir / "manifest.csv"), env=vault)
    assert applied.code == 2
    assert target.tables() == set()  # not even the history table


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_unreachable_vault_is_exit_3_and_nothing_runs(workspace: Workspace, target: Target, info, run_tool,
                                                      vault) -> None:
    referenced_row(workspace, target, info, workspace.script("001.sql", "CREATE TABLE never (id INT);\n"))
    result = run_tool("-f", str(workspace.write()), env={**vault, "VAULT_ADDR": "http://127.0.0.1:9"})
    assert result.code == 3, result.text
    assert "unreachable" in result.text
    bad_token = run_tool("-f", str(workspace.dir / "manifest.csv"),
                         env={"VAULT_ADDR": info.vault_addr, "VAULT_TOKEN": "not-a-token-0123456789"})
    assert bad_token.code == 3 and "rejected the token" in bad_token.text
    assert "not-a-token-0123456789" not in bad_token.text
    assert target.tables() == set()


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_resolved_secrets_are_masked_everywhere(workspace: Workspace, target: Target, rig, info, run_tool,
                                                vault) -> None:
    """A script whose error echoes the password, debug logging on: the value never shows."""
    secret = rig.vault_client().secrets.kv.v2.read_secret_version(
        path=f"{info.vault_prefix}/postgres", mount_point="secret", raise_on_deleted_version=True)["data"]["data"]
    password = secret["password"]
    referenced_row(workspace, target, info, workspace.script("001.sql", f'SELECT * FROM "{password}";\n'))
    token = Path(info.vault_token_file).read_text(encoding="utf-8").strip()
    result = run_tool("-vv", "-f", str(workspace.write()), env=vault)  # client output and debug logs
    assert result.code == 1, result.text
    assert password not in result.text and token not in result.text
    assert '"***"' in result.text  # the error line is there, masked
    note = target.rows("SELECT note FROM dbupdater_history")[0][0]
    assert password not in note  # the history table's failure note is redacted too


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_environment_lifecycle(workspace: Workspace, target: Target, rig, info, run_tool, vault) -> None:
    env_name = f"e{target.name[2:]}"
    referenced_row(workspace, target, info, workspace.script("001.sql", "CREATE TABLE life (id INT);\n"))
    referenced_row(workspace, target, info, workspace.script("002.sql", "SELECT SLEEP(2);\n"))
    manifest = str(workspace.write())
    common = ("-f", manifest, "--environment", env_name)
    assert run_tool("environment", "register", *common, env=vault).code == 0
    (name, record), = state(rig, env_name).items()
    assert record["status"] == "created" and record["port"] == target.port and record["database"] == target.name
    assert name == f"mysql-{target.host}-{target.port}-{target.name}"

    ready = run_tool("wait-ready", *common, "--timeout", "30", env=vault)
    assert ready.code == 0, ready.text
    assert state(rig, env_name)[name]["status"] == "running"
    direct = run_tool("wait-ready", "-f", manifest, "--via", "direct", "--timeout", "10",
                      env={**vault, "NO_PROXY": "*"})
    assert direct.code == 0, direct.text

    proc = start(workspace, info, "--environment", env_name, env=vault)
    try:
        wait_for(lambda: state(rig, env_name)[name]["status"] == "updating", what="state updating")
    finally:
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    record = state(rig, env_name)[name]
    assert record["status"] == "updated"
    assert record["last_run_counts"]["applied"] == 2 and record["last_run_result"] == "updated"
    assert record["last_run_finished_at"] and record["updated_by"]

    referenced_row(workspace, target, info, workspace.script("003.sql", "INSERT INTO missing_table VALUES (1);\n"))
    failing = run_tool("apply", "-f", str(workspace.write()), "--environment", env_name, env=vault)
    assert failing.code == 1
    record = state(rig, env_name)[name]
    assert record["status"] == "failed" and record["last_run_counts"]["failed"] == 1
    assert record["last_run_counts"]["skipped"] == 2

    shown = run_tool("environment", "show", *common, "--output", "json", env=vault)
    assert json.loads(shown.out)[f"secret/ENVIRONMENTS/{env_name}/{name}"]["status"] == "failed"
    assert run_tool("environment", "remove", *common, env=vault).code == 0
    assert state(rig, env_name) == {}


def test_wait_ready_times_out_with_the_last_error(workspace: Workspace, target: Target, info, run_tool) -> None:
    workspace.row(target, workspace.script("001.sql", "SELECT 1;\n"), port="1")
    started = time.monotonic()
    result = run_tool("wait-ready", "-f", str(workspace.write()), "--timeout", "3")
    assert result.code == 3, result.text
    assert "not ready after 3s" in result.text
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_token_revoked_mid_run_stops_before_the_next_script(workspace: Workspace, target: Target, rig, info,
                                                            run_tool) -> None:
    root = rig.vault_client()
    token = root.auth.token.create(policies=[info.vault_policy], ttl="10m")["auth"]["client_token"]
    referenced_row(workspace, target, info, workspace.script("001.sql", "SELECT SLEEP(3);\n"))
    referenced_row(workspace, target, info, workspace.script("002.sql", "CREATE TABLE after_revoke (id INT);\n"))
    workspace.write()
    proc = start(workspace, info, env={"VAULT_ADDR": info.vault_addr, "VAULT_TOKEN": token})
    try:
        wait_for(lambda: started(target), what="the first script to start")
        root.auth.token.revoke(token)
    finally:
        out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 3, out
    assert "stopped before this script" in out and "rejected the token" in out
    assert token not in out
    assert history(target) == [["001.sql", "success"]]
    assert "after_revoke" not in target.tables()


def run_with_vault_stopped(workspace: Workspace, target: Target, rig, info, vault) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    """Apply the workspace's manifest with --environment, and stop OpenBao once the first script runs."""
    from environment_creators.openbao import OpenBao

    workspace.write()
    openbao = OpenBao(rig.layout, info)
    proc = start(workspace, info, "--environment", f"e{target.name[2:]}", env=vault)
    try:
        wait_for(lambda: started(target), what="the first script to start")
        openbao.stop()
        out, _ = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
        rig.up()  # restarts and reseeds OpenBao
    return proc.returncode, out


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_vault_stopped_mid_run(workspace: Workspace, target: Target, rig, info, vault) -> None:
    referenced_row(workspace, target, info, workspace.script("001.sql", "SELECT pg_sleep(3);\n"))
    referenced_row(workspace, target, info, workspace.script("002.sql", "CREATE TABLE after_stop (id INT);\n"))
    code, out = run_with_vault_stopped(workspace, target, rig, info, vault)
    assert code == 3, out
    assert "stopped before this script" in out and "unreachable" in out
    assert "could not be recorded" in out  # the state still says 'updating', and the run says so
    assert history(target) == [["001.sql", "success"]]
    assert "after_stop" not in target.tables()


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_a_state_that_cannot_be_recorded_is_in_every_report(workspace: Workspace, target: Target, rig, info,
                                                            vault) -> None:
    """Every script applied, then Vault went away before the end-of-run state write: the command exits 3, and
    the summary and run.json say 3 too (before, run.json said 0: it was written before the state was tried)."""
    referenced_row(workspace, target, info, workspace.script("001.sql", "SELECT SLEEP(3);\n"))
    code, out = run_with_vault_stopped(workspace, target, rig, info, vault)
    assert code == 3, out
    assert "could not be recorded" in out and "1 applied" in out and "(exit 3)" in out
    assert history(target) == [["001.sql", "success"]]
    [document] = [json.loads(path.read_text()) for path in (workspace.dir / "runs").glob("*/run.json")]
    assert document["run"]["exit_code"] == 3
    assert any("could not be recorded" in notice["text"] for notice in document["notices"])


@pytest.fixture
def in_process(vault, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """This process configured for the rig's OpenBao, as a run's environment would configure it."""
    for name in ("VAULT_TOKEN", "BAO_TOKEN", "VAULT_ROLE_ID", "VAULT_SECRET_ID", "VAULT_NAMESPACE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in vault.items():
        monkeypatch.setenv(name, value)


def test_concurrent_state_updates_lose_nothing(rig, in_process) -> None:  # type: ignore[no-untyped-def]
    """Two controllers (shards) updating one environment entry: check-and-set keeps every change."""
    from concurrent.futures import ThreadPoolExecutor

    from dbupdater.vault import Vault

    path = f"secret/ENVIRONMENTS/cas{time.monotonic_ns()}/db"

    def bump(field: str) -> None:
        client = Vault()  # one per controller, as two processes would have
        for _ in range(15):
            client.update(path, lambda current: {**(current or {}), "n": (current or {}).get("n", 0) + 1,
                                                 field: (current or {}).get(field, 0) + 1})

    with ThreadPoolExecutor(max_workers=2) as pool:
        for job in [pool.submit(bump, "a"), pool.submit(bump, "b")]:
            job.result()
    assert Vault().read(path) == {"n": 30, "a": 15, "b": 15}

    # A soft-deleted latest version: the update names that version and writes over it.
    where = path.removeprefix("secret/")
    rig.vault_client().secrets.kv.v2.delete_latest_version_of_secret(path=where, mount_point="secret")
    assert Vault().read(path) is None
    Vault().update(path, lambda current: {"after_delete": current is None})
    assert Vault().read(path) == {"after_delete": True}
    rig.vault_client().secrets.kv.v2.delete_metadata_and_all_versions(path=where, mount_point="secret")


LEAVING = ["vault:secret/../../sys/seal#k", "vault:secret/./{prefix}/mysql#password",
           "vault:secret//{prefix}/mysql#password", "vault:secret/{prefix}/mysql?list=true#password",
           "vault:secret/{prefix}/%2e%2e/mysql#password", "vault:secret/{prefix}/my#sql#password",
           "vault:secret/{prefix}\\..\\mysql#password"]


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_vault_paths_that_leave_their_secret_are_bad_input_and_nothing_runs(workspace: Workspace, target: Target,
                                                                          info, run_tool, vault) -> None:
    """`..` and `.` segments (the server resolves them: secret/../../sys/seal is Vault's own API), empty ones, and
    characters a URL reads otherwise: refused as the manifest's problem, naming row and column, before Vault is
    asked anything (before, `..` ended in exit 3 and "failed (...): None"). The same for --notify references
    and --state-path."""
    referenced_row(workspace, target, info, workspace.script("000.sql", "CREATE TABLE never (id INT);\n"))
    good = str(workspace.write("good.csv"))
    for number, cell in enumerate(LEAVING):
        column = ("database_password", "sql_runner_password")[number % 2]
        workspace.row(target, workspace.script(f"{number:03}.sql", f"CREATE TABLE never{number} (id INT);\n"),
                      **{column: cell.format(prefix=info.vault_prefix)})
    manifest = str(workspace.write())
    for command in ("validate", "apply"):
        result = run_tool(command, "-f", manifest, env=vault)
        assert result.code == 2, result.text
        assert f"{len(LEAVING)} problems; nothing was run" in result.text
        for number, cell in enumerate(LEAVING):
            column = ("database_password", "sql_runner_password")[number % 2]
            assert f"line {number + 3}, column {column}: {cell.format(prefix=info.vault_prefix)}: " in result.text
        assert "None" not in result.text and "nothing was read from Vault" in result.text
    for option in (["--notify", "webhook:vault:secret/../x#url"],
                   ["--environment", "leave", "--state-path", "secret/../sys/{environment}/{database}"]):
        result = run_tool("-f", good, *option, env=vault)
        assert result.code == 2 and "'..' segment" in result.text and "None" not in result.text, result.text
    assert target.tables() == set()  # not even the history table


def test_an_answer_without_a_message_says_what_the_server_answered(rig, in_process) -> None:  # type: ignore[no-untyped-def]
    """OpenBao answers a method a path does not allow with an empty error list; hvac's exception then says
    "None". The message names the status instead."""
    from dbupdater.vault import Vault, VaultUnavailable

    client = Vault()
    api = client.client()
    with pytest.raises(VaultUnavailable) as raised:
        client._call(lambda: api.adapter.get("/v1/sys/seal"), "reading sys/seal")
    assert "it answered HTTP 405 without an error message, on GET " in str(raised.value)
    assert "None" not in str(raised.value)


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_a_vault_address_that_is_not_vault_says_what_answered(workspace: Workspace, target: Target, info, run_tool,
                                                              server) -> None:  # noqa: F811
    """VAULT_ADDR pointing at another HTTP server (a proxy, the wrong port): its status and the first line of
    its page, not the whole page as if it were Vault's message."""
    elsewhere = server(204)  # answers POST only: a GET gets Python's HTML error page, HTTP 501
    referenced_row(workspace, target, info, workspace.script("001.sql", "SELECT 1;\n"))
    result = run_tool("validate", "-f", str(workspace.write()),
                      env={"VAULT_ADDR": elsewhere.url("").rstrip("/"), "VAULT_TOKEN": "not-a-token-0123456789"})
    assert result.code == 3, result.text
    assert "it answered HTTP 501, not in Vault's format (<!DOCTYPE HTML>), on GET " in result.text
    assert "<html" not in result.text and "not-a-token-0123456789" not in result.text


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_showing_an_environment_never_registered_is_exit_2(workspace: Workspace, target: Target, rig, info,
                                                           run_tool, vault) -> None:
    """Exit 2, as for a vault: reference to a secret that is not there: the name is the command's mistake. An
    environment that has some of the manifest's databases is shown, with a warning for the others."""
    env_name = f"never{target.name[2:]}"
    referenced_row(workspace, target, info, workspace.script("001.sql", "SELECT 1;\n"))
    one = str(workspace.write("one.csv"))
    for output in ("table", "json"):
        shown = run_tool("environment", "show", "-f", one, "--environment", env_name, "--output", output, env=vault)
        assert shown.code == 2, shown.text
        assert f"environment {env_name} is not registered" in shown.err and "environment register" in shown.err
        assert shown.out == ""
    sibling = target.sibling(f"{target.name}_b")
    try:
        workspace.row(sibling, workspace.script("002.sql", "SELECT 1;\n"))
        both = str(workspace.write("both.csv"))
        assert run_tool("environment", "register", "-f", one, "--environment", env_name, env=vault).code == 0
        shown = run_tool("environment", "show", "-f", both, "--environment", env_name, "--output", "json", env=vault)
        assert shown.code == 0, shown.text
        assert "1 of the manifest's 2 databases are not registered" in shown.err
        assert sorted(record is None for record in json.loads(shown.out).values()) == [False, True]
    finally:
        sibling.drop()
        assert run_tool("environment", "remove", "-f", one, "--environment", env_name, env=vault).code == 0
    assert state(rig, env_name) == {}

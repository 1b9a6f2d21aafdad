"""The rig's OpenBao: started, seeded from rig.json, reachable by AppRole, and its token kept out of sight.

Uses its own small rig (name, root, ports and subnet of its own) so it never disturbs the suite's shared
rig; the last test takes it down, so the tests run in file order.
"""

from __future__ import annotations

import csv
import os
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

hvac = pytest.importorskip("hvac")

ROOT = Path(__file__).resolve().parent.parent
RIG_ARGS = ["--name", "dbv", "--root", "/tmp/dbupdater-test-rig-vault", "--runners", "1", "--subnet-index", "5",
            "--base-port", "27700"]


@pytest.fixture(scope="module")
def vrig() -> Iterator[Any]:
    if os.geteuid() != 0:
        pytest.skip("the rig needs root (runner users, network namespaces, private servers)")
    from environment_creators.rig import Rig

    handle = Rig(name="dbv", root=Path("/tmp/dbupdater-test-rig-vault"), runners=1, subnet_index=5,
                 base_port=27700)
    handle.up()
    yield handle
    if os.environ.get("DBU_KEEP_RIG") != "1":
        handle.down()


@pytest.fixture
def vinfo(vrig: Any) -> Any:
    return vrig.info()


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _rig_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "environment_creators.rig", *args, *RIG_ARGS], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def _expected(info: Any) -> dict[str, dict[str, str]]:
    def db(d: Any) -> dict[str, str]:
        return {"user": d.app_user, "password": d.app_password, "admin_user": d.admin_user,
                "admin_password": d.admin_password}

    return {"runner": {"user": info.runner_user, "password": info.runner_password,
                       "private_key": Path(info.runner_key_file).read_text()},
            "mysql": db(info.mysql), "postgres": db(info.postgres)}


def _read_all(api: Any, info: Any) -> dict[str, dict[str, dict[str, str]]]:
    """{"kv2"|"kv1": {secret name: values}} as read through the API."""
    result: dict[str, dict[str, dict[str, str]]] = {"kv2": {}, "kv1": {}}
    for name in ("runner", "mysql", "postgres"):
        path = f"{info.vault_prefix}/{name}"
        result["kv2"][name] = api.secrets.kv.v2.read_secret_version(
            path=path, mount_point=info.vault_kv2_mount, raise_on_deleted_version=True)["data"]["data"]
        result["kv1"][name] = api.secrets.kv.v1.read_secret(path=path, mount_point=info.vault_kv1_mount)["data"]
    return result


def test_up_starts_openbao_with_private_token_file(vrig: Any, vinfo: Any) -> None:
    assert vinfo.vault_addr == "http://127.0.0.1:27703"
    assert vrig.status()["openbao"]
    assert vrig.vault_client().sys.read_health_status(method="GET")["sealed"] is False
    token_file = Path(vinfo.vault_token_file)
    assert token_file == Path(vinfo.root) / "openbao" / "token"
    assert token_file.read_text() == vinfo.vault_token
    for secret_file in (token_file, Path(vinfo.root) / "rig.json"):
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600, secret_file
    assert vinfo.vault_prefix == "dbupdater-rig/dbv"


def test_seed_reads_back_from_kv_v2_and_v1(vrig: Any, vinfo: Any) -> None:
    expected = _expected(vinfo)
    assert expected["runner"]["private_key"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    assert _read_all(vrig.vault_client(), vinfo) == {"kv2": expected, "kv1": expected}


def test_approle_login_reads_rig_secrets_and_manages_environments(vrig: Any, vinfo: Any) -> None:
    from environment_creators.openbao import client

    api = client(vinfo.vault_addr)
    api.auth.approle.login(role_id=vinfo.vault_role_id, secret_id=vrig.vault_secret_id())
    assert api.token and api.token != vinfo.vault_token
    assert _read_all(api, vinfo) == {"kv2": _expected(vinfo), "kv1": _expected(vinfo)}

    kv2 = api.secrets.kv.v2
    path = f"ENVIRONMENTS/t_{os.getpid()}/dev"
    kv2.create_or_update_secret(path=path, secret={"k": "v"}, mount_point="secret")
    assert kv2.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)["data"]["data"] \
        == {"k": "v"}
    assert f"t_{os.getpid()}/" in kv2.list_secrets(path="ENVIRONMENTS", mount_point="secret")["data"]["keys"]
    kv2.delete_metadata_and_all_versions(path=path, mount_point="secret")

    with pytest.raises(hvac.exceptions.Forbidden):  # read-only on the rig's own secrets
        kv2.create_or_update_secret(path=f"{vinfo.vault_prefix}/runner", secret={"x": "y"}, mount_point="secret")
    with pytest.raises(hvac.exceptions.Forbidden):
        api.sys.list_mounted_secrets_engines()


def test_token_is_on_no_command_line_and_in_no_log(vinfo: Any) -> None:
    args = subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    assert "-dev-listen-address=127.0.0.1:27703" in args, "the rig's OpenBao is not running"
    assert vinfo.vault_token not in args
    log = (Path(vinfo.root) / "openbao" / "openbao.log").read_text()
    assert "Root Token: (hidden by the rig)" in log
    assert vinfo.vault_token not in log
    home_token = Path.home() / ".vault-token"
    assert not home_token.exists() or vinfo.vault_token not in home_token.read_text()


def test_info_vault_env_and_repr_hide_the_token(vinfo: Any) -> None:
    info_out = _rig_cli("info")
    assert info_out.returncode == 0, info_out.stderr
    assert vinfo.vault_addr in info_out.stdout and vinfo.vault_role_id in info_out.stdout
    assert "vault_token\"" not in info_out.stdout
    env_out = _rig_cli("vault-env")
    assert env_out.returncode == 0, env_out.stderr
    assert env_out.stdout.splitlines() == [f"VAULT_ADDR={vinfo.vault_addr}",
                                           f"VAULT_TOKEN_FILE={vinfo.vault_token_file}"]
    up_out = _rig_cli("up")
    assert up_out.returncode == 0, up_out.stderr
    for result in (info_out, env_out, up_out):
        assert vinfo.vault_token not in result.stdout + result.stderr
    assert vinfo.vault_token not in repr(vinfo)


def test_sample_manifest_holds_references_only(vinfo: Any, tmp_path: Path) -> None:
    from environment_creators.localhost_manifest import write_localhost_manifest

    secrets = [vinfo.runner_password, vinfo.mysql.app_password, vinfo.postgres.app_password, vinfo.vault_token]
    refs = tmp_path / "refs.csv"
    write_localhost_manifest(vinfo, refs)
    text = refs.read_text()
    assert not [s for s in secrets if s in text]
    rows = list(csv.DictReader(text.splitlines()))
    prefix = "vault:secret/dbupdater-rig/dbv"
    mysql = [r for r in rows if r["database_type"] == "mysql"]
    postgres = [r for r in rows if r["database_type"] == "postgresql"]
    assert mysql and postgres
    assert {r["sql_runner_password"] for r in mysql} == {f"{prefix}/runner#password"}
    assert {r["database_password"] for r in mysql} == {f"{prefix}/mysql#password"}
    assert {r["sql_runner_key_file"] for r in postgres} == {f"{prefix}/runner#private_key"}
    assert {r["database_password"] for r in postgres} == {f"{prefix}/postgres#password"}
    assert stat.S_IMODE(refs.stat().st_mode) == 0o600

    plain = tmp_path / "plain.csv"
    write_localhost_manifest(vinfo, plain, plain=True)
    rows = list(csv.DictReader(plain.read_text().splitlines()))
    assert {r["sql_runner_password"] for r in rows if r["database_type"] == "mysql"} == {vinfo.runner_password}
    assert stat.S_IMODE(plain.stat().st_mode) == 0o600


def test_restarted_server_is_reseeded_by_up(vrig: Any, vinfo: Any) -> None:
    from environment_creators import openbao

    openbao.stop(vrig.layout)
    assert not _port_open(27703)
    assert not vrig.status()["openbao"]
    again = vrig.up()
    assert again.vault_token == vinfo.vault_token and again.vault_role_id == vinfo.vault_role_id
    assert _read_all(vrig.vault_client(), again)["kv1"] == _expected(again)


def test_down_stops_openbao_and_a_new_up_seeds_a_new_token(vrig: Any, vinfo: Any) -> None:
    vrig.down()
    assert not _port_open(27703) and not _port_open(27704)
    assert "127.0.0.1:27703" not in subprocess.run(["ps", "-ww", "-eo", "args"], capture_output=True, text=True).stdout
    fresh = vrig.up()
    assert fresh.vault_token != vinfo.vault_token
    assert _read_all(vrig.vault_client(), fresh)["kv2"] == _expected(fresh)

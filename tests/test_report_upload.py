"""`--report-dir s3://bucket/prefix` on the real rig: run folders written beside the manifest as always, then
uploaded to the rig's S3-compatible server (moto's) under `<prefix>/<run folder name>/`, the keys read as the
backup store reads them (a reference here); an upload that fails is a warning and the exit code stays the
run's; a bad key reference is exit 2 before anything runs."""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from dbupdater.reporting.document import schema

from .conftest import Target, Workspace, secret_values


def client(s3: dict[str, str]) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=s3["AWS_ENDPOINT_URL"], aws_access_key_id=s3["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=s3["AWS_SECRET_ACCESS_KEY"], region_name=s3["AWS_DEFAULT_REGION"])


@pytest.fixture
def bucket(s3: dict[str, str]) -> str:
    name = f"reports-{secrets.token_hex(4)}"
    client(s3).create_bucket(Bucket=name)
    return name


def referenced(s3: dict[str, str]) -> dict[str, str]:
    """The rig's AWS environment with the secret key behind an env: reference, as a CI job would hold it."""
    return {**s3, "AWS_SECRET_ACCESS_KEY": "env:DBU_TEST_REPORT_SECRET",
            "DBU_TEST_REPORT_SECRET": s3["AWS_SECRET_ACCESS_KEY"]}


def objects(s3: dict[str, str], bucket: str) -> dict[str, bytes]:
    c = client(s3)
    keys = [item["Key"] for item in c.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {key: c.get_object(Bucket=bucket, Key=key)["Body"].read() for key in keys}


def only_folder(workspace: Workspace) -> Path:
    (folder,) = [p for p in (workspace.dir / "runs").iterdir() if not p.name.startswith(".")]
    return folder


@pytest.mark.parametrize("target", ["postgresql"], indirect=True)
def test_the_run_folder_is_written_here_then_uploaded_under_the_prefix(workspace: Workspace, target: Target,
                                                                        run_tool, s3, bucket, info) -> None:
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE uploaded_one (id INT);\n"))
    workspace.row(target, workspace.script("002.sql", "SELECT * FROM no_such_table;\n"))
    manifest = workspace.write()
    result = run_tool("-f", str(manifest), "--report-dir", f"s3://{bucket}/ci/main", env=referenced(s3))
    assert result.code == 1, result.text  # the failing script's exit code, with or without the upload
    folder = only_folder(workspace)  # the local copy: where it is without --report-dir
    where = f"s3://{bucket}/ci/main/{folder.name}/"
    assert f"run folder uploaded to {where}" in result.text
    assert f"run folder: {folder}" in result.text
    uploaded = objects(s3, bucket)
    assert sorted(uploaded) == [f"ci/main/{folder.name}/{name}" for name in ("junit.xml", "report.html", "run.json")]
    for key, data in uploaded.items():
        assert data == (folder / key.rsplit("/", 1)[1]).read_bytes(), key
        for secret in [*secret_values(info), s3["AWS_SECRET_ACCESS_KEY"]]:
            assert secret.encode() not in data, key
    document = json.loads(uploaded[f"ci/main/{folder.name}/run.json"])
    jsonschema.validate(document, schema())
    assert document["run"]["exit_code"] == 1
    assert [r["status"] for r in document["results"]] == ["applied", "failed"]
    head = client(s3).head_object(Bucket=bucket, Key=f"ci/main/{folder.name}/report.html")
    assert head["ContentType"].startswith("text/html")


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_backups_and_their_run_folders_go_to_one_bucket(workspace: Workspace, target: Target, run_tool, s3,
                                                         bucket) -> None:
    workspace.row(target, workspace.script("001.sql", "SELECT 1;\n"))
    manifest = workspace.write()
    made = run_tool("backup", "-f", str(manifest), "--backup-dir", f"s3://{bucket}/backups",
                    "--report-dir", f"s3://{bucket}/runs", env=referenced(s3))
    assert made.code == 0, made.text
    folder = only_folder(workspace)
    keys = sorted(objects(s3, bucket))
    assert f"runs/{folder.name}/run.json" in keys
    assert next(key for key in keys if key.startswith("backups/")).startswith("backups/mysql-")


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
@pytest.mark.parametrize("fault", ["no such bucket", "server unreachable"])
def test_an_upload_that_fails_is_a_warning_and_the_local_copy_stays(workspace: Workspace, target: Target,
                                                                    run_tool, s3, fault) -> None:
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE kept_one (id INT);\n"))
    manifest = workspace.write()
    env = referenced(s3)
    if fault == "server unreachable":  # a port the rig leaves closed
        env["AWS_ENDPOINT_URL"] = s3["AWS_ENDPOINT_URL"].rsplit(":", 1)[0] + ":9"
    result = run_tool("-f", str(manifest), "--report-dir", f"s3://never-made-{secrets.token_hex(3)}/ci", env=env)
    assert result.code == 0, result.text  # as a notification that fails: the run's exit code
    assert "kept_one" in target.tables()
    folder = only_folder(workspace)
    assert "could not be uploaded" in result.text and f"it is kept at {folder}" in result.text
    assert "NoSuchBucket" in result.text if fault == "no such bucket" else "connect" in result.text.lower()
    document = json.loads((folder / "run.json").read_text(encoding="utf-8"))
    assert any("could not be uploaded" in notice["text"] for notice in document["notices"])
    assert sorted(p.name for p in folder.iterdir()) == ["junit.xml", "report.html", "run.json"]


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_bad_destinations_are_exit_2_before_anything_runs(workspace: Workspace, target: Target, run_tool,
                                                          s3) -> None:
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE never_made (id INT);\n"))
    manifest = workspace.write()
    unset = {**s3, "AWS_SECRET_ACCESS_KEY": "env:DBU_TEST_NOT_SET_ANYWHERE"}
    result = run_tool("-f", str(manifest), "--report-dir", "s3://reports/ci", env=unset)
    assert result.code == 2 and "AWS_SECRET_ACCESS_KEY" in result.text and "DBU_TEST_NOT_SET_ANYWHERE" in result.text
    no_bucket = run_tool("-f", str(manifest), "--report-dir", "s3:///ci", env=s3)
    assert no_bucket.code == 2 and "--report-dir" in no_bucket.text and "name a bucket" in no_bucket.text
    assert "never_made" not in target.tables() and not (workspace.dir / "runs").exists()

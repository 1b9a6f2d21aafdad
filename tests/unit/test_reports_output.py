"""`report -o` pointing where a report cannot go (a file, /dev/null, under /proc, a read-only folder) ended in a
traceback; each is now a usage error (exit 2: the place given is unusable, as a bad manifest path is; nothing
remote failed, which is what 3 means) naming the path, and nothing is left behind."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dbupdater import cli
from dbupdater.model.errors import ExitCode

from ..conftest import ROOT
from .run_documents import document, write


def report(capsys: pytest.CaptureFixture[str], *args: str | Path) -> tuple[int, str]:
    code = cli.main(["report", *map(str, args), "--color", "never"])
    return code, capsys.readouterr().err


@pytest.fixture
def run_json(tmp_path: Path) -> Path:
    return write(tmp_path / "in", document())


@pytest.mark.parametrize("where", ["file", "/dev/null", "/proc/dbupdater-report", "/proc/self", "/proc/1/fd"])
def test_an_output_folder_that_cannot_be_one_is_a_usage_error(tmp_path: Path, run_json: Path,
                                                              capsys: pytest.CaptureFixture[str], where: str) -> None:
    target = tmp_path / "a-file" if where == "file" else Path(where)
    if where == "file":
        target.write_text("not a folder")
    code, err = report(capsys, run_json, "-o", target)
    assert code == ExitCode.USAGE, err
    assert f"error: {target}" in err and "Traceback" not in err and "internal error" not in err
    assert "not a folder" in err or "cannot be written there" in err
    if where == "file":
        assert target.read_text() == "not a folder"
    assert not any(name.endswith(".partial") for name in os.listdir(target.parent))


def test_a_read_only_folder_is_a_usage_error(tmp_path: Path, run_json: Path) -> None:
    """Root writes through permission bits, so as root the folder is a read-only file system (a tmpfs mounted
    read-only in a mount namespace of the command's own, gone with it)."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    command = [sys.executable, str(ROOT / "remote_database_updater.py"), "report", str(run_json),
               "-o", str(folder / "out"), "--color", "never"]
    if os.geteuid() == 0:
        if not shutil.which("unshare"):
            pytest.skip("needs unshare(1) to mount a read-only file system as root")
        script = 'mount -t tmpfs -o ro,size=1m tmpfs "$1" && shift && exec "$@"'
        command = ["unshare", "--mount", "sh", "-c", script, "sh", str(folder), *command]
    else:
        folder.chmod(0o555)
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert f"error: {folder / 'out'}: the report cannot be written there" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "Read-only file system" in proc.stderr or "Permission denied" in proc.stderr


def test_rebuilding_in_place_in_a_folder_gone_read_only_names_it(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The same for a run folder rebuilt where it is (no -o): the error names the run's own folder."""
    from dbupdater.reporting import runfolder

    run_json = write(tmp_path / "run", document())

    def refuse(path: Path, data: bytes) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(runfolder, "_write", refuse)
    code, err = report(capsys, run_json)
    assert code == ExitCode.USAGE
    assert f"error: {run_json.parent}: the report cannot be written there (Permission denied)" in err

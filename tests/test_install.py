"""One install gives every feature: requirements.txt alone, in a fresh venv, is enough for all of them.

The fresh-venv test needs the package index (pip's cache makes it quick); it skips, saying so, when the
index cannot be reached. The other tests here need neither the index nor a server.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from dbupdater import extras

from .conftest import ROOT, Target, Workspace, secret_values
from .test_vault import referenced_row

OPTIONAL_TOP = {spec.module.split(".")[0] for spec in extras.OPTIONAL.values()}


def requirement_lines(path: Path) -> list[str]:
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def test_requirements_txt_is_the_core_plus_every_extra_with_the_same_ranges() -> None:
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    extras_ = {name: reqs for name, reqs in project["optional-dependencies"].items() if name not in ("all", "dev")}
    assert sorted(requirement_lines(ROOT / "requirements.txt")) == sorted(
        project["dependencies"] + [req for reqs in extras_.values() for req in reqs])
    assert project["optional-dependencies"]["all"] == [f"dbupdater[{','.join(extras_)}]"]
    for spec in extras.OPTIONAL.values():
        assert spec.requirement in extras_[spec.extra], spec
    assert {spec.extra for spec in extras.OPTIONAL.values()} == set(extras_), "an extra no feature names"
    for req in requirement_lines(ROOT / "requirements.txt"):
        assert re.search(r">=[\d.]+,<\d+$", req), f"{req}: wants a lower bound and an upper bound below a major"


def imported_modules(*args: str, cwd: Path) -> set[str]:
    proc = subprocess.run([sys.executable, "-X", "importtime", str(ROOT / "remote_database_updater.py"), *args],
                          capture_output=True, text=True, cwd=cwd, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    names = re.findall(r"^import time:.*\|\s*([\w.]+)\s*$", proc.stderr, re.MULTILINE)
    assert names, "no -X importtime output"
    return {name.split(".")[0] for name in names}


def test_help_and_validate_import_no_optional_module(tmp_path: Path) -> None:
    """Every optional module is installed here; none may load unless a feature that needs it is used."""
    (tmp_path / "s1.sql").write_text("SELECT 1;\n", encoding="utf-8")
    manifest = tmp_path / "m.csv"
    manifest.write_text("sql_runner_host,sql_runner_userid,sql_runner_password,database_type,database_host,"
                        "database_userid,database_password,port,database,sql_script_to_run\n"
                        "runner1,deploy,pw,MySQL,db1,app,dbpw,3306,shop,s1.sql\n"
                        "runner1,deploy,pw,PostgreSQL,db2,app,dbpw,5432,shop,s1.sql\n", encoding="utf-8")
    for args in (["--help"], ["validate", "-f", str(manifest), "--color", "never"]):
        loaded = imported_modules(*args, cwd=tmp_path) & OPTIONAL_TOP
        assert not loaded, f"{' '.join(args)} imported {sorted(loaded)}"


# --- a fresh venv from requirements.txt -----------------------------------------------------------------


def index_unreachable() -> str | None:
    """Why the package index cannot be reached (a 3 s TCP connect, to the proxy if one is set), or None."""
    index = os.environ.get("PIP_INDEX_URL") or "https://pypi.org/simple/"
    proxy = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    where = urlsplit(proxy or index)
    host, port = where.hostname or "pypi.org", where.port or (80 if where.scheme == "http" else 443)
    try:
        socket.create_connection((host, port), timeout=3).close()
    except OSError as exc:
        return f"the package index cannot be reached ({host}:{port}: {exc}); installing requirements.txt needs it"
    return None


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without anything that would let the dev venv's packages leak into the fresh one."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    return {**env, "PYTHONNOUSERSITE": "1", **extra}


def run(argv: list[str], *, timeout: float = 120,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=timeout, env=env or clean_env())


@pytest.mark.network
@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_requirements_txt_alone_gives_every_feature(tmp_path: Path, workspace: Workspace, target: Target, rig,
                                                    info) -> None:  # type: ignore[no-untyped-def]
    reason = index_unreachable()
    if reason:
        pytest.skip(reason)
    venv = tmp_path / "venv"
    python = str(venv / "bin" / "python")
    started = time.monotonic()
    made = run([sys.executable, "-m", "venv", str(venv)])  # no system site packages
    assert made.returncode == 0, made.stderr
    # Exactly what users run; pip's cache may be used.
    install = run([python, "-m", "pip", "install", "-r", "requirements.txt"], timeout=900)
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    compiled = [line for line in install.stdout.splitlines()
                if "Building wheel" in line or re.search(r"(Downloading|Using cached) \S+\.(tar\.gz|zip)\b", line)]
    assert not compiled, f"a requirement has no wheel for this platform and was built from source: {compiled}"
    broken = run([python, "-m", "pip", "check"])
    assert broken.returncode == 0, broken.stdout + broken.stderr
    installed = time.monotonic() - started

    # (a) every optional module imports, from the fresh venv; dbupdater itself from the checkout
    probe = run([python, "-c", "import json, dbupdater; from dbupdater import extras; "
                 "print(json.dumps({'dbupdater': dbupdater.__file__, "
                 "**{s.module: extras.require(k).__file__ for k, s in extras.OPTIONAL.items()}}))"])
    assert probe.returncode == 0, probe.stdout + probe.stderr
    files = json.loads(probe.stdout)
    assert Path(files.pop("dbupdater")).is_relative_to(ROOT / "dbupdater")
    assert set(files) == {spec.module for spec in extras.OPTIONAL.values()}
    for module, file in files.items():
        assert Path(file).is_relative_to(venv), f"{module} came from {file}, not the fresh venv"

    # (b) validate resolves vault: references through the rig's OpenBao
    referenced_row(workspace, target, info, workspace.script("001.sql", "CREATE TABLE by_ref (id INT);\n"))
    referenced_row(workspace, target, info, workspace.script("002.sql", "INSERT INTO by_ref VALUES (1);\n"),
                   runner=2, key_auth=True)
    manifest = str(workspace.write())
    secrets_ = secret_values(info)

    def tool(*args: str) -> subprocess.CompletedProcess[str]:
        proc = run([python, "remote_database_updater.py", *args, "--color", "never"],
                   env=clean_env(**rig.vault_env()))
        for value in secrets_:
            assert value not in proc.stdout + proc.stderr, "a secret value appeared in the tool's output"
        return proc

    valid = tool("validate", "-f", manifest)
    assert valid.returncode == 0, valid.stdout + valid.stderr
    assert "manifest is valid" in valid.stdout + valid.stderr

    # (c) a missing optional module is exit 2 with a message saying what needs it and how to install it
    removed = run([python, "-m", "pip", "uninstall", "-y", "hvac", "mysql-connector-python"])
    assert removed.returncode == 0, removed.stdout + removed.stderr
    no_hvac = tool("validate", "-f", manifest)
    assert no_hvac.returncode == 2, no_hvac.stdout + no_hvac.stderr
    for words in ("hvac", "vault: references", "pip install -r requirements.txt", "pip install 'dbupdater[vault]'"):
        assert words in no_hvac.stderr, (words, no_hvac.stderr)
    assert "Traceback" not in no_hvac.stderr
    # wait-ready --via direct: the missing driver ends the command at once (it is not "not ready yet")
    plain = Workspace(tmp_path / "plain", info)
    plain.dir.mkdir()
    plain.row(target, plain.script("001.sql", "SELECT 1;\n"))
    no_driver = tool("wait-ready", "-f", str(plain.write()), "--via", "direct", "--timeout", "60",
                     "--known-hosts", info.known_hosts)
    assert no_driver.returncode == 2, no_driver.stdout + no_driver.stderr
    for words in ("mysql.connector", "mysql-connector-python", "requirements.txt", "'dbupdater[drivers]'"):
        assert words in no_driver.stderr, (words, no_driver.stderr)
    total = time.monotonic() - started
    print(f"fresh venv with requirements.txt installed in {installed:.1f}s; whole test {total:.1f}s")

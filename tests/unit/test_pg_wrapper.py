"""psql without Debian's pg_wrapper: the probe names the binary the wrapper would run, and `adapt` runs it with
the environment the wrapper would give it, or leaves the command alone when anything is uncertain. The probe
is the real shell script, run here with a PATH of our making."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from dbupdater.engines import registry
from dbupdater.engines.postgresql import WRAPPER_PROBE
from dbupdater.model.command import Client, Command, Ending, Result
from dbupdater.model.secret import Secret
from dbupdater.model.specs import DatabaseSpec

WRAPPER = Path("/usr/share/postgresql-common/pg_wrapper")
OK = Result(Ending.EXITED, 0)


def _db() -> DatabaseSpec:
    return DatabaseSpec("postgresql", "db.example", 5432, "app", "shop", Secret("pw"))


def _probe(path_dir: Path, *, sysconfdir: str | None = None) -> list[str]:
    env = {"PATH": f"{path_dir}:/usr/bin:/bin"}
    if sysconfdir is not None:
        env["PGSYSCONFDIR"] = sysconfdir
    done = subprocess.run(["sh", "-c", WRAPPER_PROBE], env=env, capture_output=True, text=True, check=True)
    return done.stdout.splitlines()


@pytest.mark.skipif(not WRAPPER.exists(), reason="Debian's postgresql-common (pg_wrapper) is not installed here")
def test_the_probe_names_the_psql_the_wrapper_runs(tmp_path: Path) -> None:
    (tmp_path / "psql").symlink_to(WRAPPER)
    engine = registry.get("postgresql")
    build = engine.client_build(OK, _probe(tmp_path))
    wrapped, path, sysconfdir = build.split("\t")
    newest = subprocess.run(["perl", "-MPgCommon", "-e", 'print get_program_path("psql")'], capture_output=True,
                            text=True, check=True).stdout
    assert (wrapped, path, sysconfdir) == ("pg_wrapper", newest, "unset")
    assert os.access(path, os.X_OK)
    assert engine.client_build(OK, _probe(tmp_path, sysconfdir="/etc/elsewhere")).endswith("\tset")


def test_another_psql_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "psql").write_text("#!/bin/sh\nexec true\n")
    (tmp_path / "psql").chmod(0o755)
    assert _probe(tmp_path) == []
    assert registry.get("postgresql").client_build(OK, []) == ""


def test_adapt_runs_the_named_psql_with_the_wrappers_environment() -> None:
    engine = registry.get("postgresql")
    command = engine.command(_db(), "/tmp/x/1.sql", "/tmp/x/cred")
    direct = engine.adapt(command, Client("pg_wrapper\t/usr/lib/postgresql/16/bin/psql\tunset"))
    assert direct.argv == ("/usr/lib/postgresql/16/bin/psql", *command.argv[1:])
    assert dict(direct.env) == {**dict(command.env), "PGSYSCONFDIR": "/etc/postgresql-common"}
    assert "--host=db.example" in direct.argv  # what makes the wrapper pick no cluster
    kept = engine.adapt(command, Client("pg_wrapper\t/usr/lib/postgresql/16/bin/psql\tset"))
    assert kept.env == command.env and kept.argv[0] == "/usr/lib/postgresql/16/bin/psql"
    for client in (Client(""), Client("pg_wrapper\t/usr/lib/postgresql/16/bin/psql\tunset", "windows")):
        assert engine.adapt(command, client) == command
    other = Command(("sh", "-c", "true"))
    assert engine.adapt(other, Client("pg_wrapper\t/x/psql\tunset")) == other


@pytest.mark.parametrize("line", [
    "pg_wrapper\t12\t/usr/lib/postgresql/12/bin/psql\tunset",  # below 13 the wrapper preloads readline too
    "pg_wrapper\t\t\tunset",  # no client installed
    "pg_wrapper\t16\trelative/psql\tunset",
    "pg_wrapper\t16\t/usr/lib/postgresql/16/bin/psql",
    "something else",
])
def test_an_answer_it_cannot_use_names_no_build(line: str) -> None:
    assert registry.get("postgresql").client_build(OK, [line]) == ""


def test_no_probe_on_windows_and_a_failed_probe_names_no_build() -> None:
    engine = registry.get("postgresql")
    assert engine.client_probe("windows") is None
    line = "pg_wrapper\t16\t/usr/lib/postgresql/16/bin/psql\tunset"
    assert engine.client_build(Result(Ending.EXITED, 1), [line]) == ""

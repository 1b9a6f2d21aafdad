"""An injection corpus in every manifest field: shell, PowerShell, psql and mysql meta-commands, connection
strings, SQL and terminal escapes. Each payload tries to create a canary file (the runners share this
machine's filesystem, so /tmp is both the controller's and the runner's); after every run none may exist, and
the tool's output may not carry a raw control character. Fields the manifest reader checks (hosts, ports,
engines, flags, encodings) are fed through `validate` in-process; free-text fields go to real runs.
"""

from __future__ import annotations

import contextlib
import io
import pwd
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from dbupdater.cli import main

from ..conftest import HEADER, ROOT, Target, Workspace, write_manifest
from . import tally
from .support import effects, latest

TOKEN = secrets.token_hex(4)
CANARY_DIR = Path("/tmp")


def canary(n: int) -> str:
    return f"adv-canary-{TOKEN}-{n}"


# {c} is the canary's absolute path, {r} a relative name (for cells that cannot hold "/", e.g. file names).
TEMPLATES = [
    "x; touch {c}", "x && touch {c}", "x | touch {c}", "$(touch {c})", "`touch {c}`", "x\ntouch {c}",
    "'; touch {c}; '", '"; touch {c}; "', "x' || touch {c} || '", "${{IFS}}touch${{IFS}}{c}",  # POSIX shells
    "x; New-Item -Path {c}", "$(New-Item {c})", "x`; ni {c}", "& {{ni {c}}}",  # PowerShell
    "\\! touch {c}", "x \\! touch {c}", "\\o |touch {c}", "\\set x `touch {c}`", ":'x' \\! touch {c}",  # psql
    "system touch {c}", "x\\! touch {c}", "x'; system touch {c}; --",  # mysql
    "x' host='10.9.9.9", "x dbname=postgres host=/tmp", "x\\' sslmode=disable",  # connection strings
    "x'); CREATE TABLE pwned (i INT); --", "x\\'); CREATE TABLE pwned (i INT); --",  # SQL
    "\x1b]0;pwned\x07x", "\x1b[2J\x1b[1;1Hall good", "x\u202etxt.exe", "\x1b]8;;http://evil\x07link",  # terminals
]


def payloads(start: int = 0) -> list[tuple[str, str]]:
    """(payload, its canary's name) for every template; the payload names the canary's absolute path."""
    found = []
    for n, template in enumerate(TEMPLATES, start=start):
        found.append((template.format(c=CANARY_DIR / canary(n), r=canary(n)), canary(n)))
    return found


RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


def assert_no_canary(places: list[Path]) -> None:
    for place in places:
        found = sorted(str(p) for p in place.glob(f"adv-canary-{TOKEN}-*")) if place.is_dir() else []
        assert found == [], f"a manifest value was executed: {found}"


@pytest.fixture
def places(workspace: Workspace, info) -> Iterator[list[Path]]:  # type: ignore[no-untyped-def]
    home = Path(pwd.getpwnam(info.runner_user).pw_dir)
    where = [CANARY_DIR, home, ROOT, workspace.dir, Path.cwd(), Path("/")]
    yield where
    for place in where:
        for path in place.glob(f"adv-canary-{TOKEN}-*") if place.is_dir() else []:
            with contextlib.suppress(OSError):
                path.unlink()


CHECKED_FIELDS = ["sql_runner_host", "sql_runner_port", "database_type", "database_host", "port", "transport",
                  "repeatable", "single_transaction", "encoding", "sql_runner_key_file"]


def test_checked_fields_refuse_every_payload(workspace: Workspace, target: Target, places: list[Path]) -> None:
    """Every payload in every field the reader checks: exit 2 naming the line and the column, nothing run."""
    header = [*HEADER, "transport", "repeatable", "single_transaction", "encoding"]
    script = workspace.script("ok.sql", "SELECT 1;\n")
    for field in CHECKED_FIELDS:
        workspace.rows.clear()
        for payload, _ in payloads():
            workspace.row(target, script, **{field: payload})
        path = write_manifest(workspace.dir / f"{field}.csv", header, workspace.rows)
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["validate", "-f", str(path), "--color", "never"])
        text = out.getvalue() + err.getvalue()
        tally.add("injection payloads", len(TEMPLATES))
        assert code == 2, (field, text)
        assert f"column {field}" in text, (field, text)
        assert not RAW_CONTROL.search(text), (field, text)
    assert_no_canary(places)


def run_payload_rows(workspace: Workspace, run_tool, field: str, rows: list[dict[str, str]]):  # type: ignore[no-untyped-def]
    workspace.rows = rows
    result = run_tool("-f", str(workspace.write(f"{field}.csv")), "--keep-going", "--connect-timeout", "5")
    tally.add("injection payloads", len(rows))
    assert "Traceback" not in result.text and result.code != 4, result.text
    assert not RAW_CONTROL.search(result.text), f"a raw control character reached the terminal ({field})"
    return result


@pytest.mark.parametrize("field", ["database", "database_userid", "sql_runner_userid"])
def test_login_fields_execute_nothing(workspace: Workspace, target: Target, run_tool, places: list[Path],
                                      field: str) -> None:
    """Each payload names a database, a database user or an SSH user that does not exist: the run cannot use
    them (exit 3) or the reader refuses them (exit 2), and nothing executes anywhere."""
    script = workspace.script("ok.sql", "CREATE TABLE injected_ok (id INT);\n")
    rows = [dict(workspace.row(target, script, **{field: payload})) for payload, _ in payloads()]
    result = run_payload_rows(workspace, run_tool, field, rows)
    assert result.code in (2, 3), result.text
    assert_no_canary(places)
    assert "injected_ok" not in target.tables() and "pwned" not in target.tables()


def test_script_names_are_only_names(workspace: Workspace, target: Target, run_tool, places: list[Path]) -> None:
    """File names cannot hold "/": these payloads touch a relative canary, in whatever directory a shell
    would run them. Every script runs, is recorded under its own name, and nothing else happens."""
    names = []
    for n, template in enumerate(TEMPLATES):
        name = template.format(c=canary(n), r=canary(n)).replace("/", "_").replace("\n", " ")
        names.append(workspace.script(f"{name}.sql", f"INSERT INTO adv_names VALUES ({n});\n"))
    first = workspace.script("000.sql", "CREATE TABLE adv_names (n INT);\n")
    rows = [dict(workspace.row(target, name)) for name in [first, *names]]
    result = run_payload_rows(workspace, run_tool, "sql_script_to_run", rows)
    assert result.code == 0, result.text
    assert_no_canary(places)
    assert sorted(int(row[0]) for row in target.rows("SELECT n FROM adv_names")) == list(range(len(TEMPLATES)))
    history = latest(target)
    assert set(history) == {first, *names} and set(history.values()) == {"success"}, history
    assert effects(target) == {} and "pwned" not in target.tables()

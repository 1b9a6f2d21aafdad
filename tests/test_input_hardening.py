"""Hostile and odd input is a manifest problem (exit 2, line and column), never a crash or a hang.

Each case here crashed `validate` (exit 4, a traceback), hung it, or was accepted wrongly before the
hardening issue; no server is involved.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from dbupdater import manifest
from dbupdater.manifest import References
from dbupdater.model.errors import ManifestError

from .conftest import ROOT

HEADER = ("sql_runner_host,sql_runner_userid,sql_runner_password,database_type,database_host,database_userid,"
          "database_password,port,database,sql_script_to_run")


def load_problems(tmp_path: Path, *rows: str, strict: bool = False) -> list[tuple[int | None, str | None, str]]:
    (tmp_path / "s1.sql").write_text("SELECT 1;\n")
    path = tmp_path / "m.csv"
    path.write_text("\n".join([HEADER, *rows]) + "\n", encoding="utf-8")
    with pytest.raises(ManifestError) as caught:
        manifest.load(path, references=References(), strict=strict)
    return [(p.line, p.column, p.message) for p in caught.value.problems]


@pytest.mark.parametrize("port", ["²", "¹²", "３３０６", "٣٣٠٦", "9" * 5000, "0", "65536", "-1",  # noqa: RUF001
                                  "3306.0"])
def test_only_ascii_digits_make_a_port(tmp_path: Path, port: str) -> None:
    found = load_problems(tmp_path, f"r,u,pw,MySQL,db,app,pw,{port},shop,s1.sql")
    assert found == [(2, "port", f"{port!r} is not a port number (1-65535)")]


def test_script_paths_that_cannot_be_files(tmp_path: Path) -> None:
    (tmp_path / "folder.sql").mkdir()
    os.mkfifo(tmp_path / "pipe.sql")
    (tmp_path / "empty.sql").write_text("")
    (tmp_path / "blank.sql").write_text("  \n\t\n")
    (tmp_path / "comment.sql").write_text("-- nothing to do, on purpose\n")
    outside = tmp_path.parent / f"{tmp_path.name}-outside.sql"
    outside.write_text("SELECT 'secret';\n")
    (tmp_path / "link.sql").symlink_to(outside)
    (tmp_path / "inside.sql").symlink_to(tmp_path / "s1.sql")
    long_name = "x" * 300 + ".sql"
    rows = [f"r,u,pw,MySQL,db,app,pw,3306,shop,{name}" for name in (
        "folder.sql", "pipe.sql", "/dev/zero", "empty.sql", "blank.sql", "link.sql", long_name, "comment.sql",
        "inside.sql", "~nobody-here-at-all/x.sql")]
    messages = {line: message for line, _, message in load_problems(tmp_path, *rows)}
    assert "is not a regular file but a directory" in messages[2]
    assert "is not a regular file but a FIFO, socket or device" in messages[3]
    assert "is not a regular file but a FIFO, socket or device" in messages[4]
    assert f"is a symbolic link to {outside}" in messages[7]
    assert "cannot be used: File name too long" in messages[8]
    assert "not found" in messages[11]
    # A comment-only script and a link inside are fine; so are blank ones (no-ops), unless --strict.
    assert set(messages) == {2, 3, 4, 7, 8, 11}
    strict = {line: message for line, _, message in load_problems(tmp_path, *rows, strict=True)}
    assert set(strict) == {2, 3, 4, 5, 6, 7, 8, 11}
    assert "is blank (empty, or white space only): nothing to run" in strict[5] and "--strict" in strict[6]


def test_file_references_that_cannot_be_secrets(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "latin1").write_bytes(b"p\xe4ss\n")
    (tmp_path / "big").write_bytes(b"x" * 70_000)
    (tmp_path / "good").write_text("s3cret\nsecond line ignored\n")
    rows = [f"r,u,file:{ref},MySQL,db,app,pw,3306,shop,s1.sql" for ref in (
        "fifo", "/dev/zero", "/dev/stdin", "latin1", "big", "missing", "good")]
    found = {line: message for line, _, message in load_problems(tmp_path, *rows)}
    assert found[2] == "file:fifo: not a regular file" and found[3] == "file:/dev/zero: not a regular file"
    assert found[4] == "file:/dev/stdin: not a regular file"
    assert found[5] == "file:latin1: not UTF-8 text (byte 1)"
    assert found[6] == "file:big: 70000 bytes; a secret file holds at most 65536"
    assert "cannot read file:missing" in found[7]
    assert 8 not in found


def test_validate_never_hangs_on_a_fifo_and_exits_2(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.sql")
    (tmp_path / "m.csv").write_text(f"{HEADER}\nr,u,file:/dev/stdin,MySQL,db,app,pw,3306,shop,pipe.sql\n")
    proc = subprocess.run([sys.executable, str(ROOT / "remote_database_updater.py"), "validate", "-f",
                           str(tmp_path / "m.csv"), "--color", "never"], capture_output=True, text=True,
                          timeout=30, stdin=subprocess.PIPE)
    assert proc.returncode == 2, proc.stderr
    assert "not a regular file" in proc.stderr and "Traceback" not in proc.stderr


def test_control_characters_are_shown_escaped(tmp_path: Path) -> None:
    name = "\x1b[2J\x1b[1;1Hall good\u202e.sql"
    (tmp_path / "m.csv").write_text(f"{HEADER}\nr,u,file:x,MySQL,db,app,pw,3306,shop,{name}\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, str(ROOT / "remote_database_updater.py"), "validate", "-f",
                           str(tmp_path / "m.csv"), "--color", "never"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "\x1b" not in proc.stderr and "\u202e" not in proc.stderr
    assert "\\x1b[2J\\x1b[1;1Hall good\\u202e.sql not found" in proc.stderr


def test_every_form_a_secret_is_written_in_is_masked() -> None:
    from dbupdater.engines import registry
    from dbupdater.model.secret import redact

    secret = f'q:u\\o"te/{os.getpid()}&x=1'
    redact.add(secret, *registry.get("mysql").secret_forms(secret), *registry.get("postgresql").secret_forms(secret))
    for form in (secret, secret.replace("\\", "\\\\"), secret.replace("\\", "\\\\").replace('"', '\\"'),
                 secret.replace("\\", "\\\\").replace(":", "\\:"), '"' + secret.replace("\\", "\\\\")
                 .replace('"', '\\"') + '"', urllib.parse.quote(secret, safe="")):
        assert form.strip('"') not in redact(f"before {form} after").replace("***", ""), form

"""A database password with a quote, a backslash and a double quote, echoed back by the server in the forms SQL
writes it (MySQL's QUOTE() through the client's --batch escaping, a syntax error quoting the literal as the
script wrote it; PostgreSQL's quote_literal (the E'' form), quote_ident, to_json, and an error raised with the
quoted literal), is masked in every form on the terminal, in run.json, junit.xml, report.html and the webhook
body. The forms are spelled out here as each engine and format writes them, independently of the redactor.
"""

from __future__ import annotations

import dataclasses
import html
import json
import secrets
import urllib.parse
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from environment_creators.mariadb import quote_string
from environment_creators.postgres import quote_literal

from ..conftest import Target, Workspace
from ..test_notify import server  # noqa: F401  (the fixture: a real HTTP server on 127.0.0.1)
from . import tally

TOKEN = secrets.token_hex(3)
# Short enough that MySQL's "near '...'" (80 characters) quotes all of it: a client that cuts an echo prints a
# prefix, which no redactor can tell from other text.
PASSWORD = f"Pa'ss\\wo\"rd é/{TOKEN}"


def spelled(pw: str) -> dict[str, str]:
    """The password as each engine, client and format writes it."""
    backslashed = pw.replace("\\", "\\\\")
    quote_fn = backslashed.replace("'", "\\'")  # MySQL QUOTE()
    return {
        "as written": pw,
        "' doubled (standard SQL, PostgreSQL, Oracle, SQL Server)": pw.replace("'", "''"),
        "\" doubled (quote_ident, a quoted identifier)": pw.replace('"', '""'),
        "MySQL QUOTE(): \\' \\\\": quote_fn,
        "mysql_real_escape_string: \\' \\\\ \\\"": quote_fn.replace('"', '\\"'),
        "E'' (quote_literal): '' \\\\": backslashed.replace("'", "''"),
        "QUOTE() through mysql --batch": quote_fn.replace("\\", "\\\\"),
        "backslashes doubled (mysql --batch)": backslashed,
        "JSON": json.dumps(pw)[1:-1],
        "JSON, not ASCII-escaped (to_json, JSON_OBJECT)": json.dumps(pw, ensure_ascii=False)[1:-1],
        "JSON through mysql --batch": json.dumps(pw, ensure_ascii=False)[1:-1].replace("\\", "\\\\"),
        "URL-encoded": urllib.parse.quote(pw, safe=""),
        "URL-encoded, / kept": urllib.parse.quote(pw),
        "form-encoded": urllib.parse.quote_plus(pw),
        "HTML-escaped": html.escape(pw),
        "HTML-escaped, quotes kept": html.escape(pw, quote=False),
        "MySQL option file": backslashed.replace('"', '\\"'),
        "pgpass": backslashed.replace(":", "\\:"),
    }


SCRIPTS = {
    "mysql": {
        "001_echo.sql": f"SELECT QUOTE({quote_string(PASSWORD)}) AS quoted;\n"
                        f"SELECT JSON_OBJECT('pw', {quote_string(PASSWORD)}) AS as_json;\n",
        # The parser quotes the statement from the error on, as the script wrote it (backslash escapes).
        "002_error.sql": "SELECT * FROM WHERE '" + PASSWORD.replace("\\", "\\\\").replace("'", "\\'") + "';\n",
    },
    "postgresql": {
        "001_echo.sql": f"SELECT quote_literal({quote_literal(PASSWORD)}) AS quoted;\n"
                        f"SELECT quote_ident({quote_literal(PASSWORD)}) AS ident;\n"
                        f"SELECT to_json({quote_literal(PASSWORD)}::text) AS as_json;\n",
        "002_error.sql": f"DO $body$ BEGIN RAISE EXCEPTION 'rejected %', quote_literal({quote_literal(PASSWORD)}); "
                         "END $body$;\n",
    },
}
# What shows that the server echoed a quoted form, and that it was masked: the quotes are left around the mask.
EVIDENCE = {"mysql": "'***'", "postgresql": "E'***'"}


@pytest.fixture
def login(rig, target: Target, workspace: Workspace) -> Iterator[Target]:  # type: ignore[no-untyped-def]
    """The target, logged in to as a user of its own whose password is PASSWORD (read from a file: reference,
    so the tool knows it is a secret)."""
    user = f"sf{TOKEN}{secrets.token_hex(2)}"
    if target.engine == "mysql":
        rig.mysql_exec(f"CREATE USER '{user}'@'%' IDENTIFIED BY {quote_string(PASSWORD)}; "
                       f"GRANT ALL PRIVILEGES ON `{target.name}`.* TO '{user}'@'%'")
    else:  # a member of the database's owner, so it may build the history tables
        rig.psql_exec(f"CREATE ROLE {user} LOGIN PASSWORD {quote_literal(PASSWORD)} IN ROLE {target.user}")
    secret_file = workspace.dir / "db.pw"
    secret_file.write_text(PASSWORD + "\n", encoding="utf-8")
    secret_file.chmod(0o600)
    try:
        yield dataclasses.replace(target, user=user, password="file:db.pw")
    finally:
        if target.engine == "mysql":
            rig.mysql_exec(f"DROP USER IF EXISTS '{user}'@'%'")
        else:
            rig.psql_exec(f"DROP OWNED BY {user} CASCADE; DROP ROLE IF EXISTS {user}", target.name)


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON document, keys too."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)


def readings(folder: Path, terminal: str, webhook: bytes) -> dict[str, str]:
    """Each output as its bytes say it and as a reader decodes it (JSON strings, XML text, HTML entities)."""
    run_json, junit, report = (folder / name for name in ("run.json", "junit.xml", "report.html"))
    tree = ET.parse(junit).getroot()
    xml_text = [*tree.itertext(), *(value for element in tree.iter() for value in element.attrib.values())]
    return {
        "terminal": terminal,
        "run.json": run_json.read_text(encoding="utf-8"),
        "run.json, decoded": "\n".join(strings(json.loads(run_json.read_text(encoding="utf-8")))),
        "junit.xml": junit.read_text(encoding="utf-8"),
        "junit.xml, decoded": "\n".join(xml_text),
        "report.html": report.read_text(encoding="utf-8"),
        "report.html, decoded": html.unescape(report.read_text(encoding="utf-8")),
        "webhook body": webhook.decode("utf-8"),
        "webhook body, decoded": "\n".join(strings(json.loads(webhook))),
    }


def test_a_password_echoed_in_sql_literal_forms_is_masked_everywhere(  # type: ignore[no-untyped-def]
        workspace: Workspace, login: Target, run_tool, server) -> None:  # noqa: F811
    hook = server(204)
    for name, text in SCRIPTS[login.engine].items():
        workspace.row(login, workspace.script(name, text))
    folder = workspace.dir / "run"
    result = run_tool("-v", "-f", str(workspace.write()), "--report-dir", str(folder),
                      "--notify", f"webhook:{hook.url()}")
    assert result.code == 1, result.text  # the echo succeeded, the error script failed
    places = readings(folder, result.text, hook.one()["body"])
    forms = spelled(PASSWORD)
    for kind, form in forms.items():
        for place, text in places.items():
            assert form not in text, f"the password {kind} ({form!r}) is in the {place}"
    tally.add("secret forms", len(set(forms.values())))
    assert EVIDENCE[login.engine] in result.text, result.text  # the server did echo a quoted form
    assert "***" in places["run.json, decoded"] and "***" in places["webhook body, decoded"]

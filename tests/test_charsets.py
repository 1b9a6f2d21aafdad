"""Text arrives byte for byte: client sessions in UTF-8 whatever the runner's locale or the server's defaults,
declared script encodings converted, undecodable scripts refused before anything runs.

The rig's runners have no locale in their SSH sessions (sshd passes no LANG), where the mysql client on its
own picks latin1: exactly the set-up in which UTF-8 scripts used to be stored double-encoded with exit 0.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from .conftest import Target, Workspace

TEXT = "Größe – naïve café ☕ 📦"  # noqa: RUF001 - 2-, 3- and 4-byte UTF-8 on purpose
CP1252_TEXT = "€ “smart” ‘quotes’ – Größe"  # noqa: RUF001 - cp1252's own characters on purpose


def utf8_hex(text: str) -> str:
    return text.encode("utf-8").hex().upper()


def stored_hex(target: Target, table: str, column: str = "v") -> list[str]:
    if target.engine == "mysql":
        sql = f"SELECT HEX({column}) FROM {table} ORDER BY id"
    else:
        sql = f"SELECT upper(encode(convert_to({column}, 'UTF8'), 'hex')) FROM {table} ORDER BY id"
    return [row[0] for row in target.rows(sql)]


def text_table(target: Target, table: str) -> str:
    if target.engine == "mysql":
        return (f"CREATE TABLE {table} (id INT PRIMARY KEY, v VARCHAR(200) CHARACTER SET utf8mb4) "
                "DEFAULT CHARSET=utf8mb4;\n")
    return f"CREATE TABLE {table} (id INT PRIMARY KEY, v TEXT);\n"


def test_session_is_utf8_without_a_runner_locale(workspace: Workspace, target: Target, run_tool) -> None:
    script = text_table(target, "words") + f"INSERT INTO words VALUES (1, '{TEXT}');\n"
    workspace.row(target, workspace.script("001.sql", script))
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 0, result.text
    assert stored_hex(target, "words") == [utf8_hex(TEXT)]


def test_non_ascii_script_path_is_recorded_intact(workspace: Workspace, target: Target, run_tool) -> None:
    name = "données/ç-001 ☕.sql"
    workspace.row(target, workspace.script(name, text_table(target, "pathy")))
    path = workspace.write()
    result = run_tool("-f", str(path))
    assert result.code == 0, result.text
    if target.engine == "mysql":
        recorded = target.rows("SELECT HEX(script) FROM dbupdater_history")
    else:
        recorded = target.rows("SELECT upper(encode(convert_to(script, 'UTF8'), 'hex')) FROM dbupdater_history")
    assert recorded == [[utf8_hex(name)]]
    again = run_tool("-f", str(path))  # read back intact: the same script, already applied
    assert again.code == 0 and "1 skipped" in again.out, again.text


def test_cp1252_script_declared_arrives_converted(workspace: Workspace, target: Target, run_tool) -> None:
    script = text_table(target, "legacy") + f"INSERT INTO legacy VALUES (1, '{CP1252_TEXT}');\n"
    (workspace.dir / "001.sql").write_bytes(script.encode("cp1252"))
    workspace.row(target, "001.sql", encoding="cp1252")
    result = run_tool("-f", str(workspace.write(header=[*HEADER_WITH_ENCODING])))
    assert result.code == 0, result.text
    assert stored_hex(target, "legacy") == [utf8_hex(CP1252_TEXT)]


def test_script_encoding_option_applies_to_rows_without_a_declaration(workspace: Workspace, target: Target,
                                                                      run_tool) -> None:
    script = text_table(target, "latin") + "INSERT INTO latin VALUES (1, 'café');\n"
    (workspace.dir / "001.sql").write_bytes(script.encode("latin1"))
    workspace.row(target, "001.sql")
    path = workspace.write()
    assert run_tool("validate", "-f", str(path)).code == 2
    result = run_tool("-f", str(path), "--script-encoding", "latin1")
    assert result.code == 0, result.text
    assert stored_hex(target, "latin") == [utf8_hex("café")]


def test_undeclared_cp1252_is_refused_naming_line_and_byte(workspace: Workspace, target: Target, run_tool) -> None:
    workspace.row(target, workspace.script("000.sql", "CREATE TABLE must_not_exist (id INT);\n"))
    script = "CREATE TABLE t (v VARCHAR(20));\n" + "INSERT INTO t VALUES ('€uro');\n"
    (workspace.dir / "001.sql").write_bytes(script.encode("cp1252"))
    workspace.row(target, "001.sql")
    path = workspace.write()
    for command in ("validate", "apply"):
        result = run_tool(command, "-f", str(path))
        assert result.code == 2, result.text
        assert "line 3, column sql_script_to_run" in result.err  # the manifest's line (header is line 1)
        assert "001.sql is not valid utf-8: byte 0x80 at line 2, byte offset 55" in result.err
        assert "encoding column" in result.err and "nothing was run" in result.err
    assert "must_not_exist" not in target.tables()
    assert "dbupdater_history" not in target.tables()


@pytest.mark.parametrize("kind", ["utf-16", "utf-8-bom"])
def test_utf16_with_bom_and_utf8_bom(workspace: Workspace, target: Target, run_tool, kind: str) -> None:
    script = text_table(target, "wide") + f"INSERT INTO wide VALUES (1, '{TEXT}');\n"
    if kind == "utf-16":
        (workspace.dir / "001.sql").write_bytes(script.encode("utf-16"))  # with its BOM
        workspace.row(target, "001.sql", encoding="UTF-16")
    else:
        (workspace.dir / "001.sql").write_bytes(b"\xef\xbb\xbf" + script.encode("utf-8"))
        workspace.row(target, "001.sql", encoding="")
    result = run_tool("-f", str(workspace.write(header=[*HEADER_WITH_ENCODING])))
    assert result.code == 0, result.text
    assert stored_hex(target, "wide") == [utf8_hex(TEXT)]


def test_utf16_without_bom_nul_and_unknown_encoding_are_refused(workspace: Workspace, target: Target,
                                                                run_tool) -> None:
    (workspace.dir / "a.sql").write_bytes("SELECT 1;\n".encode("utf-16-le"))
    (workspace.dir / "b.sql").write_bytes(b"SELECT 1;\nSELECT \x00;\n")
    (workspace.dir / "c.sql").write_bytes(b"SELECT 1;\n")
    workspace.row(target, "a.sql", encoding="utf-16")
    workspace.row(target, "b.sql", encoding="")
    workspace.row(target, "c.sql", encoding="ebcdic-or-so")
    result = run_tool("validate", "-f", str(workspace.write(header=[*HEADER_WITH_ENCODING])))
    assert result.code == 2, result.text
    assert "line 2, column sql_script_to_run: script a.sql declared utf-16 but has no byte-order mark" in result.err
    assert "line 3, column sql_script_to_run: script b.sql contains a NUL character at line 2, byte offset 17" \
        in result.err
    assert "line 4, column encoding: unknown encoding 'ebcdic-or-so'" in result.err


def test_postgres_latin1_database(workspace: Workspace, rig, info, run_tool) -> None:  # type: ignore[no-untyped-def]
    """A LATIN1 database gets é as é, and an emoji fails the row with the server's message, never '?'."""
    name = f"t_latin1_{secrets.token_hex(4)}"
    rig.psql_exec(f"CREATE DATABASE {name} ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0 "
                  f"OWNER {info.postgres.app_user}")
    try:
        target = Target(rig, "postgresql", name, info.db_host_for_runners, info.postgres.port,
                        info.postgres.app_user, info.postgres.app_password, info.postgres.admin_user,
                        info.postgres.admin_password)
        workspace.row(target, workspace.script("001.sql", text_table(target, "t") + "INSERT INTO t VALUES (1, 'é');\n"))
        workspace.row(target, workspace.script("002.sql", "INSERT INTO t VALUES (2, 'box 📦');\n"))
        result = run_tool("-f", str(workspace.write()))
        assert result.code == 1, result.text
        assert 'has no equivalent in encoding "LATIN1"' in result.out
        assert stored_hex(target, "t") == [utf8_hex("é")]  # row 2 is not there, not as '?' either
        assert target.rows("SELECT upper(encode(convert_to(v, 'LATIN1'), 'hex')) FROM t") == [["E9"]]
        assert target.rows("SELECT script, status FROM dbupdater_history ORDER BY id") == [
            ["001.sql", "success"], ["002.sql", "failed"]]
    finally:
        rig.drop_postgres_database(name)


@pytest.mark.parametrize("target", ["mysql"], indirect=True)
def test_mysql_four_byte_character_into_utf8mb3(workspace: Workspace, target: Target, run_tool) -> None:
    """The server decides: in strict mode (the default) the row fails; without it the warning is shown."""
    workspace.row(target, workspace.script("001.sql", "CREATE TABLE narrow (id INT PRIMARY KEY, v VARCHAR(50) "
                                                      "CHARACTER SET utf8mb3);\n"))
    workspace.row(target, workspace.script("002.sql", "SET SESSION sql_mode = '';\n"
                                                      "INSERT INTO narrow VALUES (1, 'box 📦');\n"))
    workspace.row(target, workspace.script("003.sql", "INSERT INTO narrow VALUES (2, 'box 📦');\n"))
    result = run_tool("-f", str(workspace.write()))
    assert result.code == 1, result.text
    assert "warning: Warning (Code 1366): Incorrect string value: '\\xF0\\x9F\\x93\\xA6' for column" in result.out
    assert "ERROR 1366 (22007) at line 1: Incorrect string value" in result.out
    assert stored_hex(target, "narrow") == ["626F78203F"]  # what the server chose to store: 'box ?'
    assert target.rows("SELECT script, status FROM dbupdater_history ORDER BY id") == [
        ["001.sql", "success"], ["002.sql", "success"], ["003.sql", "failed"]]


HEADER_WITH_ENCODING = [
    "sql_runner_host", "sql_runner_userid", "sql_runner_password", "sql_runner_port", "sql_runner_key_file",
    "database_type", "database_host", "database_userid", "database_password", "port", "database",
    "sql_script_to_run", "encoding",
]


@pytest.fixture
def latin1_target(rig, info) -> Iterator[Target]:  # type: ignore[no-untyped-def]
    """A fresh database on the rig's second MariaDB, whose server defaults are latin1; the database itself
    takes the server's default (latin1), the tables the scripts create say utf8mb4."""
    server = rig.latin1_mariadb()
    name = f"t_l1_{secrets.token_hex(4)}"
    server.create_database(name, charset="latin1")
    yield Latin1Target(rig, "mysql", name, server.host, server.port, info.mysql.app_user, info.mysql.app_password,
                       info.mysql.admin_user, info.mysql.admin_password, server)
    server.drop_database(name)


@dataclass
class Latin1Target(Target):
    server: Any = None

    def query(self, sql: str) -> str:
        return str(self.server.exec(sql, self.name))


def test_latin1_server_keeps_utf8_text_and_history(workspace: Workspace, latin1_target: Target, run_tool) -> None:
    target = latin1_target
    assert target.rows("SELECT @@character_set_server, @@character_set_database") == [["latin1", "latin1"]]
    name = "données/001 ☕.sql"
    workspace.row(target, workspace.script(name, text_table(target, "words")
                                           + f"INSERT INTO words VALUES (1, '{TEXT}');\n"))
    workspace.row(target, workspace.script("002.sql", f"INSERT INTO words VALUES (2, '{TEXT[::-1]}');\n"))
    path = workspace.write()
    result = run_tool("-f", str(path))
    assert result.code == 0, result.text
    assert stored_hex(target, "words") == [utf8_hex(TEXT), utf8_hex(TEXT[::-1])]
    assert target.rows("SELECT HEX(script), status FROM dbupdater_history ORDER BY id") == [
        [utf8_hex(name), "success"], [utf8_hex("002.sql"), "success"]]
    again = run_tool("-f", str(path))
    assert again.code == 0 and "2 skipped" in again.out, again.text


def test_a_server_overriding_the_client_charset_is_refused(workspace: Workspace, latin1_target: Target,
                                                           run_tool) -> None:
    """init_connect's SET NAMES runs after the client chose utf8mb4 (for users without SUPER): the ledger
    reads the session's charset back and refuses the database before anything runs on it."""
    target = latin1_target
    user, password = f"u{secrets.token_hex(4)}", secrets.token_urlsafe(16)
    target.query(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; "
                 f"GRANT ALL PRIVILEGES ON `{target.name}`.* TO '{user}'@'%'; "
                 "SET GLOBAL init_connect = 'SET NAMES latin1'")
    try:
        workspace.row(target, workspace.script("001.sql", "CREATE TABLE must_not_exist (v TEXT);\n"),
                      database_userid=user, database_password="env:DBU_LIMITED_PASSWORD")
        result = run_tool("-f", str(workspace.write()), env={"DBU_LIMITED_PASSWORD": password})
        assert result.code == 3, result.text
        assert "the client session runs in 'latin1', not 'utf8mb4'" in result.text
        assert "must_not_exist" not in target.tables()
    finally:
        target.query(f"SET GLOBAL init_connect = ''; DROP USER '{user}'@'%'")

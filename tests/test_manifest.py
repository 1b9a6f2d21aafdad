"""Manifest parsing and validation. No server is involved: these run anywhere."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dbupdater import manifest
from dbupdater.model.errors import ManifestError

HEADER = ("sql_runner_host,sql_runner_userid,sql_runner_password,database_type,database_host,database_userid,"
          "database_password,port,database,sql_script_to_run")
GOOD = "runner1,deploy,pw,MySQL,db1,app,dbpw,3306,shop,s1.sql"


def write(tmp_path: Path, text: str, *, encoding: str = "utf-8", name: str = "m.csv") -> Path:
    (tmp_path / "s1.sql").write_text("SELECT 1;\n")
    (tmp_path / "s2.sql").write_text("SELECT 2;\n")
    path = tmp_path / name
    path.write_bytes(text.encode(encoding) if isinstance(text, str) else text)
    return path


def problems(path: Path) -> list[tuple[int | None, str | None, str]]:
    with pytest.raises(ManifestError) as caught:
        manifest.load(path)
    return [(p.line, p.column, p.message) for p in caught.value.problems]


def test_good_manifest_parses_into_typed_rows(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD}\nrunner1,deploy,pw,postgres,db2,app,dbpw,5432,shop,s2.sql\n")
    loaded = manifest.load(path)
    first, second = loaded.rows
    # runner port 0: none given, the SSH config's Port (else 22) applies when it connects
    assert (first.line, first.db.engine, first.db.port, first.runner.port) == (2, "mysql", 3306, 0)
    assert second.db.engine == "postgresql"
    assert first.script == tmp_path / "s1.sql"
    assert first.runner == second.runner, "rows on the same runner share one connection"
    assert repr(first.db.password) == "Secret('***')" and first.db.password.reveal() == "dbpw"


def test_bom_whitespace_and_blank_lines(tmp_path: Path) -> None:
    row = "  runner1 , deploy ,pw, mariadb ,db1,app,dbpw, 3306 ,shop, s1.sql "
    text = f"\ufeff {HEADER.replace(',', ' , ')} \n\n{row}\n\n"
    path = write(tmp_path, text)
    (row,) = manifest.load(path).rows
    assert (row.line, row.runner.host, row.db.engine, row.db.port) == (3, "runner1", "mysql", 3306)


def test_legacy_nine_columns_infer_engine_from_port(tmp_path: Path) -> None:
    header = HEADER.replace("database_type,", "")
    path = write(tmp_path, f"{header}\nr,u,p,db,app,pw,5432,shop,s1.sql\nr,u,p,db,app,pw,3306,shop,s2.sql\n")
    loaded = manifest.load(path)
    assert [row.db.engine for row in loaded.rows] == ["postgresql", "mysql"]
    assert len(loaded.notes) == 1 and "inferred" in loaded.notes[0]


def test_legacy_unknown_port_is_an_error(tmp_path: Path) -> None:
    header = HEADER.replace("database_type,", "")
    path = write(tmp_path, f"{header}\nr,u,p,db,app,pw,3307,shop,s1.sql\n")
    assert problems(path) == [(2, "database_type", "no database_type and port 3307 is not a default port to infer "
                                                   "it from; add a database_type column")]


@pytest.mark.parametrize(
    ("row", "column", "fragment"),
    [
        ("runner1,deploy,pw,MySQL,db1,app,dbpw,33o6,shop,s1.sql", "port", "not a port number"),
        ("runner1,deploy,pw,MySQL,db1,app,dbpw,0,shop,s1.sql", "port", "not a port number"),
        ("runner1,deploy,pw,MySQL,db1,app,dbpw,70000,shop,s1.sql", "port", "not a port number"),
        ("runner1,deploy,pw,Sybase,db1,app,dbpw,3306,shop,s1.sql", "database_type", "unknown engine 'Sybase'"),
        ("runner1,deploy,pw,Oracle,db1,app,dbpw,1521,shop,missing.sql", "sql_script_to_run", "not found"),
        ('runner1,deploy,pw,SQLServer,"db1,1433",app,dbpw,1433,shop,s1.sql', "database_host", "port column"),
        ("runner1,deploy,pw,MySQL,db1,app,dbpw,3306,shop,missing.sql", "sql_script_to_run", "not found"),
        ("runner1,deploy,pw,MySQL,db1,app,dbpw,3306,shop,", "sql_script_to_run", "is empty"),
        (",deploy,pw,MySQL,db1,app,dbpw,3306,shop,s1.sql", "sql_runner_host", "is empty"),
        ("runner1,deploy,pw,MySQL,db1,,dbpw,3306,shop,s1.sql", "database_userid", "is empty"),
        ("runner1,deploy,pw,MySQL,-oProxyCommand=x,app,dbpw,3306,shop,s1.sql", "database_host", "not a host"),
        ("runner1,deploy,pw,MySQL,db1,app,env:DBU_SURELY_UNSET_VAR,3306,shop,s1.sql", "database_password",
         "DBU_SURELY_UNSET_VAR"),
    ],
)
def test_each_bad_cell_names_line_and_column(tmp_path: Path, row: str, column: str, fragment: str) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD}\n{row}\n")
    found = problems(path)
    assert len(found) == 1, found
    line, col, message = found[0]
    assert (line, col) == (3, column)
    assert fragment in message


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\nrunner1,deploy,pw,Foo,db1,app,dbpw,x,shop,s1.sql\n"
                           "runner1,deploy,pw,MySQL,db1,app,dbpw,3306,shop,nope.sql\n")
    with pytest.raises(ManifestError) as caught:
        manifest.load(path)
    text = str(caught.value)
    assert "3 problems; nothing was run" in text
    assert "line 2, column port" in text and "line 2, column database_type" in text
    assert "line 3, column sql_script_to_run" in text


def test_header_problems(tmp_path: Path) -> None:
    header = HEADER.replace("database_userid", "database_user").replace("port,", "port,port,") + ",extra"
    path = write(tmp_path, header + "\n")
    found = problems(path)
    messages = {(col, msg.split(" (")[0]) for _, col, msg in found}
    assert ("database_user", "unknown column") in messages
    assert ("port", "column appears twice in the header") in messages
    assert ("extra", "unknown column") in messages
    assert ("database_userid", "required column is missing") in messages
    assert any("did you mean database_userid" in msg for _, _, msg in found)


def test_exact_duplicate_rows(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD}\n{GOOD}\n")
    assert problems(path) == [(3, None, "exact duplicate of line 2")]


def test_ragged_line_and_encoding_and_empty(tmp_path: Path) -> None:
    ragged = write(tmp_path, f"{HEADER}\n{GOOD},surplus\n", name="ragged.csv")
    assert "line 2 has 11 fields but the header has 10" in problems(ragged)[0][2]
    latin = write(tmp_path, f"{HEADER}\n{GOOD.replace('shop', 'shöp')}\n", encoding="latin-1", name="latin.csv")
    assert "UTF-8" in problems(latin)[0][2]
    empty = write(tmp_path, "", name="empty.csv")
    assert problems(empty) == [(None, None, "the file is empty")]
    only_header = write(tmp_path, HEADER + "\n", name="header.csv")
    assert problems(only_header) == [(None, None, "the manifest has no rows")]
    assert problems(tmp_path / "absent.csv") == [(None, None, "file not found")]


def test_line_numbers_count_quoted_line_breaks(tmp_path: Path) -> None:
    # A quoted cell may span lines; the rows after it keep their file line numbers.
    path = write(tmp_path, f'{HEADER}\nrunner1,deploy,"pw\nsecond",MySQL,db1,app,dbpw,3306,shop,s1.sql\n\n'
                           "runner1,deploy,pw,MySQL,db1,app,dbpw,3306,shop,\n")
    assert problems(path) == [(2, "sql_runner_password", "contains a NUL or line break"),
                              (5, "sql_script_to_run", "is empty")]
    open_quote = write(tmp_path, f'{HEADER}\n{GOOD}\nrunner1,deploy,"pw,MySQL\n', name="quote.csv")
    assert problems(open_quote)[0][2].startswith("not a well-formed CSV")


def test_optional_columns(tmp_path: Path) -> None:
    key = tmp_path / "id_test"
    key.write_text("not really a key")
    header = HEADER + ",sql_runner_port,sql_runner_key_file,transport"
    path = write(tmp_path, f"{header}\nrunner1,deploy,,MySQL,db1,app,,3306,shop,s1.sql,2222,id_test,ssh\n"
                           ",,,postgres,db1,app,,5432,shop,s2.sql,,,local\n"
                           "runner1,deploy,,MySQL,db1,app,,3306,shop,s2.sql,22,missing_key,winrm\n")
    found = problems(path)
    assert (4, "sql_runner_key_file") in [(line, col) for line, col, _ in found]
    assert not [problem for problem in found if problem[:2] == (4, "transport")]  # WinRM is a transport now
    good = write(tmp_path, path.read_text().rsplit("\n", 2)[0] + "\n", name="good.csv")
    ssh_row, local_row = manifest.load(good).rows
    assert (ssh_row.runner.port, ssh_row.runner.key_file, ssh_row.runner.password) == (2222, key, None)
    assert local_row.runner.transport == "local" and local_row.runner.label == "local"


def test_secret_references(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DBU_TEST_DB_PASSWORD", "from-env-123")
    (tmp_path / "pw.txt").write_text("from-file-456\n")
    path = write(tmp_path, f"{HEADER}\nrunner1,deploy,file:pw.txt,MySQL,db1,app,env:DBU_TEST_DB_PASSWORD,3306,"
                           "shop,s1.sql\n")
    (row,) = manifest.load(path).rows
    assert row.db.password is not None and row.db.password.reveal() == "from-env-123"
    assert row.runner.password is not None and row.runner.password.reveal() == "from-file-456"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file, so an unreadable script cannot be made")
def test_unreadable_script(tmp_path: Path) -> None:
    path = write(tmp_path, f"{HEADER}\n{GOOD}\n")
    (tmp_path / "s1.sql").chmod(0)
    assert problems(path)[0][1:] == ("sql_script_to_run", "script s1.sql is not readable")


def test_unset_key_file_reference_is_reported_once(tmp_path: Path) -> None:
    header = HEADER + ",sql_runner_key_file"
    path = write(tmp_path, f"{header}\n{GOOD},env:DBU_SURELY_UNSET_KEY\n")
    assert problems(path) == [(2, "sql_runner_key_file", "environment variable DBU_SURELY_UNSET_KEY "
                                                         "(from env:DBU_SURELY_UNSET_KEY) is not set")]

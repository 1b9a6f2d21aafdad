"""The pieces of copy-db across engines that decide without a server: the held-back tail of the source's stream,
the checksums compared, the scripts each side gets (the destination's COMMIT only after the source's
checksum), what a rerun keeps, the options refused before anything runs, and the review files of --plan DIR.
The streaming itself runs on the real rig (tests/test_copy_across.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dbupdater.conversion.model import (
    ColumnPlan,
    ConversionPlan,
    SourceColumn,
    SourceObject,
    SourceSchema,
    SourceTable,
    TablePlan,
)
from dbupdater.engines import registry
from dbupdater.model.errors import UsageError
from dbupdater.steps.convert import check_schema, digests, history_script
from dbupdater.steps.convert_load import (
    MARKER,
    SourceFailed,
    Tail,
    checksum_value,
    load_postlude,
    load_prelude,
    source_sql,
)
from dbupdater.steps.convert_review import review
from dbupdater.steps.convert_state import KEPT, State, TableState

MYSQL = registry.get("mysql").dialect
PG = registry.get("postgresql").dialect


def table(name: str = "t", *, followable: bool = True, rows: int = 10, ddl: str = "") -> TablePlan:
    column = SourceColumn("id", 1, "int", "int(11)", False, None)
    source = SourceTable(name, (column,), primary_key=("id",), rows_estimate=rows)
    q = f'"s"."{name}"'
    return TablePlan(
        source=source, schema="s", name=name,
        columns=(ColumnPlan(column, "id", "integer", "IFNULL(`id`, '\\\\N')", "`id`", '"id"::text'),),
        create_sql=f"CREATE TABLE {q} (id integer)", after_load_sql=(f"ALTER TABLE {q} ADD PRIMARY KEY (id)",),
        foreign_keys_sql=(), validate_sql=(), rows_sql=f"SELECT `id` FROM `db`.`{name}`",
        discarded_sql=f"SELECT @dbupdater_source FROM `db`.`{name}` WHERE 0",
        source_checksum_sql="SELECT CONCAT(COUNT(*), CHAR(9), 0)", target_checksum_sql=f"SELECT count(*) FROM {q}",
        copy_sql=f"COPY {q} (id) FROM STDIN;", followable=followable,
        not_followed_reason="" if followable else "no primary key", ddl_sha256=ddl,
        counted_rows_sql=f"SELECT CONCAT(`id`, '') FROM `db`.`{name}`",
        skipped_sql=f"SELECT COUNT(*) - @dbupdater_rows INTO @dbupdater_skipped FROM `db`.`{name}`",
        discarded_if_skipped_sql=f"SELECT @dbupdater_source FROM `db`.`{name}` WHERE @dbupdater_skipped <> 0 AND 0",
        counted_checksum_sql="SELECT CONCAT(@dbupdater_rows, CHAR(9), @dbupdater_sum)")


def stream_through(data: bytes, size: int) -> tuple[bytes, str]:
    tail = Tail()
    passed = b"".join(piece for at in range(0, len(data), size) for piece in tail.push(data[at:at + size]))
    rest, line = tail.end()
    return passed + rest, line


@pytest.mark.parametrize("size", [1, 3, 7, 64, 511, 512, 513, 4096])
def test_the_tail_passes_every_byte_but_the_checksum_line_whatever_the_chunks(size: int) -> None:
    body = b"".join(b"%d\tname \\\\ %d\n" % (n, n) for n in range(300)) + b"\\.\nCOPY x FROM STDIN;\n1\tgone\n\\.\n"
    passed, line = stream_through(body + b"300\t12345678901234567890123\n", size)
    assert passed == body
    assert line == "300\t12345678901234567890123"


def test_a_short_stream_of_an_empty_table_still_ends_in_its_checksum() -> None:
    passed, line = stream_through(b"\\.\nCOPY d FROM STDIN;\n\\.\n0\t0\n", 5)
    assert passed == b"\\.\nCOPY d FROM STDIN;\n\\.\n" and line == "0\t0"


@pytest.mark.parametrize("ending", [
    b"1\tx\n",  # cut before its end markers: the source died after some rows
    b"1\tx\n\\.\nCOPY d FROM STDIN;\n\\.\n",  # no checksum line
    b"1\tx\n\\.\nCOPY d FROM STDIN;\n\\.\n5\t1",  # the checksum line cut
    b"1\tx\n\\.\nCOPY d FROM STDIN;\n\\.\nERROR 2013 lost\n",  # something else last
    b"1\tx\n\\.\nCOPY d FROM STDIN;\nx\\.\n5\t7\n",  # a value ending in \. is not the end marker
])
def test_a_stream_that_does_not_end_as_it_must_is_never_taken(ending: bytes) -> None:
    tail = Tail()
    tail.push(ending)
    with pytest.raises(SourceFailed):
        tail.end()


def test_the_tail_holds_a_bounded_number_of_bytes() -> None:
    tail = Tail()
    for _ in range(1000):
        tail.push(b"x" * 10_000)
        assert len(tail.held) <= tail.keep


@pytest.mark.parametrize(("source", "copy", "equal"), [
    ("16049\t9211214486534936056875", "16049\t9211214486534936056875", True),
    ("0\tNULL", "0\t0", True),  # an empty table: MySQL's SUM is NULL, ours 0
    ("0\t", "0\tNone", True),
    ("3\t10", "3\t11", False),
    ("3\t10", "4\t10", False),
    ("2\t1.0", "2\t1", True),
])
def test_checksums_compare_as_count_and_exact_sum(source: str, copy: str, equal: bool) -> None:
    assert (checksum_value(source) == checksum_value(copy)) is equal


def test_the_source_session_is_one_snapshot_in_utc_with_every_marker_as_a_hex_literal() -> None:
    sql = source_sql(MYSQL, "mysql://h:3306/db", table())
    order = ["sql_mode = ''", "time_zone = '+00:00'", "SET @dbupdater_source", "SET @dbupdater_rows = 0",
             "REPEATABLE READ", "START TRANSACTION WITH CONSISTENT SNAPSHOT", "SELECT CONCAT(`id`, '') FROM",
             "INTO @dbupdater_skipped", "SELECT @dbupdater_source", "SELECT CONCAT(@dbupdater_rows", "COMMIT;"]
    places = [sql.index(part) for part in order]
    assert places == sorted(places)
    end = MYSQL.literal("\\.")
    assert sql.count(f"SELECT {end};") == 2  # after the rows and after the discarded rows
    printed = [bytes.fromhex(text).decode() for text in re.findall(r"SELECT _utf8mb4 X'([0-9a-f]*)';", sql)]
    assert printed[1] == ('CREATE TEMPORARY TABLE dbupdater_sum ON COMMIT DROP AS SELECT count(*) FROM "s"."t";\n'
                          "COPY dbupdater_copy.discarded_rows (source, table_name, row_key, reason, row_text) FROM "
                          "STDIN;")  # the destination's statements after the rows, printed by the source
    assert "mysql://h:3306/db" not in sql  # the source too goes in as a hex literal


def test_the_destination_commits_only_in_what_follows_the_source_checksum() -> None:
    state = State(PG, "mysql://h:3306/db", "s")
    prelude = load_prelude(state, table())
    assert prelude.index("BEGIN;") < prelude.index('DROP TABLE IF EXISTS "s"."t" CASCADE') < prelude.index(
        'CREATE TABLE "s"."t"') < prelude.index("DELETE FROM dbupdater_copy.discarded_rows") < prelude.index("COPY")
    assert "COMMIT" not in prelude
    post = load_postlude(state, table(), "abc", "7\t99")
    assert post.index("'loaded', 7,") < post.index("COMMIT;") < post.index(MARKER)
    assert re.search(r"source_checksum.*E'7\t99'", post, re.S)
    assert "(SELECT * FROM dbupdater_sum)" in post.split("COMMIT;")[0]  # the copy's checksum, before the COMMIT


def test_foreign_keys_are_validated_each_on_its_own_and_the_failures_named() -> None:
    sql = State(PG, "src", "s").invalid_sql(['ALTER TABLE "s"."t" VALIDATE CONSTRAINT "fk_a";',
                                             'ALTER TABLE "s"."t" VALIDATE CONSTRAINT "fk_b"'])
    assert sql.count("EXCEPTION WHEN OTHERS THEN INSERT INTO dbupdater_invalid") == 2
    assert "BEGIN ALTER TABLE \"s\".\"t\" VALIDATE CONSTRAINT \"fk_b\";" in sql
    assert sql.rstrip().endswith("SELECT what || chr(9) || why FROM dbupdater_invalid;")


def test_a_rerun_keeps_only_tables_wholly_loaded_with_the_same_ddl_and_still_there() -> None:
    def state(status: str, sha: str = "a", present: bool = True, checksum: str | None = "1\t2") -> TableState:
        return TableState("t", sha, status, 1, 0, None, checksum, present)

    assert all(state(s).kept("a") for s in KEPT)
    assert not state("pending").kept("a")
    assert not state("different").kept("a")
    assert not state("loaded", sha="b").kept("a")
    assert not state("loaded", present=False).kept("a")
    assert not state("loaded", checksum=None).kept("a")


def test_the_state_read_back_from_json_rows() -> None:
    found = State.destination([{"encoding": "UTF8", "holds_ledger": False, "schema_exists": True}], [
        {"table_name": "t", "ddl_sha256": "a", "state": "loaded", "rows": 3, "discarded": None, "checksum": None,
         "source_checksum": "3\t9", "present": True}])
    assert found.encoding == "UTF8" and not found.holds_ledger
    assert found.tables["t"] == TableState("t", "a", "loaded", 3, None, None, "3\t9", True)


def test_digests_are_the_translations_or_made_from_the_statements() -> None:
    plan = ConversionPlan(SourceSchema("db", ()), "s", (), (table("a", ddl="given"), table("b")))
    found = digests(plan)
    assert found["a"] == "given" and len(found["b"]) == 64
    assert digests(ConversionPlan(SourceSchema("db", ()), "s", (), (table("b"),)))["b"] == found["b"]


@pytest.mark.parametrize("name", ["public", "dbupdater_copy", "pg_temp", "information_schema", "meta", "", "x" * 64])
def test_schemas_the_copy_must_not_replace_are_refused(name: str) -> None:
    with pytest.raises(UsageError, match="--schema"):
        check_schema(name, "meta")


def test_the_history_entry_names_source_and_engines() -> None:
    from dbupdater.model.specs import DatabaseSpec, ManifestRow, RunnerSpec

    def row(engine: str, database: str) -> ManifestRow:
        return ManifestRow(2, RunnerSpec("ssh", "r", 22, "u"), DatabaseSpec(engine, "h", 1, "u", database),
                           Path("x.sql"), "x.sql")

    script = history_script(row("mysql", "shop"), row("postgresql", "pg"))
    assert script == "copy from mysql://h:1/shop (mysql to postgresql)"


def test_review_writes_the_three_files_and_summarises(tmp_path: Path) -> None:
    objects = (SourceObject("view", "v", "CREATE VIEW v AS SELECT 1"),)
    plan = ConversionPlan(SourceSchema("db", (), objects), "s", ("CREATE TYPE x",),
                          (table("a", rows=5), table("b", rows=7, followable=False)), objects,
                          notes=tuple(f"note {n}" for n in range(15)))
    lines = review(plan, tmp_path / "plan")
    names = sorted(path.name for path in (tmp_path / "plan").iterdir())
    assert names == ["mysql-objects.sql", "not-carried.txt", "schema.sql"]
    assert 'CREATE TABLE "s"."a"' in (tmp_path / "plan" / "schema.sql").read_text()
    assert "CREATE VIEW v AS SELECT 1" in (tmp_path / "plan" / "mysql-objects.sql").read_text()
    not_carried = (tmp_path / "plan" / "not-carried.txt").read_text()
    assert "note 14" in not_carried
    assert "view v: not translated; its MySQL DDL is in mysql-objects.sql" in not_carried  # the file beside it
    text = "\n".join(lines)
    assert lines[0].startswith("2 tables of db into schema s, about 12 rows")
    assert "more in not-carried.txt" in text and "b: no primary key" in text
    assert "nothing was run on the destination" in lines[-1]


@pytest.mark.parametrize("engine", ["mysql", "postgresql"])
def test_the_copy_clients_carry_no_secret_and_read_their_login_from_the_0600_file(engine: str) -> None:
    from dbupdater.engines.capabilities import ExportsRows, ImportsRows
    from dbupdater.model.secret import Secret
    from dbupdater.model.specs import DatabaseSpec

    client = registry.get(engine)
    db = DatabaseSpec(engine, "db.example", 5, "app", "shop", Secret("s3cr3t-Pa55"))
    command = (client.export_command(db, "/run/x/login1.cred") if isinstance(client, ExportsRows)
               else client.import_command(db, "/run/x/login1.cred") if isinstance(client, ImportsRows) else None)
    assert command is not None
    shown = " ".join(command.argv) + " " + " ".join(f"{k}={v}" for k, v in command.env)
    assert "s3cr3t-Pa55" not in shown and "/run/x/login1.cred" in shown
    assert not command.stdin  # the caller sends the SQL (the source) or streams it (the destination)
    if engine == "postgresql":  # one session, no transaction of its own: the stream's COMMIT decides
        assert "-1" not in command.argv and "--single-transaction" not in command.argv
        assert command.argv[-2:] == ("-f", "-")
    else:
        assert {"--raw", "--quick", "--skip-column-names", "--batch"} <= set(command.argv)

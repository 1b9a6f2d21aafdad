"""`-- dbupdater: expect empty`, offline: how a verify script is rewritten, and how each client's way of
printing the count is read (the rig tests run it against the real servers)."""

from __future__ import annotations

from dbupdater.steps.verify import Expectation, rewrite, unmet

SCRIPT = """SELECT 1;
-- dbupdater: expect empty
SELECT id
  FROM t WHERE bad;
--   DBUPDATER:  Expect   Empty
SELECT x FROM y;
SELECT 'after';
"""


def test_each_marked_query_becomes_a_count_after_a_marker() -> None:
    text, found = rewrite(SCRIPT, " FROM DUAL")
    assert found == [Expectation(1, 3), Expectation(2, 6)]
    assert "SELECT 'dbupdater-expect-empty 1' AS dbupdater_marker FROM DUAL;" in text
    assert "SELECT COUNT(*) AS dbupdater_rows FROM (\nSELECT id\n  FROM t WHERE bad\n) dbupdater_q;" in text
    assert "SELECT COUNT(*) AS dbupdater_rows FROM (\nSELECT x FROM y\n) dbupdater_q;" in text
    assert text.startswith("SELECT 1;\n") and text.endswith("SELECT 'after';\n")


def test_a_script_without_expectations_is_unchanged() -> None:
    text, found = rewrite("SELECT 1;\n-- a comment\n")
    assert (text, found) == ("SELECT 1;\n-- a comment\n", [])


def test_counts_are_read_from_mysql_batch_and_psql_aligned_output() -> None:
    one = [Expectation(1, 3)]
    mysql = ["dbupdater-expect-empty 1", "dbupdater-expect-empty 1", "dbupdater_rows", "0"]
    psql = [" dbupdater_marker ", "-------------------------", " dbupdater-expect-empty 1", "(1 row)", "",
            " dbupdater_rows ", "----------------", "              2", "(1 row)"]
    assert unmet(mysql, one) is None
    assert unmet(psql, one) == "the query expected empty at line 3 returned 2 row(s)"
    assert unmet(["dbupdater-expect-empty 1", "no count here"], one) == (
        "the row count of the query expected empty at line 3 could not be read")
    assert unmet([], one) == "the query expected empty at line 3 did not run"

"""Rows named by what they do (a backup, a restore, a copy: `cli.backup.acting`) read for what they are in the
console's lines and in junit.xml, instead of carrying the script of the manifest row they were taken from; the
lines of script rows, commands and undo steps are unchanged."""

from __future__ import annotations

from pathlib import Path

from dbupdater.cli.backup import acting
from dbupdater.model.outcome import Outcome, Status
from dbupdater.model.specs import DatabaseSpec, ManifestRow, RunnerSpec
from dbupdater.reporting import lines
from dbupdater.reporting.junit import junit_xml

from .run_documents import document, result


def row(script: str = "001.sql") -> ManifestRow:
    return ManifestRow(2, RunnerSpec("fake", "runner1", 22, "deploy"),
                       DatabaseSpec("stubdb", "db1", 7000, "app", "shop"), Path(script), script, script)


def said(outcome: Outcome) -> list[str]:
    return [line.plain for line in [lines.started(outcome, 1), *lines.finished(outcome, 1)]]


def test_a_backup_restore_or_copy_says_what_it_does_and_where_it_went() -> None:
    backup = Outcome(1, acting(row(), "backup to s3://bucket/nightly"), Status.APPLIED,
                     "backed up to s3://bucket/nightly/stubdb-db1-7000-shop--x.sql.zst: 1,628 bytes", step="backup")
    start, end = said(backup)
    assert start == "[1/1] start    backup to s3://bucket/nightly on stubdb://db1:7000/shop via deploy@runner1"
    assert end.startswith("[1/1] applied  backup to s3://bucket/nightly on stubdb://db1:7000/shop via deploy@runner1")
    assert end.endswith("backed up to s3://bucket/nightly/stubdb-db1-7000-shop--x.sql.zst: 1,628 bytes")
    assert "001.sql" not in start + end

    restore = Outcome(1, acting(row(), "restore shop--x.sql.zst"), Status.FAILED, "the restore failed", step="restore")
    assert said(restore)[0].endswith("start    restore shop--x.sql.zst on stubdb://db1:7000/shop via deploy@runner1")
    source = Outcome(1, acting(row(), "copy source for stubdb://db1:7000/copy"), Status.SKIPPED, "the copy's source",
                     step="copy source")
    assert "skipped  copy source for stubdb://db1:7000/copy on stubdb://db1:7000/shop" in said(source)[1]


def test_script_command_and_undo_rows_keep_their_lines() -> None:
    script = Outcome(1, row(), Status.APPLIED, "applied", step="script")
    assert said(script)[1] == "[1/1] applied  001.sql on stubdb://db1:7000/shop via deploy@runner1  0.00s"
    command = Outcome(1, row("deploy.sh"), Status.APPLIED, "the command exited 0", step="command")
    assert said(command)[1] == "[1/1] applied  command deploy.sh on stubdb://db1:7000/shop via deploy@runner1  0.00s"


def test_junit_names_a_case_once() -> None:
    data = document(results=[result(1, "applied", step="restore", script="restore shop--x.sql.zst"),
                             result(2, "applied", step="undo", script="002.sql")])
    xml = junit_xml(data).decode()
    assert 'name="restore shop--x.sql.zst"' in xml and 'name="undo 002.sql"' in xml


def test_junit_shows_a_steps_progress_before_its_output() -> None:
    """A copy's tables and a follower's lag (the run document's `progress`) reach the JUnit case too."""
    import xml.etree.ElementTree as ET

    from .run_documents import document, result

    progress = {"lines": ["actor: 200 rows, checksum equal", "lag 0 s"], "omitted_lines": 3}
    output = {"lines": [{"stream": "stdout", "text": "hello"}], "omitted_lines": 0, "omitted_bytes": 0}
    root = ET.fromstring(junit_xml(document(results=[result(1, "applied", progress=progress, output=output)])))
    text = root.find(".//testcase/system-out")
    assert text is not None and (text.text or "").splitlines() == [
        "[... 3 earlier progress lines not kept]", "progress: actor: 200 rows, checksum equal", "progress: lag 0 s",
        "stdout: hello"]

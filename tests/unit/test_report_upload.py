"""The run folder's upload decisions, with a destination that records what it was sent (the real upload to an
S3-compatible server is tests/test_report_upload.py): the local folder first and always; an upload that fails
is a warning that the local run.json holds, tried once; a late notice sends the folder again only where it went;
the console is told where it went once."""

from __future__ import annotations

import json
from pathlib import Path

from dbupdater.events import Level, Notice
from dbupdater.model.outcome import RunResult
from dbupdater.reporting.document import RunDocument
from dbupdater.reporting.runfolder import RunFolder


class Bucket:
    """Where folders go: records each sending, or refuses every one."""

    def __init__(self, refuse: str | None = None) -> None:
        self.refuse = refuse
        self.sent: list[dict[str, bytes]] = []
        self.tries = 0

    def where(self, name: str) -> str:
        return f"s3://bucket/ci/{name}/"

    def send(self, name: str, files: dict[str, bytes]) -> None:
        self.tries += 1
        if self.refuse is not None:
            raise OSError(self.refuse)
        self.sent.append(dict(files))


def run(folder: Path, bucket: Bucket) -> tuple[RunDocument, list[str], list[str]]:
    """A run document whose folder is written to `folder` and sent to `bucket`, ended with exit 0; the warnings
    and what the console was told."""
    warnings: list[str] = []
    said: list[str] = []
    document: RunDocument

    def warn(text: str) -> None:  # as the CLI wires it: a warning is a notice of the run
        warnings.append(text)
        document.handle(Notice(text, Level.WARNING))

    sink = RunFolder(folder, warn, bucket, said.append)
    document = RunDocument([sink], keepers=[sink.rewrite])
    document.finish(RunResult([], 0.5), exit_code=0)
    return document, warnings, said


def notices(data: bytes) -> list[str]:
    return [notice["text"] for notice in json.loads(data)["notices"]]


def test_the_folder_is_written_then_sent_and_the_console_told_where_once(tmp_path: Path) -> None:
    bucket = Bucket()
    document, warnings, said = run(tmp_path / "20261207T000000Z-abc", bucket)
    assert warnings == [] and said == ["run folder uploaded to s3://bucket/ci/20261207T000000Z-abc/"]
    [files] = bucket.sent
    assert sorted(files) == ["junit.xml", "report.html", "run.json"]
    for name, data in files.items():  # the same bytes as the local copy
        assert (tmp_path / "20261207T000000Z-abc" / name).read_bytes() == data

    document.handle(Notice("notification to webhook http://127.0.0.1:9/*** failed: HTTP 500", Level.WARNING))
    assert len(bucket.sent) == 2 and said == ["run folder uploaded to s3://bucket/ci/20261207T000000Z-abc/"]
    assert notices(bucket.sent[1]["run.json"]) == ["notification to webhook http://127.0.0.1:9/*** failed: HTTP 500"]


def test_an_upload_that_fails_is_a_warning_the_local_copy_keeps_and_is_tried_once(tmp_path: Path) -> None:
    bucket = Bucket(refuse="NoSuchBucket The specified bucket does not exist")
    folder = tmp_path / "run"
    document, warnings, said = run(folder, bucket)
    [warning] = warnings
    assert warning.startswith("the run folder could not be uploaded to s3://bucket/ci/run/ (NoSuchBucket")
    assert f"it is kept at {folder}" in warning and "exit code is unchanged" in warning
    assert said == [] and bucket.tries == 1
    assert notices((folder / "run.json").read_bytes()) == [warning]  # the local copy says it was not uploaded

    document.handle(Notice("a later warning", Level.WARNING))
    assert bucket.tries == 1  # not tried again: it was said already
    assert notices((folder / "run.json").read_bytes()) == [warning, "a later warning"]


def test_a_folder_that_cannot_be_written_here_is_still_sent(tmp_path: Path) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the folder's parent should be")
    bucket = Bucket()
    _, warnings, said = run(blocker / "run", bucket)
    assert len(bucket.sent) == 1 and said == ["run folder uploaded to s3://bucket/ci/run/"]
    assert "could not be written" in warnings[0]
    assert notices(bucket.sent[0]["run.json"]) == []  # sent before the warning existed; the warning is on screen

    failing = Bucket(refuse="no route to host")
    _, warnings, _ = run(blocker / "run", failing)
    assert "could not be written here either" in warnings[-1]

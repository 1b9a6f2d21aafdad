"""The run folder: run.json, junit.xml and report.html of one run, written when it ends.

A new folder appears whole or not at all (written under a temporary name beside it, then renamed); in a
folder that already exists (`--report-dir` reused by a CI job) each file is replaced atomically. Files are
0644: reports are for reading by the CI system and colleagues, and hold no secret. A failure to write is
said as a warning and never changes the run's exit code: the databases' history is the record that matters.

A folder may also be sent somewhere else once written (`Uploads`: an S3-compatible bucket, `reporting.upload`):
the local folder is written first and kept whatever the upload does, and an upload that fails is a warning
like a notification that fails: the run's exit code stays the run's.
"""

from __future__ import annotations

import os
import secrets
import shutil
from collections.abc import Callable, Iterable
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from .characters import json_text
from .document import Document
from .html import report_html
from .junit import junit_xml

RUNS_DIR = "runs"
FILE_MODE = 0o644
DIR_MODE = 0o755


def default_folder(base_dir: Path, run_id: str, moment: datetime | None = None) -> Path:
    """`runs/<UTC time>-<run id>/` beside the manifest: sorted by time when listed, unique by the id."""
    moment = moment or datetime.now(timezone.utc)
    return base_dir / RUNS_DIR / f"{moment.strftime('%Y%m%dT%H%M%SZ')}-{run_id}"


FORMATS: dict[str, Callable[[Document], bytes]] = {
    "run.json": lambda document: (json_text(document, indent=2) + "\n").encode(),
    "junit.xml": junit_xml,
    "report.html": lambda document: report_html(document).encode(),
}


def render(document: Document, names: Iterable[str] = tuple(FORMATS)) -> dict[str, bytes]:
    """The files of the run folder (or those named) made from the document."""
    return {name: FORMATS[name](document) for name in names}


def _write(path: Path, data: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    with os.fdopen(descriptor, "wb") as handle:
        os.fchmod(handle.fileno(), FILE_MODE)  # whatever the umask
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_folder(folder: Path, files: dict[str, bytes]) -> None:
    if folder.is_dir():
        for name, data in files.items():
            partial = folder / f".{name}.{secrets.token_hex(4)}.partial"
            try:
                _write(partial, data)
                os.replace(partial, folder / name)
            finally:
                partial.unlink(missing_ok=True)
        return
    folder.parent.mkdir(parents=True, exist_ok=True)
    partial = folder.parent / f".{folder.name}.{secrets.token_hex(4)}.partial"
    try:
        partial.mkdir(mode=DIR_MODE)
        os.chmod(partial, DIR_MODE)
        for name, data in files.items():
            _write(partial / name, data)
        os.rename(partial, folder)
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)


class Uploads(Protocol):
    """Somewhere run folders are sent after they are written locally."""

    def where(self, name: str) -> str:
        """Where the folder called `name` goes, as messages say it."""

    def send(self, name: str, files: dict[str, bytes]) -> None:
        """Send the folder's files; raises when it cannot."""


class RunFolder:
    """A sink of the run document: renders the three files, writes them into `folder`, then sends them to
    `uploads` (if any), saying where they went with `said`."""

    def __init__(self, folder: Path, warn: Callable[[str], None], uploads: Uploads | None = None,
                 said: Callable[[str], None] | None = None) -> None:
        self.folder = folder
        self.warn = warn
        self.uploads = uploads
        self.said = said or (lambda text: None)
        self.written = False
        self.sent = False

    def rewrite(self, document: Document) -> None:
        """The document again, after it changed (a notice that came after the end): only where it went the first
        time (a first failure was said already, and is not tried again)."""
        if not (self.written or self.sent):
            return
        files = self._render(document)
        if files is not None and self.written:
            self._write(files)
        if files is not None and self.sent:
            self._send(files)

    def __call__(self, document: Document) -> None:
        files = self._render(document)
        if files is None:
            return
        self.written = self._write(files)
        if self.uploads is not None:
            self.sent = self._send(files)
            if self.sent:
                self.said(f"run folder uploaded to {self.uploads.where(self.folder.name)}")

    def _render(self, document: Document) -> dict[str, bytes] | None:
        try:
            return render(document)
        except Exception as exc:  # a report never changes the run's outcome
            self.warn(f"the run folder could not be made ({type(exc).__name__}: {exc}); the history tables in the "
                      "databases are complete")
            return None

    def _write(self, files: dict[str, bytes]) -> bool:
        try:
            write_folder(self.folder, files)
            return True
        except Exception as exc:  # a report never changes the run's outcome
            self.warn(f"the run folder {self.folder} could not be written ({type(exc).__name__}: {exc}); "
                      "the history tables in the databases are complete")
            return False

    def _send(self, files: dict[str, bytes]) -> bool:
        assert self.uploads is not None
        try:
            self.uploads.send(self.folder.name, files)
            return True
        except Exception as exc:  # like a notification: said, never the run's outcome
            kept = f"it is kept at {self.folder}" if self.written else "and it could not be written here either"
            self.warn(f"the run folder could not be uploaded to {self.uploads.where(self.folder.name)} ({exc}); "
                      f"{kept}; the run's exit code is unchanged")
            return False

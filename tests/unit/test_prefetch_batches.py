"""Scripts copied ahead in batches (execution/sessions.py), through a transport that records its calls: batches
double from one file to BATCH_FILES, a large script streams on its own, every copy happens once whoever asks
first, and a failed batch is each of its scripts' error while the copying stops."""

from __future__ import annotations

from pathlib import Path
from typing import IO, Any

import pytest

from dbupdater.execution import sessions
from dbupdater.execution.sessions import RunnerSession
from dbupdater.transports import TransportError
from dbupdater.transports.shells import PosixShell


class Recorder:
    """What RunnerSession uses of a transport."""

    label = "recorder"
    shell = PosixShell()

    def __init__(self, fail_from: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.written: dict[str, bytes] = {}
        self.fail_from = fail_from  # the call (0-based) from which put_files fails

    def put_files(self, files: list[tuple[bytes, str, str]]) -> None:
        if self.fail_from is not None and len(self.calls) >= self.fail_from:
            self.calls.append(["failed"])
            raise TransportError("copying failed: disk full")
        self.calls.append([name for _, _, name in files])
        self.written.update((remote, data) for data, remote, _ in files)

    def put_stream(self, source: IO[bytes], size: int, remote: str, name: str) -> None:
        self.calls.append([f"streamed {name}"])
        self.written[remote] = source.read()

    def run(self, *_: Any) -> Any:  # the hourly touch of the private directory: not reached here
        raise AssertionError("not expected")


def _scripts(folder: Path, count: int) -> list[tuple[Path, str]]:
    made = []
    for number in range(1, count + 1):
        path = folder / f"{number:04d}.sql"
        path.write_text(f"INSERT INTO t VALUES ({number});\n", encoding="utf-8")
        made.append((path, "utf-8"))
    return made


def test_batches_double_and_a_large_script_streams_alone(tmp_path: Path) -> None:
    scripts = _scripts(tmp_path, 200)
    large = tmp_path / "large.sql"
    large.write_text("SELECT 1;\n" * 10_000, encoding="utf-8")  # 100 KB: above BATCH_FILE_BYTES
    scripts.insert(5, (large, "utf-8"))
    transport = Recorder()
    session = RunnerSession(transport, "/tmp/dbupdater.x")  # type: ignore[arg-type]
    session.prefetch(scripts)
    assert session._prefetching is not None
    session._prefetching.join(30)
    sizes = [len(call) for call in transport.calls]
    # The third batch (4 scripts) holds it: it streams at once, then the other three go together.
    assert transport.calls[2] == ["streamed large.sql"]
    assert sizes == [1, 2, 1, 3, 8, 16, 32, 64, 64, 10], sizes
    assert sum(sizes) == 201 and len(transport.written) == 201
    for script, encoding in scripts:  # every step finds its copy made, nothing copied twice
        assert transport.written[session.upload(script, encoding)] == script.read_bytes()
    assert len(transport.calls) == 10  # none more: each script was copied once, ahead of its step


def test_a_failed_batch_fails_its_scripts_and_stops_the_copying(tmp_path: Path) -> None:
    scripts = _scripts(tmp_path, 20)
    transport = Recorder(fail_from=2)  # the third batch (scripts 4 to 7) fails
    session = RunnerSession(transport, "/tmp/dbupdater.x")  # type: ignore[arg-type]
    session.prefetch(scripts)
    assert session._prefetching is not None
    session._prefetching.join(30)
    assert [len(call) for call in transport.calls] == [1, 2, 1]  # nothing more after the failure
    for script, encoding in scripts[3:7]:
        with pytest.raises(TransportError, match="disk full"):
            session.upload(script, encoding)
    transport.fail_from = None
    assert session.upload(*scripts[7]) in transport.written  # not claimed by the failed batch: copied when asked


def test_batch_limits_are_what_the_transport_takes_in_one_command() -> None:
    from dbupdater.transports.ssh.connection import LOOP_UPLOAD_MAX

    assert sessions.BATCH_BYTES <= LOOP_UPLOAD_MAX and sessions.BATCH_FILE_BYTES <= sessions.BATCH_BYTES

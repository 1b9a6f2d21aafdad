"""`report` on hostile files (issue 24): each input here hung the command, filled the memory, walked the whole
file system, ended in a traceback, or set the process's exit status from a document. Now each is refused with
exit 2 and a message naming the file and the problem, or (a lone surrogate, U+FFFF) read and written as an
escape. Every case runs the real command in a subprocess with a timeout (a FIFO used to block forever) and
counts as one `hostile report inputs`; the memory cases measure the command's own peak RSS.

The documents are made in memory (tests/unit/run_documents.py); nothing here needs the rig.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ..conftest import ROOT
from ..unit.run_documents import document, result, write
from . import tally

MIB = 1024 * 1024
# The command in-process, printing its own peak RSS (KiB) on the last line of stderr: VmHWM, the high-water
# mark of this program's memory. getrusage's ru_maxrss would do on a fresh process, but Linux carries it over
# from the process that started this one (a pytest of a few hundred MiB) across fork and exec.
MEASURED = ("import resource, sys\n"
            "from dbupdater.cli import main\n"
            "code = main(sys.argv[1:])\n"
            "try:\n"
            "    with open('/proc/self/status') as status:\n"
            "        peak = next(int(line.split()[1]) for line in status if line.startswith('VmHWM:'))\n"
            "except OSError:\n"
            "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "print('peak-rss-kib', peak, file=sys.stderr)\n"
            "sys.exit(code)\n")


class Ran:
    def __init__(self, proc: subprocess.CompletedProcess[str], seconds: float) -> None:
        self.code = proc.returncode
        self.out = proc.stdout
        self.err = proc.stderr
        self.seconds = seconds

    @property
    def text(self) -> str:
        return self.out + self.err

    @property
    def peak_mib(self) -> float:
        line = next(line for line in self.err.splitlines() if line.startswith("peak-rss-kib "))
        return int(line.split()[1]) / 1024


def report(*args: str | Path, timeout: float = 60, cwd: Path | None = None) -> Ran:
    """`report` as a user runs it; one hostile input counted."""
    tally.add("hostile report inputs")
    began = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", MEASURED, "report", *map(str, args), "--color", "never"],
                          capture_output=True, text=True, timeout=timeout, cwd=cwd or ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    ran = Ran(proc, time.monotonic() - began)
    assert "Traceback" not in ran.text and "internal error" not in ran.text, ran.text
    return ran


def refused(ran: Ran, *says: str) -> None:
    assert ran.code == 2, ran.text
    for text in says:
        assert text in ran.err, ran.err


def test_a_fifo_named_run_json_is_refused_without_blocking(tmp_path: Path) -> None:
    folder = tmp_path / "shard-1"
    folder.mkdir()
    os.mkfifo(folder / "run.json")
    refused(report(folder / "run.json", timeout=20), f"{folder / 'run.json'}: a FIFO")
    refused(report(tmp_path, timeout=20), "a FIFO (named pipe), not a regular file")  # found by a search


def test_a_link_to_dev_zero_is_never_opened(tmp_path: Path) -> None:
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    ran = report(tmp_path / "zero.json", timeout=20)
    refused(ran, "zero.json (a link to /dev/zero): a character device")
    assert ran.peak_mib < 200, ran.peak_mib
    refused(report("/dev/zero", timeout=20), "/dev/zero: a character device")
    artifacts = tmp_path / "artifacts" / "shard-1"
    artifacts.mkdir(parents=True)
    (artifacts / "run.json").symlink_to("/dev/zero")
    refused(report(tmp_path / "artifacts", timeout=20), "a symbolic link, which a search does not follow")


def test_the_whole_file_system_is_never_searched(tmp_path: Path) -> None:
    ran = report("/", timeout=30)
    refused(ran, "/: the whole file system is not searched")
    assert ran.seconds < 20
    refused(report("/..", timeout=30), "the whole file system is not searched")
    refused(report("../../../../../../../../..", cwd=tmp_path, timeout=30), "the whole file system is not searched")


def test_a_search_stops_at_its_depth_and_count_limits(tmp_path: Path) -> None:
    deep = tmp_path / "deep"
    (deep / "a" / "b" / "c" / "d" / "e" / "f" / "g" / "h" / "i").mkdir(parents=True)
    write(deep / "a", document())
    refused(report(deep, timeout=30), "9 folder levels below", "deeper than the 8 a search for run.json goes")
    wide = tmp_path / "wide"
    wide.mkdir()
    write(wide / "run", document())
    for number in range(20_001):
        (wide / f"f{number}").touch()
    refused(report(wide, timeout=60), "more than 20000 files and folders under it")


def test_a_search_does_not_follow_links_or_enter_hidden_folders(tmp_path: Path) -> None:
    write(tmp_path / "runs" / "one", document())
    (tmp_path / "runs" / "loop").symlink_to(tmp_path)  # a loop, if it were followed
    write(tmp_path / "runs" / ".git", document(run_id="f" * 32))  # hidden: not searched
    ran = report(tmp_path / "runs", "--exit-zero", timeout=30)
    assert ran.code == 0, ran.text
    assert "merged" not in ran.out and (tmp_path / "runs" / "one" / "report.html").is_file()


@pytest.mark.parametrize(("name", "change", "says"), [
    ("run.id a number", lambda d: d["run"].update(id=5), "run.id: expected string, found number 5"),
    ("results a string", lambda d: d.update(results="x"), "results: expected array, found string 'x'"),
    ("results null", lambda d: d.update(results=None), "results: expected array, found null"),
    ("seconds a string", lambda d: d["run"].update(seconds="1.5"), "run.seconds: expected number"),
    ("exit_code a string", lambda d: d["run"].update(exit_code="1"), "run.exit_code: '1' is not one of"),
    ("a result's seconds a string", lambda d: d["results"][0].update(seconds="0"),
     "results[0].seconds: expected number"),
    ("errors a string", lambda d: d["results"][1].update(errors="boom"), "results[1].errors: expected array"),
    ("targets missing", lambda d: d.pop("targets"), "targets: missing"),
    ("a time that is not one", lambda d: d["run"].update(started_at="soon Z"), "run.started_at: 'soon Z' is not"),
    ("a shard count of a billion digits", lambda d: d["run"].update(shard="1/" + "9" * 5000),
     "run.shard: '1/999"),
])
def test_type_confused_documents_are_refused_naming_the_place(tmp_path: Path, name: str,
                                                             change: Callable[[dict[str, Any]], Any],
                                                             says: str) -> None:
    changed = document()
    change(changed)
    path = write(tmp_path, changed)
    refused(report(path), f"{path}: not a valid run document: {says}")


@pytest.mark.parametrize("code", [77, 10**30, -1, 256, 1.5])
def test_an_exit_code_outside_the_tools_own_is_refused(tmp_path: Path, code: float) -> None:
    changed = document()
    changed["run"]["exit_code"] = code
    refused(report(write(tmp_path, changed)), "run.exit_code:", "is not one of 0, 1, 2, 3, 4, 5, 130")
    merged = document(run_id="a" * 32, exit_code=0)
    merged["merged"] = {"runs": [{"run_id": "a", "shard": None, "exit_code": code, "started_at": "2024-05-01T12:00:00Z",
                                  "finished_at": "2024-05-01T12:00:01Z", "seconds": 1, "source": "x"}],
                        "missing_shards": []}
    refused(report(write(tmp_path / "m", merged)), "merged.runs[0].exit_code:")


def test_the_exit_code_of_a_valid_document_is_the_tools_own(tmp_path: Path) -> None:
    for code in (0, 1, 3, 5, 130):
        ran = report(write(tmp_path / str(code), document(exit_code=code)))
        assert ran.code == code, ran.text


@pytest.mark.parametrize(("name", "text", "says"), [
    ("200,000 nested brackets", "[" * 200_000 + "]" * 200_000, "nested deeper than 32 levels"),
    ("nesting inside a document", None, "nested deeper than 32 levels"),
    ("2 MiB of empty arrays", '{"format": "dbupdater-run", "version": 1, "x": [' + "[]," * 700_000 + "[]]}",
     "more than one [ or { per 16 bytes"),
    ("NaN", '{"format": "dbupdater-run", "version": 1, "x": NaN}', "NaN is not a JSON number"),
    ("Infinity", '{"format": "dbupdater-run", "version": 1, "x": -Infinity}', "-Infinity is not a JSON number"),
    ("a float beyond a double", '{"format": "dbupdater-run", "version": 1, "x": 1e400}', "1e400 is too large"),
    ("an integer of 5000 digits", '{"format": "dbupdater-run", "version": 1, "x": ' + "9" * 5000 + "}",
     "not a readable run.json"),
    ("not JSON", "{not json", "not a readable run.json"),
    ("empty", "", "not a readable run.json"),
    ("a list", "[]", "not a dbupdater run document"),
    ("another version", '{"format": "dbupdater-run", "version": 99}', "run document version 99"),
])
def test_malformed_json_is_refused(tmp_path: Path, name: str, text: str | None, says: str) -> None:
    if text is None:  # a valid document whose one string field holds a deep structure instead
        text = json.dumps(document()).replace('"environment": "qa"', '"environment": ' + "[" * 40 + "]" * 40)
    path = tmp_path / "run.json"
    path.write_text(text, encoding="utf-8")
    refused(report(path), f"{path}: ", says)


def test_a_document_of_empty_containers_is_refused_before_it_is_parsed(tmp_path: Path) -> None:
    """60 MiB of `[],` took 1.6 GB and 22 s to parse and refuse: the parser's objects are 20 times the text.
    Counting containers for the size stops it early."""
    path = tmp_path / "run.json"
    path.write_text('{"format": "dbupdater-run", "version": 1, "x": [' + "[]," * (20 * MIB) + "[]]}")
    ran = report(path, timeout=120)
    refused(ran, "more than one [ or { per 16 bytes")
    assert ran.peak_mib < 250, f"{ran.peak_mib:.0f} MiB"
    print(f"60 MiB of empty arrays refused in {ran.seconds:.1f}s, peak RSS {ran.peak_mib:.0f} MiB")


def test_bytes_that_are_not_utf8_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    path.write_bytes(json.dumps(document()).encode().replace(b'"qa"', b'"q\xff"'))
    refused(report(path), f"{path}: not UTF-8 text")


def test_a_lone_surrogate_and_xml_forbidden_characters_are_written_as_escapes(tmp_path: Path) -> None:
    import xml.etree.ElementTree as ET

    hostile = document(results=[result(1, "failed", errors=["bad \uffff \ufffe \x01"], script="s\ud800.sql",
                                       target="__proto__")])
    path = write(tmp_path, hostile)
    assert "\\ud800" in path.read_text()
    ran = report(path)
    assert ran.code == 1, ran.text
    assert "s\\ud800.sql on __proto__" in ran.out  # the summary shows escapes, not raw surrogates
    root = ET.parse(tmp_path / "junit.xml").getroot()
    failure = root.find(".//failure")
    assert failure is not None and "bad \\uffff \\ufffe \\x01" in (failure.text or "")
    page = (tmp_path / "report.html").read_text(encoding="utf-8")  # strict UTF-8
    assert "\\ud800" in page and "\ufffe" not in page and "\uffff" not in page


def test_markup_and_escape_sequences_in_a_document_are_text_on_the_terminal(tmp_path: Path) -> None:
    hostile = document(results=[result(1, "failed", target="[/red][bold]x", reason="\x1b[2J\x1b]0;owned\x07")])
    ran = report(write(tmp_path, hostile))
    assert ran.code == 1, ran.text
    assert "[/red][bold]x" in ran.out and "\x1b" not in ran.out and "\\x1b[2J" in ran.out


def test_a_billion_missing_shards_are_counted_not_listed(tmp_path: Path) -> None:
    paths = [write(tmp_path / str(n), document(shard=f"{n}/999999999", run_id=f"{n:032d}")) for n in (1, 2)]
    ran = report(*paths, "-o", tmp_path / "merged", "--exit-zero", timeout=60)
    assert ran.code == 0, ran.text
    assert ran.seconds < 30
    assert "shards missing from this report: 3/999999999, 4/999999999" in ran.out
    assert "and 999999897 more" in ran.out


def test_a_200_mib_document_is_refused_before_it_is_read(tmp_path: Path) -> None:
    path = tmp_path / "run.json"
    with path.open("wb") as handle:
        handle.truncate(200 * MIB)  # sparse: 200 MiB to the file system, no disk
    ran = report(path)
    refused(ran, f"{path}: 200.0 MiB, more than the 64 MiB a run document may have here",
            "raise the limit with --max-size MIB")
    assert ran.peak_mib < 120, f"{ran.peak_mib:.0f} MiB"
    print(f"200 MiB run.json refused in {ran.seconds:.2f}s, peak RSS {ran.peak_mib:.0f} MiB")


def test_the_documents_of_one_report_together_are_bounded_too(tmp_path: Path) -> None:
    def sized(count: int, n: int = 0) -> dict[str, Any]:
        return document(run_id=f"{n:032d}", shard=f"{n + 1}/3",
                        results=[result(i, "applied", reason="x" * 1000) for i in range(1, count + 1)])

    rows = int(100 * 0.6 * MIB / len(json.dumps(sized(100))))
    paths = [write(tmp_path / str(n), sized(rows, n)) for n in range(3)]
    size = paths[0].stat().st_size
    assert 0.55 * MIB < size < 0.65 * MIB, size
    refused(report(*paths, "-o", tmp_path / "m", "--max-size", "1"), f"{paths[1]}: with it the run documents of this "
            "report hold", "more than 1 MiB")
    assert report(*paths, "-o", tmp_path / "m", "--max-size", "2", "--exit-zero").code == 0


def test_memory_stays_bounded_by_the_limit_for_a_document_near_it(tmp_path: Path) -> None:
    """A real-shaped document (many short output lines: the most objects per byte a run writes) just under a
    16 MiB limit: the peak RSS of `report` stays under 12 times the limit (parsed JSON is larger than its text;
    measured 126 MiB), where a 200 MB file took 1.6 to 2.1 GB before the limit."""
    lines = [{"stream": "stdout", "text": f"client output line {n} of a script that printed a lot"}
             for n in range(20)]
    one = result(1, "failed", output={"lines": lines, "omitted_lines": 0, "omitted_bytes": 0})

    def sized(count: int) -> str:
        results = [{**one, "index": n, "script": f"{n:06d}.sql", "target": f"mysql://h:3306/db{n % 50}"}
                   for n in range(1, count + 1)]
        return json.dumps(document(results=results), indent=2)

    path = tmp_path / "run.json"
    path.write_text(sized(int(100 * 15.5 * MIB / len(sized(100)))), encoding="utf-8")
    size = path.stat().st_size / MIB
    assert 14 < size < 16, size
    ran = report(path, "--max-size", "16", timeout=120)
    assert ran.code == 1, ran.text[-2000:]
    assert ran.peak_mib < 12 * 16, f"{ran.peak_mib:.0f} MiB for {size:.1f} MiB"
    refused(report(path, "--max-size", "14"), "more than the 14 MiB")
    print(f"{size:.1f} MiB run.json: report in {ran.seconds:.1f}s, peak RSS {ran.peak_mib:.0f} MiB")


@pytest.mark.parametrize("value", ["0", "-1", "1.5", "64M", "\u0661", "99999999"])
def test_max_size_takes_whole_mebibytes(tmp_path: Path, value: str) -> None:
    refused(report(write(tmp_path, document()), "--max-size", value), "--max-size")

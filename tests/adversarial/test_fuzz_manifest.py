"""Property-based fuzzing of the manifest reader and of `validate`, in-process (no subprocess per case).

Manifests are generated around a valid row (so valid ones occur too) with cells mutated into hostile text,
hostile headers, and raw bytes. The properties: the reader either returns a manifest or raises ManifestError
whose problems name a line (and a column where one cell is at fault); `validate` exits 0 exactly when the
reader accepts, otherwise 2, never 4 (a crash), never prints a control character raw, and never opens a
socket or starts a process (an audit hook watches). `DBU_FUZZ_EXAMPLES` raises the number of cases.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dbupdater import manifest
from dbupdater.cli import main
from dbupdater.manifest import References
from dbupdater.model.errors import ManifestError

from . import tally

EXAMPLES = int(os.environ.get("DBU_FUZZ_EXAMPLES", "0") or 0)
FUZZ = settings(max_examples=EXAMPLES or 1500, deadline=None, database=None, derandomize=not EXAMPLES,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.function_scoped_fixture])
CLI_FUZZ = settings(FUZZ, max_examples=EXAMPLES or 600)

REQUIRED = ["sql_runner_host", "sql_runner_userid", "sql_runner_password", "database_type", "database_host",
            "database_userid", "database_password", "port", "database", "sql_script_to_run"]
OPTIONAL = ["sql_runner_port", "sql_runner_key_file", "transport", "repeatable", "single_transaction", "encoding"]
VALID = {"sql_runner_host": "runner1.example.com", "sql_runner_userid": "deploy", "sql_runner_password": "",
         "database_type": "MySQL", "database_host": "db1", "database_userid": "app",
         "database_password": "env:DBU_FUZZ_SET", "port": "3306", "database": "shop",
         "sql_script_to_run": "ok.sql", "sql_runner_port": "22",
         "sql_runner_key_file": "", "transport": "ssh", "repeatable": "no", "single_transaction": "",
         "encoding": ""}

# Values that mean something to some layer: shells, CSV, the clients, references, numbers, encodings.
HOSTILE = [
    "", " ", "\t", "'", '"', "\\", ",", ";", "\n", "\r\n", "\x00", "\x1b[2J", "\u202e", "\ufeff", "$(id)", "`id`",
    "|id", "&& id", "-h", "--help", "--init-command=x", "\\! touch /tmp/x", "system touch /tmp/x", "%s%n",
    "../../etc/passwd", "/dev/zero", "/dev/stdin", "/proc/self/mem", "~root/x", "~", ".", "..", "*", "ok.sql/",
    "env:", "env:DBU_FUZZ_UNSET", "env:DBU_FUZZ_SET", "env:1bad", "file:", "file:/dev/zero", "file:missing",
    "file:secret.txt", "file:dir", "vault:", "vault:secret/x#", "vault:#k", "vault:a/b#c", "yes", "No", "TRUE",
    "0", "-1", "65536", "99999999999999999999", "\uff13\uff13\uff10\uff16", "²", "0x50", "1e3", "3306 ",
    " 3306", "+22", "22.0",
    "MySQL", "mariadb", "POSTGRES", "PostgreSQL", "Oracle", "SQLServer", "mongodb", "ssh", "local", "winrm",
    "utf-16", "cp1252", "latin1", "rot13", "base64", "utf-7", "bogus-enc", "dir", "empty.sql", "nul.sql",
    "latin1.sql", "link.sql", "missing.sql", "a" * 300, "é" * 70, "x" * 5000, "db_1", "host-name.local",
    "[::1]", "10.0.0.1", "-leading", "under_score", "trailing.", "ab..cd", "xn--bcher-kva", "ünïcode",
]

cells = st.one_of(st.sampled_from(HOSTILE), st.text(max_size=40),
                  st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7f), max_size=20))


@st.composite
def manifests(draw: Any, vault: bool = True) -> bytes:
    """A manifest file's bytes: usually a CSV around valid rows with a few cells mutated, sometimes raw bytes."""
    if draw(st.integers(0, 19)) == 0:
        return draw(st.binary(max_size=400))
    columns = REQUIRED + draw(st.lists(st.sampled_from(OPTIONAL), unique=True, max_size=len(OPTIONAL)))
    columns = draw(st.permutations(columns))
    header_change = draw(st.integers(0, 9))
    if header_change == 0:
        columns = [*columns, draw(st.sampled_from([*columns, "bogus", "", "Port", "database "]))]
    elif header_change == 1:
        columns = [column for column in columns if column != draw(st.sampled_from(REQUIRED))]
    rows = []
    for _ in range(draw(st.integers(0, 4))):
        row = [VALID.get(column, "") for column in columns]
        for _ in range(draw(st.integers(0, 3))):
            index = draw(st.integers(0, len(columns) - 1))
            row[index] = draw(cells)
        if draw(st.integers(0, 9)) == 0:
            row = row + draw(st.lists(cells, min_size=1, max_size=2))  # more fields than the header
        rows.append(row)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator=draw(st.sampled_from(["\n", "\r\n"])))
    writer.writerow(columns)
    writer.writerows(rows)
    text = out.getvalue()
    if not vault:
        text = text.replace("vault:", "vaul:")  # validate would (rightly) ask Vault: no network in this test
    prefix = draw(st.sampled_from([b"", b"", b"\xef\xbb\xbf"]))
    return prefix + text.encode("utf-8", "surrogatepass")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The scripts and secret files the generated rows name, good and bad."""
    base = tmp_path_factory.mktemp("fuzz")
    (base / "ok.sql").write_text("SELECT 1;\n")
    (base / "empty.sql").write_text("")
    (base / "nul.sql").write_bytes(b"SELECT 1;\x00\n")
    (base / "latin1.sql").write_bytes(b"SELECT '\xe9';\n")
    (base / "dir").mkdir()
    (base / "secret.txt").write_text("s3cret\n")
    outside = base.parent / "fuzz-outside.sql"
    outside.write_text("SELECT 2;\n")
    (base / "link.sql").symlink_to(outside)
    os.environ["DBU_FUZZ_SET"] = "a-set-value"
    os.environ.pop("DBU_FUZZ_UNSET", None)
    yield base
    os.environ.pop("DBU_FUZZ_SET", None)


class _NoNetwork:
    """An audit hook (they cannot be removed, so it is installed once and armed while a case runs)."""

    def __init__(self) -> None:
        self.armed = False
        self.seen: list[str] = []
        sys.addaudithook(self)

    def __call__(self, event: str, args: tuple[Any, ...]) -> None:
        if self.armed and event in ("socket.connect", "socket.getaddrinfo", "subprocess.Popen", "os.exec",
                                    "os.posix_spawn", "os.system"):
            self.seen.append(f"{event} {args[1] if event == 'socket.connect' else args[:1]!r}")


_guard: _NoNetwork | None = None


@pytest.fixture(scope="module")
def no_network() -> _NoNetwork:
    global _guard
    if _guard is None:
        _guard = _NoNetwork()
    return _guard


def _load(path: Path) -> ManifestError | None:
    try:
        manifest.load(path, references=References())
    except ManifestError as exc:
        return exc
    return None


def _check_problems(error: ManifestError) -> None:
    assert error.problems, "a ManifestError without any problem"
    for problem in error.problems:
        assert problem.message.strip(), problem
        if problem.column is not None:
            assert problem.line is not None, f"a column without a line: {problem}"


@given(data=manifests())
@FUZZ
def test_the_reader_accepts_or_names_each_problem(folder: Path, no_network: _NoNetwork, data: bytes) -> None:
    path = folder / "m.csv"
    path.write_bytes(data)
    tally.add("manifests generated")
    no_network.armed, no_network.seen[:] = True, []
    try:
        error = _load(path)  # anything but a ManifestError propagates: a crash fails the case
    finally:
        no_network.armed = False
    assert no_network.seen == [], no_network.seen
    if error is not None:
        _check_problems(error)


RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\u202a-\u202e\u2066-\u2069]")


@given(data=manifests(vault=False))
@CLI_FUZZ
def test_validate_exits_0_or_2_never_crashes_never_connects(folder: Path, no_network: _NoNetwork,
                                                           data: bytes) -> None:
    path = folder / "v.csv"
    path.write_bytes(data)
    tally.add("manifests generated")
    out, err = io.StringIO(), io.StringIO()
    no_network.armed, no_network.seen[:] = True, []
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["validate", "-f", str(path), "--color", "never"])
    finally:
        no_network.armed = False
    text = out.getvalue() + err.getvalue()
    assert no_network.seen == [], no_network.seen
    assert code != 4 and "Traceback" not in text, text
    expected = 2 if _load(path) is not None else 0
    assert code == expected, text
    assert not RAW_CONTROL.search(text), f"a raw control character reached the terminal: {text!r}"
    if code == 2:
        assert "nothing was run" in text or "error:" in text, text


def test_an_encoding_name_with_a_nul_is_a_problem_not_a_crash(folder: Path) -> None:
    """Found by the fuzzer: codecs.lookup raises ValueError (not LookupError) for a NUL; it was exit 4."""
    path = folder / "nul-encoding.csv"
    path.write_text(",".join([*REQUIRED, "encoding"]) + "\n" + ",".join(
        [*(VALID[c] for c in REQUIRED), "utf\x008"]) + "\n", encoding="utf-8")
    error = _load(path)
    assert error is not None and (2, "encoding") in [(p.line, p.column) for p in error.problems], error

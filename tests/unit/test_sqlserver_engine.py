"""The SQL Server engine offline: the exact invocations (golden), the judging rules fed with every recorded
real sqlcmd output of ../shared/clients/samples/, and the ledger's T-SQL as the ledger builds it.

What a real server would say to that SQL is the live suite's (tests/live/test_live_sqlserver.py); what the
real path over SSH does with the invocation is the replay suite's (tests/test_sqlserver_replay.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dbupdater.engines import OutputLog, registry
from dbupdater.engines.base import Delivery
from dbupdater.ledger.book import Ledger
from dbupdater.model.command import STDIN_PATH, Ending, Result
from dbupdater.model.identity import RunIdentity
from dbupdater.model.outcome import Status
from dbupdater.model.secret import Secret
from dbupdater.model.specs import DatabaseSpec
from dbupdater.transports.shells import PosixShell

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "clients" / "samples"
PASSWORD = "p@ss\"w'o#r\\d;$(id)"
needs_samples = pytest.mark.skipif(not SAMPLES.is_dir(), reason=f"{SAMPLES} is absent: the recorded real "
                                   "sqlcmd outputs live outside the project")


@pytest.fixture
def engine():  # type: ignore[no-untyped-def]
    return registry.get("sqlserver")


def spec(host: str = "db1", **options: str) -> DatabaseSpec:
    return DatabaseSpec("sqlserver", host, 1433, "app", "shop", Secret(PASSWORD), tuple(options.items()))


CONNECTION = ("sqlcmd", "-S", "db1,1433", "-d", "shop", "-U", "app", "-l", "15", "-N", "-b", "-V", "11", "-I", "-r0")


def test_the_script_invocation_exactly(engine) -> None:  # type: ignore[no-untyped-def]
    command = engine.command(spec(), "/tmp/d/00001-a.sql", "/tmp/d/login1.cred")
    assert command.argv == (*CONNECTION, "-x", "-i", "/tmp/d/00001-a.sql")
    assert command.env == (("LC_ALL", "C.UTF-8"),)
    assert command.env_files == (("SQLCMDPASSWORD", "/tmp/d/login1.cred"),)
    assert command.stdin == () and command.started_marker is None
    assert engine.credentials_via is Delivery.ENV_FROM_FILE
    assert not engine.shares_session(False) and not engine.transactional_ddl


def test_the_ledger_invocation_exactly(engine) -> None:  # type: ignore[no-untyped-def]
    command = engine.ledger_command(spec(), "/tmp/d/login1.cred")
    assert command.argv == (*CONNECTION, "-h", "-1", "-W", "-w", "65535", "-x", "-i", STDIN_PATH)
    assert command.env_files == (("SQLCMDPASSWORD", "/tmp/d/login1.cred"),)


def test_options_certificate_variables_and_instances(engine) -> None:  # type: ignore[no-untyped-def]
    argv = engine.command(spec(trust_server_certificate="Yes", sqlcmd_variables="yes"), "/s.sql", "/c").argv
    assert "-C" in argv and "-x" not in argv and argv[-2:] == ("-i", "/s.sql")
    argv = engine.command(spec("db1\\SQLEXPRESS"), "/s.sql", "/c").argv
    assert argv[argv.index("-S") + 1] == "db1\\SQLEXPRESS"  # the Browser finds the port; none is sent
    assert [column for column, _ in ((o.column, o) for o in engine.options)] == ["trust_server_certificate",
                                                                                  "sqlcmd_variables"]


def test_the_password_is_the_file_and_never_on_a_line(engine) -> None:  # type: ignore[no-untyped-def]
    assert engine.credentials(spec()) == PASSWORD.encode()
    line, data = PosixShell().render(engine.command(spec(), "/tmp/d/s.sql", "/tmp/d/login1.cred"))
    assert PASSWORD not in line and data is None
    assert line.startswith('SQLCMDPASSWORD="$(cat -- /tmp/d/login1.cred)" && export SQLCMDPASSWORD && ')
    assert line.endswith("sqlcmd -S db1,1433 -d shop -U app -l 15 -N -b -V 11 -I -r0 -x -i /tmp/d/s.sql")


@pytest.mark.parametrize(("host", "problem"), [
    ("db1", None), ("db1.example.com", None), ("10.0.0.5", None), ("db1\\SQLEXPRESS", None), ("db1\\_a$#1", None),
    ("db1,1433", "port column"), ("db1\\", "not a SQL Server instance name"),
    ("db1\\1abc", "not a SQL Server instance name"), ("db1\\ABCDEFGHIJKLMNOPQ", "not a SQL Server instance name"),
    ("-db1", "not a host name"), ("db 1", "not a host name"), ("\\INST", "not a host name"),
])
def test_check_host(engine, host: str, problem: str | None) -> None:  # type: ignore[no-untyped-def]
    found = engine.check_host(host)
    assert (found is None) if problem is None else (found is not None and problem in found), found


# --- judging: every recorded output --------------------------------------------------------------------------

def judge(engine, stdout: list[str], stderr: list[str], code: int) -> tuple[Status, str, OutputLog]:  # type: ignore[no-untyped-def]
    log = OutputLog(engine)
    for line in stdout:
        log.feed("stdout", line)
    for line in stderr:
        log.feed("stderr", line)
    verdict, reason = engine.verdict(Result(Ending.EXITED, code, code), log)
    return verdict, reason, log


def body(name: str) -> list[str]:
    return [line for line in (SAMPLES / name).read_text(encoding="utf-8").splitlines()[1:]
            if line.strip() and not line.startswith(("#", "$ ", "C:\\", "stdout:", "stderr:"))]


@needs_samples
@pytest.mark.parametrize("name", ["sqlcmd-odbc-msg208-stdin-prompts.txt", "ssms-msg208-no-server-field-contrast.txt"])
@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_server_errors_fail_on_either_stream_and_with_exit_0(engine, name: str, stream: str) -> None:  # type: ignore[no-untyped-def]
    lines = body(name)
    out, err = (lines, []) if stream == "stdout" else ([], lines)
    for code in (1, 16, 0):  # ODBC -b, go -V (the severity), no -b at all: an error fails whatever the code
        verdict, reason, log = judge(engine, out, err, code)
        assert verdict is Status.FAILED, (code, reason)
        assert "Invalid object name" in reason or "Msg 208" in reason
    if stream == "stdout":
        assert any(line.startswith("Msg 208") or "> Msg 208" in line for line in log.errors)


@needs_samples
def test_informational_output_succeeds(engine) -> None:  # type: ignore[no-untyped-def]
    lines = [line for line in (SAMPLES / "go-sqlcmd-rows-affected-singular.txt").read_text().splitlines()[1:]]
    verdict, reason, log = judge(engine, [*lines, "Changed database context to 'shop'.", "Größe"], [], 0)
    assert verdict is Status.APPLIED and not log.errors and not log.warnings, reason


@needs_samples
@pytest.mark.parametrize(("name", "why"), [
    ("sqlcmd-odbc11-login-failed-server-log.txt", "log in"),
    ("sqlcmd-odbc13-login-timeout-network.txt", "log in"),
    ("sqlcmd-odbc17-login-timeout-delay.txt", "log in"),
    ("sqlcmd-odbc18-self-signed-cert-no-C.txt", "trust_server_certificate"),
    ("sqlcmd-odbc18-self-signed-cert-openssl3.txt", "trust_server_certificate"),
])
@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_login_failures_and_timeouts_are_unreachable(engine, name: str, why: str, stream: str) -> None:  # type: ignore[no-untyped-def]
    client = [line for line in (SAMPLES / name).read_text().splitlines()[1:] if "Sqlcmd: Error:" in line]
    assert client
    out, err = (client, []) if stream == "stdout" else ([], client)
    verdict, reason, _ = judge(engine, out, err, 1)
    assert verdict is Status.UNREACHABLE and why in reason, reason


@needs_samples
@pytest.mark.parametrize(("name", "stream", "code"), [
    ("go-sqlcmd-scripting-variable-not-defined.txt", "stdout", 1),
    ("go-sqlcmd-scripting-variable-not-defined.txt", "stdout", 0),
    ("go-sqlcmd-syntax-error-setvar-comment.txt", "stderr", 1),
    ("go-sqlcmd-r0-b-stderr-message-only.txt", "stderr", 1),
    ("go-sqlcmd-i-swallows-following-args.txt", "stderr", 1),
])
def test_the_clients_own_errors_fail_the_script_not_the_login(engine, name: str, stream: str, code: int) -> None:  # type: ignore[no-untyped-def]
    lines = [line for line in body(name) if line != "1" and not line.startswith("sqlcmd ")]
    out, err = (lines, []) if stream == "stdout" else ([], lines)
    verdict, reason, _ = judge(engine, out, err, code)
    assert verdict is Status.FAILED, reason


@needs_samples
def test_a_missing_r_file_fails_on_both_clients(engine) -> None:  # type: ignore[no-untyped-def]
    text = (SAMPLES / "sqlcmd-odbc-vs-go-missing-r-file.txt").read_text()
    odbc = re.search(r"stderr: (.+)", text).group(1)  # type: ignore[union-attr]
    go = re.search(r"stdout: (open .+)", text).group(1)  # type: ignore[union-attr]
    assert judge(engine, [], [odbc], 0)[0] is Status.FAILED
    assert judge(engine, [go], [], 0)[0] is Status.FAILED


def test_levels_up_to_10_are_information_and_warnings_do_not_fail(engine) -> None:  # type: ignore[no-untyped-def]
    verdict, _, log = judge(engine, ["Msg 50000, Level 10, State 1, Server X, Line 1", "heads up"],
                            ["Sqlcmd: Warning: Last operation was terminated by the user."], 0)
    assert verdict is Status.APPLIED and len(log.warnings) == 2


def test_a_connection_lost_mid_script_may_be_partial(engine) -> None:  # type: ignore[no-untyped-def]
    verdict, reason, _ = judge(engine, [], ["Sqlcmd: Error: Microsoft ODBC Driver 18 for SQL Server : "
                                            "Communication link failure."], 1)
    assert verdict is Status.UNREACHABLE and "partially applied" in reason


def test_a_missing_client_and_a_signal(engine) -> None:  # type: ignore[no-untyped-def]
    log = OutputLog(engine)
    assert engine.verdict(Result(Ending.CLIENT_MISSING, 127, 127), log)[0] is Status.UNREACHABLE
    assert engine.verdict(Result(Ending.SIGNALLED, 2, 130), log)[0] is Status.FAILED


# --- the dialect and the ledger's SQL -------------------------------------------------------------------------

def test_literals_cannot_be_left_and_never_span_a_line(engine) -> None:  # type: ignore[no-untyped-def]
    d = engine.dialect
    assert d.literal("it's") == "N'it''s'"
    assert d.literal("") == "N''"
    assert d.literal(None) == "NULL" and d.literal(7) == "7"
    assert d.literal("a\\\nGO\n:r x") == "(N'a\\' + NCHAR(10) + N'GO' + NCHAR(10) + N':r x')"
    assert d.literal("\r\t\x00") == "(NCHAR(13) + NCHAR(9) + NCHAR(0))"
    assert d.ident("a]b") == "[a]]b]" and d.table("s", "t") == "[s].[t]"


def test_json_rows_are_one_non_max_column(engine) -> None:  # type: ignore[no-untyped-def]
    sql = engine.dialect.json_row({"id": "id", "held": "COUNT(*)"})
    assert sql.startswith("CAST(CONCAT(N'{', N'\"id\":', CASE WHEN CAST(id AS sql_variant) IS NULL THEN N'null'")
    assert sql.endswith("N'}') AS nvarchar(4000))") and "STRING_ESCAPE(" in sql and "'json')" in sql
    assert "nvarchar(max)" not in sql.lower() and "FOR JSON" not in sql


class RecordingChannel:
    """Stands in for the SqlChannel: keeps the SQL the ledger would send and answers nothing."""

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.engine, self.db, self.dialect = engine, spec(), engine.dialect
        self.sent: list[str] = []

    def rows(self, sql: str, *, missing_ok: bool = False) -> list[dict[str, Any]]:
        self.sent.append(sql)
        if "AS [held]" in sql or "\"held\"" in sql:
            return [{"held": 1}]
        return [{"run_id": "r1", "host": "h", "pid": 1, "os_user": "u", "since": "x", "expires": "y"}]


def test_the_ledgers_tsql(engine) -> None:  # type: ignore[no-untyped-def]
    channel = RecordingChannel(engine)
    ledger = Ledger(channel, None, RunIdentity("r1", "h", 1, "u"), "deploy@runner1")  # type: ignore[arg-type]
    ledger.open_locked(60, 1.0, wait=False)
    opening = channel.sent[0]
    assert opening.index("sp_getapplock") < opening.index("CREATE TABLE [dbupdater_schema]")
    assert "IF OBJECT_ID(N'[dbupdater_history]', N'U') IS NULL CREATE TABLE [dbupdater_history]" in opening
    # The first attempt never clears an expired lease (`acquire` does, once the ledger's version is known).
    assert "DELETE FROM [dbupdater_lock] WHERE name = N'deploy'" not in opening
    assert "DELETE FROM [dbupdater_lock] WHERE name <> N'deploy' AND expires_at < SYSUTCDATETIME();" in opening
    assert "BEGIN TRY INSERT INTO [dbupdater_lock]" in opening and "NOT IN (2627, 2601) THROW" in opening
    assert "DATEADD(second, 60, SYSUTCDATETIME())" in opening
    ledger.mark_running("dir/it's\n001.sql", "ab" * 32, 1, None)
    ledger.finish_later("dir/it's\n001.sql", "success")
    ledger.release()
    running, release = channel.sent[-2:]
    assert "INSERT INTO [dbupdater_history]" in running and "N'dir/it''s' + NCHAR(10) + N'001.sql'" in running
    # Refused by the server unless the lock is still ours and nothing changed since the plan (a NULL for a NOT
    # NULL column), checked in the statement that inserts.
    assert "CASE WHEN EXISTS (SELECT 1 FROM [dbupdater_lock] WHERE name = N'deploy' AND run_id = N'r1' AND " \
           "expires_at > SYSUTCDATETIME()) THEN N'r1' END" in running
    assert "DATEDIFF_BIG(millisecond, started_at, SYSUTCDATETIME())" in release
    assert "DELETE FROM [dbupdater_lock] WHERE run_id = N'r1';" in release
    assert ledger.heartbeat(60) is True  # the recording channel answers with a row
    for sql in channel.sent:
        full = engine.dialect.preamble + sql
        # sqlcmd acts on GO and :commands at the start of a line (sqlcmd.md s. 2): the tool's SQL has none,
        # so the whole call is one batch; and with -x no $( is ever substituted.
        assert not any(re.match(r"^\s*(GO\b|:)", line, re.IGNORECASE) for line in full.splitlines()), sql
    assert engine.dialect.preamble.startswith("SET NOCOUNT ON;")


def test_missing_tables_read_as_no_history_on_both_clients(engine) -> None:  # type: ignore[no-untyped-def]
    missing = engine.dialect.missing_table
    assert missing.search("Msg 208, Level 16, State 1, Server db1, Line 3")
    assert missing.search("1> 2> Msg 208, Level 16, State 1, Server db1, Line 3")
    assert missing.search("Invalid object name 'dbupdater_history'.")  # go-sqlcmd -r0: the text alone
    assert not missing.search("Msg 207, Level 16, State 1, Server db1, Line 3")


def test_the_session_charset_check_detects_a_legacy_decoding(engine) -> None:  # type: ignore[no-untyped-def]
    d = engine.dialect
    assert d.session_charset == "UTF-8" and "UNICODE(N'\u00e9') = 233" in d.session_charset_sql


# --- which sqlcmd the runner has (sheet s. 0) -----------------------------------------------------------------


def test_the_probe_tells_go_from_odbc_and_says_nothing_when_it_cannot() -> None:
    engine = registry.get("sqlserver")
    probe = engine.client_probe()
    assert probe is not None and probe.argv == ("sqlcmd", "--version") and not probe.env_files
    assert engine.client_build(Result(Ending.EXITED, 0, 0), ["sqlcmd: 1.8.2"]) == "go"
    assert engine.client_build(Result(Ending.EXITED, 1, 1), ["Sqlcmd: Error: Unknown Option '--version'."]) == "odbc"
    assert engine.client_build(Result(Ending.CLIENT_MISSING, 127, 127), ["sh: 1: sqlcmd: not found"]) == ""


def test_only_odbc_sqlcmd_on_windows_gets_the_utf8_code_page() -> None:
    from dbupdater.model.command import Client

    engine = registry.get("sqlserver")
    db = DatabaseSpec("sqlserver", "db", 1433, "app", "shop", Secret("pw"))
    for command in (engine.command(db, "C:\\t\\1.sql", "C:\\t\\c"), engine.ledger_command(db, "C:\\t\\c")):
        windows = engine.adapt(command, Client("odbc", "windows")).argv
        at = windows.index("-i")
        assert windows[at - 2:at] == ("-f", "65001") and windows[at:] == command.argv[command.argv.index("-i"):]
        for client in (Client("go", "windows"), Client("odbc", "posix"), Client("", "windows"), Client()):
            assert engine.adapt(command, client) == command

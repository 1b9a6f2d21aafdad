"""The Oracle engine offline, as Sqitch's t/oracle.t tests its sqlplus driving: the exact argv, environment,
stdin session and credentials file; the verdicts on every recorded real sqlplus output in
../shared/clients/samples; the ledger SQL as SQL*Plus's line reader and the server would read it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from dbupdater.engines import OutputLog, registry
from dbupdater.engines.base import STARTED_MARKER
from dbupdater.engines.oracle import session
from dbupdater.engines.oracle.dialect import OracleDialect
from dbupdater.ledger.book import Ledger
from dbupdater.ledger.channel import SqlChannel
from dbupdater.model.command import Command, Ending, RemoteFile, Result
from dbupdater.model.errors import UnreachableError
from dbupdater.model.identity import RunIdentity
from dbupdater.model.outcome import Status
from dbupdater.model.secret import Secret
from dbupdater.model.specs import DatabaseSpec
from dbupdater.transports.shells import PosixShell

SAMPLES = Path(__file__).resolve().parents[2].parent / "shared" / "clients" / "samples"
DIR = "/tmp/dbupdater.Ab3dE6gH9j"
CRED = f"{DIR}/login1.cred"
SCRIPT = f"{DIR}/00001-init.sql"
PASSWORD = "p@ss\"w'o#r\\d;$(id) &x"
oracle = registry.get("oracle")
dialect = OracleDialect()


def spec(password: str = PASSWORD, **options: str) -> DatabaseSpec:
    return DatabaseSpec("oracle", "db.example", 1521, "app", "ORCLPDB1", Secret(password) if password else None,
                        tuple(sorted(options.items())))


# --- invocation ------------------------------------------------------------------------------------------------


def test_script_invocation() -> None:
    command = oracle.command(spec(), SCRIPT, CRED, before="INSERT INTO h VALUES (1);\nCOMMIT;")
    assert command.argv == ("sqlplus", "-S", "-L", "/nolog")
    assert command.env == (("NLS_LANG", "AMERICAN_AMERICA.AL32UTF8"), ("SQLPATH", DIR), ("ORACLE_PATH", DIR))
    assert command.env_files == () and command.started_marker == STARTED_MARKER
    assert command.stdin[0] == RemoteFile(CRED)
    body = command.stdin[1]
    assert isinstance(body, bytes)
    lines = body.decode().splitlines()
    assert lines[:5] == ["SET FEEDBACK OFF", "VARIABLE dbupdater_since VARCHAR2(14)",
                         "EXECUTE :dbupdater_since := TO_CHAR(SYSDATE - 1 / 86400, 'YYYYMMDDHH24MISS')",
                         "INSERT INTO h VALUES (1);", "COMMIT;"]
    assert lines[5:8] == [f"PROMPT {STARTED_MARKER}", "SET FEEDBACK 6", f"@{SCRIPT}"]
    after = lines[8:]
    assert after[:6] == ["SET TERMOUT ON", "SET ECHO OFF", "SET DEFINE OFF", "SET FEEDBACK OFF",
                         "WHENEVER OSERROR EXIT 9", "WHENEVER SQLERROR EXIT 5 ROLLBACK"]
    assert "user_errors" in body.decode() and "RAISE_APPLICATION_ERROR(-20901" in body.decode()
    assert after[-2:] == ["/", "EXIT"]
    line, data = PosixShell().render(command)
    assert data == body
    assert shlex.split(line) == ["cat", "--", CRED, "-", "|", "NLS_LANG=AMERICAN_AMERICA.AL32UTF8", f"SQLPATH={DIR}",
                                 f"ORACLE_PATH={DIR}", "sqlplus", "-S", "-L", "/nolog"]
    assert PASSWORD not in line


def test_credentials_file_is_the_session_start_up_to_connect() -> None:
    text = oracle.credentials(spec()).decode()
    assert text.splitlines() == [
        "SET ECHO OFF", "SET DEFINE OFF", "WHENEVER OSERROR EXIT 9", "WHENEVER SQLERROR EXIT 3",
        'CONNECT app/"p@ss""w\'o#r\\d;$(id) &x"@//db.example:1521/"ORCLPDB1"', "WHENEVER SQLERROR EXIT 4 ROLLBACK"]
    assert oracle.secret_forms(PASSWORD) == ('p@ss""w\'o#r\\d;$(id) &x',)


@pytest.mark.parametrize(("options", "connect"), [
    ({"oracle_sid": "yes"}, 'CONNECT app/"pw"@(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=db.example)(PORT=1521))'
                            '(CONNECT_DATA=(SID=ORCLPDB1)))'),
    ({"oracle_alias": "PROD_HA"}, 'CONNECT app/"pw"@PROD_HA'),
    ({"oracle_alias": "db2:1522/sales.example"}, 'CONNECT app/"pw"@db2:1522/sales.example'),
    ({"oracle_wallet": "yes", "oracle_alias": "prod"}, "CONNECT /@prod"),
])
def test_connect_identifiers(options: dict[str, str], connect: str) -> None:
    assert session.connect_line(spec("pw", **options)) == connect


def test_a_wallet_login_writes_no_password_at_all() -> None:
    assert "secret" not in oracle.credentials(spec("secret", oracle_wallet="yes")).decode()


def test_declared_substitution_variables_keep_define_on() -> None:
    text = oracle.credentials(spec(oracle_define='owner=APP;note=say "hi";')).decode()
    assert text.splitlines()[1:5] == ["SET DEFINE ON", "SET VERIFY OFF", 'DEFINE owner = "APP"',
                                      'DEFINE note = "say ""hi"""']


@pytest.mark.parametrize(("column", "value", "wrong"), [
    ("oracle_alias", "PROD_HA", False), ("oracle_alias", "two words", True), ("oracle_alias", 'a"b', True),
    ("oracle_define", "a=1;b=2", False), ("oracle_define", "a", True), ("oracle_define", "1a=x", True),
    ("oracle_define", "a b=x", True),
])
def test_option_cells_are_checked(column: str, value: str, wrong: bool) -> None:
    assert bool(oracle.check_option(column, value)) is wrong


def test_a_password_with_a_line_break_is_refused_not_split() -> None:
    with pytest.raises(UnreachableError, match="line break"):
        oracle.credentials(spec("a\nWHENEVER SQLERROR CONTINUE"))


@pytest.mark.parametrize("path", [f"{DIR}/00001-v.$install.sql", f"{DIR}/00001-a b.sql", f"{DIR}/00001-a@b.sql",
                                  f"{DIR}/00001-noext", "relative/00001-a.sql", "/tmp/my dir/00001-a.sql"])
def test_a_script_path_sqlplus_would_misread_is_refused(path: str) -> None:
    """sqlplus-sp2-0310-dollar-in-filename-exit0.txt: `@` of such a name is SP2-0310 and exit 0."""
    with pytest.raises(UnreachableError, match="SQL\\*Plus reads"):
        oracle.command(spec(), path, CRED)


def test_ledger_invocation_ends_with_exit() -> None:
    command = oracle.ledger_command(spec(), CRED).with_stdin(b"SELECT 1 FROM DUAL;")
    assert command.argv == ("sqlplus", "-S", "-L", "/nolog")
    assert command.stdin == (RemoteFile(CRED), b"SELECT 1 FROM DUAL;\nEXIT\n")
    assert type(command) is Command


# --- verdicts on recorded real outputs --------------------------------------------------------------------------


def sample(name: str) -> list[str]:
    if not SAMPLES.is_dir():
        pytest.skip(f"the recorded sqlplus outputs are not here ({SAMPLES})")
    # The first line names the source; some were pasted from a CI log that stamps each line with the time.
    lines = (SAMPLES / name).read_text(encoding="utf-8").splitlines()[1:]
    return [re.sub(r"^\d\d:\d\d:\d\d ", "", line) for line in lines]


def judged(lines: list[str], code: int) -> tuple[Status, str, OutputLog]:
    log = OutputLog(oracle)
    for line in lines:
        log.feed("stdout", line)
    verdict, reason = oracle.verdict(Result(Ending.EXITED, code, code), log)
    return verdict, reason, log


# (sample, the exit code sqlplus gives in our session, the verdict)
CASES = [
    ("sqlplus-ora-00942-exit0-no-whenever.txt", 0, Status.FAILED),  # exit 0: the ORA- line fails it
    ("sqlplus-ora-00942-exit0-no-whenever.txt", 4, Status.FAILED),
    ("sqlplus-ora-00942-view-listing-exit0.txt", 0, Status.FAILED),
    ("sqlplus-docs-whenever-sqlerror-ora-00904.txt", 4, Status.FAILED),
    ("sqlplus-interactive-ora-00942-then-whenever-exit-failure.txt", 0, Status.FAILED),
    ("sqlplus-pls-00201-ora-06550-block-exit0.txt", 0, Status.FAILED),
    ("sqlplus-plsql-error-at-line-ora-06502.txt", 4, Status.FAILED),
    ("sqlplus-ora-20000-raise-application-error-with-and-without-whenever.txt", 0, Status.FAILED),
    ("sqlplus-ora-12505-in-plsql-call-stack.txt", 4, Status.FAILED),  # a TNS code from the script, not a login
    ("sqlplus-show-errors-procedure-and-pls-00905.txt", 0, Status.FAILED),
    ("sqlplus-show-errors-package-body-format.txt", 0, Status.FAILED),
    ("sqlplus-sp2-0310-dollar-in-filename-exit0.txt", 0, Status.FAILED),
    ("sqlplus-sp2-0310-sp2-0606-nested-scripts.txt", 0, Status.FAILED),
    ("sqlplus-sp2-0310-unable-to-open-file.txt", 0, Status.FAILED),
    ("sqlplus-sp2-0734-sp2-0042-blank-lines.txt", 0, Status.FAILED),
    ("sqlplus-sp2-0734-then-ora-00904-star-marker.txt", 4, Status.FAILED),
    ("sqlplus-enter-value-for-ampersand.txt", 0, Status.FAILED),
    ("sqlplus-usage-12.2-help.txt", 1, Status.FAILED),
    ("sqlplus-ora-12541-sp2-0751-L-exit1.txt", 1, Status.UNREACHABLE),
    ("sqlplus-ora-12514-wrapped-line.txt", 3, Status.UNREACHABLE),
    ("sqlplus-ora-12514-wrapped-line.txt", 0, Status.UNREACHABLE),
    ("sqlplus-ora-12541-no-L-reprompts.txt", 0, Status.UNREACHABLE),
    ("sqlplus-connect-ora-01017-no-longer-connected.txt", 0, Status.UNREACHABLE),
]


@pytest.mark.parametrize(("name", "code", "verdict"), CASES, ids=[f"{c[0]}-exit{c[1]}" for c in CASES])
def test_recorded_output_verdicts(name: str, code: int, verdict: Status) -> None:
    got, reason, log = judged(sample(name), code)
    assert got is verdict, (reason, log.errors)


def test_every_sqlplus_sample_is_judged_here() -> None:
    if not SAMPLES.is_dir():
        pytest.skip(f"the recorded sqlplus outputs are not here ({SAMPLES})")
    assert {p.name for p in SAMPLES.glob("sqlplus-*.txt")} == {case[0] for case in CASES}


@pytest.mark.parametrize(("lines", "code", "verdict", "reason"), [
    (["Table created."], 0, Status.APPLIED, "applied"),
    (["Warning: Package Body created with compilation errors."], 0, Status.FAILED, "reported an error"),
    (["Warning: Package Body created with compilation errors.", "ORA-20901: dbupdater: ..."], 5, Status.FAILED,
     "compilation errors"),
    (["SP2-0804: Procedure created with compilation warnings"], 0, Status.APPLIED, "applied"),
    (["ORA-03113: end-of-file on communication channel"], 4, Status.UNREACHABLE, "lost"),
    (["ERROR:", "ORA-01722: invalid number"], 4, Status.FAILED, "WHENEVER SQLERROR EXIT 4"),  # a fetch error
    (["ERROR:", "ORA-28000: the account is locked"], 3, Status.UNREACHABLE, "log in"),
    ([], 3, Status.UNREACHABLE, "log in"),
    ([], 9, Status.FAILED, "operating-system"),
    ([], 7, Status.FAILED, "exited with 7"),  # the script's own EXIT 7
])
def test_rules(lines: list[str], code: int, verdict: Status, reason: str) -> None:
    got, why, _ = judged(lines, code)
    assert got is verdict and reason in why, why


def test_stderr_lines_are_unexpected_and_a_missing_client_is_unreachable() -> None:
    log = OutputLog(oracle)
    log.feed("stderr", "sqlplus: error while loading shared libraries: libclntsh.so.19.1")
    assert oracle.verdict(Result(Ending.EXITED, 127 - 100, 27), log)[0] is Status.FAILED
    assert oracle.verdict(Result(Ending.CLIENT_MISSING, 127, 127), OutputLog(oracle))[0] is Status.UNREACHABLE


def test_started_only_after_the_marker() -> None:
    result = Result(Ending.EXITED, 4, 4)
    assert oracle.started(result, OutputLog(oracle), True) is True
    assert oracle.started(result, OutputLog(oracle), False) is False
    assert oracle.started(Result(Ending.LOST), OutputLog(oracle), False) is None


# --- the ledger's SQL, as SQL*Plus's line reader and the server read it -----------------------------------------

INJECTION = ["'; DROP TABLE x; --", "O'Brien", "a;", "a;\nb", "&x", "&&x", "\\", "\\0041", "/", "\n/\n", "\n.\n",
             "\n\n", "caf\u00e9 \U0001f4e6 \u4e2d", "tab\t", "\x7f\x01", "x" * 300, "@x", "-- c", "q'[x]'", "\"q\""]


def decode(sql: str) -> str:
    """What the server makes of literal_text: TO_CHAR(UNISTR('...')) chunks joined by ||."""
    parts = re.findall(r"TO_CHAR\(UNISTR\('([^']*)'\)\)", sql)
    assert sql.replace("\n", "").replace("(", "").replace(")", "").replace("|| ", "").replace(
        "TO_CHARUNISTR'", "").replace("'", "") == "".join(parts).replace("(", "").replace(")", "")
    data = bytearray()
    for body in parts:
        index = 0
        while index < len(body):
            if body[index] == "\\":
                data += bytes.fromhex(body[index + 1:index + 5])
                index += 5
            else:
                data += body[index].encode("utf-16-be")
                index += 1
    return data.decode("utf-16-be")


@pytest.mark.parametrize("value", INJECTION)
def test_literals_survive_both_parsers(value: str) -> None:
    sql = dialect.literal(value)
    assert decode(sql) == value
    for line in sql.splitlines():
        assert line.strip() and not line.rstrip().endswith(";") and line.strip() not in ("/", ".")
        assert "&" not in line and "'" not in re.sub(r"UNISTR\('[^']*'\)", "", line) and len(line) < 1000


def lines_of(sql: str) -> list[str]:
    return sql.splitlines()


class _Recording:
    """A channel that records the SQL the ledger sends and answers with no rows."""

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.db = spec()
        self.dialect = dialect

    def rows(self, sql: str, *, missing_ok: bool = False) -> list[dict[str, object]]:
        self.sent.append(sql)
        return []


def test_every_ledger_statement_reads_as_one_sqlplus_statement() -> None:
    """No line of the ledger's SQL holds two statements (`a; b;`), no statement lacks its end, no blank line
    sits inside one, and every PL/SQL block ends with `/` on its own line."""
    channel = _Recording()
    ledger = Ledger(channel, None, RunIdentity(), "runner1")  # type: ignore[arg-type]
    ledger.finish_later("001.sql", "success")
    before = ledger.running_before_script("002 it's; &x.sql", "ab" * 32, 1, None)
    ledger.mark_finished("002 it's; &x.sql", "failed", "ORA-00942: table or view does not exist;\n/\n")
    ledger.release()
    ledger.read()
    from dbupdater.ledger import schema
    texts = [*channel.sent, before, dialect.create_tables(None, ledger.history, ledger.lock, ledger.tables.versions,
                                                          schema.created_sql(dialect, ledger.tables, None,
                                                                             "dbupdater_history")),
             ledger._lock_sql(60), schema.upgrade_sql(dialect, ledger.tables, 1)]
    for text in texts:
        in_block = False
        for line in text.splitlines():
            stripped = line.strip()
            if re.match(r"^(BEGIN|DECLARE)\b", stripped):
                in_block = True
            if in_block:
                in_block = stripped != "/"
                continue
            assert stripped.count(";") <= 1 and (";" not in stripped or stripped.endswith(";")), line
        assert not in_block, text
        assert text.rstrip().endswith((";", "/")), text


def test_dialect_pieces() -> None:
    assert dialect.ident("dbupdater_history") == '"DBUPDATER_HISTORY"'
    assert dialect.table("app", "dbupdater_lock") == '"APP"."DBUPDATER_LOCK"'
    assert dialect.literal("") == "NULL" and dialect.literal(None) == "NULL" and dialect.literal(5) == "5"
    assert dialect.text_time("x") == "TO_CHAR(SYS_EXTRACT_UTC(x), 'YYYY-MM-DD HH24:MI:SS')"
    assert dialect.plus_seconds("SYSTIMESTAMP", 60) == "SYSTIMESTAMP + NUMTODSINTERVAL(60, 'SECOND')"
    assert dialect.json_row({"a": "1"}) == "JSON_OBJECT('a' VALUE 1 NULL ON NULL RETURNING CLOB)"
    assert "EXCEPTION WHEN DUP_VAL_ON_INDEX THEN NULL;" in dialect.insert_ignore("t", {"a": "1"})
    assert dialect.missing_table.search("ORA-00942: table or view does not exist")
    assert dialect.missing_table.search('ORA-00942: table or view "APP"."DBUPDATER_HISTORY" does not exist')
    created = dialect.create_tables("app", '"APP"."H"', '"APP"."L"', '"APP"."V"')
    assert created.count("EXECUTE IMMEDIATE") == 4 and "SQLCODE != -955" in created and "-1408" in created
    assert "GENERATED BY DEFAULT AS IDENTITY" in created


def test_channel_reads_rows_and_errors_from_stdout() -> None:
    """sqlplus prints errors on stdout: the channel judges them (a missing table is no history yet)."""

    class Transport:
        shell = PosixShell()

        def __init__(self, lines: list[str], code: int) -> None:
            self.lines, self.code = lines, code

        def run(self, command: Command, on_output):  # type: ignore[no-untyped-def]
            for line in self.lines:
                on_output("stdout", line)
            return Result(Ending.EXITED, self.code, self.code)

    rows = SqlChannel(Transport(['{"a":1}', "ERROR at line 1:", "ORA-00942: table or view does not exist"], 4),
                      oracle, spec(), CRED).rows("SELECT 1 FROM DUAL;", missing_ok=True)  # type: ignore[arg-type]
    assert rows == [{"a": 1}]
    from dbupdater.ledger import LedgerError
    with pytest.raises(LedgerError, match="ORA-01031"):
        SqlChannel(Transport(["ORA-01031: insufficient privileges"], 4), oracle, spec(),  # type: ignore[arg-type]
                   CRED).rows("SELECT 1 FROM DUAL;")

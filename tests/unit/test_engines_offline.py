"""Every real engine offline (as Sqitch's t/oracle.t does): the exact argv, environment and stdin of its script
and ledger commands, what the runner's shell makes of them, its credentials files, its verdicts on typical
client output, and its dialect's literals against injection. No server: the command lines are run by a real
/bin/sh with the client replaced by printf, and the literals are decoded by the server's own rules.
"""

from __future__ import annotations

import re
import shlex
import sqlite3
import subprocess
from pathlib import Path

import pytest

from dbupdater.engines import Engine, OutputLog, registry
from dbupdater.engines.base import STARTED_MARKER
from dbupdater.model.command import Command, Ending, RemoteFile, Result
from dbupdater.model.outcome import Status
from dbupdater.model.secret import Secret
from dbupdater.model.specs import DatabaseSpec
from dbupdater.transports.shells import PosixShell

from .fakes import Harness, SQLiteDialect

ROOT = Path(__file__).resolve().parents[2]
DIR = "/tmp/dbupdater.Ab3dE6gH9j"
CRED = f"{DIR}/login1.cred"
SCRIPT = f"{DIR}/00001-init.sql"
BEFORE = "INSERT INTO dbupdater_history (script) VALUES (X'30'); UPDATE dbupdater_history SET status = 'success';"
PASSWORD = "p@ss\"w'o#r\\d;$(id):x"
HOSTILE = ["db; touch {marker}", "$(touch {marker})", "`touch {marker}`", "it's \"quoted\"", "back\\slash",
           "  spaced  ", "*", "-dash", "new\nline", "tab\there", "caf\u00e9 \U0001f4e6", "a'b\"c$d`e\\f!g"]
INJECTION = ["'; DROP TABLE x; --", "\\'; DROP TABLE x; --", "\\", "\\\\'", "O'Brien", "''", "\"", "`", "%_",
             "caf\u00e9 Gr\u00f6\u00dfe \U0001f4e6 \u4e2d\u6587", "\u2028\u2029", "line\nbreak\r\n", "tab\t", "$1",
             "E'x'", "\\x41", "\\u0041", "?", "/* c */ --", "\x7f\x01"]
shell = PosixShell()
mysql = registry.get("mysql")
psql = registry.get("postgresql")


def spec(engine: Engine, database: str = "shop", user: str = "app", password: str = PASSWORD) -> DatabaseSpec:
    return DatabaseSpec(engine.name, "db.example", engine.default_port, user, database, Secret(password))


def documented(engine: str) -> list[str]:
    """The README's "How a script runs" invocation, with its placeholders filled in as the tests use them."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"^\| {re.escape(engine)} \| `(?P<command>[^`]+)` \|", text, re.MULTILINE)
    assert found, f"README.md documents no invocation for {engine}"
    command = found.group("command")
    for placeholder, value in (("<dir>/N.cred", CRED), ("<dir>/N-script.sql", SCRIPT),
                               ("<ledger SQL>", shlex.quote(BEFORE)), ("dbname='D'", "dbname='shop'")):
        command = command.replace(placeholder, value)
    command = re.sub(r"(--host)=H\b", r"\1=db.example", command)
    command = re.sub(r"(--port)=P\b", lambda m: f"{m.group(1)}={3306 if engine.startswith('MySQL') else 5432}",
                     command)
    command = re.sub(r"(--user|--username)=U\b", r"\1=app", command)
    command = re.sub(r"(--database)=D\b", r"\1=shop", command)
    words = shlex.split(command)
    return words[1:] if words[0] == "env" else words  # `env A=b cmd` and the shell's `A=b cmd` are one thing


# --- exact invocations ------------------------------------------------------------------------------------------


def test_mysql_script_invocation_is_the_documented_one() -> None:
    command = mysql.command(spec(mysql), SCRIPT, CRED, before=BEFORE)
    assert command.argv == (
        "mysql", f"--defaults-extra-file={CRED}", "--default-character-set=utf8mb4", "--batch", "--show-warnings",
        f"--init-command={BEFORE}", "--connect-timeout=15", "--host=db.example", "--port=3306", "--user=app",
        "--database=shop")
    assert (command.env, command.env_files, command.stdin, command.started_marker) == ((), (), (RemoteFile(SCRIPT),),
                                                                                      None)
    line, data = shell.render(command)
    assert data is None and line.endswith(f" < {SCRIPT}")
    assert shlex.split(line) == documented("MySQL / MariaDB")


def test_mysql_script_without_ledger_sql_and_its_ledger_command() -> None:
    plain = mysql.command(spec(mysql), SCRIPT, CRED)
    assert not any(arg.startswith("--init-command") for arg in plain.argv)
    assert mysql.shares_session(False) and mysql.shares_session(True) and not mysql.before_checked
    ledger = mysql.ledger_command(spec(mysql), CRED)
    assert ledger.argv == (
        "mysql", f"--defaults-extra-file={CRED}", "--default-character-set=utf8mb4", "--batch", "--raw",
        "--skip-column-names", "--connect-timeout=15", "--host=db.example", "--port=3306", "--user=app",
        "--database=shop")
    assert ledger.stdin == () and ledger.env == ()
    line, data = shell.render(ledger.with_stdin(b"SELECT 1;\n"))
    assert line == shlex.join(ledger.argv) and data == b"SELECT 1;\n"


def test_psql_script_invocation_is_the_documented_one() -> None:
    command = psql.command(spec(psql), SCRIPT, CRED, before=BEFORE)
    assert command.argv == (
        "psql", "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "--host=db.example", "--port=5432", "--username=app",
        "--dbname=dbname='shop'", "-c", BEFORE, "-c", f"\\echo {STARTED_MARKER}", "-f", SCRIPT)
    assert command.env == (("PGPASSFILE", CRED), ("PGCONNECT_TIMEOUT", "15"), ("PGAPPNAME", "dbupdater"),
                           ("PGCLIENTENCODING", "UTF8"))
    assert command.env_files == () and command.stdin == () and command.started_marker == STARTED_MARKER
    line, data = shell.render(command)
    assert data is None
    assert shlex.split(line) == documented("PostgreSQL")


def test_psql_single_transaction_and_ledger_commands() -> None:
    single = psql.command(spec(psql), SCRIPT, CRED, single_transaction=True)
    assert single.argv[:7] == ("psql", "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "--single-transaction")
    assert single.argv[-2:] == ("-f", SCRIPT) and "-c" not in single.argv and single.started_marker is None
    # With the ledger's row in its session, the script's transaction is its own, opened after the row's: a
    # rollback must not take the ledger along.
    assert psql.shares_session(False) and psql.shares_session(True)
    shared = psql.command(spec(psql), SCRIPT, CRED, single_transaction=True, before="INSERT x;")
    assert "--single-transaction" not in shared.argv and shared.started_marker == STARTED_MARKER
    assert shared.argv[-10:] == ("-c", "INSERT x;", "-c", f"\\echo {STARTED_MARKER}", "-c", "BEGIN", "-f", SCRIPT,
                                 "-c", "COMMIT")
    ledger = psql.ledger_command(spec(psql), CRED)
    assert ledger.argv == ("psql", "-X", "-q", "-w", "-v", "ON_ERROR_STOP=1", "--no-align", "--tuples-only",
                           "--host=db.example", "--port=5432", "--username=app", "--dbname=dbname='shop'", "-f", "-")
    assert dict(ledger.env)["PGPASSFILE"] == CRED and ledger.stdin == ()


def test_a_database_name_stays_a_name_in_the_psql_conninfo() -> None:
    command = psql.command(spec(psql, database="host=evil.example dbname=x' sslmode=disable \\"), SCRIPT, CRED)
    assert "--dbname=dbname='host=evil.example dbname=x\\' sslmode=disable \\\\'" in command.argv


def test_credentials_files() -> None:
    assert mysql.credentials(spec(mysql)) == b'[client]\nuser="app"\npassword="p@ss\\"w\'o#r\\\\d;$(id):x"\n'
    tricky = mysql.credentials(spec(mysql, user='u"1', password="a\nb\tc\rd"))
    assert tricky == b'[client]\nuser="u\\"1"\npassword="a\\nb\\tc\\rd"\n'
    assert mysql.credentials(DatabaseSpec("mysql", "h", 3306, "app", "d")) == b'[client]\nuser="app"\n'
    assert psql.credentials(spec(psql)) == b"*:*:*:app:p@ss\"w'o#r\\\\d;$(id)\\:x\n"
    assert psql.credentials(spec(psql, user="a:b\\c")) == b"*:*:*:a\\:b\\\\c:p@ss\"w'o#r\\\\d;$(id)\\:x\n"


# --- what the runner's shell makes of a command: a real /bin/sh, the client replaced by printf -------------------


def through_sh(line: str, stdin: bytes | None = None) -> bytes:
    return subprocess.run(["sh", "-c", line], input=stdin or b"", capture_output=True, check=True,
                          timeout=10).stdout


def arrived_argv(command: Command) -> list[str]:
    """The arguments the client would receive: the command rendered as-is, with printf in the client's place."""
    probe = Command(("printf", "%s\\0", *command.argv), command.env, command.env_files, ())
    line, _ = shell.render(probe)
    return through_sh(line).decode("utf-8").split("\0")[:-1]


@pytest.mark.parametrize("engine", ["mysql", "postgresql"])
@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_values_reach_the_client_as_one_argument_each(engine: str, hostile: str, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    value = hostile.format(marker=marker)
    e = registry.get(engine)
    db = spec(e, database=value, user=value)
    for command in (e.command(db, f"{tmp_path}/{value}.sql", CRED, before=f"SELECT '{value}';"),
                    e.ledger_command(db, CRED)):
        assert arrived_argv(command) == list(command.argv)
    assert not marker.exists()


def test_env_values_arrive_verbatim(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for hostile in HOSTILE:
        value = hostile.format(marker=marker)
        command = Command(("sh", "-c", 'printf %s "$X"'), env=(("X", value),))
        assert through_sh(shell.render(command)[0]).decode("utf-8") == value
    assert not marker.exists()


def test_env_files_set_the_variable_without_the_value_on_the_command_line(tmp_path: Path) -> None:
    secret_file = tmp_path / "it's a \"dir\"" / "login1.cred"
    secret_file.parent.mkdir()
    secret_file.write_text(PASSWORD + "\n", encoding="utf-8")
    command = Command(("sh", "-c", 'printf %s "$SECRET"'), env=(("MODE", "x"),),
                      env_files=(("SECRET", str(secret_file)),))
    line, data = shell.render(command)
    assert PASSWORD not in line and shlex.quote(str(secret_file)) in line and data is None
    assert line.startswith(f'SECRET="$(cat -- {shlex.quote(str(secret_file))})" && export SECRET && MODE=x sh -c ')
    assert through_sh(line).decode("utf-8") == PASSWORD


def test_stdin_parts_become_a_redirection_or_a_pipe(tmp_path: Path) -> None:
    first = tmp_path / "it's first.sql"
    last = tmp_path / "$(last).sql"
    first.write_bytes(b"first\n")
    last.write_bytes(b"last\n")
    one = Command(("cat",), stdin=(RemoteFile(str(first)),))
    line, data = shell.render(one)
    assert line == f"cat < {shlex.quote(str(first))}" and data is None
    assert through_sh(line) == b"first\n"
    parts = Command(("cat",), stdin=(RemoteFile(str(first)), b"middle\n", RemoteFile(str(last))))
    line, data = shell.render(parts)
    assert line == f"cat -- {shlex.quote(str(first))} - {shlex.quote(str(last))} | cat" and data == b"middle\n"
    assert through_sh(line, data) == b"first\nmiddle\nlast\n"
    only_bytes = Command(("cat",), stdin=(b"sent along\n",))
    line, data = shell.render(only_bytes)
    assert line == "cat" and data == b"sent along\n"
    with pytest.raises(ValueError, match="at most one part"):
        Command(("cat",), stdin=(b"a", b"b"))


@pytest.mark.parametrize(("status", "result"), [
    (0, Result(Ending.EXITED, 0)),
    (1, Result(Ending.EXITED, 1)),
    (3, Result(Ending.EXITED, 3)),
    (128, Result(Ending.EXITED, 128)),
    (126, Result(Ending.CLIENT_MISSING, 126)),
    (127, Result(Ending.CLIENT_MISSING, 127)),
    (130, Result(Ending.SIGNALLED, 2)),
    (137, Result(Ending.SIGNALLED, 9)),
    (143, Result(Ending.SIGNALLED, 15)),
    (-1, Result(Ending.LOST, None)),
])
def test_the_shell_reads_exit_statuses(status: int, result: Result) -> None:
    read = shell.interpret(status)
    assert read == result and read.raw == status
    assert read.exit_code() == (result.code if result.ending is Ending.EXITED else status)


def test_the_shell_really_gives_those_statuses(tmp_path: Path) -> None:
    codes = {}
    for name, line in {"missing": "no-such-client-here --x", "not executable": str(tmp_path),
                       "sigint": "kill -INT $$", "exit 3": "exit 3"}.items():
        codes[name] = shell.interpret(subprocess.run(["sh", "-c", line], capture_output=True).returncode).ending
    # Python reports a shell killed by a signal as -N; through sshd or a parent shell it is 128+N.
    assert codes == {"missing": Ending.CLIENT_MISSING, "not executable": Ending.CLIENT_MISSING,
                     "sigint": Ending.LOST, "exit 3": Ending.EXITED}
    wrapped = subprocess.run(["sh", "-c", "sh -c 'kill -INT $$'; exit $?"], capture_output=True).returncode
    assert shell.interpret(wrapped) == Result(Ending.SIGNALLED, 2)


def test_private_dir_and_remove_commands_hold_no_manifest_value() -> None:
    made = shell.make_private_dir()
    assert made.argv == ("sh", "-c", 'find "${TMPDIR:-/tmp}" -maxdepth 1 -type d -name "dbupdater.*" -user '
                         '"$(id -u)" -mmin +1440 -exec rm -rf -- {} + 2>/dev/null; '
                         'umask 077 && mktemp -d "${TMPDIR:-/tmp}/dbupdater.XXXXXXXXXX"')
    assert shell.touch(DIR).argv == ("touch", "-c", "--", DIR)
    assert shell.private_dir_path(["noise", "/tmp/dbupdater.abc\n"]) == "/tmp/dbupdater.abc"
    assert shell.private_dir_path(["mktemp: failed"]) is None and shell.private_dir_path([]) is None
    assert shell.remove([DIR, "-rf"]).argv == ("rm", "-rf", "--", DIR, "-rf")
    assert shell.join("/tmp/d/", "x.sql") == "/tmp/d/x.sql"


# --- verdicts ---------------------------------------------------------------------------------------------------


def judge(engine: Engine, result: Result | int, stderr: tuple[str, ...] = (), stdout: tuple[str, ...] = (),
          ) -> tuple[Status, str, OutputLog]:
    log = OutputLog(engine)
    for line in stdout:
        log.feed("stdout", line)
    for line in stderr:
        log.feed("stderr", line)
    verdict, reason = engine.verdict(shell.interpret(result) if isinstance(result, int) else result, log)
    return verdict, reason, log


MYSQL_CASES = [
    (1, ("ERROR 1064 (42000) at line 3: You have an error in your SQL syntax; check the manual",), Status.FAILED),
    (1, ("ERROR 1146 (42S02) at line 1: Table 'shop.nope' doesn't exist",), Status.FAILED),
    (1, ("ERROR 1045 (28000): Access denied for user 'app'@'10.0.0.5' (using password: YES)",), Status.UNREACHABLE),
    (1, ("ERROR 1049 (42000): Unknown database 'shop'",), Status.UNREACHABLE),
    (1, ("ERROR 2002 (HY000): Can't connect to server on 'db.example' (115)",), Status.UNREACHABLE),
    (1, ("ERROR 2013 (HY000) at line 7: Lost connection to server during query",), Status.UNREACHABLE),
    (1, ("ERROR 2006 (HY000) at line 2: Server has gone away",), Status.UNREACHABLE),
    (0, ("sh: 1: echo from a shell escape",), Status.FAILED),
    (0, ("mysql: [Warning] Using a password on the command line interface can be insecure.",), Status.APPLIED),
    (0, ("mysql: Deprecated program name. It will be removed in a future release, use '/usr/bin/mariadb' instead",),
     Status.APPLIED),
    (0, (), Status.APPLIED),
    (1, (), Status.FAILED),
    (130, (), Status.FAILED),  # killed by SIGINT (a cancelled run)
    (127, ("sh: 1: mysql: not found",), Status.UNREACHABLE),
    (-1, (), Status.UNREACHABLE),
]


@pytest.mark.parametrize(("status", "stderr", "verdict"), MYSQL_CASES)
def test_mysql_verdicts(status: int, stderr: tuple[str, ...], verdict: Status) -> None:
    assert judge(mysql, status, stderr)[0] is verdict


def test_mysql_keeps_warnings_as_warnings_and_says_why() -> None:
    verdict, reason, log = judge(mysql, 0, ("mysql: [Warning] Using a password on the command line",),
                                 ("id", "Warning (Code 1366): Incorrect string value: '\\xF0\\x9F' for column 'a'",
                                  "Note (Code 1051): Unknown table 'shop.t'", "1"))
    assert verdict is Status.APPLIED and reason == "applied" and not log.errors
    assert len(log.warnings) == 3 and list(log.stdout_tail)[-1] == "1"
    assert judge(mysql, 0, ("oops",))[1] == "mysql exited 0 but wrote unexpected lines on stderr"
    assert judge(mysql, 127)[1] == "the mysql client is not installed or not on PATH on the runner"
    assert "partially applied" in judge(mysql, -1)[1]
    assert "cannot connect" in judge(mysql, 1, ("ERROR 1045 (28000): Access denied for user 'app'@'h'",))[1]


def test_mysql_knows_whether_the_init_command_ran() -> None:
    def started(status: int, *stderr: str) -> bool | None:
        log = OutputLog(mysql)
        for line in stderr:
            log.feed("stderr", line)
        return mysql.started(shell.interpret(status), log, False)

    assert started(0) is True
    assert started(1, "ERROR 1064 (42000) at line 3: syntax") is True  # the script's own statement failed
    assert started(1, "ERROR 1045 (28000): Access denied for user 'app'@'h'") is False  # the login failed
    assert started(127) is False and started(-1) is None and started(130) is None


PSQL_CASES = [
    (3, ("psql:/x.sql:2: ERROR:  relation \"t\" does not exist", "LINE 1: SELECT * FROM t;", "                      ^"),
     Status.FAILED),
    (2, ("psql: error: connection to server at \"db.example\" (10.0.0.5), port 5432 failed: FATAL:  password "
         "authentication failed for user \"app\"",), Status.UNREACHABLE),
    (1, ("psql: error: /x.sql: No such file or directory",), Status.FAILED),
    (0, ("hello from a shell escape",), Status.FAILED),
    (0, ("psql:/x.sql:1: NOTICE:  table \"x\" does not exist, skipping",), Status.APPLIED),
    (0, ("psql:/x.sql:4: WARNING:  heads up", "DETAIL:  more about it", "HINT:  and what to do", "  continued"),
     Status.APPLIED),
    (0, ("psql:/x.sql:4: WARNING:  heads up", "psql:/x.sql:5: ERROR:  then it broke"), Status.FAILED),
    (0, ("", "INFO:  vacuuming", "LOG:  x", "DEBUG:  y"), Status.APPLIED),
    (0, (), Status.APPLIED),
    (126, (), Status.UNREACHABLE),
    (-1, (), Status.UNREACHABLE),
    (130, (), Status.FAILED),
]


@pytest.mark.parametrize(("status", "stderr", "verdict"), PSQL_CASES)
def test_psql_verdicts(status: int, stderr: tuple[str, ...], verdict: Status) -> None:
    assert judge(psql, status, stderr)[0] is verdict


def test_psql_continuation_lines_belong_to_their_message() -> None:
    _, reason, log = judge(psql, 3, ("psql:/x.sql:2: ERROR:  syntax error at or near \"SELEC\"", "LINE 1: SELEC 1;",
                                     "        ^"))
    assert reason == "the script failed (psql exit 3)" and len(log.errors) == 3 and not log.warnings
    _, _, log = judge(psql, 0, ("psql:/x.sql:4: WARNING:  heads up", "DETAIL:  more"))
    assert log.warnings == ["psql:/x.sql:4: WARNING:  heads up", "DETAIL:  more"] and not log.errors
    assert judge(psql, 2)[1] == "cannot connect to or log in to the database"


def test_psql_knows_whether_the_ledger_statement_ran() -> None:
    log = OutputLog(psql)
    assert psql.started(shell.interpret(3), log, True) is True  # the marker came after the ledger's -c
    assert psql.started(shell.interpret(2), log, False) is False
    assert psql.started(shell.interpret(-1), log, False) is None
    assert psql.started(shell.interpret(130), log, False) is None


def test_output_kept_is_bounded() -> None:
    _, _, log = judge(mysql, 1, tuple(f"noise {n}" for n in range(250)), tuple(f"row {n}" for n in range(50)))
    assert len(log.errors) == 200 and log.dropped == 50 and len(log.stdout_tail) == 20


# --- literals and identifiers -----------------------------------------------------------------------------------


@pytest.mark.parametrize("value", INJECTION)
def test_mysql_literals_are_hex_and_decode_to_the_value(value: str) -> None:
    literal = mysql.dialect.literal(value)
    found = re.fullmatch(r"_utf8mb4 X'(?P<hex>(?:[0-9a-f]{2})*)'", literal)
    assert found, literal
    assert bytes.fromhex(found.group("hex")).decode("utf-8") == value


def decode_e_string(literal: str) -> str:
    """An E'' literal as PostgreSQL reads it (4.1.2.2: backslash escapes, '' for a quote); a quote that ends the
    string early is an error, as an injection would be."""
    assert literal.startswith("E'") and literal.endswith("'"), literal
    body, out, i = literal[2:-1], [], 0
    simple = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
    while i < len(body):
        char = body[i]
        if char == "'":
            assert body[i + 1:i + 2] == "'", f"the string ends early in {literal!r}"
            out.append("'")
            i += 2
        elif char == "\\":
            following = body[i + 1]
            if following in simple:
                out.append(simple[following])
                i += 2
            elif following in "01234567":
                digits = re.match(r"[0-7]{1,3}", body[i + 1:])
                assert digits
                out.append(chr(int(digits.group(), 8)))
                i += 1 + len(digits.group())
            elif following in "xuU":
                size = {"x": 2, "u": 4, "U": 8}[following]
                digits = re.match(rf"[0-9A-Fa-f]{{1,{size}}}", body[i + 2:])
                assert digits
                out.append(chr(int(digits.group(), 16)))
                i += 2 + len(digits.group())
            else:
                out.append(following)
                i += 2
        else:
            out.append(char)
            i += 1
    return "".join(out)


@pytest.mark.parametrize("value", INJECTION)
def test_postgresql_literals_are_e_strings_that_decode_to_the_value(value: str) -> None:
    literal = psql.dialect.literal(value)
    assert decode_e_string(literal) == value
    body = literal[2:-1]
    assert body.replace("\\\\", "").count("\\") == 0  # every backslash escaped, so no escape sequence exists
    assert body.replace("''", "").count("'") == 0


def test_literals_of_numbers_and_null() -> None:
    for engine in (mysql, psql):
        assert engine.dialect.literal(None) == "NULL"
        assert engine.dialect.literal(42) == "42" and engine.dialect.literal(-1) == "-1"


def test_identifiers_double_their_quote() -> None:
    assert mysql.dialect.ident("a`b") == "`a``b`" and mysql.dialect.table("s`", "t") == "`s```.`t`"
    assert psql.dialect.ident('a"b') == '"a""b"' and psql.dialect.table(None, "t") == '"t"'


def test_mysql_ledger_sql_in_the_script_session_restores_the_time_zone() -> None:
    assert mysql.dialect.before_script("INSERT 1;", "") == "INSERT 1;"
    joined = mysql.dialect.before_script("INSERT 1;", "UPDATE 2;\n")
    assert joined.startswith("INSERT 1; SET @dbupdater_tz = @@session.time_zone, time_zone = '+00:00'; UPDATE 2;")
    assert joined.endswith("COMMIT; SET time_zone = @dbupdater_tz, @dbupdater_tz = NULL;")
    assert psql.dialect.before_script("INSERT 1;", "UPDATE 2;") == "INSERT 1;UPDATE 2;"


@pytest.mark.parametrize("value", INJECTION)
def test_the_stub_dialect_literals_round_trip_through_sqlite(value: str) -> None:
    with sqlite3.connect(":memory:") as connection:
        assert connection.execute(f"SELECT {SQLiteDialect().literal(value)}").fetchone() == (value,)


def test_the_stub_engine_keeps_the_rules_every_engine_keeps(harness: Harness) -> None:
    """The same rules tests/test_engine_rules.py holds every registered engine to (the stub is registered only
    while a unit test runs, so that file never sees it)."""
    engine = registry.get("stubdb")
    db = spec(engine)
    commands = [engine.command(db, SCRIPT, CRED), engine.command(db, SCRIPT, CRED, before="SELECT 1;"),
                engine.ledger_command(db, CRED)]
    for command in commands:
        assert any("UTF-8" in arg for arg in [*command.argv, *(value for _, value in command.env)])
        assert not any(PASSWORD in arg for arg in command.argv)
        assert not any(PASSWORD in value for _, value in command.env)
    assert registry.find("Stub") is engine and registry.for_port(engine.default_port) is engine


def test_a_line_without_end_is_kept_to_its_bound() -> None:
    from dbupdater.transports.base import MAX_LINE, LineSplitter

    lines: list[str] = []
    splitter = LineSplitter("stdout", lambda stream, line: lines.append(line))
    for _ in range(200):  # 12.8 MB in 64 KiB reads, no newline until the end
        splitter.feed(b"x" * 65536)
    splitter.feed(b"\nnext\n")
    splitter.close()
    assert len(lines) == 2 and lines[1] == "next"
    assert lines[0].startswith("x" * MAX_LINE) and lines[0].endswith(f"[... {200 * 65536 - MAX_LINE} more characters "
                                                                      "of this line cut]")

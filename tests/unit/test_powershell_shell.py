# ruff: noqa: RUF001 - the curly quotes PowerShell reads as quotes are what these tests are about
"""The PowerShell shell of Windows runners, offline: the exact script per Command (golden texts), the quoting
of every value, and the CLIXML stderr of the recorded samples in ../shared/clients/samples.

No PowerShell runs here, so the quoting is checked for structure: a value becomes one single-quoted literal
in which each of the five characters PowerShell reads as a single quote is doubled, and reading the literal
back by PowerShell's rule (a quote character followed by another one is one quote; a lone one ends the
literal) gives the value. The client's command line is read back by the C runtime's rule (CommandLineToArgvW,
what sqlcmd and go-sqlcmd see as their argv).
"""

from __future__ import annotations

import base64
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dbupdater.model.command import STDIN_PATH, Command, Ending, RemoteFile
from dbupdater.transports.winrm import clixml
from dbupdater.transports.winrm.powershell import (
    QUOTES,
    PowerShell,
    bootstrap_script,
    encode_stdin,
    encoded_command,
    quote,
)

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "clients" / "samples"
NASTY = ["it's", "‘curly’", "‚low‛", "$(Remove-Item C:\\)", "`backtick`", 'say "hi"', "a;b", "line\nbreak",
         "%PATH%", "", "  spaced  ", "back\\slash\\", "x" * 20_000]


def read_literal(text: str, at: int = 0) -> tuple[str, int]:
    """PowerShell's reading of a single-quoted literal starting at `at`: the value and where it ended."""
    assert text[at] in QUOTES
    value, i = [], at + 1
    while True:
        ch = text[i]
        if ch in QUOTES:
            if i + 1 < len(text) and text[i + 1] in QUOTES:
                value.append(ch)
                i += 2
                continue
            return "".join(value), i + 1
        value.append(ch)
        i += 1


def argv_from_command_line(line: str) -> list[str]:
    """The C runtime's parsing of a command line (the rules of CommandLineToArgvW for arguments)."""
    args: list[str] = []
    i, n = 0, len(line)
    while i < n:
        while i < n and line[i] in " \t":
            i += 1
        if i >= n:
            break
        arg, quoted = [], False
        while i < n and (quoted or line[i] not in " \t"):
            slashes = 0
            while i < n and line[i] == "\\":
                slashes += 1
                i += 1
            if i < n and line[i] == '"':
                arg.append("\\" * (slashes // 2))
                if slashes % 2:
                    arg.append('"')
                elif quoted and i + 1 < n and line[i + 1] == '"':
                    arg.append('"')
                    i += 1
                else:
                    quoted = not quoted
                i += 1
            else:
                arg.append("\\" * slashes)
                if i < n and (quoted or line[i] not in " \t"):
                    arg.append(line[i])
                    i += 1
        args.append("".join(arg))
    return args


def test_golden_sqlcmd_with_password_from_a_file_and_script_on_stdin() -> None:
    command = Command(("sqlcmd", "-S", "db1,1433", "-d", "it's ‘x’", "-b", ""),
                      env=(("SQLCMDINI", "none"),), env_files=(("SQLCMDPASSWORD", "C:\\t\\1.cred"),),
                      stdin=(RemoteFile("C:\\t\\1-script.sql"), b"GO\n"))
    script, stdin = PowerShell().render(command)
    assert script == """\
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
[Environment]::SetEnvironmentVariable('SQLCMDINI', 'none')
[Environment]::SetEnvironmentVariable('SQLCMDPASSWORD', [IO.File]::ReadAllText('C:\\t\\1.cred').TrimEnd([char[]]"`r`n"))
$start = New-Object Diagnostics.ProcessStartInfo
$start.FileName = 'sqlcmd'
$start.Arguments = '-S db1,1433 -d "it''s ‘‘x’’" -b ""'
$start.UseShellExecute = $false
$start.RedirectStandardInput = $true
try { $process = [Diagnostics.Process]::Start($start) } catch {
    [Console]::Error.WriteLine('dbupdater: cannot start ' + $start.FileName + ': ' + $_.Exception.Message); exit 9009
}
$stdin = $process.StandardInput.BaseStream
try {
    $file = [IO.File]::OpenRead('C:\\t\\1-script.sql'); try { $file.CopyTo($stdin) } finally { $file.Close() }
    foreach ($line in $input) { $bytes = [Convert]::FromBase64String($line); $stdin.Write($bytes, 0, $bytes.Length) }
} catch { if (-not $process.HasExited) { throw } } finally {
    try { $stdin.Close() } catch { }
}
$process.WaitForExit()
exit $process.ExitCode
"""
    assert stdin == base64.b64encode(b"GO\n") + b"\r\n"


def test_golden_without_stdin_leaves_it_alone() -> None:
    script, stdin = PowerShell().render(Command(("sqlcmd", "-?")))
    assert stdin is None
    assert "RedirectStandardInput" not in script and "$input" not in script
    assert script.endswith("$process.WaitForExit()\nexit $process.ExitCode\n")
    assert "$start.Arguments = '-?'" in script


def test_stdin_as_a_file_where_the_client_needs_a_path() -> None:
    """sqlcmd's ledger call reads its SQL with `-i <file>` (on stdin ODBC sqlcmd echoes prompts); Windows has no
    /dev/stdin, so the script writes the stdin bytes to a temporary file, passes its path, and removes it."""
    sql = b"SET NOCOUNT ON;\nSELECT 1;\n"
    script, stdin = PowerShell().render(Command(("sqlcmd", "-S", "db,1433", "-i", STDIN_PATH), stdin=(sql,)))
    assert stdin == base64.b64encode(sql) + b"\r\n"
    assert "RedirectStandardInput" not in script  # the client gets the file, not a pipe
    assert "$stdinPath = [IO.Path]::Combine([IO.Path]::GetTempPath()" in script
    assert "foreach ($line in $input)" in script and "[Convert]::FromBase64String($line)" in script
    assert ("$start.Arguments = '-S db,1433 -i DBUPDATERSTDINPATH'.Replace('DBUPDATERSTDINPATH', "
            "'\"' + $stdinPath + '\"')") in script
    assert script.index("$stdinFile.Close()") < script.index("[Diagnostics.Process]::Start($start)")
    assert script.endswith("Remove-Item -LiteralPath $stdinPath -Force -ErrorAction SilentlyContinue\n"
                           "exit $process.ExitCode\n")
    assert "\x00" not in script
    with pytest.raises(ValueError):
        PowerShell().render(Command(("sqlcmd", "-i", STDIN_PATH)))  # no stdin to make the file of


def test_stdin_as_a_file_on_posix_is_dev_stdin() -> None:
    from dbupdater.transports.shells import PosixShell

    line, stdin = PosixShell().render(Command(("sqlcmd", "-i", STDIN_PATH), stdin=(b"SELECT 1;\n",)))
    assert line == "sqlcmd -i /dev/stdin" and stdin == b"SELECT 1;\n"


@pytest.mark.parametrize("value", NASTY)
def test_every_nasty_value_is_one_literal_that_reads_back(value: str) -> None:
    literal = quote(value)
    assert read_literal(literal) == (value, len(literal))
    script, _ = PowerShell().render(Command(("client", value), env=(("V", value),)))
    arguments = re.search(r"^\$start\.Arguments = (.*)$", script, re.M | re.S)
    assert arguments is not None
    line, _end = read_literal(arguments.group(1))
    assert argv_from_command_line(line) == [value]
    env = script.index("SetEnvironmentVariable('V', ") + len("SetEnvironmentVariable('V', ")
    assert read_literal(script, env)[0] == value


@given(st.text(alphabet=st.sampled_from([*QUOTES, "a", " ", '"', "\\", "$", "`", ";", "\n", "é", "\u2028"])))
def test_quoting_round_trips(value: str) -> None:
    literal = quote(value)
    assert read_literal(literal) == (value, len(literal))
    # every quote character inside is doubled: the literal has no lone quote before its end
    inner = literal[1:-1]
    assert all(len(run) % 2 == 0 for run in re.findall(f"[{QUOTES}]+", inner))


@given(st.lists(st.text(alphabet=st.sampled_from(['"', "\\", " ", "\t", "a", "'", "‘"])), max_size=5))
def test_client_argv_round_trips(argv: list[str]) -> None:
    script, _ = PowerShell().render(Command(("client", *argv)))
    arguments = script.split("$start.Arguments = ", 1)[1]
    line, _ = read_literal(arguments)
    assert argv_from_command_line(line) == argv


def test_nul_and_bad_names_are_refused() -> None:
    shell = PowerShell()
    with pytest.raises(ValueError):
        shell.render(Command(("client", "a\x00b")))
    with pytest.raises(ValueError):
        shell.render(Command(("client",), env=(("BAD NAME", "x"),)))
    with pytest.raises(ValueError):
        shell.render(Command(("client",), env_files=(("X", "C:\\a\x00"),)))


def test_secret_from_a_file_never_on_the_script() -> None:
    script, _ = PowerShell().render(Command(("sqlcmd",), env_files=(("SQLCMDPASSWORD", "C:\\d\\2.cred"),)))
    assert "[IO.File]::ReadAllText('C:\\d\\2.cred')" in script  # read on the runner, by path


def test_exit_statuses() -> None:
    shell = PowerShell()
    assert shell.interpret(0).ending is Ending.EXITED
    assert (shell.interpret(1).ending, shell.interpret(1).code) == (Ending.EXITED, 1)
    assert shell.interpret(9009).ending is Ending.CLIENT_MISSING
    assert shell.interpret(-1).ending is Ending.LOST
    for raw in (0xC000013A, 0xC000013A - (1 << 32)):  # STATUS_CONTROL_C_EXIT, unsigned or signed
        assert (shell.interpret(raw).ending, shell.interpret(raw).code) == (Ending.SIGNALLED, 2)


def test_private_directory_remove_touch_join() -> None:
    shell = PowerShell()
    made, _ = shell.render(shell.make_private_dir())
    assert "SetAccessRuleProtection($true, $false)" in made and "CreateDirectory($path, $acl)" in made
    assert "GetTempPath()" in made
    assert shell.private_dir_path(["C:\\Users\\u\\AppData\\Local\\Temp\\dbupdater.0a1b"]) is not None
    assert shell.private_dir_path(["/tmp/x"]) is None and shell.private_dir_path([]) is None
    removed, _ = shell.render(shell.remove(["C:\\t\\a b", "C:\\t\\it's"]))
    assert "Remove-Item -LiteralPath 'C:\\t\\a b', 'C:\\t\\it''s' -Recurse -Force" in removed
    touched, _ = shell.render(shell.touch("C:\\t"))
    assert "Get-Item -LiteralPath 'C:\\t'" in touched
    assert shell.join("C:\\t\\", "1.cred") == "C:\\t\\1.cred"


def test_encoded_command_and_bootstrap() -> None:
    arguments = encoded_command("exit 3\n")
    assert arguments[:4] == ["-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand"]
    assert base64.b64decode(arguments[4]).decode("utf-16-le") == "exit 3\n"
    assert bootstrap_script("C:\\t\\c.ps1") == \
        "$input | & ([ScriptBlock]::Create([IO.File]::ReadAllText('C:\\t\\c.ps1')))\n"
    assert list(encode_stdin([b"", b"\x00\xff"])) == [b"AP8=\r\n"]


# -- CLIXML stderr: the recorded samples ------------------------------------------------------------------

def sample(name: str) -> str:
    path = SAMPLES / name
    if not path.is_file():
        pytest.skip(f"{path} is not there (the shared client samples sit beside the project checkout)")
    return path.read_text(encoding="utf-8")


def stderr_of(text: str, pieces: int = 1) -> list[str]:
    lines: list[str] = []
    decoder = clixml.StderrDecoder(lines.append)
    step = max(1, len(text) // pieces)
    for at in range(0, len(text), step):
        decoder.feed(text[at:at + step])
    decoder.close()
    return lines


def body(name: str) -> str:
    """A sample's recorded stderr: the lines after its comment lines, as PowerShell wrote them (CRLF)."""
    lines = [line for line in sample(name).splitlines() if not line.startswith("# ")]
    return "\r\n".join(lines)


@pytest.mark.parametrize("pieces", [1, 7, 997])
def test_progress_records_are_not_errors(pieces: int) -> None:
    assert stderr_of(body("winrm-clixml-progress-only-stderr.txt"), pieces) == []


@pytest.mark.parametrize("pieces", [1, 13, 1500])
def test_error_records_are_the_text_pywinrm_shows(pieces: int) -> None:
    text = sample("winrm-clixml-error-stderr-and-pywinrm-cleaned.txt")
    raw, cleaned = text.split("# --- after pywinrm _clean_error_msg ---\n")
    raw_lines = [line for line in raw.splitlines() if not line.startswith("# ")]
    expected = [line.rstrip() for line in cleaned.splitlines() if line.strip()]
    assert stderr_of("\r\n".join(raw_lines), pieces) == expected


def test_chunked_stream_with_markers_mid_line() -> None:
    # packer's relay put each chunk on a log line: the stream is the chunks joined, after their log prefixes
    chunks = [re.sub(r"^\S+ \S+ packer: ", "", line) for line in sample("winrm-clixml-progress-packer-log.txt")
              .splitlines() if not line.startswith("# ")]
    assert stderr_of(clixml.MARKER + "\r\n" + "".join(chunks), 5) == []


def test_plain_client_text_and_documents_interleave() -> None:
    error = body("winrm-clixml-error-stderr-and-pywinrm-cleaned.txt").split("\r\n# ---")[0]
    text = "Msg 208, Level 16, State 1, Server db1, Line 1\r\nInvalid object name 'x'.\r\n" + error
    lines = stderr_of(text, 11)
    assert lines[:2] == ["Msg 208, Level 16, State 1, Server db1, Line 1", "Invalid object name 'x'."]
    assert lines[2].startswith("fake : The term 'fake' is not recognized")


def test_broken_document_is_kept_as_text_and_escapes_decode() -> None:
    assert stderr_of("#< CLIXML\r\n<Objs><S S=\"Error\">unclosed</Objs>") != []
    assert clixml.unescape("a_x000D__x000A_b_xD83D__xDE00_") == "a\r\nb\U0001F600"

"""The PowerShell shell of a Windows runner: how a `Command` becomes a PowerShell script, and what its exit
status means.

Every value reaches PowerShell as a single-quoted literal, where nothing is special but the quote itself,
doubled. PowerShell takes four more characters as single quotes, U+2018-U+201B (the curly ones), so all five are
doubled (Ansible's `_escape` in plugins/shell/powershell.py, citing PowerShell's CharTraits.cs): a value
holding U+2019 cannot end the literal. A NUL cannot be written at all and is refused.

The client is started with System.Diagnostics.Process and a command line built by the C runtime's rules
(`subprocess.list2cmdline`, what CommandLineToArgvW and Go's os.Args parse back), not with `& client args`:
Windows PowerShell 5.1's `&` drops empty arguments and passes embedded double quotes unescaped, and
PowerShell 7.3+ changed that again ($PSNativeCommandArgumentPassing), so `&` gives a different argv on
different runners. The client's exit code is the script's exit code (`exit $process.ExitCode`), which is what
`& client; exit $LASTEXITCODE` gives for a client that `&` can run: `powershell -EncodedCommand` alone
would map any non-zero exit of the last statement to 1 (PowerShell issue 13501). Only stdin is redirected;
the client writes straight to the WinRS stdout and stderr pipes.

Stdin reaches the script base64-encoded, one line per chunk (`$input` gives PowerShell's stdin as lines,
as Ansible's put_file reads it), so binary data survives PowerShell's text pipeline.
"""

from __future__ import annotations

import base64
import re
import subprocess
from collections.abc import Iterable, Iterator, Sequence

from ...model.command import STDIN_PATH, Command, Ending, RemoteFile, Result
from ..shells import STALE_MINUTES, Shell

QUOTES = "'\u2018\u2019\u201a\u201b"  # every character PowerShell reads as a single quote
_QUOTE = re.compile(f"([{QUOTES}])")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WINDOWS_PATH = re.compile(r"(?:[A-Za-z]:\\|\\\\)[^\x00]*\Z")

CLIENT_MISSING = 9009  # what cmd.exe returns for a command it cannot find; the script returns it too
# Windows has no signals: a console process ended by Ctrl-C exits with STATUS_CONTROL_C_EXIT.
CONTROL_C_EXIT = 0xC000013A
SIGINT = 2

# Where the argument STDIN_PATH stands, the script puts the path of the temporary file holding the stdin bytes.
STDIN_MARK = "DBUPDATERSTDINPATH"
PRELUDE = ("$ErrorActionPreference = 'Stop'", "$ProgressPreference = 'SilentlyContinue'")


def quote(value: str) -> str:
    """A PowerShell single-quoted literal of `value`."""
    if "\x00" in value:
        raise ValueError("a NUL cannot reach PowerShell")
    return "'" + _QUOTE.sub(r"\1\1", value) + "'"


def encode_stdin(chunks: Iterable[bytes | memoryview]) -> Iterator[bytes]:
    """Stdin as the scripts read it: each chunk a base64 line."""
    for chunk in chunks:
        if chunk:
            yield base64.b64encode(chunk) + b"\r\n"


def _env_name(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not an environment variable name")
    return quote(name)


class PowerShell(Shell):
    """Windows PowerShell 5.1 (powershell.exe, on every supported Windows), as WinRM runs it."""

    platform = "windows"

    def render(self, command: Command) -> tuple[str, bytes | None]:
        if not command.argv:
            raise ValueError("a command needs a program")
        if len(command.argv) == 2 and command.argv[0] == POWERSHELL_SCRIPT:
            return command.argv[1] + "\n", None  # the shell's own commands are scripts already
        lines = list(PRELUDE)
        for name, value in command.env:
            lines.append(f"[Environment]::SetEnvironmentVariable({_env_name(name)}, {quote(value)})")
        for name, path in command.env_files:
            # As a POSIX shell's "$(cat file)": the file's content without its trailing line breaks.
            lines.append(f"[Environment]::SetEnvironmentVariable({_env_name(name)}, "
                         f"[IO.File]::ReadAllText({quote(path)}).TrimEnd([char[]]\"`r`n\"))")
        program, *arguments = command.argv
        data = next((part for part in command.stdin if isinstance(part, bytes)), None)
        as_file = STDIN_PATH in arguments
        if as_file:
            # Windows has no /dev/stdin: the stdin bytes go to a temporary file first, and its path (quoted by
            # the C runtime's rules: it has no '"' and no trailing backslash) stands where STDIN_PATH was.
            if data is None or len(command.stdin) != 1:
                raise ValueError("STDIN_PATH needs the command's stdin as one part of bytes")
            arguments = [STDIN_MARK if arg == STDIN_PATH else arg for arg in arguments]
            lines += [
                "$stdinPath = [IO.Path]::Combine([IO.Path]::GetTempPath(), "
                "'dbupdater-stdin.' + [Guid]::NewGuid().ToString('N'))",
                "$stdinFile = [IO.File]::Create($stdinPath)",
                "try { foreach ($line in $input) { $bytes = [Convert]::FromBase64String($line); "
                "$stdinFile.Write($bytes, 0, $bytes.Length) } } finally { $stdinFile.Close() }",
            ]
        argument_line = quote(subprocess.list2cmdline(arguments))
        if as_file:
            argument_line += f".Replace({quote(STDIN_MARK)}, '\"' + $stdinPath + '\"')"
        lines += [
            "$start = New-Object Diagnostics.ProcessStartInfo",
            f"$start.FileName = {quote(program)}",
            f"$start.Arguments = {argument_line}",
            "$start.UseShellExecute = $false",
        ]
        if command.stdin and not as_file:
            lines.append("$start.RedirectStandardInput = $true")
        lines += [
            "try { $process = [Diagnostics.Process]::Start($start) } catch {",
            f"    [Console]::Error.WriteLine('dbupdater: cannot start ' + $start.FileName + ': ' + "
            f"$_.Exception.Message); exit {CLIENT_MISSING}",
            "}",
        ]
        if command.stdin and not as_file:
            lines += ["$stdin = $process.StandardInput.BaseStream", "try {"]
            for part in command.stdin:
                if isinstance(part, RemoteFile):
                    lines.append(f"    $file = [IO.File]::OpenRead({quote(part.path)}); "
                                 "try { $file.CopyTo($stdin) } finally { $file.Close() }")
                else:
                    lines.append("    foreach ($line in $input) { $bytes = [Convert]::FromBase64String($line); "
                                 "$stdin.Write($bytes, 0, $bytes.Length) }")
            # A client that exits before reading all of its stdin (an error) breaks the pipe: its exit code
            # is the answer then, not the broken pipe.
            lines += ["} catch { if (-not $process.HasExited) { throw } } finally {",
                      "    try { $stdin.Close() } catch { }", "}"]
        lines.append("$process.WaitForExit()")
        if as_file:
            lines.append("Remove-Item -LiteralPath $stdinPath -Force -ErrorAction SilentlyContinue")
        lines.append("exit $process.ExitCode")
        encoded = b"".join(encode_stdin([data])) if data is not None else None
        return "\n".join(lines) + "\n", encoded

    def interpret(self, status: int) -> Result:
        if status < 0 and status != CONTROL_C_EXIT - (1 << 32):
            return Result(Ending.LOST, None, status)
        if status == CLIENT_MISSING:
            return Result(Ending.CLIENT_MISSING, status, status)
        if status in (CONTROL_C_EXIT, CONTROL_C_EXIT - (1 << 32)):
            return Result(Ending.SIGNALLED, SIGINT, status)
        return Result(Ending.EXITED, status, status)

    def make_private_dir(self) -> Command:
        # The user's own temp folder (GetTempPath: %TEMP% of the user's profile), a new folder whose ACL
        # grants the user alone full control, with inheritance from the parent cut, created with that ACL
        # in one call (no moment where it has the parent's). Folders of dead runs over a day old go first.
        script = "\n".join((
            *PRELUDE,
            "$base = [IO.Path]::GetTempPath()",
            f"$stale = [DateTime]::UtcNow.AddMinutes(-{STALE_MINUTES})",
            "Get-ChildItem -LiteralPath $base -Directory -Filter 'dbupdater.*' -ErrorAction SilentlyContinue | "
            "Where-Object { $_.LastWriteTimeUtc -lt $stale } | "
            "Remove-Item -Recurse -Force -ErrorAction SilentlyContinue",
            "$me = [Security.Principal.WindowsIdentity]::GetCurrent().User",
            "$acl = New-Object Security.AccessControl.DirectorySecurity",
            "$acl.SetAccessRuleProtection($true, $false)",
            "$acl.SetOwner($me)",
            "$acl.AddAccessRule((New-Object Security.AccessControl.FileSystemAccessRule($me, 'FullControl', "
            "'ContainerInherit, ObjectInherit', 'None', 'Allow')))",
            "$path = Join-Path $base ('dbupdater.' + [Guid]::NewGuid().ToString('N'))",
            "[void][IO.Directory]::CreateDirectory($path, $acl)",
            "[Console]::Out.WriteLine($path)",
        ))
        return Command((POWERSHELL_SCRIPT, script))

    def private_dir_path(self, output: Sequence[str]) -> str | None:
        path = output[-1].strip() if output else ""
        return path if _WINDOWS_PATH.match(path) else None

    def remove(self, paths: Sequence[str]) -> Command:
        listed = ", ".join(quote(path) for path in paths)
        return Command((POWERSHELL_SCRIPT, "\n".join((
            *PRELUDE, f"Remove-Item -LiteralPath {listed} -Recurse -Force -ErrorAction SilentlyContinue"))))

    def touch(self, path: str) -> Command:
        return Command((POWERSHELL_SCRIPT, "\n".join((
            *PRELUDE, f"$item = Get-Item -LiteralPath {quote(path)} -ErrorAction SilentlyContinue",
            "if ($item) { $item.LastWriteTimeUtc = [DateTime]::UtcNow }"))))

    def join(self, directory: str, name: str) -> str:
        return f"{directory.rstrip(chr(92))}\\{name}"


# The shell's own commands (private directory, removal, touch) are PowerShell scripts, not a client's argv.
POWERSHELL_SCRIPT = "dbupdater:powershell-script"


def upload_script(remote: str) -> str:
    """Write stdin's base64 lines to `remote` (inheriting the private directory's ACL), printing the SHA-256
    of what was written, which the controller compares with what it sent."""
    return "\n".join((
        *PRELUDE,
        "$sha = [Security.Cryptography.SHA256]::Create()",
        f"$file = [IO.File]::Create({quote(remote)})",
        "try {",
        "    foreach ($line in $input) {",
        "        $bytes = [Convert]::FromBase64String($line)",
        "        $file.Write($bytes, 0, $bytes.Length)",
        "        [void]$sha.TransformBlock($bytes, 0, $bytes.Length, $null, 0)",
        "    }",
        "} finally { $file.Close() }",
        "[void]$sha.TransformFinalBlock((New-Object byte[] 0), 0, 0)",
        "[Console]::Out.WriteLine('sha256:' + ([BitConverter]::ToString($sha.Hash) -replace '-', '').ToLower())",
    )) + "\n"


FETCH_BLOCK = 45 * 1024  # bytes per base64 line of a fetched file: 60 KiB of text, under base.MAX_LINE


def fetch_script(remote: str) -> str:
    """Print the file at `remote` as base64 lines, then its SHA-256."""
    return "\n".join((
        *PRELUDE,
        "$sha = [Security.Cryptography.SHA256]::Create()",
        f"$file = [IO.File]::OpenRead({quote(remote)})",
        f"$buffer = New-Object byte[] {FETCH_BLOCK}",
        "try {",
        "    while (($read = $file.Read($buffer, 0, $buffer.Length)) -gt 0) {",
        "        [Console]::Out.WriteLine([Convert]::ToBase64String($buffer, 0, $read))",
        "        [void]$sha.TransformBlock($buffer, 0, $read, $null, 0)",
        "    }",
        "} finally { $file.Close() }",
        "[void]$sha.TransformFinalBlock((New-Object byte[] 0), 0, 0)",
        "[Console]::Out.WriteLine('sha256:' + ([BitConverter]::ToString($sha.Hash) -replace '-', '').ToLower())",
    )) + "\n"


def bootstrap_script(path: str) -> str:
    """A short script running the long one saved at `path`: cmd.exe, which WinRS starts every command
    through, ends a command line at 8191 characters ("The command line is too long.", exit 1: sample
    winrm-command-line-too-long), and -EncodedCommand takes about 2.7 characters per script character. The
    script reads stdin as `$input`, so stdin is piped into it."""
    return f"$input | & ([ScriptBlock]::Create([IO.File]::ReadAllText({quote(path)})))\n"


def encoded_command(script: str) -> list[str]:
    """powershell.exe's arguments running `script` (-EncodedCommand: base64 of UTF-16LE, no quoting at all)."""
    return ["-NoLogo", "-NoProfile", "-NonInteractive", "-EncodedCommand",
            base64.b64encode(script.encode("utf-16-le")).decode("ascii")]

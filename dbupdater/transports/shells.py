"""The runner's shell: how a `Command` becomes a command line, and what the shell's exit status means.

A transport carries bytes; the shell owns everything that depends on the runner's operating system: quoting,
environment assignment, stdin redirection, the private directory, removal, joining paths, and reading its
exit status (a POSIX shell's 126/127 and 128+N). So an engine never sees a shell's conventions, and a
Windows runner needs a PowerShell shell object, not a change to any engine.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Sequence

from ..model.command import STDIN_PATH, Command, Ending, RemoteFile, Result


class Shell(ABC):
    platform: str  # the runner's operating system family, for engines whose clients differ on it
    @abstractmethod
    def render(self, command: Command) -> tuple[str, bytes | None]:
        """The command line, and the bytes to send on the command's stdin (None: close it at once)."""

    @abstractmethod
    def interpret(self, status: int) -> Result:
        """A raw exit status as the transport received it (-1: none came back)."""

    @abstractmethod
    def make_private_dir(self) -> Command:
        """A constant command (no value from any manifest) printing the new directory's path on its last line."""

    @abstractmethod
    def private_dir_path(self, output: Sequence[str]) -> str | None:
        """The path `make_private_dir` printed, or None when it did not print one."""

    @abstractmethod
    def remove(self, paths: Sequence[str]) -> Command: ...

    @abstractmethod
    def touch(self, path: str) -> Command:
        """Mark a private directory as in use, so another run's clean-up of stale ones leaves it alone."""

    @abstractmethod
    def join(self, directory: str, name: str) -> str: ...


STALE_MINUTES = 24 * 60  # a private directory left this long by a dead run is removed at the next connect


class PosixShell(Shell):
    """sh, bash, dash: what sshd runs a command with on Linux and the BSDs."""

    platform = "posix"

    def render(self, command: Command, *, replacing: bool = False) -> tuple[str, bytes | None]:
        """With `replacing`, the client replaces the shell that runs the line (`exec`) unless a pipe feeds it: how
        a session loop's subshell runs a line as `$SHELL -c` would. bash and dash exec a lone command of a -c
        line themselves, so no shell is left to report a client killed by a signal; a subshell that stayed
        would report it on the command's stderr."""
        q = shlex.quote
        prefix = "".join(f'{name}="$(cat -- {q(path)})" && export {name} && ' for name, path in command.env_files)
        assignments = "".join(f"{name}={q(value)} " for name, value in command.env)
        parts = command.stdin
        piped = len(parts) > 1 and any(isinstance(part, RemoteFile) for part in parts)
        replace = "exec " if replacing and not piped else ""
        line = assignments + replace + shlex.join("/dev/stdin" if arg == STDIN_PATH else arg for arg in command.argv)
        data = next((part for part in parts if isinstance(part, bytes)), None)
        if len(parts) == 1 and isinstance(parts[0], RemoteFile):
            line += " < " + q(parts[0].path)
        elif piped:
            sources = " ".join("-" if isinstance(part, bytes) else q(part.path) for part in parts)
            line = f"cat -- {sources} | {line}"
        return prefix + line, data

    def interpret(self, status: int) -> Result:
        if status < 0:
            return Result(Ending.LOST, None, status)
        if status in (126, 127):
            return Result(Ending.CLIENT_MISSING, status, status)
        if status > 128:
            return Result(Ending.SIGNALLED, status - 128, status)
        return Result(Ending.EXITED, status, status)

    def make_private_dir(self) -> Command:
        # mktemp -d creates the directory 0700. Private directories of runs that died without removing theirs
        # (a lost connection, kill -9) hold credentials files: the runner user's own that are over a day old
        # are removed first. A live run's directory is never that old: its copies and logins touch it.
        return Command(("sh", "-c", f'find "${{TMPDIR:-/tmp}}" -maxdepth 1 -type d -name "dbupdater.*" -user '
                                    f'"$(id -u)" -mmin +{STALE_MINUTES} -exec rm -rf -- {{}} + 2>/dev/null; '
                                    'umask 077 && mktemp -d "${TMPDIR:-/tmp}/dbupdater.XXXXXXXXXX"'))

    def private_dir_path(self, output: Sequence[str]) -> str | None:
        path = output[-1].strip() if output else ""
        return path if path.startswith("/") else None

    def remove(self, paths: Sequence[str]) -> Command:
        return Command(("rm", "-rf", "--", *paths))

    def touch(self, path: str) -> Command:
        return Command(("touch", "-c", "--", path))

    def join(self, directory: str, name: str) -> str:
        return f"{directory.rstrip('/')}/{name}"

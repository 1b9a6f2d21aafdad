"""What engines ask transports to run, and what comes back: the one contract the two share.

An engine builds a `Command` (argv, environment, stdin as parts) without knowing how it reaches the runner;
a transport runs it through its shell and reports a `Result` whose ending the shell has already read (a
POSIX shell's 127, a signal, a connection lost), so engines judge only their client's own exit codes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


@dataclass(frozen=True)
class RemoteFile:
    """A file already on the runner (a copied script, a 0600 credentials file)."""

    path: str


StdinPart = bytes | RemoteFile
# An argument standing for "the path of a file holding this command's stdin", for clients that read a script
# only from a named file (sqlcmd's -i: on stdin ODBC sqlcmd echoes prompts). Each shell renders it: POSIX as
# /dev/stdin; PowerShell, which has none, as a temporary file it writes the stdin bytes to. A NUL cannot come
# from a manifest cell, so no real argument is ever mistaken for it.
STDIN_PATH = "\x00dbupdater:stdin-path"


@dataclass(frozen=True)
class Command:
    """One client call. Never a shell string: every value reaches the runner's shell quoted, as data.

    `env` holds no secret (it may be visible in the runner's process list); `env_files` sets a variable from
    the content of a 0600 file on the runner, which never appears on a command line (sqlcmd reads its
    password only from its own environment). `stdin` is fed in order: files on the runner, and at most one
    part of bytes sent along from here (a connection carries one stream).
    """

    argv: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    env_files: tuple[tuple[str, str], ...] = ()
    stdin: tuple[StdinPart, ...] = ()
    # A line the client prints on stdout once the ledger SQL run before the script has committed.
    started_marker: str | None = None

    def __post_init__(self) -> None:
        if sum(1 for part in self.stdin if isinstance(part, bytes)) > 1:
            raise ValueError("at most one part of stdin can be bytes sent along")

    def with_stdin(self, part: StdinPart) -> Command:
        return Command(self.argv, self.env, self.env_files, (*self.stdin, part), self.started_marker)


@dataclass(frozen=True)
class Client:
    """What a runner has for an engine's client, as far as the engine asked (`Engine.client_probe`): the build
    it found (e.g. sqlcmd's "odbc" or "go"; "" when the engine does not ask or could not tell) and the runner's
    platform, from its shell ("posix", "windows"). Engines adapt their commands to it (`Engine.adapt`)."""

    build: str = ""
    platform: str = "posix"


class Signal(Enum):
    """What stopping a running command sends to its whole process group on the runner: INT is Ctrl-C (mysql
    and psql cancel the statement on the server), KILL ends everything in the group, a client's shell escape
    (`\\! sleep`) included."""

    INT = "INT"
    KILL = "KILL"


class Ending(Enum):
    EXITED = "exited"  # the client ran and exited with `code`
    CLIENT_MISSING = "client missing"  # the command does not exist or cannot execute on the runner
    SIGNALLED = "signalled"  # the client was killed by signal `code`
    LOST = "lost"  # the runner connection ended before an exit status came back


@dataclass(frozen=True)
class Result:
    ending: Ending
    code: int | None = None
    raw: int = field(default=-1, compare=False)  # the status as the shell reported it, for the record

    @property
    def exited(self) -> bool:
        return self.ending is Ending.EXITED

    def exit_code(self) -> int:
        """The client's exit code when it exited, else the shell's raw status (-1: none came back)."""
        return self.code if self.ending is Ending.EXITED and self.code is not None else self.raw

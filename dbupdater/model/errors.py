"""Exceptions that carry the process exit code they mean, so the CLI maps them in one place."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    SCRIPT_FAILED = 1
    USAGE = 2
    UNREACHABLE = 3
    INTERNAL = 4
    REFUSED = 5
    INTERRUPTED = 130


class DbUpdaterError(Exception):
    exit_code: ExitCode = ExitCode.SCRIPT_FAILED


class UsageError(DbUpdaterError):
    exit_code = ExitCode.USAGE


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, located as precisely as we can."""

    message: str
    line: int | None = None
    column: str | None = None

    def describe(self, source: str) -> str:
        where = source
        if self.line is not None:
            where += f" line {self.line}"
        if self.column:
            where += f", column {self.column}"
        return f"{where}: {self.message}"


class ManifestError(UsageError):
    """Every problem of a manifest at once, so users fix them in one pass."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = problems
        lines = [p.describe(source) for p in problems]
        count = len(problems)
        head = f"{source}: {count} problem{'s' if count != 1 else ''}; nothing was run"
        super().__init__("\n".join([head, *("  " + line for line in lines)]))


class UnreachableError(DbUpdaterError):
    """A runner or database cannot be used: network, host key, authentication or missing client."""

    exit_code = ExitCode.UNREACHABLE


class UnresolvedReference(ValueError):
    """A credential reference (env:, file:, vault:) that cannot be resolved: a problem of the input. The
    message names the reference, never a value."""

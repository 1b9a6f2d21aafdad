"""How sqlcmd's output reads: which lines are errors, which are information, and what a failure means.

Both programs called `sqlcmd` (ODBC sqlcmd from mssql-tools18, and go-sqlcmd) are judged by the same rules:
their lines differ in where they go and in small details, never in meaning (../shared/clients/sqlcmd.md).
"""

from __future__ import annotations

import re

# "Msg 208, Level 16, State 1, Server X, Line 1", with ODBC's "1> 2> " prompts in front when it reads stdin
# (samples/sqlcmd-odbc-msg208-stdin-prompts.txt). Levels 0-10 are information, 11 and up errors (sqlcmd.md
# section 3; the client's -b / -V 11 draw the same line).
PROMPTS = re.compile(r"^(?:\d+> )+")
MESSAGE = re.compile(r"^(?:\d+> )*Msg (?P<number>\d+), Level (?P<level>\d+), State \d+")
# Both clients prefix their own failures "Sqlcmd: Error: " (go pkg/sqlcmd/errors.go; ODBC after a
# "Password: " prompt in samples/sqlcmd-odbc11-login-failed-server-log.txt, hence search, not match).
CLIENT_ERROR = re.compile(r"Sqlcmd: Error: ")
CLIENT_WARNING = re.compile(r"Sqlcmd: Warning: ")
# Errors of the script's own sqlcmd text, which the clients print bare: a $(name) without -v / :setvar
# (samples/go-sqlcmd-scripting-variable-not-defined.txt), a missing :r file on ODBC (stderr) and on go
# (stdout) (samples/sqlcmd-odbc-vs-go-missing-r-file.txt).
SCRIPT_TEXT_ERRORS = [
    re.compile(r"^'[^']*' scripting variable not defined\.$"),
    re.compile(r"^'.*': Invalid filename\.$"),
    re.compile(r"^open .+: (The system cannot find the file specified|no such file or directory)\.?$"),
]
# The client never got a session: wrong login or password, unknown database ("Cannot open database ...
# requested by the login. The login failed."), server unreachable or too slow to answer, or TLS refused
# (samples/sqlcmd-odbc1[1378]-login-*.txt, sqlcmd-odbc18-self-signed-cert-*.txt).
LOGIN = re.compile(r"Login failed|login error|Login timeout expired|Unable to complete login process|"
                   r"network-related or instance-specific error|Client unable to establish connection|"
                   r"SSL Provider|certificate verify failed|TCP Provider|Named Pipes Provider|"
                   r"Cannot open database", re.IGNORECASE)
CERTIFICATE = re.compile(r"certificate verify failed|SSL Provider|certificate", re.IGNORECASE)
# A session the client had is gone under the script: the script may be partially applied.
LOST = re.compile(r"Communication link failure|forcibly closed|connection reset|broken pipe|"
                  r"session is in the kill state|connection was lost", re.IGNORECASE)


def level(line: str) -> int | None:
    """The severity of a message header line, or None when the line is not one."""
    match = MESSAGE.search(line)
    return int(match.group("level")) if match else None


def is_client_error(line: str) -> bool:
    return bool(CLIENT_ERROR.search(line))


def is_script_text_error(line: str) -> bool:
    return any(pattern.search(line.strip()) for pattern in SCRIPT_TEXT_ERRORS)


def login_failure(errors: list[str]) -> str | None:
    """Why the client could not log in, from its own error lines, or None."""
    client = [line for line in errors if is_client_error(line)]
    if any(LOST.search(line) for line in client):
        return None
    if any(LOGIN.search(line) for line in client):
        if any(CERTIFICATE.search(line) for line in client):
            return ("cannot connect to the database: the server's TLS certificate was not accepted (install the "
                    "CA that signed it on the runner, or set trust_server_certificate=yes for a test server)")
        return "cannot connect to or log in to the database"
    return None


def connection_lost(errors: list[str]) -> bool:
    return any(LOST.search(line) for line in errors if is_client_error(line))


def first_message(lines: list[str]) -> str:
    """'Msg 208, Level 16, ...: Invalid object name 'x'.' from a header and the line after it."""
    for position, line in enumerate(lines):
        found = level(line)
        if found is not None and found > 10:
            header = PROMPTS.sub("", line).strip()
            text = lines[position + 1].strip() if position + 1 < len(lines) else ""
            return f"{header}: {text}" if text else header
    return ""

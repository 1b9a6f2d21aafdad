"""The manifest's columns: the core ones, and those each registered engine and transport declares."""

from __future__ import annotations

from ..engines import registry as engines
from ..transports import registry as transports

REQUIRED = (
    "sql_runner_host",
    "sql_runner_userid",
    "sql_runner_password",
    "database_type",
    "database_host",
    "database_userid",
    "database_password",
    "port",
    "database",
    "sql_script_to_run",
)
OPTIONAL = ("sql_runner_port", "sql_runner_key_file", "transport", "repeatable", "single_transaction", "encoding",
            "script_timeout", "step", "verify_script", "undo_script")
# What a row does (the `step` column): run its SQL script with the engine's client (the default), wait for an
# operator (the file holds the message), or run the file as an executable on the runner.
STEPS = ("sql", "pause", "command")
# The legacy form: everything but database_type, which the port then decides.
LEGACY_OPTIONAL = ("database_type",)
# Cells that may be empty: authentication falls back to keys/agent, databases may trust the runner.
MAY_BE_EMPTY = {"sql_runner_password", "database_password", "database_type", "sql_runner_port",
                "sql_runner_key_file", "transport", "repeatable", "single_transaction", "encoding", "script_timeout",
                "step", "verify_script", "undo_script"}
# Cells a runner that needs no host (a local one) may leave empty.
HOST_COLUMNS = {"sql_runner_host", "sql_runner_userid"}
BOOLEANS = {"": False, "no": False, "false": False, "0": False, "n": False,
            "yes": True, "true": True, "1": True, "y": True}
PASSWORD_COLUMNS = ("sql_runner_password", "database_password")


def plugin_columns() -> dict[str, str]:
    """Optional columns the registered engines and transports read, with what each is for."""
    found: dict[str, str] = {}
    for engine in engines.engines().values():
        for option in engine.options:
            found.setdefault(option.column, option.help)
    for kind in transports.kinds().values():
        for column in kind.columns:
            found.setdefault(column, f"{kind.display} runners")
    return found


def optional() -> tuple[str, ...]:
    return (*OPTIONAL, *plugin_columns())


def known() -> set[str]:
    return {*REQUIRED, *optional()}

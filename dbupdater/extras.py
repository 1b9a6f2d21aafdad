"""The optional Python modules: which feature needs which, and which pip extra provides it.

`pip install -r requirements.txt` installs all of them; `pip install .` installs the core only, and each
feature below then needs its extra. Nothing here imports an optional module until `require` is called, so
`--help`, `validate` without `vault:` references and runs that use none of these features load none of them.
The requirements are the same, range for range, as in requirements.txt and pyproject.toml (a test checks).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from .model.errors import UsageError


@dataclass(frozen=True)
class OptionalModule:
    feature: str  # what a user does that needs the module, as the message names it
    module: str  # the import name
    extra: str  # pip install 'dbupdater[EXTRA]'
    requirement: str  # the pip requirement


OPTIONAL: dict[str, OptionalModule] = {
    "vault": OptionalModule("vault: references and --environment (HashiCorp Vault / OpenBao)", "hvac", "vault",
                      "hvac>=2.1,<3"),
    "mysql-driver": OptionalModule("wait-ready --via direct to MySQL / MariaDB", "mysql.connector", "drivers",
                             "mysql-connector-python>=8.3,<27"),
    "postgres-driver": OptionalModule("wait-ready --via direct to PostgreSQL", "psycopg", "drivers",
                                "psycopg[binary]>=3.1.4,<4"),
    "winrm": OptionalModule("WinRM runner hosts", "pypsrp", "winrm", "pypsrp>=0.9,<1"),
    "oracle": OptionalModule("Oracle databases", "oracledb", "oracle", "oracledb>=2.0,<27"),
    "sqlserver": OptionalModule("wait-ready --via direct to SQL Server", "pymssql", "sqlserver", "pymssql>=2.3,<3"),
    "s3": OptionalModule("backups in an S3-compatible bucket (--backup-dir s3://..., --report-dir s3://...)", "boto3",
                         "s3", "boto3>=1.34,<2"),
    "binlog": OptionalModule("copy-db --follow and --detach (reading the MySQL binary log)", "pymysqlreplication",
                             "follow", "mysql-replication>=1.0.9,<2"),
    "follow-postgres": OptionalModule("copy-db --follow and --detach (applying the changes to PostgreSQL)", "psycopg",
                                      "drivers", "psycopg[binary]>=3.1.4,<4"),
}


class MissingModule(UsageError, ImportError):
    """An optional module is not installed (exit 2). Also an ImportError, so code that lets a driver's
    ImportError through (and treats other errors as "not ready yet") lets this one through too."""


def install_hint(extra: str) -> str:
    return f"pip install -r requirements.txt (every feature) or pip install 'dbupdater[{extra}]'"


def require(key: str) -> ModuleType:
    """Import the module of feature `key`; MissingModule says what needs it and how to install it."""
    spec = OPTIONAL[key]
    try:
        return importlib.import_module(spec.module)
    except ImportError as exc:
        name = exc.name or ""
        if isinstance(exc, ModuleNotFoundError) and (name == spec.module or spec.module.startswith(name + ".")):
            why = "is not installed"
        elif isinstance(exc, ModuleNotFoundError):
            why = f"cannot be imported: its dependency {name} is not installed"
        else:
            why = f"cannot be imported ({exc})"
        raise MissingModule(f"the Python module {spec.module} ({spec.requirement}) is needed for {spec.feature} "
                            f"and {why}; install it with {install_hint(spec.extra)}", name=spec.module) from None

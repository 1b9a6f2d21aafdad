"""The engine registry: the one table the core consults; a new engine is one module plus one line here."""

from __future__ import annotations

from .base import Engine, Invocation, OutputLog, Severity, Verdict
from .mysql import MySQL
from .postgres import PostgreSQL

ENGINES: dict[str, Engine] = {engine.name: engine for engine in (MySQL(), PostgreSQL())}

# Spellings accepted in the database_type column (compared case-insensitively).
ALIASES: dict[str, str] = {
    "mysql": "mysql",
    "mariadb": "mysql",
    "postgresql": "postgresql",
    "postgres": "postgresql",
    "oracle": "oracle",
    "sqlserver": "sqlserver",
    "mssql": "sqlserver",
}
# Engines users may name that a later release implements.
PLANNED = {"oracle": "Oracle", "sqlserver": "SQL Server"}
# The legacy 9-column manifest has no database_type: the port decides.
DEFAULT_PORTS: dict[int, str] = {3306: "mysql", 5432: "postgresql", 1521: "oracle", 1433: "sqlserver"}

__all__ = ["ALIASES", "DEFAULT_PORTS", "ENGINES", "PLANNED", "Engine", "Invocation", "OutputLog", "Severity",
           "Verdict"]

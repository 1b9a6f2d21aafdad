"""The source's catalog: one SQL text for MariaDB that prints the database as JSON rows, and the reading of
those rows into `SourceSchema`.

All of the catalog's SQL is here. It goes through `ledger.SqlChannel.rows`, which keeps every stdout line
starting with `{`: each row is a `JSON_OBJECT` with a "kind" (server, table, column, index, foreign_key,
check, view, routine, parameter, trigger, event). Nothing is assumed about the order rows arrive in;
`read_catalog` orders everything itself (tables by name, columns by position), so the plan made from the same
catalog is the same plan.

Written for MariaDB 10.11. Where MySQL 8 differs:
- COLUMN_DEFAULT: MariaDB quotes string literals (`'abc'`) and writes `NULL` for a nullable column without a
  default; MySQL 8 writes literals unquoted, SQL NULL for no default, and marks expressions with
  `DEFAULT_GENERATED` in EXTRA. `read_catalog` reads MariaDB's form.
- CHECK_CONSTRAINTS has TABLE_NAME and LEVEL in MariaDB only (MySQL 8: join TABLE_CONSTRAINTS); MySQL 8 has a
  real JSON type (DATA_TYPE 'json') instead of LONGTEXT with `json_valid`; both are understood downstream.
- TABLES.AUTO_INCREMENT and TABLE_ROWS are cached by MySQL 8 (`information_schema_stats_expiry`), current in
  MariaDB; the identity restart also goes past the copied rows, so a stale counter costs nothing.
- STATISTICS.EXPRESSION (MySQL 8 functional key parts) does not exist in MariaDB: such a part arrives as a
  NULL column and the index is listed as not carried.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from .model import (
    SourceColumn,
    SourceForeignKey,
    SourceIndex,
    SourceObject,
    SourceSchema,
    SourceTable,
)
from .names import my_ident, my_literal


class CatalogError(ValueError):
    """A catalog row that does not have the shape catalog_sql gives it."""


def _row(kind: str, fields: dict[str, str]) -> str:
    pairs = ", ".join(f"'{key}', {value}" for key, value in fields.items())
    return f"JSON_OBJECT('kind', '{kind}', {pairs})"


def catalog_sql(database: str) -> str:
    """SQL printing the catalog of `database` as JSON rows, one per line."""
    db = my_literal(database)
    tables = (f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = {db} "
              "AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED')")
    table = _row("table", {
        "table": "t.TABLE_NAME", "type": "t.TABLE_TYPE", "engine": "t.ENGINE", "comment": "t.TABLE_COMMENT",
        "collation": "t.TABLE_COLLATION",
        "charset": "COALESCE(a.CHARACTER_SET_NAME, SUBSTRING_INDEX(t.TABLE_COLLATION, '_', 1))",
        "rows": "t.TABLE_ROWS", "auto_increment": "t.AUTO_INCREMENT"})
    column = _row("column", {
        "table": "TABLE_NAME", "name": "COLUMN_NAME", "position": "ORDINAL_POSITION", "data_type": "DATA_TYPE",
        "column_type": "COLUMN_TYPE", "nullable": "IS_NULLABLE = 'YES'", "default": "COLUMN_DEFAULT",
        "extra": "EXTRA", "generation": "GENERATION_EXPRESSION", "charset": "CHARACTER_SET_NAME",
        "collation": "COLLATION_NAME", "char_length": "CHARACTER_MAXIMUM_LENGTH",
        "precision": "NUMERIC_PRECISION", "scale": "NUMERIC_SCALE", "datetime_precision": "DATETIME_PRECISION",
        "comment": "COLUMN_COMMENT"})
    index = _row("index", {
        "table": "TABLE_NAME", "name": "INDEX_NAME", "non_unique": "NON_UNIQUE", "seq": "SEQ_IN_INDEX",
        "column": "COLUMN_NAME", "sub_part": "SUB_PART", "index_type": "INDEX_TYPE", "order": "COLLATION"})
    foreign_key = _row("foreign_key", {
        "table": "k.TABLE_NAME", "name": "k.CONSTRAINT_NAME", "column": "k.COLUMN_NAME",
        "position": "k.ORDINAL_POSITION", "ref_schema": "k.REFERENCED_TABLE_SCHEMA",
        "ref_table": "k.REFERENCED_TABLE_NAME", "ref_column": "k.REFERENCED_COLUMN_NAME",
        "on_update": "r.UPDATE_RULE", "on_delete": "r.DELETE_RULE"})
    check = _row("check", {"table": "TABLE_NAME", "name": "CONSTRAINT_NAME", "clause": "CHECK_CLAUSE",
                           "level": "LEVEL"})
    view = _row("view", {"name": "TABLE_NAME", "definition": "VIEW_DEFINITION", "check_option": "CHECK_OPTION",
                         "security": "SECURITY_TYPE", "algorithm": "ALGORITHM"})
    routine = _row("routine", {
        "name": "ROUTINE_NAME", "type": "ROUTINE_TYPE", "specific": "SPECIFIC_NAME", "returns": "DTD_IDENTIFIER",
        "definition": "ROUTINE_DEFINITION", "deterministic": "IS_DETERMINISTIC", "data_access": "SQL_DATA_ACCESS",
        "security": "SECURITY_TYPE", "comment": "ROUTINE_COMMENT"})
    parameter = _row("parameter", {
        "specific": "SPECIFIC_NAME", "routine_type": "ROUTINE_TYPE", "position": "ORDINAL_POSITION",
        "mode": "PARAMETER_MODE", "name": "PARAMETER_NAME", "type": "DTD_IDENTIFIER"})
    trigger = _row("trigger", {
        "name": "TRIGGER_NAME", "table": "EVENT_OBJECT_TABLE", "event": "EVENT_MANIPULATION",
        "timing": "ACTION_TIMING", "statement": "ACTION_STATEMENT", "order": "ACTION_ORDER"})
    event = _row("event", {
        "name": "EVENT_NAME", "definition": "EVENT_DEFINITION", "type": "EVENT_TYPE", "execute_at": "EXECUTE_AT",
        "interval_value": "INTERVAL_VALUE", "interval_field": "INTERVAL_FIELD", "starts": "STARTS", "ends": "ENDS",
        "status": "STATUS", "on_completion": "ON_COMPLETION", "comment": "EVENT_COMMENT"})
    sequence = _row("sequence", {"name": "TABLE_NAME", "comment": "TABLE_COMMENT"})
    return "\n".join([
        f"SELECT {_row('server', {'version': 'VERSION()', 'database': db})};",
        f"SELECT {table} FROM information_schema.TABLES t LEFT JOIN "
        "information_schema.COLLATION_CHARACTER_SET_APPLICABILITY a ON a.COLLATION_NAME = t.TABLE_COLLATION "
        f"WHERE t.TABLE_SCHEMA = {db} AND t.TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED');",
        f"SELECT {column} FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = {db} AND TABLE_NAME IN ({tables});",
        f"SELECT {index} FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = {db} AND TABLE_NAME IN ({tables});",
        f"SELECT {foreign_key} FROM information_schema.KEY_COLUMN_USAGE k "
        "JOIN information_schema.REFERENTIAL_CONSTRAINTS r ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA "
        "AND r.TABLE_NAME = k.TABLE_NAME AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME "
        f"WHERE k.TABLE_SCHEMA = {db} AND k.REFERENCED_TABLE_NAME IS NOT NULL;",
        f"SELECT {check} FROM information_schema.CHECK_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = {db};",
        f"SELECT {view} FROM information_schema.VIEWS WHERE TABLE_SCHEMA = {db};",
        f"SELECT {routine} FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = {db};",
        f"SELECT {parameter} FROM information_schema.PARAMETERS WHERE SPECIFIC_SCHEMA = {db} "
        "AND ORDINAL_POSITION > 0;",
        f"SELECT {trigger} FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = {db};",
        f"SELECT {event} FROM information_schema.EVENTS WHERE EVENT_SCHEMA = {db};",
        f"SELECT {sequence} FROM information_schema.TABLES WHERE TABLE_SCHEMA = {db} AND TABLE_TYPE = 'SEQUENCE';",
    ]) + "\n"


# --- reading -----------------------------------------------------------------------------------------------

JSON_CHECK = re.compile(r"json_valid\(`((?:[^`]|``)+)`\)", re.IGNORECASE)


def _text(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return "" if value is None else str(value)


def _optional(row: dict[str, Any], key: str) -> str | None:
    value = row.get(key)
    return None if value is None else str(value)


def _number(row: dict[str, Any], key: str) -> int | None:
    value = row.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise CatalogError(f"catalog row {row.get('kind')} {row.get('name') or row.get('table')}: "
                           f"{key} is not a number: {value!r}") from None


def _need(row: dict[str, Any], *keys: str) -> None:
    missing = [key for key in keys if row.get(key) is None]
    if missing:
        raise CatalogError(f"catalog row {row.get('kind')!r} lacks {', '.join(missing)}: {row!r}"[:400])


def _column(row: dict[str, Any], json_columns: set[str]) -> SourceColumn:
    _need(row, "table", "name", "position", "data_type", "column_type")
    return SourceColumn(
        name=str(row["name"]), position=_number(row, "position") or 0, data_type=str(row["data_type"]).lower(),
        column_type=str(row["column_type"]), nullable=bool(row.get("nullable")), default=_optional(row, "default"),
        extra=_text(row, "extra"), generation_expression=_optional(row, "generation") or None,
        charset=_optional(row, "charset"), collation=_optional(row, "collation"),
        char_length=_number(row, "char_length"), numeric_precision=_number(row, "precision"),
        numeric_scale=_number(row, "scale"), datetime_precision=_number(row, "datetime_precision"),
        comment=_text(row, "comment"),
        is_json=str(row["data_type"]).lower() == "json" or str(row["name"]) in json_columns)


def _indexes(rows: list[dict[str, Any]]) -> tuple[tuple[str, ...], tuple[SourceIndex, ...]]:
    parts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        _need(row, "name", "seq")
        parts[str(row["name"])].append(row)
    primary: tuple[str, ...] = ()
    indexes: list[SourceIndex] = []
    for name in sorted(parts):
        ordered = sorted(parts[name], key=lambda r: _number(r, "seq") or 0)
        columns = tuple((_text(r, "column"), _number(r, "sub_part")) for r in ordered)
        if name == "PRIMARY":
            primary = tuple(column for column, _ in columns)
            continue
        unique = str(ordered[0].get("non_unique")) in ("0", "False", "false")
        descending = tuple(_text(r, "column") for r in ordered if _text(r, "order") == "D")
        indexes.append(SourceIndex(name=name, unique=unique, columns=columns,
                                   kind=_text(ordered[0], "index_type").upper() or "BTREE", descending=descending))
    return primary, tuple(indexes)


def _foreign_keys(rows: list[dict[str, Any]], database: str) -> tuple[SourceForeignKey, ...]:
    parts: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        _need(row, "name", "column", "ref_table", "ref_column")
        parts[str(row["name"])].append(row)
    keys = []
    for name in sorted(parts):
        ordered = sorted(parts[name], key=lambda r: _number(r, "position") or 0)
        first = ordered[0]
        schema = _optional(first, "ref_schema")
        keys.append(SourceForeignKey(
            name=name, columns=tuple(str(r["column"]) for r in ordered), referenced_table=str(first["ref_table"]),
            referenced_columns=tuple(str(r["ref_column"]) for r in ordered),
            on_update=_text(first, "on_update").upper() or "RESTRICT",
            on_delete=_text(first, "on_delete").upper() or "RESTRICT",
            referenced_schema=None if schema in (None, database) else schema))
    return tuple(keys)


def _routine_ddl(row: dict[str, Any], parameters: list[dict[str, Any]]) -> str:
    kind = _text(row, "type").upper() or "PROCEDURE"
    function = kind == "FUNCTION"
    params = ", ".join(
        ("" if function else f"{_text(p, 'mode') or 'IN'} ") + f"{my_ident(_text(p, 'name'))} {_text(p, 'type')}"
        for p in sorted(parameters, key=lambda p: _number(p, "position") or 0))
    head = f"CREATE {kind} {my_ident(_text(row, 'name'))}({params})"
    if function:
        head += f" RETURNS {_text(row, 'returns')}"
    traits = [("DETERMINISTIC" if _text(row, "deterministic").upper() == "YES" else "NOT DETERMINISTIC")]
    if _text(row, "data_access"):
        traits.append(_text(row, "data_access"))
    if _text(row, "security"):
        traits.append(f"SQL SECURITY {_text(row, 'security')}")
    if _text(row, "comment"):
        traits.append(f"COMMENT {_quoted(_text(row, 'comment'))}")
    body = _optional(row, "definition")
    if body is None:
        body = "BEGIN END /* the definition is not visible to this account (not its definer, no privilege) */"
    return "\n".join([head, *("  " + trait for trait in traits), body])


def _quoted(text: str) -> str:
    """A MySQL string literal a person can read in mysql-objects.sql (backslashes and quotes escaped)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def _trigger_ddl(row: dict[str, Any]) -> str:
    return (f"CREATE TRIGGER {my_ident(_text(row, 'name'))} {_text(row, 'timing')} {_text(row, 'event')} "
            f"ON {my_ident(_text(row, 'table'))} FOR EACH ROW\n{_text(row, 'statement')}")


def _event_ddl(row: dict[str, Any]) -> str:
    if _text(row, "type").upper() == "ONE TIME":
        schedule = f"AT {_quoted(_text(row, 'execute_at'))}"
    else:
        schedule = f"EVERY {_quoted(_text(row, 'interval_value'))} {_text(row, 'interval_field')}"
        if _text(row, "starts"):
            schedule += f" STARTS {_quoted(_text(row, 'starts'))}"
        if _text(row, "ends"):
            schedule += f" ENDS {_quoted(_text(row, 'ends'))}"
    completion = _text(row, "on_completion") or "NOT PRESERVE"
    status = {"ENABLED": "ENABLE", "DISABLED": "DISABLE"}.get(_text(row, "status").upper(), "DISABLE ON SLAVE")
    comment = f" COMMENT {_quoted(_text(row, 'comment'))}" if _text(row, "comment") else ""
    return (f"CREATE EVENT {my_ident(_text(row, 'name'))} ON SCHEDULE {schedule} ON COMPLETION {completion} "
            f"{status}{comment}\nDO {_text(row, 'definition')}")


def _view_ddl(row: dict[str, Any]) -> str:
    algorithm = f"ALGORITHM={_text(row, 'algorithm')} " if _text(row, "algorithm") else ""
    security = f"SQL SECURITY {_text(row, 'security')} " if _text(row, "security") else ""
    option = _text(row, "check_option").upper()
    check = f"\nWITH {option} CHECK OPTION" if option and option != "NONE" else ""
    return f"CREATE {algorithm}{security}VIEW {my_ident(_text(row, 'name'))} AS {_text(row, 'definition')}{check}"


def _objects(by_kind: dict[str, list[dict[str, Any]]]) -> tuple[SourceObject, ...]:
    parameters: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in by_kind.get("parameter", []):
        parameters[(_text(row, "routine_type").upper(), _text(row, "specific"))].append(row)
    objects = [SourceObject("view", _text(row, "name"), _view_ddl(row)) for row in by_kind.get("view", [])]
    for row in by_kind.get("routine", []):
        kind = _text(row, "type").upper()
        own = parameters.get((kind, _text(row, "specific") or _text(row, "name")), [])
        objects.append(SourceObject(kind.lower(), _text(row, "name"), _routine_ddl(row, own)))
    objects += [SourceObject("trigger", _text(row, "name"), _trigger_ddl(row), table=_text(row, "table"))
                for row in by_kind.get("trigger", [])]
    objects += [SourceObject("event", _text(row, "name"), _event_ddl(row)) for row in by_kind.get("event", [])]
    objects += [SourceObject("sequence", _text(row, "name"),
                             f"-- MariaDB sequence {my_ident(_text(row, 'name'))}: SHOW CREATE SEQUENCE shows it")
                for row in by_kind.get("sequence", [])]
    order = {"view": 0, "function": 1, "procedure": 2, "trigger": 3, "event": 4, "sequence": 5}
    return tuple(sorted(objects, key=lambda o: (order.get(o.kind, 9), o.name, o.table or "")))


def read_catalog(database: str, rows: list[dict[str, Any]]) -> SourceSchema:
    """The model of `database` from the rows `catalog_sql(database)` printed, in a deterministic order."""
    by_kind: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if not isinstance(row, dict) or "kind" not in row:
            raise CatalogError(f"not a catalog row: {row!r}"[:400])
        by_kind[str(row["kind"])].append(row)
    per_table: dict[str, dict[str, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for kind in ("column", "index", "foreign_key", "check"):
        for row in by_kind.get(kind, []):
            _need(row, "table")
            per_table[str(row["table"])][kind].append(row)
    tables = []
    for row in sorted(by_kind.get("table", []), key=lambda r: _text(r, "table")):
        _need(row, "table")
        name = str(row["table"])
        own = per_table.get(name, {})
        json_columns = {match.group(1).replace("``", "`") for check in own.get("check", [])
                        if (match := JSON_CHECK.fullmatch(_text(check, "clause").strip()))}
        columns = tuple(sorted((_column(c, json_columns) for c in own.get("column", [])), key=lambda c: c.position))
        if not columns:
            raise CatalogError(f"catalog: table {name!r} has no columns in the catalog rows")
        primary, indexes = _indexes(own.get("index", []))
        checks = tuple(sorted((_text(c, "name"), _text(c, "clause")) for c in own.get("check", [])
                              if not JSON_CHECK.fullmatch(_text(c, "clause").strip())))
        tables.append(SourceTable(
            name=name, columns=columns, primary_key=primary, indexes=indexes,
            foreign_keys=_foreign_keys(own.get("foreign_key", []), database), comment=_text(row, "comment"),
            engine=_text(row, "engine"), charset=_optional(row, "charset"), rows_estimate=_number(row, "rows") or 0,
            auto_increment=_number(row, "auto_increment"), checks=checks,
            table_type=_text(row, "type") or "BASE TABLE"))
    version = next((_text(row, "version") for row in by_kind.get("server", [])), "")
    return SourceSchema(database=database, tables=tuple(tables), objects=_objects(by_kind), server_version=version)

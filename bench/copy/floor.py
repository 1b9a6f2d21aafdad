"""The floor: the tool's own SQL through the native clients on the runner, without SSH or the controller.

The same translation copy-db makes (dbupdater.conversion: the source's catalog read here, translated with the
defaults) gives each table's SELECT, whose rows MariaDB writes as PostgreSQL COPY text, and its COPY. Set-up (not
timed): the schema, the enum types and the tables created on the destination. Timed, on the runner (its network
namespace, as the runner user): per table ``mysql --raw --quick < select | psql -c COPY``, then the table's keys
and indexes, up to 4 tables at once (copy-db's default --parallel), then the foreign keys. Left out, which the
tool does: SSH both ways and the pass through the controller, the discarded-rows query, both sides' checksums,
the copy's state and history. The tool's time over the floor is what those cost here.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import replace

from dbupdater.conversion.catalog import catalog_sql, read_catalog
from dbupdater.conversion.model import ConversionPlan, TranslationOptions
from dbupdater.conversion.translate import translate

from ..testbed import Testbed, owner_group, write_private
from .data import mysql_connect

FLOOR = "floor: copy-db's SQL, mysql | psql on the runner"
AT_ONCE = 4
SESSION = ("SET SESSION sql_mode = '', time_zone = '+00:00', net_write_timeout = 86400;\n"
           "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ;\nSTART TRANSACTION WITH CONSISTENT SNAPSHOT;\n")


def conversion_plan(bed: Testbed, database: str) -> ConversionPlan:
    """copy-db's translation of ``database`` (its history tables left out, as copy-db leaves them)."""
    conn = mysql_connect(bed.info)
    rows = []
    try:
        cursor = conn.cursor()
        for statement in catalog_sql(database).split(";\n"):
            if statement.strip():
                cursor.execute(statement)
                rows += [json.loads(str(row[0])) for row in cursor.fetchall()]  # type: ignore[index]
        cursor.close()
    finally:
        conn.close()
    schema = read_catalog(database, rows)
    tables = tuple(t for t in schema.tables if not t.name.startswith("dbupdater_"))
    return translate(replace(schema, tables=tables), TranslationOptions())


def _statements(sql: tuple[str, ...] | list[str]) -> str:
    return "".join(s.rstrip().rstrip(";") + ";\n" for s in sql)


def prepare(bed: Testbed, database: str, dest: str, at_once: int | None) -> list[str]:
    """Create the destination's tables (not timed); the timed command for the runner."""
    plan = conversion_plan(bed, database)
    info, host = bed.info, bed.db_host
    ddl = [f'CREATE SCHEMA "{plan.schema}"']  # each table's types come with it, as copy-db creates them
    for table in plan.tables:
        ddl += [*table.types_sql, table.create_sql]
    bed.rig.psql_exec(_statements(ddl), dest, admin=False)
    folder = bed.runner_dir / "floor"
    folder.mkdir(mode=0o700, exist_ok=True)
    uid = bed.runner_uid
    os.chown(folder, uid, owner_group(uid))
    pgpass = write_private(folder / "pgpass", f"*:*:*:{info.postgres.app_user}:{info.postgres.app_password}\n",
                           owner=uid)
    mysql = (f"mysql --defaults-extra-file={bed.runner_cnf} --default-character-set=utf8mb4 --batch "
             f"--skip-column-names --raw --quick --max-allowed-packet=1G --host={host} --port={info.mysql.port} "
             f"--user={info.mysql.app_user} --database={database}")
    psql = (f"PGPASSFILE={pgpass} psql -X -q -w -v ON_ERROR_STOP=1 --host={host} --port={info.postgres.port} "
            f"--username={info.postgres.app_user} --dbname={dest}")
    for index, table in enumerate(plan.tables, start=1):
        write_private(folder / f"rows_{index}.sql", SESSION + table.rows_sql.rstrip().rstrip(";") + ";\n", owner=uid)
        write_private(folder / f"after_{index}.sql", _statements(table.after_load_sql) or "SELECT 1;\n", owner=uid)
        write_private(folder / f"table_{index}.sh",
                      "set -euo pipefail\n"
                      f"{mysql} < {folder}/rows_{index}.sql | {psql} -c {shlex.quote(table.copy_sql.rstrip(';'))}\n"
                      f"{psql} -f {folder}/after_{index}.sql\n", owner=uid)
    keys = [s for t in plan.tables for s in (*t.foreign_keys_sql, *t.validate_sql)]
    write_private(folder / "keys.sql", _statements(keys) or "SELECT 1;\n", owner=uid)
    script = (f"seq 1 {len(plan.tables)} | xargs -P {at_once or AT_ONCE} -I{{}} bash {folder}/table_{{}}.sh && "
              f"{psql} -f {folder}/keys.sql")
    return [*bed.runner_prefix(1), "bash", "-c", script]

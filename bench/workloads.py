"""The workloads: what runs where, how to start each repetition fresh, how to check the result.

Every target of a workload runs the same ordered scripts (a migration applied to every tenant database), so
each approach can ship one script set. Targets are spread round-robin over the runners.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from environment_creators.errors import RigError

from . import sqlgen
from .settings import CORPUS_DIR
from .testbed import Testbed

SAKILA_DB = "sakila"  # the Sakila scripts create and USE this schema themselves


@dataclass(frozen=True)
class Target:
    database: str
    runner: int  # 1-based rig runner index


@dataclass
class Workload:
    key: str
    title: str
    scripts: list[Path]
    targets: list[Target]
    verify: Callable[[Testbed], str | None]
    created_by_scripts: tuple[str, ...] = ()  # databases the scripts create (dropped before each repetition)
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def multi_target(self) -> bool:
        return len(self.targets) > 1

    @property
    def rows(self) -> int:
        return len(self.targets) * len(self.scripts)

    def runners_used(self) -> int:
        return len({t.runner for t in self.targets})


def registry_db(database: str) -> str:
    """sqitch's registry for one target (one per target: sqitch keys its registry by project, not database)."""
    return f"sqitch_{database}"


def reset(bed: Testbed, workload: Workload) -> None:
    """Fresh, empty target databases (and nothing left by a previous approach); never timed."""
    statements = [f"DROP DATABASE IF EXISTS `{name}`;" for name in workload.created_by_scripts]
    for target in workload.targets:
        statements += [f"DROP DATABASE IF EXISTS `{target.database}`;",
                       f"DROP DATABASE IF EXISTS `{registry_db(target.database)}`;",
                       f"CREATE DATABASE `{target.database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;"]
    bed.sql("\n".join(statements))


def drop(bed: Testbed, workload: Workload) -> None:
    names = [*workload.created_by_scripts,
             *(n for t in workload.targets for n in (t.database, registry_db(t.database)))]
    bed.sql("\n".join(f"DROP DATABASE IF EXISTS `{n}`;" for n in names))


def _mismatch(what: str, got: list[str], want: list[str]) -> str | None:
    return None if got == want else f"{what}: expected {' '.join(want)}, found {' '.join(got) or 'nothing'}"


# --- Sakila ------------------------------------------------------------------------------------------------

def sakila(size: str) -> Workload:
    schema, data = CORPUS_DIR / "mysql" / "sakila-schema.sql", CORPUS_DIR / "mysql" / "sakila-data.sql"
    full = size == "full"
    scripts = [schema, data] if full else [schema]
    title = "Sakila schema + data (1 target, 2 scripts, 3.4 MB)" if full else "Sakila schema (1 target, 1 script)"

    def verify(bed: Testbed) -> str | None:
        if full:
            got = bed.sql("SELECT (SELECT COUNT(*) FROM film), (SELECT COUNT(*) FROM rental), "
                          "(SELECT COUNT(*) FROM payment), (SELECT COUNT(*) FROM film_text)", SAKILA_DB).split()
            return _mismatch("sakila film/rental/payment/film_text rows", got, ["1000", "16044", "16049", "1000"])
        got = bed.sql("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = 'sakila'").split()
        return _mismatch("sakila tables and views", got, ["23"])

    workload = Workload("sakila", title, scripts, [Target("bench_sakila", 1)], verify, created_by_scripts=(SAKILA_DB,))
    missing = [p for p in scripts if not p.is_file()]
    if missing:
        workload.skipped = f"the shared corpus is absent ({', '.join(map(str, missing))})"
    return workload


# --- 100 small DDL scripts ---------------------------------------------------------------------------------

def ddl(size: str, folder: Path) -> Workload:
    count = 100 if size == "full" else 5
    scripts = sqlgen.write_scripts(folder / "ddl", sqlgen.ddl_scripts(count))
    want = sqlgen.ddl_expectation(count)
    database = "bench_ddl"

    def verify(bed: Testbed) -> str | None:
        got = bed.sql(
            "SELECT (SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND "
            "table_type = 'BASE TABLE' AND table_name LIKE 't\\_%'), "
            "(SELECT COUNT(*) FROM information_schema.columns WHERE table_schema = DATABASE() AND "
            "table_name LIKE 't\\_%' AND column_name = 'note'), "
            "(SELECT COUNT(DISTINCT table_name, index_name) FROM information_schema.statistics WHERE "
            "table_schema = DATABASE() AND index_name LIKE 'idx\\_t\\_%'), "
            "(SELECT COUNT(*) FROM information_schema.views WHERE table_schema = DATABASE())", database).split()
        want_list = [str(want["tables"]), str(want["note_columns"]), str(want["code_indexes"]), str(want["views"])]
        return _mismatch("tables/note columns/indexes/views", got, want_list)

    return Workload("ddl", f"{count} small DDL scripts (1 target)", scripts, [Target(database, 1)], verify)


# --- fan-out -----------------------------------------------------------------------------------------------

def fanout(size: str, folder: Path, rig_runners: int) -> Workload:
    databases, runners, customers = (40, 8, 300) if size == "full" else (4, 2, 50)
    runners = min(runners, rig_runners)
    scripts = sqlgen.write_scripts(folder / "fanout", sqlgen.fanout_scripts(customers))
    targets = [Target(f"bench_fan_{i:02d}", 1 + (i - 1) % runners) for i in range(1, databases + 1)]

    def verify(bed: Testbed) -> str | None:
        query = "\nUNION ALL ".join(
            f"SELECT '{t.database}', (SELECT COUNT(*) FROM `{t.database}`.customers WHERE country IS NOT NULL), "
            f"(SELECT COUNT(*) FROM `{t.database}`.orders), (SELECT SUM(orders) FROM `{t.database}`.customer_totals)"
            for t in targets)
        try:
            lines = bed.sql(query).splitlines()
        except RigError as exc:  # a missing table is the usual way a broken run shows
            return f"check query failed: {str(exc).strip()[:300]}"
        want = f"{customers}\t{customers * 2}\t{customers * 2}"
        bad = [line.split("\t", 1)[0] for line in lines if line.split("\t", 1)[-1] != want]
        return f"{len(bad)} database(s) incomplete, e.g. {bad[0]}" if bad else None

    title = (f"fan-out: {databases} databases over {runners} runners x {len(scripts)} scripts "
             f"({databases * len(scripts)} rows)")
    return Workload("fanout", title, scripts, targets, verify)


# --- 1,000 tiny scripts -------------------------------------------------------------------------------------

def many(size: str, folder: Path) -> Workload:
    """Per-script cost with nothing else: each script is one INSERT of one row."""
    count = 1000 if size == "full" else 20
    scripts = sqlgen.write_scripts(folder / "many", sqlgen.tiny_scripts(count))
    database = "bench_many"

    def verify(bed: Testbed) -> str | None:
        got = bed.sql("SELECT COUNT(*), COALESCE(SUM(n), 0) FROM ticks", database).split()
        return _mismatch("ticks rows/sum", got, [str(count - 1), str(count * (count + 1) // 2 - 1)])

    return Workload("many", f"{count:,} tiny scripts (1 target)", scripts, [Target(database, 1)], verify)


# --- wide fan-out ------------------------------------------------------------------------------------------

def wide(size: str, folder: Path, rig_runners: int) -> Workload:
    """Per-database cost: many databases, each a short series (the DDL series of one table: create, add a column,
    an index, 10 rows, a view)."""
    databases, runners = (200, 8) if size == "full" else (6, 2)
    runners = min(runners, rig_runners)
    scripts = sqlgen.write_scripts(folder / "wide", sqlgen.ddl_scripts(sqlgen.DDL_STEPS))
    targets = [Target(f"bench_wide_{i:03d}", 1 + (i - 1) % runners) for i in range(1, databases + 1)]

    def verify(bed: Testbed) -> str | None:
        names = ", ".join(f"'{t.database}'" for t in targets)
        got = bed.sql(f"SELECT COUNT(*) FROM information_schema.views WHERE table_schema IN ({names})").split()
        return _mismatch("views (one per database)", got, [str(databases)])

    title = (f"wide fan-out: {databases} databases over {runners} runners x {len(scripts)} scripts "
             f"({databases * len(scripts)} rows)")
    return Workload("wide", title, scripts, targets, verify)


def build(keys: tuple[str, ...], size: str, folder: Path, rig_runners: int) -> list[Workload]:
    makers: dict[str, Callable[[], Workload]] = {
        "sakila": lambda: sakila(size),
        "ddl": lambda: ddl(size, folder),
        "fanout": lambda: fanout(size, folder, rig_runners),
        "many": lambda: many(size, folder),
        "wide": lambda: wide(size, folder, rig_runners),
    }
    return [makers[key]() for key in keys]

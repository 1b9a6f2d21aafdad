"""The catalog without a server: the SQL's shape, and Sakila-like rows (as MariaDB 10.11 prints them through
catalog_sql, in no particular order) read into the model in a deterministic order, then translated whole."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from dbupdater.conversion.catalog import CatalogError, catalog_sql, read_catalog
from dbupdater.conversion.model import TranslationOptions
from dbupdater.conversion.translate import translate


def table(name: str, auto_increment: int | None = None, rows: int = 0, comment: str = "") -> dict[str, Any]:
    return {"kind": "table", "table": name, "type": "BASE TABLE", "engine": "InnoDB", "comment": comment,
            "collation": "utf8mb4_general_ci", "charset": "utf8mb4", "rows": rows, "auto_increment": auto_increment}


def column(table: str, name: str, position: int, data_type: str, column_type: str, *, nullable: bool = False,
           default: str | None = None, extra: str = "", generation: str | None = None) -> dict[str, Any]:
    text = data_type in ("char", "varchar", "text", "enum", "set", "longtext")
    return {"kind": "column", "table": table, "name": name, "position": position, "data_type": data_type,
            "column_type": column_type, "nullable": nullable, "default": default, "extra": extra,
            "generation": generation, "charset": "utf8mb4" if text else None,
            "collation": "utf8mb4_general_ci" if text else None, "char_length": None, "precision": None,
            "scale": None, "datetime_precision": 0 if data_type == "timestamp" else None, "comment": ""}


def index(table: str, name: str, seq: int, column: str, *, non_unique: int = 1, sub_part: int | None = None,
          index_type: str = "BTREE") -> dict[str, Any]:
    return {"kind": "index", "table": table, "name": name, "non_unique": non_unique, "seq": seq, "column": column,
            "sub_part": sub_part, "index_type": index_type, "order": "A"}


def foreign_key(table: str, name: str, column: str, ref_table: str, ref_column: str, position: int = 1,
                on_delete: str = "RESTRICT") -> dict[str, Any]:
    return {"kind": "foreign_key", "table": table, "name": name, "column": column, "position": position,
            "ref_schema": "sakila", "ref_table": ref_table, "ref_column": ref_column, "on_update": "CASCADE",
            "on_delete": on_delete}


LAST_UPDATE = {"data_type": "timestamp", "column_type": "timestamp", "default": "current_timestamp()",
               "extra": "on update current_timestamp()"}

SAKILA: list[dict[str, Any]] = [
    {"kind": "server", "version": "10.11.19-MariaDB-0+deb12u1", "database": "sakila"},
    table("actor", 201, 200), table("film", 1001, 1000), table("film_actor", None, 5462), table("language", 7, 6),
    column("actor", "actor_id", 1, "smallint", "smallint(5) unsigned", extra="auto_increment"),
    column("actor", "first_name", 2, "varchar", "varchar(45)"),
    column("actor", "last_name", 3, "varchar", "varchar(45)"),
    column("actor", "last_update", 4, **LAST_UPDATE),
    column("film", "film_id", 1, "smallint", "smallint(5) unsigned", extra="auto_increment"),
    column("film", "title", 2, "varchar", "varchar(128)"),
    column("film", "description", 3, "text", "text", nullable=True, default="NULL"),
    column("film", "release_year", 4, "year", "year(4)", nullable=True, default="NULL"),
    column("film", "language_id", 5, "tinyint", "tinyint(3) unsigned"),
    column("film", "original_language_id", 6, "tinyint", "tinyint(3) unsigned", nullable=True, default="NULL"),
    column("film", "rental_duration", 7, "tinyint", "tinyint(3) unsigned", default="3"),
    column("film", "rental_rate", 8, "decimal", "decimal(4,2)", default="4.99"),
    column("film", "length", 9, "smallint", "smallint(5) unsigned", nullable=True, default="NULL"),
    column("film", "replacement_cost", 10, "decimal", "decimal(5,2)", default="19.99"),
    column("film", "rating", 11, "enum", "enum('G','PG','PG-13','R','NC-17')", nullable=True, default="'G'"),
    column("film", "special_features", 12, "set",
           "set('Trailers','Commentaries','Deleted Scenes','Behind the Scenes')", nullable=True, default="NULL"),
    column("film", "last_update", 13, **LAST_UPDATE),
    column("film", "extras", 14, "longtext", "longtext", nullable=True, default="NULL"),
    column("film_actor", "actor_id", 1, "smallint", "smallint(5) unsigned"),
    column("film_actor", "film_id", 2, "smallint", "smallint(5) unsigned"),
    column("film_actor", "last_update", 3, **LAST_UPDATE),
    column("language", "language_id", 1, "tinyint", "tinyint(3) unsigned", extra="auto_increment"),
    column("language", "name", 2, "char", "char(20)"),
    column("language", "last_update", 3, **LAST_UPDATE),
    index("actor", "PRIMARY", 1, "actor_id", non_unique=0),
    index("actor", "idx_actor_last_name", 1, "last_name"),
    index("film", "PRIMARY", 1, "film_id", non_unique=0),
    index("film", "idx_title", 1, "title"),
    index("film", "idx_fk_language_id", 1, "language_id"),
    index("film", "idx_fk_original_language_id", 1, "original_language_id"),
    index("film_actor", "PRIMARY", 2, "film_id", non_unique=0),
    index("film_actor", "PRIMARY", 1, "actor_id", non_unique=0),
    index("film_actor", "idx_fk_film_id", 1, "film_id"),
    index("language", "PRIMARY", 1, "language_id", non_unique=0),
    foreign_key("film", "fk_film_language", "language_id", "language", "language_id"),
    foreign_key("film", "fk_film_language_original", "original_language_id", "language", "language_id"),
    foreign_key("film_actor", "fk_film_actor_actor", "actor_id", "actor", "actor_id"),
    foreign_key("film_actor", "fk_film_actor_film", "film_id", "film", "film_id"),
    {"kind": "check", "table": "film", "name": "extras", "clause": "json_valid(`extras`)", "level": "Column"},
    {"kind": "check", "table": "film", "name": "CONSTRAINT_1", "clause": "`length` > 0", "level": "Table"},
    {"kind": "view", "name": "actor_info",
     "definition": "select `a`.`actor_id` AS `actor_id` from `sakila`.`actor` `a`", "check_option": "NONE",
     "security": "INVOKER", "algorithm": "UNDEFINED"},
    {"kind": "routine", "name": "film_in_stock", "type": "PROCEDURE", "specific": "film_in_stock", "returns": None,
     "definition": "BEGIN\n     SELECT inventory_id\n     FROM inventory;\nEND", "deterministic": "NO",
     "data_access": "READS SQL DATA", "security": "DEFINER", "comment": ""},
    {"kind": "routine", "name": "inventory_in_stock", "type": "FUNCTION", "specific": "inventory_in_stock",
     "returns": "tinyint(1)", "definition": "BEGIN\n    RETURN TRUE;\nEND", "deterministic": "NO",
     "data_access": "READS SQL DATA", "security": "DEFINER", "comment": "it's in"},
    {"kind": "parameter", "specific": "film_in_stock", "routine_type": "PROCEDURE", "position": 3, "mode": "OUT",
     "name": "p_film_count", "type": "int(11)"},
    {"kind": "parameter", "specific": "film_in_stock", "routine_type": "PROCEDURE", "position": 1, "mode": "IN",
     "name": "p_film_id", "type": "int(11)"},
    {"kind": "parameter", "specific": "film_in_stock", "routine_type": "PROCEDURE", "position": 2, "mode": "IN",
     "name": "p_store_id", "type": "int(11)"},
    {"kind": "parameter", "specific": "inventory_in_stock", "routine_type": "FUNCTION", "position": 1, "mode": "IN",
     "name": "p_inventory_id", "type": "int(11)"},
    {"kind": "trigger", "name": "ins_film", "table": "film", "event": "INSERT", "timing": "AFTER",
     "statement": "BEGIN\n    INSERT INTO film_text (film_id) VALUES (new.film_id);\n  END", "order": 1},
    {"kind": "event", "name": "nightly", "definition": "DELETE FROM film WHERE 0", "type": "RECURRING",
     "execute_at": None, "interval_value": "1", "interval_field": "DAY", "starts": "2024-01-01 00:00:00",
     "ends": None, "status": "ENABLED", "on_completion": "NOT PRESERVE", "comment": ""},
]


def shuffled() -> list[dict[str, Any]]:
    rows = [json.loads(json.dumps(row)) for row in SAKILA]  # as they come out of SqlChannel.rows
    random.Random(22).shuffle(rows)
    return rows


def test_catalog_sql_is_json_rows_of_every_kind_for_that_database_only() -> None:
    sql = catalog_sql("sa`ki'la")
    statements = [line for line in sql.splitlines() if line]
    assert all(line.startswith("SELECT JSON_OBJECT('kind', '") and line.endswith(";") for line in statements)
    kinds = {line.split("'kind', '")[1].split("'")[0] for line in statements}
    assert kinds == {"server", "table", "column", "index", "foreign_key", "check", "view", "routine", "parameter",
                     "trigger", "event", "sequence"}
    literal = "_utf8mb4 X'" + b"sa`ki'la".hex().upper() + "'"
    assert sql.count(literal) >= 12 and "sa`ki'la" not in sql
    for needed in ("SUB_PART", "INDEX_TYPE", "NON_UNIQUE", "SEQ_IN_INDEX", "UPDATE_RULE", "DELETE_RULE",
                   "CHECK_CLAUSE", "VIEW_DEFINITION", "ROUTINE_DEFINITION", "ACTION_STATEMENT", "EVENT_DEFINITION",
                   "GENERATION_EXPRESSION", "DATETIME_PRECISION", "AUTO_INCREMENT", "TABLE_ROWS", "COLUMN_COMMENT"):
        assert needed in sql, needed


def test_sakila_rows_read_in_a_deterministic_order() -> None:
    schema = read_catalog("sakila", shuffled())
    assert schema == read_catalog("sakila", shuffled()[::-1])
    assert schema.server_version.startswith("10.11")
    assert [t.name for t in schema.tables] == ["actor", "film", "film_actor", "language"]
    film = schema.table("film")
    assert [c.name for c in film.columns][:3] == ["film_id", "title", "description"]
    assert [c.position for c in film.columns] == list(range(1, 15))
    assert film.primary_key == ("film_id",) and film.auto_increment == 1001 and film.rows_estimate == 1000
    assert [i.name for i in film.indexes] == ["idx_fk_language_id", "idx_fk_original_language_id", "idx_title"]
    assert schema.table("film_actor").primary_key == ("actor_id", "film_id")
    assert [k.name for k in film.foreign_keys] == ["fk_film_language", "fk_film_language_original"]
    assert film.foreign_keys[0].referenced_schema is None and film.foreign_keys[0].on_update == "CASCADE"
    extras = film.columns[-1]
    assert extras.is_json and not film.columns[2].is_json
    assert film.checks == (("CONSTRAINT_1", "`length` > 0"),)
    assert film.columns[2].nullable and film.columns[0].auto_increment and film.columns[0].unsigned
    kinds = [(o.kind, o.name) for o in schema.objects]
    assert kinds == [("view", "actor_info"), ("function", "inventory_in_stock"), ("procedure", "film_in_stock"),
                     ("trigger", "ins_film"), ("event", "nightly")]
    procedure = next(o for o in schema.objects if o.name == "film_in_stock")
    assert procedure.ddl.startswith("CREATE PROCEDURE `film_in_stock`(IN `p_film_id` int(11), IN `p_store_id` "
                                    "int(11), OUT `p_film_count` int(11))\n  NOT DETERMINISTIC\n  READS SQL DATA")
    assert procedure.ddl.endswith("FROM inventory;\nEND")
    function = next(o for o in schema.objects if o.name == "inventory_in_stock")
    assert "CREATE FUNCTION `inventory_in_stock`(`p_inventory_id` int(11)) RETURNS tinyint(1)" in function.ddl
    assert "COMMENT 'it''s in'" in function.ddl
    trigger = next(o for o in schema.objects if o.kind == "trigger")
    assert trigger.table == "film" and trigger.ddl.startswith("CREATE TRIGGER `ins_film` AFTER INSERT ON `film`")
    event = next(o for o in schema.objects if o.kind == "event")
    assert event.ddl.startswith("CREATE EVENT `nightly` ON SCHEDULE EVERY '1' DAY STARTS '2024-01-01 00:00:00'")
    view = schema.objects[0]
    assert view.ddl.startswith("CREATE ALGORITHM=UNDEFINED SQL SECURITY INVOKER VIEW `actor_info` AS select")


def test_sakila_translated_whole() -> None:
    plan = translate(read_catalog("sakila", shuffled()), TranslationOptions())
    assert plan.schema == "sakila"
    assert plan.types_sql == ("CREATE TYPE \"sakila\".\"film_rating\" AS ENUM ('G', 'PG', 'PG-13', 'R', 'NC-17');",
                              'CREATE TYPE "sakila"."film_special_features" AS ENUM (\'Trailers\', \'Commentaries\', '
                              "'Deleted Scenes', 'Behind the Scenes');")
    film = plan.table("film")
    types = {c.name: c.target_type for c in film.columns}
    assert types["film_id"] == "integer" and types["language_id"] == "smallint"
    assert types["rating"] == '"sakila"."film_rating"'
    assert types["special_features"] == '"sakila"."film_special_features"[]'
    assert types["extras"] == "json" and types["release_year"] == "smallint"
    assert types["last_update"] == "timestamptz(0)"
    assert '"rating" "sakila"."film_rating" DEFAULT \'G\'' in film.create_sql
    assert '"rental_rate" numeric(4,2) NOT NULL DEFAULT 4.99' in film.create_sql
    assert '"film_id" integer NOT NULL GENERATED BY DEFAULT AS IDENTITY CHECK ("film_id" BETWEEN 0 AND 65535)' in (
        film.create_sql)
    assert '"last_update" timestamptz(0) NOT NULL DEFAULT CURRENT_TIMESTAMP' in film.create_sql
    assert film.after_load_sql[0] == 'ALTER TABLE "sakila"."film" ADD CONSTRAINT "film_pkey" PRIMARY KEY ("film_id");'
    assert 'CREATE INDEX "film_idx_title" ON "sakila"."film" ("title");' in film.after_load_sql
    assert any("setval" in s and "GREATEST(1001" in s for s in film.after_load_sql)
    assert film.foreign_keys_sql[0] == (
        'ALTER TABLE "sakila"."film" ADD CONSTRAINT "fk_film_language" FOREIGN KEY ("language_id") REFERENCES '
        '"sakila"."language" ("language_id") ON DELETE RESTRICT ON UPDATE CASCADE NOT VALID;')
    assert film.validate_sql[0] == 'ALTER TABLE "sakila"."film" VALIDATE CONSTRAINT "fk_film_language";'
    assert film.copy_sql.startswith('COPY "sakila"."film" ("film_id", "title", ') and film.copy_sql.endswith(
        '"extras") FROM STDIN;')
    assert film.rows_sql.startswith("SELECT CONCAT_WS(CHAR(9 USING utf8mb4), IFNULL(CAST(`film_id` AS CHAR), ")
    assert " FROM `sakila`.`film` WHERE NOT ((IFNULL(LOCATE(X'00', CAST(`title` AS BINARY)) > 0, 1)) OR " in (
        film.rows_sql)
    assert ("(IFNULL(`extras` IS NOT NULL AND ((JSON_VALID(`extras`) = 0) OR (LOCATE(X'00', CAST(`extras` AS BINARY)) "
            "> 0)), 1))") in film.rows_sql
    assert "(IFNULL(`rating` IS NOT NULL AND (`rating` + 0 = 0), 1))" in film.rows_sql
    assert "(IFNULL(`last_update` + INTERVAL 0 DAY IS NULL, 1))" in film.rows_sql
    assert film.rows_sql.split(" WHERE ")[1] == film.source_checksum_sql.split(" WHERE ")[1]
    assert film.discarded_sql.endswith(" FROM `sakila`.`film` WHERE " + film.rows_sql.split(" WHERE NOT (")[1][:-1])
    assert "'last_update: year 0 (PostgreSQL has no year 0)'" in film.discarded_sql
    assert plan.table("actor").followable and all(t.followable for t in plan.tables)
    notes = plan.not_carried()
    assert "film: column last_update: on update current_timestamp() not carried" in notes
    assert "film: check constraint CONSTRAINT_1 not carried: `length` > 0" in notes
    assert "trigger ins_film (on film): not translated; its MySQL DDL is in mysql-objects.sql" in notes
    assert "procedure film_in_stock: not translated; its MySQL DDL is in mysql-objects.sql" in notes
    ddl = plan.ddl()
    order = [ddl.index(marker) for marker in ("CREATE SCHEMA", "CREATE TYPE", "CREATE TABLE", "PRIMARY KEY",
                                              "NOT VALID", "VALIDATE CONSTRAINT")]
    assert order == sorted(order)
    objects = plan.objects_sql()
    assert "DELIMITER ;;\nCREATE TRIGGER `ins_film`" in objects and "CREATE ALGORITHM=UNDEFINED" in objects
    assert objects.count("DELIMITER ;\n") == 4  # procedure, function, trigger, event


def test_bad_rows_are_named() -> None:
    with pytest.raises(CatalogError, match="not a catalog row"):
        read_catalog("db", [{"table": "x"}])
    with pytest.raises(CatalogError, match="table 'lonely' has no columns"):
        read_catalog("db", [table("lonely")])
    with pytest.raises(CatalogError, match=r"column.*lacks data_type"):
        read_catalog("db", [table("t"), {"kind": "column", "table": "t", "name": "c", "position": 1,
                                          "column_type": "int"}])
    with pytest.raises(CatalogError, match="position is not a number"):
        read_catalog("db", [table("t"), column("t", "c", 1, "int", "int") | {"position": "one"}])

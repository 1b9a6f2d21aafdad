"""Check that the sample manifest really changed the rig's databases, independently of the tool's own report.

    python -m environment_creators.verify [--name N] [--root DIR]

One PASS/FAIL line per check; exit status 1 when anything is off.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .errors import RigError
from .rig import Rig

DATABASE = "zipcodes"
STATES, ZIPS, ADDRESSES = 51, 40, 10


@dataclass(frozen=True)
class Check:
    engine: str
    what: str
    sql: str
    expected: str


MYSQL_CHECKS = [
    Check("mysql", "states rows", "SELECT COUNT(*) FROM states", str(STATES)),
    Check("mysql", "zip_codes rows", "SELECT COUNT(*) FROM zip_codes", str(ZIPS)),
    Check("mysql", "test_addresses rows", "SELECT COUNT(*) FROM test_addresses", str(ADDRESSES)),
    Check("mysql", "leading zeros kept (02108 is Boston)", "SELECT city FROM zip_codes WHERE zip = '02108'",
          "Boston"),
    Check("mysql", "location column is POINT NOT NULL",
          "SELECT CONCAT(DATA_TYPE, ' ', IS_NULLABLE) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = "
          "DATABASE() AND TABLE_NAME = 'zip_codes' AND COLUMN_NAME = 'location'", "point NO"),
    Check("mysql", "spatial index on location",
          "SELECT COUNT(*) FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
          "AND TABLE_NAME = 'zip_codes' AND COLUMN_NAME = 'location' AND INDEX_TYPE = 'SPATIAL'", "1"),
    Check("mysql", "every location matches its latitude/longitude",
          "SELECT COUNT(*) FROM zip_codes WHERE location IS NULL OR ABS(ST_X(location) - longitude) > 0.000001 "
          "OR ABS(ST_Y(location) - latitude) > 0.000001", "0"),
    Check("mysql", "nearest zip to Midtown Manhattan",
          "SELECT zip FROM zip_codes ORDER BY ST_Distance(location, POINT(-73.99, 40.75)) LIMIT 1", "10001"),
    Check("mysql", "every test address resolves to a state",
          "SELECT COUNT(*) FROM test_addresses a JOIN zip_codes z ON z.zip = a.zip "
          "JOIN states s ON s.code = z.state_code", str(ADDRESSES)),
]

POSTGRES_CHECKS = [
    Check("postgres", "states rows", "SELECT count(*) FROM states", str(STATES)),
    Check("postgres", "zip_codes rows", "SELECT count(*) FROM zip_codes", str(ZIPS)),
    Check("postgres", "test_addresses rows", "SELECT count(*) FROM test_addresses", str(ADDRESSES)),
    Check("postgres", "leading zeros kept (02108 is Boston)", "SELECT city FROM zip_codes WHERE zip = '02108'",
          "Boston"),
    Check("postgres", "location column is point NOT NULL",
          "SELECT data_type || ' ' || is_nullable FROM information_schema.columns WHERE table_schema = "
          "'public' AND table_name = 'zip_codes' AND column_name = 'location'", "point NO"),
    Check("postgres", "GiST index on location",
          "SELECT count(*) FROM pg_indexes WHERE schemaname = 'public' AND tablename = 'zip_codes' "
          "AND indexdef ILIKE '%USING gist (location)%'", "1"),
    Check("postgres", "every location matches its latitude/longitude",
          "SELECT count(*) FROM zip_codes WHERE location IS NULL OR abs(location[0] - longitude) > 1e-6 "
          "OR abs(location[1] - latitude) > 1e-6", "0"),
    Check("postgres", "nearest zip to Midtown Manhattan",
          "SELECT zip FROM zip_codes ORDER BY location <-> point(-73.99, 40.75) LIMIT 1", "10001"),
    Check("postgres", "every test address resolves to a state",
          "SELECT count(*) FROM test_addresses a JOIN zip_codes z ON z.zip = a.zip "
          "JOIN states s ON s.code = z.state_code", str(ADDRESSES)),
]


def run_checks(rig: Rig, out: Callable[[str], None] = print) -> int:
    """Run every check and report each; returns the number that failed."""
    runners: dict[str, Callable[[str], str]] = {
        "mysql": lambda sql: rig.mysql_exec(sql, DATABASE),
        "postgres": lambda sql: rig.psql_exec(sql, DATABASE),
    }
    failed = 0
    for check in MYSQL_CHECKS + POSTGRES_CHECKS:
        try:
            actual = runners[check.engine](check.sql).strip()
        except RigError as exc:
            actual = f"error: {str(exc).splitlines()[-1] if str(exc) else exc!r}"
        if actual == check.expected:
            out(f"PASS  {check.engine:<9} {check.what}: {actual}")
        else:
            failed += 1
            out(f"FAIL  {check.engine:<9} {check.what}: expected {check.expected!r}, got {actual!r}")
    return failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m environment_creators.verify",
                                     description="Check the rig databases after the sample manifest ran.")
    parser.add_argument("--name", default="dbu")
    parser.add_argument("--root", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        rig = Rig(args.name, args.root)
        rig.info()
    except RigError as exc:
        print(f"verify: error: {exc}", file=sys.stderr)
        return 1
    failed = run_checks(rig)
    total = len(MYSQL_CHECKS) + len(POSTGRES_CHECKS)
    if failed:
        print(f"\n*** VERIFY FAILED: {failed} of {total} checks did not match ***", file=sys.stderr)
        return 1
    print(f"\nverify: all {total} checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())

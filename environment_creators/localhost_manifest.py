"""The sample manifest that runs the zip-code scripts against the local rig.

MySQL rows go through runner 1 with password authentication, PostgreSQL rows through runner 2 with key
authentication, so one run of the sample exercises both ways in.

By default every secret is a ``vault:<mount>/<path>#<key>`` reference into the rig's OpenBao (the runner key
as PEM text from Vault), so the file holds no secret values and can be shown or committed; running it needs
the rig's OpenBao address and token (``python -m environment_creators.rig vault-env`` prints where they are).
``--plain`` writes the literal values instead, for use without Vault. Either way the file is written 0600.

    python -m environment_creators.localhost_manifest [--name N] [--root DIR] [--out manifests/localhost.csv]
                                                      [--plain]
"""

from __future__ import annotations

import argparse
import csv
import io
import os
import sys
from pathlib import Path

from .errors import RigError
from .info import DbInfo, RigInfo, RunnerInfo
from .layout import PROJECT_DIR, SQL_DIR
from .system import write_file

HEADER = ["sql_runner_host", "sql_runner_userid", "sql_runner_password", "sql_runner_port",
          "sql_runner_key_file", "database_type", "database_host", "database_userid", "database_password",
          "port", "database", "sql_script_to_run"]
SCRIPTS = ["01_create_zip_schema.sql", "02_static_data.sql", "03_spatial_change.sql", "04_test_data.sql"]
DATABASE = "zipcodes"
DEFAULT_PATH = PROJECT_DIR / "manifests" / "localhost.csv"


def vault_reference(info: RigInfo, secret: str, key: str) -> str:
    """``vault:secret/dbupdater-rig/<name>/<secret>#<key>``: the KV v2 copy of a seeded rig secret."""
    if not info.vault_prefix:
        raise RigError(f"rig {info.name} has no OpenBao yet; run up again (or write the manifest with --plain)")
    return f"vault:{info.vault_kv2_mount}/{info.vault_prefix}/{secret}#{key}"


def _rows(info: RigInfo, manifest_dir: Path, engine: str, folder: str, runner: RunnerInfo, db: DbInfo,
          *, key_auth: bool, plain: bool) -> list[list[str]]:
    if plain:
        runner_password, key_file, db_password = info.runner_password, info.runner_key_file, db.app_password
    else:
        runner_password = vault_reference(info, "runner", "password")
        key_file = vault_reference(info, "runner", "private_key")
        db_password = vault_reference(info, folder, "password")
    rows = []
    for script in SCRIPTS:
        relative = os.path.relpath(SQL_DIR / folder / script, manifest_dir)
        rows.append([runner.host, info.runner_user, "" if key_auth else runner_password, str(runner.port),
                     key_file if key_auth else "", engine, info.db_host_for_runners, db.app_user, db_password,
                     str(db.port), DATABASE, relative])
    return rows


def write_localhost_manifest(info: RigInfo, path: Path, *, plain: bool = False) -> None:
    """Write the sample manifest (references only unless ``plain``); script paths are relative to its folder."""
    path = Path(path).resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    first = info.runners[0]
    second = info.runners[1] if len(info.runners) > 1 else first
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(_rows(info, path.parent, "mysql", "mysql", first, info.mysql, key_auth=False, plain=plain))
    writer.writerows(_rows(info, path.parent, "postgresql", "postgres", second, info.postgres, key_auth=True,
                           plain=plain))
    # 0600 even with references only: it still names the rig's hosts and accounts.
    write_file(path, out.getvalue(), mode=0o600)


def main(argv: list[str] | None = None) -> int:
    from .rig import Rig

    parser = argparse.ArgumentParser(prog="python -m environment_creators.localhost_manifest",
                                     description="Write the sample manifest for the local rig.")
    parser.add_argument("--name", default="dbu")
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_PATH)
    parser.add_argument("--plain", action="store_true",
                        help="literal passwords and the key file's path instead of vault: references")
    args = parser.parse_args(argv)
    try:
        info = Rig(args.name, args.root).info()
        write_localhost_manifest(info, args.out, plain=args.plain)
    except RigError as exc:
        print(f"localhost_manifest: error: {exc}", file=sys.stderr)
        return 1
    if args.plain:
        print(f"wrote {args.out} (mode 0600: it holds rig passwords)")
    else:
        print(f"wrote {args.out} (mode 0600; secrets are vault: references into {info.vault_addr})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The baseline "like the original script": for every manifest row, a new SSH connection, scp, mysql, close.

    python -m bench.seqclient PLAN.json

No ledger, no reuse, no parallelism: rows run strictly one after another. Unlike the original script it
verifies host keys (known_hosts, unknown keys rejected) and keeps the password off every command line: the
``[client]`` option file is uploaded with mode 0600 next to the script and removed with it. It stops at the
first failing row (exit 1) so a broken run cannot pass for a fast one.

The plan (written by bench/approaches/sequential.py) holds no secret: paths to the key, known_hosts and the
local 0600 option file, and per row the runner, database and script.
"""

from __future__ import annotations

import io
import json
import secrets
import shlex
import sys
from pathlib import Path
from typing import Any

import paramiko
from scp import SCPClient


def run_row(plan: dict[str, Any], row: dict[str, Any], cnf: bytes) -> tuple[int, str]:
    client = paramiko.SSHClient()
    client.load_host_keys(plan["known_hosts"])
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    client.connect(row["host"], int(row["port"]), username=plan["user"], key_filename=plan["key_file"],
                   allow_agent=False, look_for_keys=False, timeout=15, banner_timeout=15, auth_timeout=15)
    try:
        transport = client.get_transport()
        assert transport is not None
        base = f"/tmp/bench-seq-{secrets.token_hex(8)}"
        cred, script = f"{base}.cnf", f"{base}.sql"
        with SCPClient(transport) as scp, open(row["script"], "rb") as handle:
            scp.putfo(io.BytesIO(cnf), cred, mode="0600")
            scp.putfo(handle, script, mode="0600")
        argv = ["mysql", f"--defaults-extra-file={cred}", "--batch", "--show-warnings", "--connect-timeout=15",
                f"--host={plan['db_host']}", f"--port={plan['db_port']}", f"--database={row['database']}"]
        command = (f"{shlex.join(argv)} < {shlex.quote(script)}; rc=$?; rm -f {shlex.quote(cred)} "
                   f"{shlex.quote(script)}; exit $rc")
        channel = transport.open_session()
        channel.set_combine_stderr(True)  # one stream: no deadlock whatever the client writes
        channel.exec_command(command)
        with channel.makefile("rb") as out:
            output = out.read().decode("utf-8", "replace")
        return channel.recv_exit_status(), output
    finally:
        client.close()


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m bench.seqclient PLAN.json", file=sys.stderr)
        return 2
    plan = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    cnf = Path(plan["cnf"]).read_bytes()
    for number, row in enumerate(plan["rows"], start=1):
        try:
            code, output = run_row(plan, row, cnf)
        except (paramiko.SSHException, OSError) as exc:
            print(f"row {number} ({row['database']}, {Path(row['script']).name}): {exc}", file=sys.stderr)
            return 3
        if code != 0:
            print(f"row {number} ({row['database']}, {Path(row['script']).name}) failed with exit {code}:\n"
                  f"{output[-2000:]}", file=sys.stderr)
            return 1
    print(f"{len(plan['rows'])} rows applied")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

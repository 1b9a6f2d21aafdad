"""Optional engine capabilities: small protocols an engine may implement, checked at run time, never methods
every engine must carry (the base class stays what every engine can do).

`Dumps`: the engine's dump and restore tools run on the runner, where its client is (mysqldump and mysql,
pg_dump and pg_restore). Commands follow the engine rules: argv lists, credentials only through the 0600 file
the client gets (`Engine.credentials()`), nothing secret in argv or `Command.env`. A dump writes the backup's
bytes on stdout, compressed on the runner where the tool's own format is not compressed already; a restore
reads them on stdin. Engines without the capability (Oracle: Data Pump writes on the server; SQL Server:
BACKUP DATABASE too) are named in the refusal (exit 2) until their tools can be verified here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

from ..model.command import Command

if TYPE_CHECKING:
    from ..model.specs import DatabaseSpec

# POSIX sh, constant (every value arrives as a positional argument, never inside this text). Runs "$@" (the
# dump tool) with its stdout compressed by zstd where the runner has it (gzip otherwise), and exits with the
# tool's status when the tool failed, else the compressor's: a dump that failed half-way never looks complete.
# The first two bytes on stdout are the compressor's magic number, which tells the reader which one ran.
COMPRESSED_DUMP = (
    'if command -v zstd >/dev/null 2>&1; then z="zstd -q -1 -T0 -c"; else z="gzip -1 -c"; fi\n'
    "exec 4>&1\n"
    'tool=$( { { "$@" 3>&- 4>&-; echo $? >&3; } | $z >&4; } 3>&1 )\n'
    "packed=$?\n"
    '[ "${tool:-1}" -eq 0 ] || exit "${tool:-1}"\n'
    'exit "$packed"\n'
)

# POSIX sh, constant: "$1" names the compression (zstd, gzip, none), "$2" a file of SQL the client runs first
# (what the restore drops beforehand; empty: none); the rest is the restoring client. The backup's bytes on
# stdin are decompressed into the client; a decompressor that finds them cut or corrupt fails the restore even
# when the client accepted what came before (exit 97 then: reported, never success).
DECOMPRESSED_RESTORE = (
    'how=$1; first=$2; shift 2\n'
    'case $how in zstd) un="zstd -q -d -c";; gzip) un="gzip -d -c";; *) un=cat;; esac\n'
    "exec 4>&1\n"
    'unpacked=$( { { if [ -n "$first" ]; then cat -- "$first"; fi; $un 3>&- 4>&-; echo $? >&3; } | '
    '"$@" 3>&- >&4; } 3>&1 )\n'
    "client=$?\n"
    '[ "$client" -eq 0 ] || exit "$client"\n'
    '[ "${unpacked:-1}" -eq 0 ] || exit 97\n'
    "exit 0\n"
)

UNPACK_FAILED = 97  # DECOMPRESSED_RESTORE's exit when the client succeeded but the input was cut or corrupt


def magic_compression(head: bytes) -> str:
    """The compression a dump's first bytes show: zstd, gzip, or none (the tool's own format)."""
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zstd"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    return "none"


@runtime_checkable
class Dumps(Protocol):
    """An engine whose backups its own tools take and restore on the runner."""

    dump_tool: str  # the program the dump runs (its version is recorded)
    dump_format: str  # what the bytes are, before any compression ("sql", "pg_dump custom")

    def dump_command(self, db: DatabaseSpec, credentials_path: str, *, lock_table: str,
                     history_schema: str | None = None) -> Command:
        """The dump of `db` on stdout (a consistent snapshot; routines, triggers and events included), leaving
        out the ledger's lock table (`lock_table`, its bare name, in whichever schema): a restore must never
        overwrite the lock of the run that restores; and the schema `--history-schema` names, where it is
        inside `db` (the history there is made to agree with the backup's head after a restore instead)."""
        ...

    def restore_command(self, db: DatabaseSpec, credentials_path: str, *, compression: str, first: str = "") -> Command:
        """What replaces `db`'s objects with those of a dump read on stdin, compressed as `compression` says;
        `first`: a file on the runner of SQL run before the dump in the same session (drops, `Cleans`)."""
        ...

    def tool_version_command(self) -> Command:
        """The dump tool's version on stdout (no login, no secret)."""
        ...

    def server_version_sql(self) -> str:
        """An SQL expression giving the server's version, for the backup's sidecar."""
        ...


@runtime_checkable
class Cleans(Protocol):
    """An engine whose restoring client replaces only what the dump holds, and which must first drop what the
    database holds beyond it (objects made after the backup would stay). Asked through the target's channel
    before the restore: the objects there; the statements dropping them then run in the restore's own session
    (`restore_command(first=...)`), in its transaction where the engine has one (PostgreSQL)."""

    def objects_sql(self, lock_table: str, history_schema: str | None = None) -> str:
        """SQL printing one JSON row {"kind", "name"} per object of the database (the lock table and the
        history schema excepted)."""
        ...

    def drops_sql(self, objects: list[tuple[str, str]]) -> str:
        """The statements that drop the (kind, name) objects `objects_sql` listed, in an order that works."""
        ...


@runtime_checkable
class ExportsRows(Protocol):
    """An engine whose client writes result rows as raw lines, for copies across engines: the SQL on stdin
    makes the server write each row already in the destination's format, and the client passes it on untouched
    (no header, no escaping, no buffering of the whole result), so the controller only moves bytes."""

    def export_command(self, db: DatabaseSpec, credentials_path: str) -> Command:
        """A client reading SQL on stdin (the caller adds it) in UTF-8, printing each row of every result as one
        line, its columns joined by tabs, exactly as the server sent them, as they come."""
        ...


@runtime_checkable
class ImportsRows(Protocol):
    """An engine whose client takes rows in bulk inside one transaction, for copies across engines."""

    def import_command(self, db: DatabaseSpec, credentials_path: str) -> Command:
        """A client running the SQL read on stdin (the caller streams it) in one session in UTF-8, with `COPY ...
        FROM STDIN` data inline, stopping at the first error. It commits only what the stream itself commits:
        input cut before its COMMIT (a controller killed, a connection lost) changes nothing, so no statement
        of its own may wrap the input in a transaction that a bare end of input would commit."""
        ...

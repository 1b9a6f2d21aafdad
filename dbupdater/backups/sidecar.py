"""What a backup is, beside its bytes: a small JSON document (`<name>.json`) written only once the bytes are
complete and their SHA-256 known, so a sidecar's presence is what makes a backup complete.

It holds no secret: target, engine, server and tool versions, size and SHA-256, the compression, and the
history head of the target when the dump was taken (which scripts the backup holds), which a restore uses to
make the restored database's history say the same.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

SIDECAR_VERSION = 1
SLUG = re.compile(r"[^A-Za-z0-9.-]+")
STAMP = "%Y%m%dT%H%M%S"


@dataclass(frozen=True)
class HeadEntry:
    """A script's latest history entry in the backed-up database."""

    script: str
    checksum: str
    checksum_version: int
    status: str


@dataclass(frozen=True)
class Sidecar:
    name: str
    target: str  # as plan and status name it: engine://host:port/database
    engine: str
    host: str
    port: int
    database: str
    taken_at: str  # UTC, ISO 8601, when the dump started
    seconds: float
    size: int
    sha256: str
    compression: str  # zstd, gzip or none (the tool's own format)
    format: str  # what the bytes are before compression: "sql", "pg_dump custom"
    tool: str
    tool_version: str
    server_version: str
    history: tuple[HeadEntry, ...] = ()
    history_schema: str | None = None
    dbupdater_version: str = ""
    run_id: str = ""
    version: int = SIDECAR_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def applied(self) -> list[str]:
        """The scripts the backup holds as applied, in the order of the history."""
        return [entry.script for entry in self.history if entry.status == "success" and "#" not in entry.script]

    def head(self) -> str:
        """The history head in a few words: how many scripts, and the last one."""
        applied = self.applied
        return f"{len(applied)} script(s), last {applied[-1]}" if applied else "no script applied"

    def to_bytes(self) -> bytes:
        data = asdict(self)
        data["history"] = [asdict(entry) for entry in self.history]
        return (json.dumps(data, indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    @classmethod
    def from_bytes(cls, raw: bytes, where: str) -> Sidecar:
        try:
            data = json.loads(raw.decode("utf-8"))
            if not isinstance(data, dict) or int(data.get("version", 0)) > SIDECAR_VERSION:
                raise ValueError("not a sidecar this release reads")
            history = tuple(HeadEntry(**entry) for entry in data.pop("history", []))
            known = {name for name in cls.__dataclass_fields__ if name != "history"}
            return cls(history=history, **{key: value for key, value in data.items() if key in known})
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{where}: not a backup sidecar ({exc})") from None


def utc_stamp(moment: datetime) -> str:
    """A name's time: UTC to the millisecond, sortable as text."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime(STAMP) + f".{moment.microsecond // 1000:03d}Z"


def target_slug(engine: str, host: str, port: int, database: str) -> str:
    """A target as a file name part: no separator, no space; the same target gives the same slug."""
    return SLUG.sub("_", f"{engine}-{host}-{port}-{database}").strip("_")


def backup_name(engine: str, host: str, port: int, database: str, moment: datetime, extension: str) -> str:
    """`<engine>-<host>-<port>-<database>--<UTC time>.<extension>`: named by target and time, nothing secret."""
    return f"{target_slug(engine, host, port, database)}--{utc_stamp(moment)}.{extension}"


def slug_of(name: str) -> str:
    """The target part of a backup's name (what `--prune --keep N` counts per)."""
    return name.rsplit("--", 1)[0]

"""Backups: where they are kept (`store`: a folder or an S3-compatible bucket, written atomically) and what is
known about each (`sidecar`: target, engine and versions, size, SHA-256, the history head it holds).

The store knows no engine and no transport: it takes bytes as they stream from a runner and gives them back
as a stream, so a dump of many GB passes through with flat memory.
"""

from __future__ import annotations

from .sidecar import HeadEntry, Sidecar, backup_name, utc_stamp
from .store import FolderStore, S3Store, Store, StoreError, Upload, open_store

__all__ = ["FolderStore", "HeadEntry", "S3Store", "Sidecar", "Store", "StoreError", "Upload", "backup_name",
           "open_store", "utc_stamp"]

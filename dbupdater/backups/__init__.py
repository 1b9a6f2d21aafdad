"""Backups: where they are kept (`store`: a folder or an S3-compatible bucket, written atomically) and what is
known about each (`sidecar`: target, engine and versions, size, SHA-256, the history head it holds).

`objects`: a bucket and a prefix, reached as the AWS CLI reaches them (what the store and the upload of run
folders share). The store knows no engine and no transport: it takes bytes as they stream from a runner and
gives them back as a stream, so a dump of many GB passes through with flat memory.
"""

from __future__ import annotations

from .objects import Bucket, Patience, S3Keys, StoreError, is_bucket_url
from .sidecar import HeadEntry, Sidecar, backup_name, utc_stamp
from .store import FolderStore, S3Store, Store, Upload, open_store

__all__ = ["Bucket", "FolderStore", "HeadEntry", "Patience", "S3Keys", "S3Store", "Sidecar", "Store", "StoreError",
           "Upload", "backup_name", "is_bucket_url", "open_store", "utc_stamp"]

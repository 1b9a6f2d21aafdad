"""Where backups are kept: a folder, or an S3-compatible bucket (`s3://bucket/prefix`), written so that
nothing half-written ever looks complete.

- A folder: the bytes go to a hidden temporary file (`.<name>.partial`) and are renamed to their name once
  the dump ended well and their SHA-256 is known; then the sidecar is written (temporary name, rename). A
  backup is complete when its sidecar exists, and only complete backups are listed as backups.
- A bucket: a multipart upload, completed only once the SHA-256 is known (an upload not completed is not an
  object: listing never shows it; a bucket's lifecycle rule for incomplete multipart uploads clears what a
  killed run left); then the sidecar object. boto3 is configured the usual way (environment, ~/.aws files,
  AWS_ENDPOINT_URL for an S3-compatible server), or with the keys it is given.

Memory stays flat: a folder is written as the chunks come, a bucket holds one part (PART bytes) at a time.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .objects import Bucket, S3Keys, StoreError, is_bucket_url
from .sidecar import Sidecar

__all__ = ["CHUNK", "PART", "FolderStore", "S3Keys", "S3Store", "Store", "StoreError", "Upload", "open_store"]

CHUNK = 1 << 20
PART = 16 << 20  # bytes per multipart part: S3 allows 10,000 parts, so a backup may reach 160 GiB
SIDECAR = ".json"
PARTIAL = ".partial"


class Upload(ABC):
    """One backup being written: chunks in, size and SHA-256 counted on the way; `commit` makes it complete
    (bytes under their name, then the sidecar), `abort` leaves nothing that looks complete."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.size = 0
        self._sha = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._sha.hexdigest()

    def write(self, data: bytes) -> None:
        self._sha.update(data)
        self.size += len(data)
        self._write(data)

    @abstractmethod
    def _write(self, data: bytes) -> None: ...

    @abstractmethod
    def commit(self, sidecar: Sidecar) -> None: ...

    @abstractmethod
    def abort(self) -> None: ...


class Store(ABC):
    location: str  # as messages show it: a folder's path, s3://bucket/prefix

    @abstractmethod
    def begin(self, name: str) -> Upload: ...

    @abstractmethod
    def names(self) -> tuple[list[str], list[str]]:
        """The complete backups (those with a sidecar) and the incomplete ones (bytes without a sidecar, or a
        temporary file a killed run left), by name."""

    @abstractmethod
    def sidecar_bytes(self, name: str) -> bytes: ...

    @abstractmethod
    def read(self, name: str) -> Iterator[bytes]:
        """The backup's bytes, a chunk at a time."""

    @abstractmethod
    def delete(self, name: str) -> None:
        """Remove a backup: its sidecar first (it stops being complete), then its bytes."""

    def sidecar(self, name: str) -> Sidecar:
        return Sidecar.from_bytes(self.sidecar_bytes(name), f"{self.location}/{name}{SIDECAR}")

    def sidecars(self) -> list[Sidecar]:
        """Every complete backup's sidecar, oldest first per target (names sort by target, then time)."""
        complete, _ = self.names()
        return [self.sidecar(name) for name in sorted(complete)]

    def find(self, name: str) -> Sidecar:
        """A backup by its name (or a path ending in it); exit 2 naming what exists when there is none."""
        name = name.rsplit("/", 1)[-1].removesuffix(SIDECAR)
        complete, incomplete = self.names()
        if name in complete:
            return self.sidecar(name)
        if name in incomplete:
            raise StoreError(f"{self.location}/{name} is incomplete (its dump did not finish, or it has no sidecar): "
                             "it cannot be restored")
        from ..model.errors import UsageError

        raise UsageError(f"no backup {name!r} in {self.location} (`backups --backup-dir {self.location}` lists them)")


class FolderStore(Store):
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.location = str(folder)

    def begin(self, name: str) -> Upload:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"backup folder {self.folder}: {exc.strerror}") from None
        return _FolderUpload(self.folder, name)

    def names(self) -> tuple[list[str], list[str]]:
        if not self.folder.is_dir():
            return [], []
        files = {entry.name for entry in self.folder.iterdir() if entry.is_file()}
        complete = sorted(name for name in files if name + SIDECAR in files and not name.startswith("."))
        incomplete = sorted({name for name in files if not name.endswith(SIDECAR) and name + SIDECAR not in files
                             and not name.endswith(SIDECAR + ".tmp")} - set(complete))
        return complete, [name.removeprefix(".").removesuffix(PARTIAL) + " (partial)" if name.endswith(PARTIAL)
                          else name for name in incomplete]

    def sidecar_bytes(self, name: str) -> bytes:
        return (self.folder / (name + SIDECAR)).read_bytes()

    def read(self, name: str) -> Iterator[bytes]:
        with (self.folder / name).open("rb") as handle:
            while data := handle.read(CHUNK):
                yield data

    def delete(self, name: str) -> None:
        for path in (self.folder / (name + SIDECAR), self.folder / name):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()


class _FolderUpload(Upload):
    def __init__(self, folder: Path, name: str) -> None:
        super().__init__(name)
        self.folder = folder
        self.partial = folder / f".{name}{PARTIAL}"
        fd = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._handle = os.fdopen(fd, "wb")

    def _write(self, data: bytes) -> None:
        self._handle.write(data)

    def commit(self, sidecar: Sidecar) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())
        self._handle.close()
        os.replace(self.partial, self.folder / self.name)
        temporary = self.folder / f".{self.name}{SIDECAR}.tmp"
        temporary.write_bytes(sidecar.to_bytes())
        os.chmod(temporary, 0o600)
        os.replace(temporary, self.folder / (self.name + SIDECAR))

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self._handle.close()
        with contextlib.suppress(FileNotFoundError):
            self.partial.unlink()


class S3Store(Bucket, Store):
    """Backups in a bucket under a prefix: each a multipart upload completed once its SHA-256 is known, then its
    sidecar object."""

    def __init__(self, url: str, keys: S3Keys | None = None) -> None:
        Bucket.__init__(self, url, keys)

    def begin(self, name: str) -> Upload:
        return _S3Upload(self, name)

    def names(self) -> tuple[list[str], list[str]]:
        found: set[str] = set()
        token: dict[str, str] = {}
        while True:
            page = self.call("listing", "list_objects_v2", Bucket=self.bucket, Prefix=self.prefix, **token)
            for item in page.get("Contents", []):
                rest = item["Key"][len(self.prefix):]
                if "/" not in rest:
                    found.add(rest)
            if not page.get("IsTruncated"):
                break
            token = {"ContinuationToken": page["NextContinuationToken"]}
        complete = sorted(name for name in found if not name.endswith(SIDECAR) and name + SIDECAR in found)
        incomplete = sorted(name for name in found if not name.endswith(SIDECAR) and name + SIDECAR not in found)
        return complete, incomplete

    def sidecar_bytes(self, name: str) -> bytes:
        body = self.call(f"reading {name}{SIDECAR}", "get_object", Bucket=self.bucket, Key=self.key(name + SIDECAR))
        return body["Body"].read()  # type: ignore[no-any-return]

    def read(self, name: str) -> Iterator[bytes]:
        body = self.call(f"reading {name}", "get_object", Bucket=self.bucket, Key=self.key(name))["Body"]
        try:
            yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def delete(self, name: str) -> None:
        for key in (self.key(name + SIDECAR), self.key(name)):
            self.call(f"deleting {key}", "delete_object", Bucket=self.bucket, Key=key)


class _S3Upload(Upload):
    def __init__(self, store: S3Store, name: str) -> None:
        super().__init__(name)
        self.store = store
        self.key = store.key(name)
        self.upload_id: str = store.call(f"starting the upload of {name}", "create_multipart_upload",
                                         Bucket=store.bucket, Key=self.key)["UploadId"]
        self.parts: list[dict[str, Any]] = []
        self.buffer = bytearray()

    def _write(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) >= PART:
            self._send()

    def _send(self) -> None:
        number = len(self.parts) + 1
        answer = self.store.call(f"uploading part {number} of {self.name}", "upload_part", Bucket=self.store.bucket,
                                 Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=bytes(self.buffer))
        self.parts.append({"ETag": answer["ETag"], "PartNumber": number})
        self.buffer = bytearray()

    def commit(self, sidecar: Sidecar) -> None:
        if self.buffer or not self.parts:
            self._send()
        self.store.call(f"completing the upload of {self.name}", "complete_multipart_upload",
                        Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id,
                        MultipartUpload={"Parts": self.parts})
        self.store.call(f"writing {self.name}{SIDECAR}", "put_object", Bucket=self.store.bucket,
                        Key=self.key + SIDECAR, Body=sidecar.to_bytes(), ContentType="application/json")

    def abort(self) -> None:
        self.buffer = bytearray()
        with contextlib.suppress(StoreError):
            self.store.call(f"aborting the upload of {self.name}", "abort_multipart_upload",
                            Bucket=self.store.bucket, Key=self.key, UploadId=self.upload_id)


def open_store(where: str | Path, keys: S3Keys | None = None) -> Store:
    """The store `--backup-dir` names: s3://bucket/prefix, or a folder."""
    text = str(where)
    if is_bucket_url(text):
        return S3Store(text, keys)
    return FolderStore(Path(text).absolute())

"""Run folders sent to an S3-compatible bucket (`--report-dir s3://bucket/prefix`): each run's files under
`<prefix>/<run folder name>/`, so the runs of many CI jobs sit side by side in one bucket as they do in `runs/`.

The bucket is reached as the backup store reaches it (`backups.objects`: the AWS environment and files,
AWS_ENDPOINT_URL, keys from references), but with bounded patience: the upload comes at the end of a run, after
the databases were changed, and like a notification it may cost the run some seconds, never minutes. Each file
is one PUT (an object appears whole or not at all), `run.json` last: a reader that finds it finds the others.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from ..backups.objects import Bucket, Patience

# At most about 3 x (10 + 30) s against a bucket that does not answer; at once when it refuses.
PATIENCE = Patience(connect=10.0, read=30.0, attempts=3)
LAST = "run.json"
CONTENT_TYPES = {".json": "application/json", ".xml": "application/xml; charset=utf-8",
                 ".html": "text/html; charset=utf-8"}


class FolderUpload:
    """Where run folders go in a bucket, and the sending of one (the `Uploads` a `RunFolder` takes)."""

    def __init__(self, bucket: Bucket) -> None:
        self.bucket = bucket

    def where(self, name: str) -> str:
        return f"{self.bucket.location}/{name}/"

    def send(self, name: str, files: dict[str, bytes]) -> None:
        """Every file of the folder `name`, run.json last; the first that fails stops it (a StoreError naming the
        bucket, the file and the server's answer)."""
        bucket = self.bucket
        for file in sorted(files, key=lambda file: (file == LAST, file)):
            kind = CONTENT_TYPES.get(PurePosixPath(file).suffix, "application/octet-stream")
            bucket.call(f"uploading {file}", "put_object", Bucket=bucket.bucket,
                        Key=bucket.key(f"{name}/{file}"), Body=files[file], ContentType=kind)

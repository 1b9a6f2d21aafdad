"""An S3-compatible bucket and a prefix in it (`s3://bucket/prefix`), reached with boto3 configured as the AWS CLI
is: the environment (AWS_ACCESS_KEY_ID, AWS_PROFILE, AWS_ENDPOINT_URL for MinIO, Ceph or another S3-compatible
server), the ~/.aws files; or with the keys it is given (resolved from vault:, env: or file: references, and
masked). What the backup store and the upload of run folders share: one place that knows how we log in to a
bucket and how its refusals read.

Every failure is a `StoreError` naming the location and what was being done, with the server's error code and
message (never a key: botocore's messages hold none).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..model.errors import DbUpdaterError, ExitCode, UsageError

if TYPE_CHECKING:
    from ..model.secret import Secret

SCHEME = "s3://"


class StoreError(DbUpdaterError):
    """A store or bucket cannot be used (a folder that cannot be written, a bucket that refuses us)."""

    exit_code = ExitCode.UNREACHABLE


@dataclass(frozen=True)
class S3Keys:
    """Keys given explicitly (resolved from references); None: boto3 finds them as the AWS CLI would."""

    access_key_id: Secret
    secret_access_key: Secret
    session_token: Secret | None = None


@dataclass(frozen=True)
class Patience:
    """How long a bucket's answer is waited for (botocore's defaults: 60 s per connection and per read, with
    retries): a backup waits as long as it takes, the upload of a run folder at the end of a run is bounded as a
    notification is."""

    connect: float = 60.0
    read: float = 60.0
    attempts: int | None = None  # None: botocore's own retry policy


def is_bucket_url(text: str) -> bool:
    return text.startswith(SCHEME)


def split(url: str) -> tuple[str, str]:
    """The bucket and the prefix (empty, or ending with one /) of `s3://bucket/prefix`; exit 2 without a bucket."""
    bucket, _, prefix = url.removeprefix(SCHEME).partition("/")
    if not bucket:
        raise UsageError(f"{url}: name a bucket (s3://BUCKET/PREFIX)")
    return bucket, prefix.strip("/") + "/" if prefix.strip("/") else ""


class Bucket:
    """A bucket and a prefix in it; the boto3 client is made on first use (so `--help` and `validate` load none)."""

    def __init__(self, url: str, keys: S3Keys | None = None, patience: Patience | None = None) -> None:
        self.bucket, self.prefix = split(url)
        self.location = f"{SCHEME}{self.bucket}/{self.prefix}".rstrip("/")
        self._keys = keys
        self._patience = patience
        self._client: Any = None

    @property
    def client(self) -> Any:
        if self._client is None:
            from ..extras import require

            require("s3")
            import boto3

            keys = self._keys
            given: dict[str, Any] = {} if keys is None else {
                "aws_access_key_id": keys.access_key_id.reveal(),
                "aws_secret_access_key": keys.secret_access_key.reveal(),
                "aws_session_token": keys.session_token.reveal() if keys.session_token else None}
            patience = self._patience
            if patience is not None:
                from botocore.config import Config

                retries = {} if patience.attempts is None else {"retries": {"total_max_attempts": patience.attempts,
                                                                            "mode": "standard"}}
                given["config"] = Config(connect_timeout=patience.connect, read_timeout=patience.read, **retries)
            self._client = boto3.session.Session().client("s3", **given)
        return self._client

    def key(self, name: str) -> str:
        return self.prefix + name

    def call(self, what: str, method: str, **kwargs: Any) -> Any:
        """`client.method(**kwargs)`, its failure a StoreError saying where and what was being done."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return getattr(self.client, method)(**kwargs)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            raise StoreError(f"{self.location}: {what}: {error.get('Code', '?')} {error.get('Message', '')}".rstrip()
                             ) from None
        except BotoCoreError as exc:
            raise StoreError(f"{self.location}: {what}: {exc}") from None

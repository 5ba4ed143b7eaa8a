"""The one S3 client of the project: boto3 against any endpoint (rclone, MinIO, AWS), path-style addressing.

Timeouts and botocore's own retries are modest so that a dead endpoint fails a readiness probe in seconds instead
of hanging it. A Storage built with a Backoff (the worker's and the aggregator's: Settings.retry_budget_s) retries
each operation through transient faults (refused or dropped connections, timeouts, 5xx answers) for that budget,
then raises StorageError naming the operation, the object and the endpoint; one without (the API's) tries once.
Checksums are only sent when S3 requires them because small S3 implementations (rclone's
`serve s3`) do not all accept boto3's newer default trailing checksums.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError, ResponseStreamingError
from botocore.exceptions import ConnectionError as BotoConnectionError

from algocomp.platform.retry import Backoff, RetriesExhausted, describe
from algocomp.platform.settings import Settings

T = TypeVar("T")

STREAM_CHUNK_BYTES = 1024 * 1024
_MISSING_CODES = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}
# answers of a server that is overloaded or failing for a moment: worth another try
_TRANSIENT_CODES = {"InternalError", "ServiceUnavailable", "SlowDown", "RequestTimeout", "Throttling"}


def s3_transient(error: BaseException) -> bool:
    """Whether an S3 error may go away by itself: no connection, a dropped or timed-out one, a 5xx answer."""
    if isinstance(error, (BotoConnectionError, HTTPClientError, ResponseStreamingError)):
        return True
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return int(status) >= 500 or error.response.get("Error", {}).get("Code") in _TRANSIENT_CODES
    return False


def _client(settings: Settings, endpoint_url: str | None) -> Any:
    """A boto3 S3 client of `endpoint_url` with the settings' credentials and region."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint_url or None,
        region_name=settings.s3_region,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
        config=Config(
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=5,
            read_timeout=30,
            retries={"max_attempts": 3, "mode": "standard"},
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


class StorageError(RuntimeError):
    """An S3 operation failed; the message names the bucket, key and endpoint. `transient`: S3 did not answer
    (down, unreachable, failing with 5xx), so the same operation may succeed later."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient

    def __reduce__(self) -> tuple[type[StorageError], tuple[str], dict[str, bool]]:
        return type(self), (str(self),), {"transient": self.transient}


class Storage:
    """Objects of one bucket on one S3 endpoint, as configured in Settings."""

    def __init__(self, settings: Settings, backoff: Backoff | None = None) -> None:
        # no Backoff: one try (what a request of the API wants); the worker's retries for its budget
        self.backoff = backoff or Backoff(budget_s=0)
        self.bucket = settings.s3_bucket
        self.endpoint_url = settings.s3_endpoint_url
        self.public_endpoint_url = settings.s3_public_endpoint_url or settings.s3_endpoint_url
        self._client = _client(settings, settings.s3_endpoint_url)
        # A presigned URL signs its host, so links for clients are signed by a client of the endpoint they reach;
        # signing is local, this client never connects.
        self._public_client = (
            _client(settings, self.public_endpoint_url)
            if self.public_endpoint_url != settings.s3_endpoint_url
            else self._client
        )

    @property
    def client(self) -> Any:
        """The underlying boto3 client, for operations this class does not wrap."""
        return self._client

    def _where(self, key: str | None = None) -> str:
        target = f"s3://{self.bucket}/{key}" if key is not None else f"s3://{self.bucket}"
        return f"{target} at {self.endpoint_url or 'AWS'}"

    def with_backoff(self, backoff: Backoff) -> Storage:
        """The same client and bucket, retrying with `backoff` (e.g. Backoff(0): one try, for best-effort work)."""
        twin = copy.copy(self)
        twin.backoff = backoff
        return twin

    def _call(self, action: str, key: str | None, operation: Callable[[], T]) -> T:
        """`operation()` retried through transient faults within the backoff's budget. A transient fault that
        outlasts it becomes a StorageError naming S3, the action, the object and the endpoint; other errors (a
        ClientError such as NoSuchKey) go through for the caller to describe."""
        try:
            return self.backoff.call(operation, transient=s3_transient, what=f"S3 {action} {self._where(key)}")
        except RetriesExhausted as exhausted:
            raise StorageError(
                f"cannot {action} {self._where(key)}: S3 did not answer ({exhausted.tries} tries over "
                f"{exhausted.elapsed_s:.1f} s): {describe(exhausted.last)}",
                transient=True,
            ) from exhausted.last
        except Exception as error:
            if s3_transient(error):  # one try only (no budget)
                message = f"cannot {action} {self._where(key)}: S3 did not answer: {describe(error)}"
                raise StorageError(message, transient=True) from error
            raise

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (idempotent: safe for every process at start-up)."""
        try:
            self._call("check the bucket", None, lambda: self._client.head_bucket(Bucket=self.bucket))
            return
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in _MISSING_CODES:
                raise StorageError(f"cannot check bucket {self._where()}: {error}") from error
        try:
            self._call("create the bucket", None, lambda: self._client.create_bucket(Bucket=self.bucket))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise StorageError(f"cannot create bucket {self._where()}: {error}") from error

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store `data` under `key` (overwriting: keys are deterministic, a retry writes the same object)."""
        try:
            self._call(
                "write",
                key,
                lambda: self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type),
            )
        except ClientError as error:
            raise StorageError(f"cannot write {self._where(key)}: {error}") from error

    def put_file(self, key: str, path: Path | str, content_type: str | None = None) -> None:
        """Upload a local file under `key`."""
        from algocomp.platform.storage.keys import content_type as content_type_of

        path = Path(path)

        def upload() -> None:  # the file is opened afresh for each try
            with path.open("rb") as body:
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentLength=path.stat().st_size,
                    ContentType=content_type or content_type_of(path.name),
                )

        try:
            self._call(f"upload {path.name} to", key, upload)
        except ClientError as error:
            raise StorageError(f"cannot upload {path} to {self._where(key)}: {error}") from error

    def get_bytes(self, key: str) -> bytes:
        """The whole object; raises KeyError if it does not exist."""
        try:
            # the body is read inside the retried operation: a connection dropped mid-body is retried too
            return self._call("read", key, lambda: self._client.get_object(Bucket=self.bucket, Key=key)["Body"].read())
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING_CODES:
                raise KeyError(f"no object {self._where(key)}") from error
            raise StorageError(f"cannot read {self._where(key)}: {error}") from error

    def open_stream(self, key: str, chunk_size: int = STREAM_CHUNK_BYTES) -> tuple[Iterator[bytes], int, str]:
        """(chunks, content length, content type) of an object, to stream it without holding it in memory.

        Raises KeyError if the object does not exist (before any chunk is produced, so an API can answer 404).
        """
        try:
            response = self._call("read", key, lambda: self._client.get_object(Bucket=self.bucket, Key=key))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING_CODES:
                raise KeyError(f"no object {self._where(key)}") from error
            raise StorageError(f"cannot read {self._where(key)}: {error}") from error
        body = response["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(chunk_size)
            finally:
                body.close()

        return chunks(), int(response["ContentLength"]), response.get("ContentType") or "application/octet-stream"

    def exists(self, key: str) -> bool:
        try:
            self._call("check", key, lambda: self._client.head_object(Bucket=self.bucket, Key=key))
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING_CODES:
                return False
            raise StorageError(f"cannot check {self._where(key)}: {error}") from error

    def list(self, prefix: str = "") -> list[str]:
        """Every key under `prefix`, sorted."""

        def list_all() -> list[str]:  # a listing cut short is started over
            pages = self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix)
            return [item["Key"] for page in pages for item in page.get("Contents", [])]

        try:
            return sorted(self._call("list", prefix, list_all))
        except ClientError as error:
            raise StorageError(f"cannot list {self._where(prefix)}: {error}") from error

    def delete(self, key: str) -> None:
        """Delete one object (nothing happens when it does not exist)."""
        try:
            self._call("delete", key, lambda: self._client.delete_object(Bucket=self.bucket, Key=key))
        except ClientError as error:
            raise StorageError(f"cannot delete {self._where(key)}: {error}") from error

    def presigned_url(self, key: str, expires_s: int = 3600) -> str:
        """A time-limited GET link to an object, for clients that download directly from S3: signed for the
        public endpoint (Settings.s3_public_endpoint_url) when one is set."""
        return self._public_client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_s
        )

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix`; returns how many were deleted."""
        if not prefix:
            raise ValueError("refusing to delete with an empty prefix (that would empty the bucket)")
        keys = self.list(prefix)
        # one DeleteObject per key: DeleteObjects needs a Content-MD5 some endpoints are strict about
        for key in keys:
            self.delete(key)
        return len(keys)

    def ping(self) -> None:
        """Raise StorageError unless the endpoint answers and the bucket exists (for /readyz)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as error:  # connection errors are not ClientError; readiness wants them all
            raise StorageError(f"S3 not reachable: {self._where()}: {error}") from error

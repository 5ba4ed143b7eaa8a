"""The one S3 client of the project: boto3 against any endpoint (rclone, MinIO, AWS), path-style addressing.

Timeouts and retries are modest so that a dead endpoint fails a readiness probe or an upload in seconds instead
of hanging a worker; checksums are only sent when S3 requires them because small S3 implementations (rclone's
`serve s3`) do not all accept boto3's newer default trailing checksums.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from algocomp.platform.settings import Settings

STREAM_CHUNK_BYTES = 1024 * 1024
_MISSING_CODES = {"404", "NoSuchKey", "NotFound", "NoSuchBucket"}


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
    """An S3 operation failed; the message names the bucket, key and endpoint."""


class Storage:
    """Objects of one bucket on one S3 endpoint, as configured in Settings."""

    def __init__(self, settings: Settings) -> None:
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

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (idempotent: safe for every process at start-up)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in _MISSING_CODES:
                raise StorageError(f"cannot check bucket {self._where()}: {error}") from error
        try:
            self._client.create_bucket(Bucket=self.bucket)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                raise StorageError(f"cannot create bucket {self._where()}: {error}") from error

    def put_bytes(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Store `data` under `key` (overwriting: keys are deterministic, a retry writes the same object)."""
        try:
            self._client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except ClientError as error:
            raise StorageError(f"cannot write {self._where(key)}: {error}") from error

    def put_file(self, key: str, path: Path | str, content_type: str | None = None) -> None:
        """Upload a local file under `key`."""
        from algocomp.platform.storage.keys import content_type as content_type_of

        path = Path(path)
        try:
            with path.open("rb") as body:
                self._client.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    ContentLength=path.stat().st_size,
                    ContentType=content_type or content_type_of(path.name),
                )
        except ClientError as error:
            raise StorageError(f"cannot upload {path} to {self._where(key)}: {error}") from error

    def get_bytes(self, key: str) -> bytes:
        """The whole object; raises KeyError if it does not exist."""
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING_CODES:
                raise KeyError(f"no object {self._where(key)}") from error
            raise StorageError(f"cannot read {self._where(key)}: {error}") from error
        return response["Body"].read()

    def open_stream(self, key: str, chunk_size: int = STREAM_CHUNK_BYTES) -> tuple[Iterator[bytes], int, str]:
        """(chunks, content length, content type) of an object, to stream it without holding it in memory.

        Raises KeyError if the object does not exist (before any chunk is produced, so an API can answer 404).
        """
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key)
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
            self._client.head_object(Bucket=self.bucket, Key=key)
            return True
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING_CODES:
                return False
            raise StorageError(f"cannot check {self._where(key)}: {error}") from error

    def list(self, prefix: str = "") -> list[str]:
        """Every key under `prefix`, sorted."""
        keys: list[str] = []
        try:
            for page in self._client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(item["Key"] for item in page.get("Contents", []))
        except ClientError as error:
            raise StorageError(f"cannot list {self._where(prefix)}: {error}") from error
        return sorted(keys)

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
        for start in range(0, len(keys), 1000):
            batch = keys[start : start + 1000]
            try:
                # one DeleteObject per key: DeleteObjects needs a Content-MD5 some endpoints are strict about
                for key in batch:
                    self._client.delete_object(Bucket=self.bucket, Key=key)
            except ClientError as error:
                raise StorageError(f"cannot delete under {self._where(prefix)}: {error}") from error
        return len(keys)

    def ping(self) -> None:
        """Raise StorageError unless the endpoint answers and the bucket exists (for /readyz)."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except Exception as error:  # connection errors are not ClientError; readiness wants them all
            raise StorageError(f"S3 not reachable: {self._where()}: {error}") from error

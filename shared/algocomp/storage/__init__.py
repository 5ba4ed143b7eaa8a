"""The one S3 client and the one place that knows S3 keys (see docs/architecture.md, "S3 keys")."""

from algocomp.storage.keys import (
    ARTIFACTS,
    content_type,
    run_key,
    run_prefix,
    upload_run_folder,
)
from algocomp.storage.s3 import Storage, StorageError

__all__ = [
    "ARTIFACTS",
    "Storage",
    "StorageError",
    "content_type",
    "run_key",
    "run_prefix",
    "upload_run_folder",
]

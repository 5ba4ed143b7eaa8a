"""The one S3 client and the one place that knows S3 keys (see docs/architecture.md, "S3 keys")."""

from algocomp.extras import raise_missing_extra

try:
    from algocomp.platform.storage.keys import (
        ARTIFACTS,
        content_type,
        run_key,
        run_prefix,
        upload_run_folder,
    )
    from algocomp.platform.storage.s3 import Storage, StorageError
except ImportError as _error:
    raise_missing_extra(_error, "server", "algocomp.platform.storage (the services' S3 client)")

__all__ = [
    "ARTIFACTS",
    "Storage",
    "StorageError",
    "content_type",
    "run_key",
    "run_prefix",
    "upload_run_folder",
]

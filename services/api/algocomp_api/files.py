"""Streaming a stored object (a run's artifact, a sweep's file) from S3 to the client."""

from __future__ import annotations

from fastapi.responses import StreamingResponse

from algocomp.platform.storage import Storage
from algocomp_api.errors import ApiError

# What S3 endpoints answer for an object stored without a content type.
_UNTYPED = {None, "", "binary/octet-stream", "application/octet-stream"}


def stream_object(
    storage: Storage, key: str, *, filename: str, media_type: str, missing: ApiError
) -> StreamingResponse:
    """The object at `key` as a download named `filename`; `missing` is raised when storage has no such object.
    The stored content type wins over `media_type` when the writer recorded one."""
    try:
        chunks, length, stored_type = storage.open_stream(key)
    except KeyError as absent:
        raise missing from absent
    return StreamingResponse(
        chunks,
        media_type=media_type if stored_type in _UNTYPED else stored_type,
        headers={"Content-Length": str(length), "Content-Disposition": f'attachment; filename="{filename}"'},
    )

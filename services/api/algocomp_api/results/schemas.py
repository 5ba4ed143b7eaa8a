"""Response shapes of /results."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class ArtifactLink(BaseModel):
    key: str = Field(description="the object's key in the bucket")
    url: str = Field(description="download through the API")
    presigned_url: str | None = Field(
        description="time-limited direct download from S3; null for a plot not drawn yet (its `url` draws it on "
        "first request, then it is stored and linked here)"
    )
    content_type: str


class ResultOut(BaseModel):
    """A succeeded run's summary (the library's summary.json) and links to its files."""

    run_id: uuid.UUID
    status: str
    summary: dict[str, Any]
    artifacts: dict[str, ArtifactLink]
    created_at: datetime

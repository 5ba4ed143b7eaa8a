"""The Python client of the algocomp API (see algocomp.client.api): results and panels as pandas DataFrames."""

from algocomp.client.api import (
    DEFAULT_BASE_URL,
    TERMINAL_STATUSES,
    ApiError,
    ApiUnreachable,
    Client,
    parse_sse,
)

__all__ = ["DEFAULT_BASE_URL", "TERMINAL_STATUSES", "ApiError", "ApiUnreachable", "Client", "parse_sse"]

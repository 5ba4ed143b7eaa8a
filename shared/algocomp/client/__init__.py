"""The Python client of the algocomp API (see algocomp.client.api): results and panels as pandas DataFrames.

It needs the `client` extra (httpx): `pip install 'algocomp[client]'`. The client itself is loaded on first use
of one of its names, so that the constants below (which the `algocomp` command reads when it builds its parser)
are available without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from algocomp.client.constants import DEFAULT_BASE_URL, TERMINAL_STATUSES

if TYPE_CHECKING:
    from algocomp.client.api import ApiError, ApiUnreachable, Client, parse_sse

_API_NAMES = frozenset({"ApiError", "ApiUnreachable", "Client", "parse_sse"})

__all__ = ["DEFAULT_BASE_URL", "TERMINAL_STATUSES", "ApiError", "ApiUnreachable", "Client", "parse_sse"]


def __getattr__(name: str) -> Any:
    """`from algocomp.client import Client` imports algocomp.client.api (and httpx) on demand; without the
    client extra it raises algocomp.extras.MissingExtra, which says what to install."""
    if name in _API_NAMES:
        from algocomp.client import api

        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

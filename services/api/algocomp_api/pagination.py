"""Limit/offset pagination shared by the list endpoints: the page's items plus the total, so a client knows
when to stop."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from algocomp_api.deps import SettingsDep
from algocomp_api.errors import ApiError

DEFAULT_PAGE_SIZE = 50

Item = TypeVar("Item")


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    total: int
    limit: int
    offset: int


class PageParams(BaseModel):
    limit: int
    offset: int


def page_params(
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, description="items per page")] = DEFAULT_PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, description="items skipped before this page")] = 0,
) -> PageParams:
    if limit > settings.api_page_size_max:
        raise ApiError(
            422, "invalid_request", f"limit is at most {settings.api_page_size_max} (got {limit})", field="limit"
        )
    return PageParams(limit=limit, offset=offset)


Pagination = Annotated[PageParams, Depends(page_params)]

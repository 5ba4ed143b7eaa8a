"""Limit/offset pagination shared by the list endpoints: the page's items plus the total, so a client knows
when to stop."""

from __future__ import annotations

from typing import Annotated, Generic, TypeVar

from fastapi import Depends, Query
from pydantic import BaseModel

from algocomp_api.deps import SettingsDep
from algocomp_api.limits import check_at_most

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


async def page_params(
    settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, description="items per page")] = DEFAULT_PAGE_SIZE,
    offset: Annotated[int, Query(ge=0, description="items skipped before this page")] = 0,
) -> PageParams:
    check_at_most(limit, settings.api_page_size_max, "limit", "limit (items per page)", "api_page_size_max")
    check_at_most(offset, settings.max_page_offset, "offset", "offset", "max_page_offset")
    return PageParams(limit=limit, offset=offset)


Pagination = Annotated[PageParams, Depends(page_params)]

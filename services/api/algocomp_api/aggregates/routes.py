"""HTTP route of GET /aggregates."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import PlainTextResponse

from algocomp_api.aggregates import service
from algocomp_api.aggregates.schemas import AggregateOut
from algocomp_api.auth import Caller
from algocomp_api.deps import DbSession
from algocomp_api.errors import error_responses
from algocomp_api.pagination import Page, Pagination

router = APIRouter(prefix="/aggregates", tags=["aggregates"])


@router.get(
    "",
    response_model=Page[AggregateOut],
    responses=error_responses(
        {
            200: {
                "description": "one row per finished run with its coordination indicators",
                "content": {
                    "application/json": {},
                    "text/csv": {"example": "run_id,scenario_hash,status,sessions,sweep_id,cell,profit_gain,...\n"},
                },
            }
        }
    ),
    summary="Per-run coordination indicators (JSON page, or CSV with Accept: text/csv)",
)
def list_aggregates(
    session: DbSession,
    caller: Caller,
    page: Pagination,
    sweep_id: Annotated[uuid.UUID | None, Query(description="only runs of this sweep")] = None,
    scenario_hash: Annotated[str | None, Query(description="only runs of this scenario fingerprint")] = None,
    status: Annotated[str | None, Query(description="only runs that ended in this status")] = None,
    accept: Annotated[str | None, Header()] = None,
) -> Response | Page[AggregateOut]:
    """Rows appear once the aggregator has processed the run. The CSV form holds the same page (the total is in
    the X-Total-Count header), so a client pages through both forms alike."""
    rows, total = service.list_aggregates(
        session,
        team_id=caller.team_id,
        sweep_id=sweep_id,
        scenario_hash=scenario_hash,
        status=status,
        limit=page.limit,
        offset=page.offset,
    )
    if accept and "text/csv" in accept:
        return PlainTextResponse(
            service.aggregates_csv(rows),
            media_type="text/csv",
            headers={"X-Total-Count": str(total), "Content-Disposition": 'attachment; filename="aggregates.csv"'},
        )
    return Page[AggregateOut](items=rows, total=total, limit=page.limit, offset=page.offset)

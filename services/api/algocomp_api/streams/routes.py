"""HTTP route of /streams: Server-Sent Events of a run's progress."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Header, Query
from sse_starlette import EventSourceResponse

from algocomp.platform.logs import bind_run
from algocomp_api.auth import Caller
from algocomp_api.deps import Resources, UnitOfWorkDep
from algocomp_api.errors import error_responses, not_found
from algocomp_api.streams import service

log = logging.getLogger("algocomp.api.streams")

router = APIRouter(prefix="/streams", tags=["streams"])

_SSE_DESCRIPTION = """Server-Sent Events of a run's progress. Each message has `id` (the Redis stream id, send it
back as `Last-Event-ID` to resume), `event` (`queued`, `started`, `progress`, then one of `succeeded`, `failed`,
`cancelled`) and `data` (JSON; `progress` carries sessions_done, sessions_total, share_done, periods_done,
mean_price, profit_gain, elapsed_s). The stream closes after the terminal event; comments are sent as
keep-alive pings (every 15 s at most), so a silent run keeps its stream open. When the server ends a stream early
(Redis lost, API restarting) the client reconnects with its Last-Event-ID and misses nothing."""


@router.get(
    "/{run_id}",
    response_class=EventSourceResponse,
    responses=error_responses(
        {
            200: {
                "content": {
                    "text/event-stream": {
                        "example": "id: 1764112345678-0\nevent: progress\n"
                        'data: {"share_done": 0.5, "mean_price": 1.81}\n\n'
                    }
                },
                "description": "the event stream",
            },
            404: {"description": "no run with this id"},
            422: {"description": "Last-Event-ID is not a stream id"},
        }
    ),
    summary="Follow a run's progress (SSE)",
    description=_SSE_DESCRIPTION,
)
async def stream_run(
    resources: Resources,
    caller: Caller,
    uow: UnitOfWorkDep,
    run_id: uuid.UUID,
    last_event_id_header: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
    last_event_id: Annotated[
        str | None, Query(description="resume after this event id (for clients that cannot set Last-Event-ID)")
    ] = None,
) -> EventSourceResponse:
    after_id = service.check_last_event_id(last_event_id_header or last_event_id)
    if not await service.in_request_session(service.run_exists, uow.runs, run_id, caller.team_id):
        raise not_found("run", run_id)
    load_state = service.run_state_loader(resources.sessions, run_id)

    async def messages() -> AsyncIterator[dict[str, Any]]:
        with bind_run(run_id):
            try:
                # this process's one reader of the run, shared with every other client following it
                async with aclosing(resources.run_fanout.events(run_id, after_id, load_state)) as events:
                    async for event in events:
                        message: dict[str, Any] = {"event": event.event, "data": json.dumps(event.data)}
                        if event.id:  # a synthetic terminal event has no stream id; the client keeps its last one
                            message["id"] = event.id
                        yield message
            except redis.RedisError:
                # the headers are sent, so no error response is possible: end the stream; an EventSource
                # reconnects with its Last-Event-ID and misses nothing once Redis is back
                log.warning("lost Redis while streaming the events of run %s", run_id, exc_info=True)

    return EventSourceResponse(
        messages(), ping=resources.settings.sse_ping_interval_s, headers={"Cache-Control": "no-store"}
    )

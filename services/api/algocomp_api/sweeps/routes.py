"""HTTP routes of /sweeps and of the sweep stream /streams/sweeps/{id}."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Response, status
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from sse_starlette import EventSourceResponse

from algocomp.platform.db import TERMINAL_STATUSES
from algocomp.platform.db.sweeps import SweepRepository
from algocomp.platform.storage import content_type
from algocomp.platform.storage.keys import SWEEP_ARTIFACTS
from algocomp_api.auth import Caller
from algocomp_api.deps import Resources, SettingsDep, StorageDep, UnitOfWorkDep
from algocomp_api.errors import ApiError, error_responses, not_found
from algocomp_api.files import stream_object
from algocomp_api.idempotency import IDEMPOTENCY_422, IDEMPOTENCY_RESPONSES, IdempotencyKey, claim_or_replay, remember
from algocomp_api.pagination import Page, Pagination
from algocomp_api.streams.service import in_request_session
from algocomp_api.sweeps import service
from algocomp_api.sweeps.schemas import (
    EXAMPLE_SWEEP,
    SweepAccepted,
    SweepCreate,
    SweepDetail,
    SweepOut,
    SweepPresetOut,
)

router = APIRouter(tags=["sweeps"])

SWEEP_EXAMPLES: dict[str, Any] = {
    "regulation": {"summary": "learning rate x price cap, two seeds", "value": EXAMPLE_SWEEP},
    "preset": {
        "summary": "a built-in sweep (Calvano et al.'s Figure 1), with fewer sessions per cell",
        "value": {"sweep_preset": "calvano-2020-figure1", "sessions": 10},
    },
    "stored": {
        "summary": "a stored scenario, three seeds per cell",
        "value": {
            "scenario_id": "6f1c0a4e-3b7d-4f0e-9a51-2c8d7e5b1a90",
            "grid": {"agents.alpha": [0.05, 0.1, 0.15], "agents.beta": [1e-5, 4e-6]},
            "seeds_per_cell": 3,
        },
    },
}

_SSE_DESCRIPTION = """Server-Sent Events of a sweep's progress. Whenever its runs' aggregate state changes the
stream sends `progress` with `data` = {status, runs, counts (runs per status), progress (mean share done),
cells: [{index, counts, progress}]}; when every run is over it sends the terminal event (`succeeded`, `failed`
or `cancelled`, same data) and closes. `id` is a counter; a client reconnecting with Last-Event-ID gets the
current state first and ids continue from it."""


@router.post(
    "/sweeps",
    response_model=SweepAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(
        {
            404: {"description": "scenario_id names no stored scenario"},
            422: {
                "description": "the grid, a cell or an override does not validate; error.field names the field "
                "and error.cell the cell" + IDEMPOTENCY_422
            },
            **IDEMPOTENCY_RESPONSES,
        }
    ),
    summary="Queue a grid of runs of a scenario",
)
def create_sweep(
    uow: UnitOfWorkDep,
    caller: Caller,
    settings: SettingsDep,
    response: Response,
    request: Annotated[SweepCreate, Body(openapi_examples=SWEEP_EXAMPLES)],
    idempotency: IdempotencyKey,
) -> SweepAccepted | JSONResponse:
    """Validate every cell x seed, store the sweep and all its runs as queued in one transaction, and only once
    that is committed send the runs' tasks (enqueue after commit). Follow it at links.stream, read it at
    links.self.

    With an Idempotency-Key, a retry of the request gets this first answer again and queues nothing."""
    replay = claim_or_replay(uow, caller, settings, idempotency)
    if replay is not None:
        return replay
    sweep, runs = service.create_sweep(uow, caller, settings, request)
    location = f"/sweeps/{sweep.id}"
    response.headers["Location"] = location
    accepted = SweepAccepted(
        id=sweep.id,
        status=sweep.status,
        cells=len(service.cell_values(sweep.grid)),
        runs=runs,
        links=service.sweep_links(sweep.id),
    )
    remember(uow, caller, settings, idempotency, status.HTTP_202_ACCEPTED, accepted, location)
    return accepted


@router.get("/sweeps", response_model=Page[SweepOut], responses=error_responses(), summary="List sweeps, newest first")
def list_sweeps(uow: UnitOfWorkDep, caller: Caller, page: Pagination) -> Page[SweepOut]:
    items, total = service.list_sweeps(uow, caller, page.limit, page.offset)
    return Page[SweepOut](items=items, total=total, limit=page.limit, offset=page.offset)


@router.get(
    "/sweeps/presets",
    response_model=list[SweepPresetOut],
    responses=error_responses(),
    summary="The built-in sweeps (POST /sweeps with sweep_preset launches one)",
)
def sweep_presets() -> list[SweepPresetOut]:
    return service.sweep_presets()


@router.get(
    "/sweeps/{sweep_id}",
    response_model=SweepDetail,
    responses=error_responses({404: {"description": "no sweep with this id"}}),
    summary="A sweep's status and progress, overall and per cell",
)
def get_sweep(uow: UnitOfWorkDep, caller: Caller, storage: StorageDep, sweep_id: uuid.UUID) -> SweepOut:
    """`files` links the metrics and plots the aggregator wrote to S3 once the sweep ended (empty before)."""
    out = service.read_sweep(uow, caller, sweep_id, detail=True)
    if isinstance(out, SweepDetail):
        out.files = service.sweep_files(storage, sweep_id)
    return out


@router.post(
    "/sweeps/{sweep_id}/cancel",
    response_model=SweepDetail,
    responses=error_responses(
        {
            200: {"description": "every run of the sweep is now over"},
            202: {"description": "queued runs are cancelled; running ones stop at their next chunk"},
            404: {"description": "no sweep with this id"},
            409: {"description": "every run of the sweep has already finished"},
        }
    ),
    summary="Cancel a sweep's queued and running runs",
)
def cancel_sweep(uow: UnitOfWorkDep, caller: Caller, sweep_id: uuid.UUID, response: Response) -> SweepOut:
    sweep = service.cancel_sweep(uow, caller, sweep_id)
    out = service.read_sweep(uow, caller, sweep.id, detail=True)
    response.status_code = status.HTTP_200_OK if out.status in TERMINAL_STATUSES else status.HTTP_202_ACCEPTED
    return out


@router.get(
    "/sweeps/{sweep_id}/metrics",
    responses=error_responses(
        {
            200: {
                "description": "per cell: coordinates, run counts, coordination metrics with 95% bootstrap "
                "intervals, and the paired regulation effect against the unregulated cell",
                "content": {"application/json": {}, "text/csv": {"example": "cell,overrides,agents.alpha,...\n"}},
            },
            404: {"description": "no sweep with this id"},
            409: {"description": "no run of the sweep has succeeded yet"},
        }
    ),
    summary="A sweep's per-cell metrics (JSON, or CSV with Accept: text/csv)",
)
def sweep_metrics(
    uow: UnitOfWorkDep,
    caller: Caller,
    storage: StorageDep,
    sweep_id: uuid.UUID,
    accept: Annotated[str | None, Header()] = None,
) -> Response:
    """Computed from the summaries of the sweep's succeeded runs at request time; cells with no succeeded run
    yet have `metrics: null`."""
    metrics = service.sweep_metrics(uow, caller, storage, sweep_id)
    if accept and "text/csv" in accept:
        return PlainTextResponse(
            service.metrics_csv(metrics),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="sweep-{sweep_id}-metrics.csv"'},
        )
    return JSONResponse({**metrics, "files": jsonable_encoder(service.sweep_files(storage, sweep_id))})


@router.get(
    "/sweeps/{sweep_id}/files/{name}",
    responses=error_responses(
        {
            200: {"description": "the file (text/csv, Parquet or image/png)"},
            404: {"description": "no sweep with this id, no file of this name, or the file is not written yet"},
        }
    ),
    response_class=StreamingResponse,
    summary="One of the sweep's files: " + ", ".join(SWEEP_ARTIFACTS),
)
def get_sweep_file(uow: UnitOfWorkDep, caller: Caller, storage: StorageDep, sweep_id: uuid.UUID, name: str) -> Response:
    """Streamed from S3 like a run's artifacts (Storage.open_stream); the aggregator writes these files once the
    sweep is over, so until then a known name answers 404 `file_not_found` saying so."""
    service.get_sweep(uow, caller, sweep_id)
    key = service.sweep_file_key(sweep_id, name)
    return stream_object(
        storage,
        key,
        filename=service.sweep_file_download_name(sweep_id, name),
        media_type=content_type(SWEEP_ARTIFACTS[name]),
        missing=ApiError(
            404,
            "file_not_found",
            f"{name!r} of sweep {sweep_id} is not written yet: the aggregator writes it once the sweep is over",
            field="name",
        ),
    )


@router.get(
    "/streams/sweeps/{sweep_id}",
    response_class=EventSourceResponse,
    responses=error_responses(
        {
            200: {
                "content": {
                    "text/event-stream": {
                        "example": 'id: 3\nevent: progress\ndata: {"status": "running", "counts": {"queued": 2, '
                        '"running": 2}, "progress": 0.4, "cells": []}\n\n'
                    }
                },
                "description": "the event stream",
            },
            404: {"description": "no sweep with this id"},
        }
    ),
    tags=["streams"],
    summary="Follow a sweep's progress (SSE)",
    description=_SSE_DESCRIPTION,
)
async def stream_sweep(
    resources: Resources,
    caller: Caller,
    uow: UnitOfWorkDep,
    sweep_id: uuid.UUID,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
) -> EventSourceResponse:
    sessions = resources.sessions

    def snapshot_of(sweeps: SweepRepository) -> dict[str, Any] | None:
        sweep = sweeps.get(sweep_id, team_id=caller.team_id)
        return None if sweep is None else sweeps.state(sweep).snapshot()

    def load() -> dict[str, Any] | None:
        with sessions() as session:
            snapshot = snapshot_of(SweepRepository(session))
            session.commit()  # the end, if this read is the first to see it (no message to send)
            return snapshot

    # the first read in the request's own session (committed with it): one pooled connection per request
    first = await in_request_session(snapshot_of, uow.sweeps)
    if first is None:
        raise not_found("sweep", sweep_id)
    resume = (last_event_id or "").strip()
    counter = int(resume) if resume.isdigit() and len(resume) <= 18 else 0
    terminal_statuses = {s.value for s in TERMINAL_STATUSES}

    async def messages() -> AsyncIterator[dict[str, Any]]:
        nonlocal counter
        previous: dict[str, Any] | None = None

        def message(snapshot: dict[str, Any]) -> dict[str, Any] | None:
            nonlocal counter, previous
            terminal = snapshot["status"] in terminal_statuses
            if not terminal and snapshot == previous:
                return None
            previous = snapshot
            counter += 1
            return {
                "id": str(counter),
                "event": snapshot["status"] if terminal else "progress",
                "data": json.dumps(snapshot),
            }

        first_message = message(first)
        if first_message is not None:
            yield first_message
        if first["status"] in terminal_statuses:
            return
        # this process's one poll of the sweep, shared with every other client following it
        async with aclosing(resources.sweep_fanout.values(str(sweep_id), load)) as snapshots:
            async for snapshot in snapshots:
                if snapshot is None:  # the sweep was deleted while streaming: nothing more will come
                    return
                next_message = message(snapshot)
                if next_message is not None:
                    yield next_message
                    if snapshot["status"] in terminal_statuses:
                        return

    return EventSourceResponse(
        messages(), ping=resources.settings.sse_ping_interval_s, headers={"Cache-Control": "no-store"}
    )

"""HTTP routes of /results.

The file routes read in short trips to a worker thread (deps.OneTrip), so a request waiting for a plot being drawn
(results.service: plots are drawn on first request) holds neither a thread nor a database connection while it
waits: it sleeps on the event loop between reads, up to Settings.plot_wait_s."""

from __future__ import annotations

import asyncio
import math
import time
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import RedirectResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from algocomp.platform.logs import bind_run
from algocomp.platform.settings import Settings
from algocomp.platform.storage import ARTIFACTS, Storage, content_type
from algocomp.platform.unit_of_work import UnitOfWork
from algocomp_api.auth import BearerToken, Caller, authenticate
from algocomp_api.deps import OneTrip, OneTripDep, SettingsDep, StorageDep, UnitOfWorkDep
from algocomp_api.errors import ApiError, error_responses
from algocomp_api.files import stream_object
from algocomp_api.results import prices, service
from algocomp_api.results.schemas import ResultOut

router = APIRouter(prefix="/results", tags=["results"])
# Routes that check the caller's token in their own trip to a thread (main.py includes them behind bearer_token).
read_router = APIRouter(prefix="/results", tags=["results"])

# Between two reads of a plot being drawn: short at first (a worker draws both plots in ~0.3 s), then longer.
PLOT_POLL_FIRST_S = 0.05
PLOT_POLL_MAX_S = 0.5

_NOT_READY: dict[int, dict[str, Any]] = {
    404: {"description": "no run with this id, or no such artifact"},
    409: {"description": "the run has not succeeded (error.code = not_ready, error.status = its status)"},
}
_PLOTS: dict[int, dict[str, Any]] = {
    503: {
        "description": "a plot not drawn yet (plots are drawn on first request): `plot_pending` when no worker drew "
        "it within plot_wait_s (it is still being drawn; ask again after Retry-After), `plot_failed` when drawing "
        "failed (error.message says why; a request after Retry-After has it drawn again)"
    },
}


@router.get(
    "/{run_id}",
    response_model=ResultOut,
    responses=error_responses(_NOT_READY),
    summary="A succeeded run's summary and files",
)
def get_result(uow: UnitOfWorkDep, caller: Caller, storage: StorageDep, run_id: uuid.UUID) -> ResultOut:
    with bind_run(run_id):
        return service.result_out(service.get_result(uow, caller, run_id), storage)


@read_router.get(
    "/{run_id}/prices",
    responses=error_responses(
        {
            200: {
                "description": "the price paths: `period` (x), `price` (one list per firm, null where undefined), "
                "the benchmarks `nash_price` and `monopoly_price` per firm, and for one session its `tail`",
                "content": {
                    "application/json": {
                        "example": {
                            "session": None,
                            "sessions": 4,
                            "n_firms": 2,
                            "period": [1000.0, 2000.0],
                            "price": [[1.61, 1.6], [1.59, 1.6]],
                            "nash_price": [1.47, 1.47],
                            "monopoly_price": [1.92, 1.92],
                            "tail": None,
                        }
                    }
                },
            },
            404: {"description": "no run with this id, no panel, or no such session (error.field = session)"},
            409: {"description": "the run has not succeeded (error.code = not_ready, error.status = its status)"},
        }
    ),
    summary="A succeeded run's price paths, binned for charts",
)
async def get_prices(
    trip: OneTripDep,
    token: BearerToken,
    storage: StorageDep,
    run_id: uuid.UUID,
    session: Annotated[int | None, Query(ge=0, description="one session's path (default: the mean of all)")] = None,
    points: Annotated[
        int, Query(ge=10, le=prices.MAX_POINTS, description="at most this many points per firm")
    ] = prices.DEFAULT_POINTS,
) -> dict[str, Any]:
    """The mean price of each firm over the logged intervals, binned on the period axis into at most `points`
    values, averaged over all sessions or over `session` alone (whose answer adds its `tail`: its last periods one
    by one, the limit cycle). Read from the run's panel; bounded in memory and size whatever the run's size. The
    database is read in one trip to a thread; the panel is read afterwards, holding no database connection."""

    def find(uow: UnitOfWork) -> prices.PanelSource:
        caller = authenticate(uow, token)
        with bind_run(run_id):
            return prices.PanelSource.of(service.get_result(uow, caller, run_id))

    source = await trip(find)
    with bind_run(run_id):
        return await run_in_threadpool(prices.price_paths, storage, source, session=session, points=points)


def _answer(storage: Storage, run_id: uuid.UUID, name: str, key: str, redirect: bool) -> Response:
    if redirect:
        return RedirectResponse(storage.presigned_url(key, expires_s=service.PRESIGNED_URL_EXPIRES_S), status_code=307)
    return stream_object(
        storage,
        key,
        filename=service.download_name(run_id, name),
        media_type=content_type(name),
        missing=ApiError(
            404, "artifact_not_found", f"{name!r} of run {run_id} is recorded but missing from storage", field="name"
        ),
    )


async def _artifact_response(
    trip: OneTrip, token: str, settings: Settings, storage: Storage, run_id: uuid.UUID, name: str, redirect: bool
) -> Response:
    """The artifact, streamed or as a redirect; a plot not drawn yet is asked for, then waited for (bounded)."""

    def find(uow: UnitOfWork) -> str | None:
        caller = authenticate(uow, token)
        with bind_run(run_id):
            result = service.get_result(uow, caller, run_id)
            if not service.drawable(result, name):
                return service.artifact_key(result, name)
            service.ask_for_plots(uow, run_id, settings)
            return None

    key = await trip(find)
    if key is None:
        key = await _wait_for_plot(trip, settings, run_id, name)
    return await run_in_threadpool(_answer, storage, run_id, name, key, redirect)


async def _wait_for_plot(trip: OneTrip, settings: Settings, run_id: uuid.UUID, name: str) -> str:
    """The key of plot `name` once a worker drew it; 503 when drawing failed or took longer than plot_wait_s."""
    deadline = time.monotonic() + settings.plot_wait_s
    pause = PLOT_POLL_FIRST_S
    while True:
        state = await trip(lambda uow: service.plot_state(uow, run_id, name))
        if state.key is not None:
            return state.key
        if state.failed:
            retry_after = max(1, math.ceil(settings.plot_retry_after_s))
            raise ApiError(
                503,
                "plot_failed",
                f"drawing the plots of run {run_id} failed: {state.error}; they are drawn again on a request after "
                f"{retry_after} s",
                headers={"Retry-After": str(retry_after)},
            )
        if time.monotonic() + pause > deadline:
            raise ApiError(
                503,
                "plot_pending",
                f"the plots of run {run_id} are being drawn (not done within {settings.plot_wait_s:g} s); ask again",
                headers={"Retry-After": "2"},
            )
        await asyncio.sleep(pause)
        pause = min(pause * 2, PLOT_POLL_MAX_S)


Redirect = Annotated[bool, Query(description="answer 307 to a presigned S3 URL instead of streaming the file")]


@read_router.get(
    "/{run_id}/panel",
    responses=error_responses(
        {
            200: {"content": {"application/vnd.apache.parquet": {}}, "description": "the panel as Parquet"},
            307: {"description": "redirect=true: a presigned S3 URL"},
            **_NOT_READY,
        }
    ),
    response_class=StreamingResponse,
    summary="The run's panel (Parquet)",
)
async def get_panel(
    trip: OneTripDep,
    token: BearerToken,
    settings: SettingsDep,
    storage: StorageDep,
    run_id: uuid.UUID,
    redirect: Redirect = False,
) -> Response:
    """The per-interval panel of every session, streamed from S3, or with `redirect=true` a 307 to a
    presigned URL so large files bypass the API."""
    return await _artifact_response(trip, token, settings, storage, run_id, "panel", redirect)


@read_router.get(
    "/{run_id}/artifacts/{name}",
    responses=error_responses(
        {
            200: {"description": "the file"},
            307: {"description": "redirect=true: a presigned S3 URL"},
            **_NOT_READY,
            **_PLOTS,
        }
    ),
    response_class=StreamingResponse,
    summary="One of the run's files: " + ", ".join(ARTIFACTS),
)
async def get_artifact(
    trip: OneTripDep,
    token: BearerToken,
    settings: SettingsDep,
    storage: StorageDep,
    run_id: uuid.UUID,
    name: Annotated[str, Path(max_length=64, description="one of: " + ", ".join(ARTIFACTS))],
    redirect: Redirect = False,
) -> Response:
    """The file, streamed from S3 (or with `redirect=true` a 307 to a presigned URL). The plots (prices_plot,
    impulse_plot) are drawn on the first request for either: that request, and any made meanwhile, wait for a
    worker to draw them (up to plot_wait_s) and then get the file; later requests get the stored file."""
    return await _artifact_response(trip, token, settings, storage, run_id, name, redirect)

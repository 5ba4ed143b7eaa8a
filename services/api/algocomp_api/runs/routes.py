"""HTTP routes of /runs."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Response, status
from fastapi.responses import JSONResponse

from algocomp.platform.db import RunStatus
from algocomp.platform.logs import bind_run
from algocomp.platform.unit_of_work import UnitOfWork
from algocomp_api.auth import BearerToken, Caller, authenticate
from algocomp_api.deps import OneTripDep, RedisDep, SettingsDep, UnitOfWorkDep
from algocomp_api.errors import error_responses
from algocomp_api.idempotency import IDEMPOTENCY_422, IDEMPOTENCY_RESPONSES, IdempotencyKey, claim_or_replay, remember
from algocomp_api.pagination import Page, Pagination
from algocomp_api.responses import model_json
from algocomp_api.runs import service
from algocomp_api.runs.schemas import RunAccepted, RunCreate, RunDetail, RunOut
from algocomp_api.scenarios.schemas import EXAMPLE_INLINE_SCENARIO

router = APIRouter(prefix="/runs", tags=["runs"])
# GET /runs and GET /runs/{id}, the routes read most, authenticate the caller inside their one trip to a worker
# thread (deps.OneTrip), so main.py includes them behind bearer_token (a token must be sent; it is checked in the
# trip) rather than behind current_principal (which checks it in a trip of its own).
read_router = APIRouter(prefix="/runs", tags=["runs"])

RUN_EXAMPLES: dict[str, Any] = {
    "preset": {
        "summary": "a preset with overrides",
        "value": {"preset": "calvano-2020-baseline", "seed": 1, "sessions": 4, "overrides": ["agents.beta=1e-4"]},
    },
    "stored": {
        "summary": "a stored scenario",
        "value": {"scenario_id": "6f1c0a4e-3b7d-4f0e-9a51-2c8d7e5b1a90", "seed": 3},
    },
    "inline": {"summary": "an inline scenario", "value": {"scenario": EXAMPLE_INLINE_SCENARIO, "seed": 7}},
}


@router.post(
    "",
    response_model=RunAccepted,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(
        {
            404: {"description": "scenario_id names no stored scenario"},
            422: {
                "description": "the scenario or an override does not validate, or the run is beyond a limit "
                "(limit_exceeded); error.field names the field" + IDEMPOTENCY_422
            },
            429: {"description": "the team's quota of queued and running runs is full; see Retry-After"},
            **IDEMPOTENCY_RESPONSES,
        }
    ),
    summary="Queue a run of a scenario",
)
def create_run(
    uow: UnitOfWorkDep,
    caller: Caller,
    settings: SettingsDep,
    response: Response,
    request: Annotated[RunCreate, Body(openapi_examples=RUN_EXAMPLES)],
    idempotency: IdempotencyKey,
) -> RunAccepted | JSONResponse:
    """Store the run as `queued`; once that is committed, send its task to the workers (enqueue after commit: a
    worker never receives a run it cannot find). If the broker is unreachable the run stays queued and the
    sweeper re-sends it; the answer is 202 either way. Follow it at links.stream, read it at links.self.

    With an Idempotency-Key, a retry of the request gets this first answer again and queues nothing."""
    replay = claim_or_replay(uow, caller, settings, idempotency)
    if replay is not None:
        return replay
    run = service.create_run(uow, caller, settings, request)
    location = f"/runs/{run.id}"
    response.headers["Location"] = location
    accepted = RunAccepted(id=run.id, status=run.status, links=service.run_links(run))
    remember(uow, caller, settings, idempotency, status.HTTP_202_ACCEPTED, accepted, location)
    return accepted


@read_router.get("", response_model=Page[RunOut], responses=error_responses(), summary="List runs, newest first")
async def list_runs(
    trip: OneTripDep,
    token: BearerToken,
    page: Pagination,
    scenario_id: Annotated[uuid.UUID | None, Query(description="only runs of this scenario")] = None,
    status: Annotated[RunStatus | None, Query(description="only runs in this status")] = None,
) -> Response:
    def read(uow: UnitOfWork) -> Response:
        caller = authenticate(uow, token)
        runs, total = uow.runs.page(
            team_id=caller.team_id, scenario_id=scenario_id, status=status, limit=page.limit, offset=page.offset
        )
        items = [service.run_out(r) for r in runs]
        return model_json(Page[RunOut](items=items, total=total, limit=page.limit, offset=page.offset))

    return await trip(read)


@read_router.get(
    "/{run_id}",
    response_model=RunDetail,
    responses=error_responses({404: {"description": "no run with this id"}}),
    summary="A run's status, progress and timestamps",
)
async def get_run(trip: OneTripDep, token: BearerToken, run_id: uuid.UUID) -> Response:
    def read(uow: UnitOfWork) -> Response:
        caller = authenticate(uow, token)
        with bind_run(run_id):
            return model_json(service.run_out(service.view_run(uow, caller, run_id), detail=True))

    return await trip(read)


@router.post(
    "/{run_id}/cancel",
    response_model=RunOut,
    responses=error_responses(
        {
            200: {"description": "the run was queued and is now cancelled"},
            202: {"description": "the run is running; its worker stops it between sessions"},
            403: {"description": "only the member who launched the run or a team admin may cancel it"},
            404: {"description": "no run with this id"},
            409: {"description": "the run has already finished"},
        }
    ),
    summary="Cancel a queued or running run",
)
def cancel_run(uow: UnitOfWorkDep, caller: Caller, run_id: uuid.UUID, response: Response) -> RunOut:
    with bind_run(run_id):
        run, cancelled_now = service.cancel_run(uow, caller, run_id)
    response.status_code = status.HTTP_200_OK if cancelled_now else status.HTTP_202_ACCEPTED
    return service.run_out(run)


@router.post(
    "/{run_id}/retry",
    response_model=RunOut,
    status_code=status.HTTP_202_ACCEPTED,
    responses=error_responses(
        {
            202: {"description": "the run is queued again"},
            403: {"description": "only the member who launched the run or a team admin may retry it"},
            404: {"description": "no run with this id"},
            409: {"description": "the run is queued, running or succeeded, or its sweep was cancelled"},
            429: {"description": "the team has as many runs queued or running as its quota allows"},
        }
    ),
    summary="Queue a failed or cancelled run again",
)
def retry_run(uow: UnitOfWorkDep, caller: Caller, run_id: uuid.UUID, settings: SettingsDep, redis: RedisDep) -> RunOut:
    """The same run (its id, its S3 folder) is queued for its next attempt, its error and progress cleared, e.g.
    after it failed because S3 stayed down longer than the workers' retry budget. Its event stream starts
    afresh."""
    with bind_run(run_id):
        return service.run_out(service.retry_run(uow, caller, run_id, settings, redis))

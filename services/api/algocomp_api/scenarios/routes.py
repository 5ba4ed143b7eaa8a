"""HTTP routes of /scenarios."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Body, Response, status

from algocomp.scenarios import list_presets
from algocomp_api import limits
from algocomp_api.auth import Caller
from algocomp_api.deps import SettingsDep, UnitOfWorkDep
from algocomp_api.errors import error_responses
from algocomp_api.pagination import Page, Pagination
from algocomp_api.scenarios import service
from algocomp_api.scenarios.schemas import (
    EXAMPLE_INLINE_SCENARIO,
    PresetOut,
    ScenarioCheck,
    ScenarioChecked,
    ScenarioOut,
    ScenarioSource,
)

router = APIRouter(prefix="/scenarios", tags=["scenarios"])

SOURCE_EXAMPLES: dict[str, Any] = {
    "preset": {"summary": "a built-in preset", "value": {"preset": "calvano-2020-baseline"}},
    "inline": {"summary": "an inline scenario", "value": {"scenario": EXAMPLE_INLINE_SCENARIO}},
}

_ERRORS = {
    422: {
        "description": "the scenario does not validate, or a run of it would be beyond a limit (limit_exceeded); "
        "error.field names the field at fault"
    }
}


@router.post(
    "",
    response_model=ScenarioOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(
        {200: {"model": ScenarioOut, "description": "the same scenario was stored before"}, **_ERRORS}
    ),
    summary="Validate and store a scenario",
)
def create_scenario(
    uow: UnitOfWorkDep,
    caller: Caller,
    settings: SettingsDep,
    response: Response,
    source: Annotated[ScenarioSource, Body(openapi_examples=SOURCE_EXAMPLES)],
) -> ScenarioOut:
    """Store a scenario given as a preset name or inline. A scenario equal to one stored before (same
    fingerprint, however it was written) returns the existing record with 200 instead of a duplicate."""
    if source.scenario is not None:
        limits.check_document(source.scenario, settings, "scenario")
    scenario = service.resolve_source(source.preset, source.scenario)
    limits.check_run_size(scenario, settings)  # a scenario the platform would refuse to run is not stored
    record, created = uow.scenarios.store(scenario, team_id=caller.team_id)
    response.status_code = status.HTTP_201_CREATED if created else status.HTTP_200_OK
    response.headers["Location"] = f"/scenarios/{record.id}"
    return service.scenario_out(record)


@router.post(
    "/check",
    response_model=ScenarioChecked,
    responses=error_responses({404: {"description": "scenario_id names no stored scenario"}, **_ERRORS}),
    summary="Validate a scenario and a run's changes without storing anything",
)
def check_scenario(
    uow: UnitOfWorkDep, caller: Caller, settings: SettingsDep, request: ScenarioCheck
) -> ScenarioChecked:
    """The effective scenario of a run of this request (a preset, a stored or an inline scenario, then
    `overrides`, `seed` and `sessions`), validated as POST /runs validates it: 200 with its full specification, or
    422 whose `error.field` names the field at fault (the dashboard's editor calls it as the user types). Nothing
    is stored and nothing is queued."""
    return service.check_scenario(uow, caller, request, settings)


@router.get(
    "", response_model=Page[ScenarioOut], responses=error_responses(), summary="List stored scenarios, newest first"
)
def list_scenarios(uow: UnitOfWorkDep, caller: Caller, page: Pagination) -> Page[ScenarioOut]:
    records, total = uow.scenarios.page(team_id=caller.team_id, limit=page.limit, offset=page.offset)
    return Page[ScenarioOut](
        items=[service.scenario_out(r) for r in records], total=total, limit=page.limit, offset=page.offset
    )


@router.get("/presets", response_model=list[PresetOut], responses=error_responses(), summary="The built-in presets")
def presets() -> list[PresetOut]:
    return [PresetOut(name=name, description=description) for name, description in list_presets().items()]


@router.get(
    "/{scenario_id}",
    response_model=ScenarioOut,
    responses=error_responses({404: {"description": "no scenario with this id"}}),
    summary="One stored scenario",
)
def get_scenario(uow: UnitOfWorkDep, caller: Caller, scenario_id: uuid.UUID) -> ScenarioOut:
    return service.scenario_out(service.get_scenario(uow, caller, scenario_id))

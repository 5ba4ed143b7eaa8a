"""Scenario service functions: turn a request into a validated Scenario (stored once per fingerprint by
algocomp.platform.db.scenarios)."""

from __future__ import annotations

import uuid

from algocomp.platform.db import ScenarioRecord
from algocomp.platform.db.accounts import Principal
from algocomp.platform.settings import Settings
from algocomp.platform.unit_of_work import UnitOfWork
from algocomp.scenarios import Scenario, ScenarioError, apply_overrides, load_scenario, scenario_hash
from algocomp_api import limits
from algocomp_api.errors import ApiError, not_found
from algocomp_api.scenarios.schemas import ScenarioCheck, ScenarioChecked, ScenarioLinks, ScenarioOut


def resolve_source(preset: str | None, document: dict | None) -> Scenario:
    """The validated scenario named by exactly one of a preset name or an inline document.

    Raises ScenarioError (→ 422 with the field at fault) when it does not validate, ApiError when the request
    names neither or both."""
    if (preset is None) == (document is None):
        raise ApiError(
            422,
            "invalid_request",
            "give exactly one of 'preset' (a built-in preset's name) or 'scenario' (an inline scenario)",
            field="preset" if preset is None else "scenario",
        )
    if preset is not None:
        if "/" in preset or "\\" in preset or "." in preset:
            # load_scenario would read a file by that path; the API only offers the built-in presets
            raise ApiError(422, "invalid_scenario", f"{preset!r} is not a preset name", field="preset")
        try:
            return load_scenario(preset)
        except ScenarioError as error:
            raise ScenarioError(error.field or "preset", error.problem) from error
    assert document is not None
    return load_scenario(document)


def source_scenario(
    uow: UnitOfWork, caller: Principal, *, scenario_id: uuid.UUID | None, scenario: dict | None, preset: str | None
) -> tuple[ScenarioRecord, Scenario]:
    """The stored scenario a run or sweep request names: exactly one of a stored id, an inline scenario or a
    preset (the latter two are stored first, once per team and fingerprint, so every run points at its
    source). A stored id of another team is answered as absent."""
    require_one_source(scenario_id=scenario_id, scenario=scenario, preset=preset)
    if scenario_id is not None:
        record = get_scenario(uow, caller, scenario_id, field="scenario_id")
        return record, load_scenario(record.spec)
    source = resolve_source(preset, scenario)
    record, _ = uow.scenarios.store(source, team_id=caller.team_id)
    return record, source


def require_one_source(**sources: object) -> None:
    """422 naming the field unless exactly one of the sources (scenario_id, scenario, preset) is given."""
    given = [name for name, value in sources.items() if value is not None]
    if len(given) != 1:
        raise ApiError(
            422,
            "invalid_request",
            "give exactly one of "
            + ", ".join(f"'{name}'" for name in list(sources)[:-1])
            + f" or '{list(sources)[-1]}'"
            + (f" (got {', '.join(given)})" if given else ""),
            field=given[-1] if given else next(iter(sources)),
        )


def get_scenario(
    uow: UnitOfWork, caller: Principal, scenario_id: uuid.UUID, *, field: str | None = None
) -> ScenarioRecord:
    record = uow.scenarios.get(scenario_id, team_id=caller.team_id)
    if record is None:
        raise not_found("scenario", scenario_id, field=field)
    return record


def scenario_out(record: ScenarioRecord) -> ScenarioOut:
    return ScenarioOut(
        id=record.id,
        name=record.name,
        scenario_hash=record.scenario_hash,
        spec=record.spec,
        created_at=record.created_at,
        links=ScenarioLinks(self=f"/scenarios/{record.id}", runs=f"/runs?scenario_id={record.id}"),
    )


def check_scenario(uow: UnitOfWork, caller: Principal, request: ScenarioCheck, settings: Settings) -> ScenarioChecked:
    """The effective scenario a run of `request` would have (overrides, then seed and sessions), validated and held
    to the run limits like POST /runs, without storing anything: 422 naming the field at fault otherwise."""
    limits.check_sessions(request.sessions, settings)
    if request.scenario is not None:
        limits.check_document(request.scenario, settings, "scenario")
    limits.check_overrides(request.overrides, settings)
    require_one_source(scenario_id=request.scenario_id, scenario=request.scenario, preset=request.preset)
    if request.scenario_id is not None:
        base = load_scenario(get_scenario(uow, caller, request.scenario_id, field="scenario_id").spec)
    else:
        base = resolve_source(request.preset, request.scenario)
    scenario = apply_overrides(base, request.overrides)
    explicit = {
        key: value for key, value in (("seed", request.seed), ("sessions", request.sessions)) if value is not None
    }
    scenario = apply_overrides(scenario, explicit)
    limits.check_run_size(scenario, settings)
    limits.check_agent_classes(scenario, settings)
    return ScenarioChecked(
        name=scenario.name, scenario_hash=scenario_hash(scenario), spec=scenario.model_dump(mode="json")
    )

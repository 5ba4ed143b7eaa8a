"""Sweep service functions: expand the grid into cells, validate every cell x seed before storing anything, store
the sweep and all its runs in one transaction (their tasks sent after commit), present the state the repository
derives from the runs (algocomp.platform.db.sweeps), cancel, and serve the per-cell metrics and files."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass
from typing import Any

from algocomp.platform.db import RunStatus, Sweep
from algocomp.platform.db import sweep_metrics as sweep_aggregates
from algocomp.platform.db.accounts import Principal
from algocomp.platform.db.runs import new_run
from algocomp.platform.db.sweeps import SweepState, new_sweep
from algocomp.platform.settings import Settings
from algocomp.platform.storage import Storage
from algocomp.platform.storage.keys import SWEEP_ARTIFACTS, sweep_key
from algocomp.platform.unit_of_work import UnitOfWork
from algocomp.scenarios import Scenario, ScenarioError, apply_overrides
from algocomp.scenarios.sweep_presets import list_sweep_presets, load_sweep_preset
from algocomp_api import limits
from algocomp_api.auth import forbid_unless_manager
from algocomp_api.errors import ApiError, not_found
from algocomp_api.quotas import check_active_runs
from algocomp_api.results.service import PRESIGNED_URL_EXPIRES_S
from algocomp_api.runs import service as runs
from algocomp_api.scenarios import service as scenarios
from algocomp_api.sweeps.schemas import (
    SweepCell,
    SweepCreate,
    SweepDetail,
    SweepFileLink,
    SweepLinks,
    SweepOut,
    SweepPresetOut,
)

# Paths a grid may not vary: each run's seed and sessions come from the sweep's own `seeds` and `sessions`.
RESERVED_PATHS = ("seed", "sessions")


# --------------------------------------------------------------------------------------------- the grid


# The grid's cells and their overrides: one definition, shared with the aggregator.
cell_values = sweep_aggregates.cell_values
cell_overrides = sweep_aggregates.cell_overrides


def seed_count(request: SweepCreate) -> int:
    """How many seeds each cell runs with, from the request as given (nothing built)."""
    if request.seeds is not None and request.seeds_per_cell is not None:
        raise ApiError(422, "invalid_request", "give 'seeds' or 'seeds_per_cell', not both", field="seeds_per_cell")
    return len(request.seeds) if request.seeds is not None else request.seeds_per_cell or 1


def sweep_seeds(request: SweepCreate) -> list[int]:
    """The seeds; call check_grid (which bounds their number) first."""
    seed_count(request)
    if request.seeds is not None:
        if len(set(request.seeds)) != len(request.seeds):
            raise ApiError(422, "invalid_request", "seeds repeat; each seed runs once per cell", field="seeds")
        if any(seed < 0 or seed >= 2**63 for seed in request.seeds):
            raise ApiError(422, "invalid_request", "seeds are integers in [0, 2**63)", field="seeds")
        return list(request.seeds)
    return list(range(request.seeds_per_cell or 1))


def check_grid(grid: dict[str, list[Any]], seeds: int, settings: Settings, *, seeds_field: str = "seeds") -> None:
    """422 for an empty axis, a reserved path, a grid beyond the limits (values, their size and nesting), or more
    runs than one sweep may have: all from the lengths as given, before any cell or seed list is built."""
    total_values = sum(len(values) for values in grid.values())
    limits.check_at_most(total_values, settings.max_grid_values, "grid", "the grid's values", "max_grid_values")
    limits.check_at_most(seeds, settings.max_sweep_runs, seeds_field, "seeds per cell", "max_sweep_runs")
    for path, values in grid.items():
        if not path.strip():
            raise ApiError(422, "invalid_request", "a grid path is empty", field="grid")
        if path.strip() in RESERVED_PATHS:
            raise ApiError(
                422,
                "invalid_request",
                f"the grid cannot vary '{path}'; use the sweep's 'seeds' and 'sessions'",
                field=f"grid.{path}",
            )
        if not values:
            raise ApiError(422, "invalid_request", f"grid path '{path}' has no values", field=f"grid.{path}")
        for index, value in enumerate(values):
            limits.check_document(value, settings, f"grid.{path}.{index}")
            # the value becomes the override PATH=<JSON>; the path's own length is checked with it
            limits.check_override_text(f"{path}={json.dumps(value)}", settings, f"grid.{path}.{index}")
    runs = limits.product_at_most([len(values) for values in grid.values()] + [seeds], settings.max_sweep_runs)
    if runs > settings.max_sweep_runs:
        cells = limits.product_at_most([len(values) for values in grid.values()], settings.max_sweep_runs)
        shown = f"{cells:,}" if cells <= settings.max_sweep_runs else f"more than {settings.max_sweep_runs:,}"
        raise limits.limit_exceeded(
            "grid",
            f"the sweep has {shown} cells x {seeds:,} seeds = more than {settings.max_sweep_runs:,} runs; at most "
            f"{settings.max_sweep_runs:,} are allowed in one sweep (setting max_sweep_runs), split it",
            settings.max_sweep_runs,
            code="sweep_too_large",
        )


# --------------------------------------------------------------------------------------------- creation


@dataclass
class PlannedRun:
    cell: int
    overrides: list[str]
    scenario: Scenario


def base_scenario(uow: UnitOfWork, caller: Principal, request: SweepCreate) -> tuple[uuid.UUID, Scenario]:
    """(id of the stored source scenario, the base scenario: source with the sweep's overrides)."""
    record, source = scenarios.source_scenario(
        uow, caller, scenario_id=request.scenario_id, scenario=request.scenario, preset=request.preset
    )
    return record.id, apply_overrides(source, request.overrides)


def plan_runs(
    base: Scenario, grid: dict[str, list[Any]], seeds: list[int], sessions: int, recorded_base: list[str]
) -> list[PlannedRun]:
    """Every cell x seed as a validated effective scenario, in cell then seed order. A cell that does not
    validate raises 422 naming the cell (index and overrides) and the field at fault; nothing is stored."""
    planned: list[PlannedRun] = []
    sized = apply_overrides(base, {"sessions": sessions})  # the grid cannot vary sessions (RESERVED_PATHS)
    for index, values in enumerate(cell_values(grid)):
        overrides = cell_overrides(values)
        try:
            cell_scenario = apply_overrides(sized, overrides)  # validated once per cell
            for seed in seeds:
                # the seeds were checked (integers in [0, 2**63)) and nothing else depends on them: no revalidation
                planned.append(
                    PlannedRun(index, recorded_base + overrides, cell_scenario.model_copy(update={"seed": seed}))
                )
        except ScenarioError as error:
            raise ApiError(
                422,
                "invalid_scenario",
                f"cell {index} ({', '.join(overrides)}): {error.problem}",
                field=error.field or None,
                cell=index,
                overrides=overrides,
            ) from error
    return planned


def with_sweep_preset(request: SweepCreate) -> SweepCreate:
    """The request with its `sweep_preset` spelled out (base preset, grid, seeds, sessions, overrides, name); the
    fields the request gives replace the preset's, its overrides come after the preset's. 422 naming sweep_preset
    for an unknown name or a second base scenario."""
    if request.sweep_preset is None:
        return request
    if request.scenario_id is not None or request.scenario is not None or request.preset is not None:
        raise ApiError(
            422,
            "invalid_request",
            "a sweep_preset brings its own base scenario: give it without scenario_id, scenario or preset",
            field="sweep_preset",
        )
    try:
        preset = load_sweep_preset(request.sweep_preset)
    except ScenarioError as error:
        raise ApiError(422, "invalid_request", error.problem, field="sweep_preset") from error
    given_seeds = request.seeds is not None or request.seeds_per_cell is not None
    return request.model_copy(
        update={
            "sweep_preset": None,
            "preset": preset.scenario,
            "grid": request.grid if request.grid is not None else preset.grid,
            "seeds": request.seeds if given_seeds else preset.seed_list,
            "sessions": request.sessions if request.sessions is not None else preset.sessions,
            "overrides": [*preset.overrides, *request.overrides],
            "name": request.name or preset.name,
        }
    )


def check_request(request: SweepCreate, settings: Settings) -> None:
    """The limits a sweep request is held to before anything is loaded, built or stored (422 naming the field)."""
    if request.grid is None:
        raise ApiError(422, "invalid_request", "a sweep needs a grid (or a sweep_preset that gives one)", field="grid")
    limits.check_sessions(request.sessions, settings)
    if request.scenario is not None:
        limits.check_document(request.scenario, settings, "scenario")
    limits.check_overrides(request.overrides, settings)
    seeds_field = "seeds" if request.seeds is not None else "seeds_per_cell"
    check_grid(request.grid, seed_count(request), settings, seeds_field=seeds_field)


def create_sweep(uow: UnitOfWork, caller: Principal, settings: Settings, request: SweepCreate) -> tuple[Sweep, int]:
    """Validate the whole sweep, then store it and every run as queued: (sweep, number of runs). Once the
    transaction commits, each run's `queued` event is published and its task sent. The runs count against the
    team's quota (429 when they do not fit).

    A run's `overrides` are the sweep's overrides followed by its cell's, so like any run's they turn its
    scenario_id's scenario into its spec (with seed and sessions)."""
    request = with_sweep_preset(request)
    check_request(request, settings)
    assert request.grid is not None  # check_request refuses a sweep without one
    seeds = sweep_seeds(request)
    scenario_id, base = base_scenario(uow, caller, request)
    sessions = request.sessions if request.sessions is not None else base.sessions
    limits.check_run_size(apply_overrides(base, {"sessions": sessions}), settings)
    planned = plan_runs(base, request.grid, seeds, sessions, list(request.overrides))
    for plan in planned:  # a grid over horizon.max_periods changes a run's size
        limits.check_run_size(plan.scenario, settings)
    for plan in planned[:: max(len(seeds), 1)]:  # one run per cell: a grid over agents changes its classes
        limits.check_agent_classes(plan.scenario, settings)

    check_active_runs(uow, caller, settings, len(planned))
    owner = {"team_id": caller.team_id, "owner_id": caller.user_id}
    sweep = new_sweep(request.name or base.name, base, request.grid, seeds, sessions, **owner)
    uow.sweeps.add(sweep)
    created = [
        new_run(scenario_id, plan.scenario, plan.overrides, sweep_id=sweep.id, cell=plan.cell, **owner)
        for plan in planned
    ]
    uow.runs.add(created)
    for run in created:
        runs.announce_queued(uow, run)
    return sweep, len(created)


def sweep_presets() -> list[SweepPresetOut]:
    return [
        SweepPresetOut(
            name=name,
            description=preset.description.strip(),
            scenario=preset.scenario,
            grid=preset.grid,
            seeds=preset.seed_list,
            sessions=preset.sessions,
            overrides=list(preset.overrides),
            cells=preset.cells,
            runs=preset.runs,
        )
        for name, preset in list_sweep_presets().items()
    ]


# --------------------------------------------------------------------------------------------- state


def sweep_links(sweep_id: uuid.UUID) -> SweepLinks:
    return SweepLinks(
        self=f"/sweeps/{sweep_id}",
        stream=f"/streams/sweeps/{sweep_id}",
        cancel=f"/sweeps/{sweep_id}/cancel",
        metrics=f"/sweeps/{sweep_id}/metrics",
    )


def sweep_out(sweep: Sweep, state: SweepState, *, detail: bool = False) -> SweepOut:
    fields: dict[str, Any] = {
        "id": sweep.id,
        "name": sweep.name,
        "status": state.status,
        "grid": sweep.grid,
        "seeds": sweep.seeds,
        "sessions": sweep.sessions,
        "cells": len(state.per_cell),
        "runs": state.runs,
        "counts": state.counts,
        "progress": state.progress,
        "cancel_requested": sweep.cancel_requested,
        "created_at": sweep.created_at,
        "finished_at": sweep.finished_at,
        "links": sweep_links(sweep.id),
    }
    if detail:
        per_cell = [SweepCell(**asdict(cell)) for cell in state.per_cell]
        return SweepDetail(**fields, base_spec=sweep.base_spec, per_cell=per_cell)
    return SweepOut(**fields)


def get_sweep(uow: UnitOfWork, caller: Principal, sweep_id: uuid.UUID) -> Sweep:
    """The sweep, if it is the caller's team's; 404 otherwise."""
    sweep = uow.sweeps.get(sweep_id, team_id=caller.team_id)
    if sweep is None:
        raise not_found("sweep", sweep_id)
    return sweep


def read_sweep(uow: UnitOfWork, caller: Principal, sweep_id: uuid.UUID, *, detail: bool = True) -> SweepOut:
    sweep = get_sweep(uow, caller, sweep_id)
    return sweep_out(sweep, uow.sweeps.state(sweep), detail=detail)


def list_sweeps(uow: UnitOfWork, caller: Principal, limit: int, offset: int) -> tuple[list[SweepOut], int]:
    """A page of the team's sweeps, newest first, each with its derived state, and the total count."""
    sweeps, total = uow.sweeps.page(team_id=caller.team_id, limit=limit, offset=offset)
    return [sweep_out(sweep, uow.sweeps.state(sweep)) for sweep in sweeps], total


# --------------------------------------------------------------------------------------------- cancel


def cancel_sweep(uow: UnitOfWork, caller: Principal, sweep_id: uuid.UUID) -> Sweep:
    """Cancel a sweep: every queued run is cancelled at once (each gets its terminal event after commit), every
    running one is asked to stop between chunks. A sweep whose runs are all over cannot be cancelled: 409. Only
    its owner or a team admin may cancel it: 403."""
    sweep = get_sweep(uow, caller, sweep_id)
    forbid_unless_manager(caller, sweep.owner_id, f"sweep {sweep_id}")
    state = uow.sweeps.state(sweep)
    if state.over:
        raise ApiError(
            409,
            "sweep_finished",
            f"sweep {sweep_id} is already {state.status.value}; only a queued or running sweep can be cancelled",
            status=state.status.value,
        )
    for run in uow.sweeps.cancel(sweep):
        runs.announce_cancelled(uow, run)
    return sweep


# --------------------------------------------------------------------------------------------- metrics


def sweep_metrics(uow: UnitOfWork, caller: Principal, storage: Storage, sweep_id: uuid.UUID) -> dict[str, Any]:
    """Per cell: cell_metrics over the sessions of its succeeded runs, and, when the grid has a regulation axis,
    the paired effect of each regulated cell against the cell with the same other coordinates and no regulation.

    The aggregator stores these rows as runs finish; they are read when present and current (computed from the
    cell's present succeeded runs), otherwise computed here by the same shared implementation
    (algocomp.platform.db.sweep_metrics), so the answer never depends on whether the aggregator has caught up.
    409 while no run has succeeded."""
    sweep = get_sweep(uow, caller, sweep_id)
    state = uow.sweeps.state(sweep)
    if state.counts[RunStatus.succeeded.value] == 0:
        raise ApiError(
            409,
            "not_ready",
            f"no run of sweep {sweep_id} has succeeded yet (status {state.status.value}); try again later",
            status=state.status.value,
        )
    cells = sweep_aggregates.stored_sweep_metrics(uow.session, sweep)
    if cells is None:
        try:
            cells = sweep_aggregates.compute_sweep_metrics(uow.session, storage, sweep_id)
        except sweep_aggregates.SweepDataError as error:
            if error.missing:
                raise ApiError(500, "internal_error", str(error), run_id=str(error.run_id)) from error
            raise ApiError(503, "unavailable", str(error), run_id=str(error.run_id)) from error
    return {
        "sweep_id": str(sweep.id),
        "status": state.status.value,
        "grid": sweep.grid,
        "regulation_paths": sweep_aggregates.regulation_paths(sweep.grid),
        "cells": cells,
    }


def metrics_csv(metrics: dict[str, Any]) -> str:
    """One row per cell (algocomp.platform.db.sweep_metrics.metrics_rows), the table the aggregator writes to S3."""
    return sweep_aggregates.metrics_csv(metrics["grid"], metrics["cells"])


# ------------------------------------------------------------------------------------------------ files


def sweep_files(storage: Storage, sweep_id: uuid.UUID) -> dict[str, SweepFileLink]:
    """Links to the sweep's files that exist in S3: the aggregator writes them only once the sweep is over (and
    a plot only when the grid allows it), so listing what exists tells the client what it can download."""
    files: dict[str, SweepFileLink] = {}
    for name in SWEEP_ARTIFACTS:
        key = sweep_key(sweep_id, name)
        if storage.exists(key):
            files[name] = SweepFileLink(
                key=key,
                url=f"/sweeps/{sweep_id}/files/{name}",
                presigned_url=storage.presigned_url(key, expires_s=PRESIGNED_URL_EXPIRES_S),
            )
    return files


def sweep_file_key(sweep_id: uuid.UUID, name: str) -> str:
    """The S3 key of sweep file `name`; 404 naming the known files for any other name."""
    if name not in SWEEP_ARTIFACTS:
        raise ApiError(
            404, "file_not_found", f"no sweep file {name!r}; files are: {', '.join(SWEEP_ARTIFACTS)}", field="name"
        )
    return sweep_key(sweep_id, name)


def sweep_file_download_name(sweep_id: uuid.UUID, name: str) -> str:
    """The file name offered to a browser: the sweep id and the file's own name."""
    return f"sweep-{sweep_id}-{SWEEP_ARTIFACTS[name].replace('/', '-')}"

"""Sweep service functions: expand the grid into cells, validate every cell x seed before storing anything, store
the sweep and all its runs in one transaction, derive the sweep's state from its runs, cancel it, and compute its
per-cell metrics from the runs' summaries on S3."""

from __future__ import annotations

import logging
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import redis
from celery import Celery
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from algocomp.db import TERMINAL_STATUSES, Run, RunStatus, Sweep
from algocomp.db import sweep_metrics as sweep_aggregates
from algocomp.scenarios import (
    Scenario,
    ScenarioError,
    apply_overrides,
    scenario_hash,
)
from algocomp.settings import Settings
from algocomp.storage import Storage
from algocomp.storage.keys import SWEEP_ARTIFACTS, sweep_key
from algocomp_api.errors import ApiError, not_found
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
)

log = logging.getLogger("algocomp.api.sweeps")

# One sweep's runs are inserted in one transaction and sent one task each: beyond this, split the sweep.
MAX_SWEEP_RUNS = 10_000
# Paths a grid may not vary: each run's seed and sessions come from the sweep's own `seeds` and `sessions`.
RESERVED_PATHS = ("seed", "sessions")
STATUS_NAMES = [status.value for status in RunStatus]


# --------------------------------------------------------------------------------------------- the grid


# The grid's cells and their overrides: one definition, shared with the aggregator.
cell_values = sweep_aggregates.cell_values
cell_overrides = sweep_aggregates.cell_overrides


def sweep_seeds(request: SweepCreate) -> list[int]:
    if request.seeds is not None and request.seeds_per_cell is not None:
        raise ApiError(422, "invalid_request", "give 'seeds' or 'seeds_per_cell', not both", field="seeds_per_cell")
    if request.seeds is not None:
        if len(set(request.seeds)) != len(request.seeds):
            raise ApiError(422, "invalid_request", "seeds repeat; each seed runs once per cell", field="seeds")
        if any(seed < 0 or seed >= 2**63 for seed in request.seeds):
            raise ApiError(422, "invalid_request", "seeds are integers in [0, 2**63)", field="seeds")
        return list(request.seeds)
    return list(range(request.seeds_per_cell or 1))


def check_grid(grid: dict[str, list[Any]], seeds: int) -> None:
    """422 for an empty axis, a reserved path, or more runs than one sweep may have (before any validation)."""
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
    cells = 1
    for values in grid.values():
        cells *= len(values)
    if cells * seeds > MAX_SWEEP_RUNS:
        raise ApiError(
            422,
            "sweep_too_large",
            f"the sweep has {cells} cells x {seeds} seeds = {cells * seeds} runs; at most {MAX_SWEEP_RUNS} are "
            "allowed in one sweep, split it",
            field="grid",
        )


# --------------------------------------------------------------------------------------------- creation


@dataclass
class PlannedRun:
    cell: int
    overrides: list[str]
    scenario: Scenario


def base_scenario(session: Session, request: SweepCreate) -> tuple[uuid.UUID, Scenario]:
    """(id of the stored source scenario, the base scenario: source with the sweep's overrides)."""
    record, source = scenarios.source_scenario(
        session, scenario_id=request.scenario_id, scenario=request.scenario, preset=request.preset
    )
    return record.id, apply_overrides(source, request.overrides)


def plan_runs(
    base: Scenario, grid: dict[str, list[Any]], seeds: list[int], sessions: int, recorded_base: list[str]
) -> list[PlannedRun]:
    """Every cell x seed as a validated effective scenario, in cell then seed order. A cell that does not
    validate raises 422 naming the cell (index and overrides) and the field at fault; nothing is stored."""
    planned: list[PlannedRun] = []
    for index, values in enumerate(cell_values(grid)):
        overrides = cell_overrides(values)
        try:
            cell_scenario = apply_overrides(base, overrides)
            for seed in seeds:
                planned.append(
                    PlannedRun(
                        index,
                        recorded_base + overrides,
                        apply_overrides(cell_scenario, {"seed": seed, "sessions": sessions}),
                    )
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


def create_sweep(session: Session, request: SweepCreate) -> tuple[Sweep, list[Run]]:
    """Validate the whole sweep, then insert it and every run as queued (not yet committed).

    A run's `overrides` are the sweep's overrides followed by its cell's, so like any run's they turn its
    scenario_id's scenario into its spec (with seed and sessions)."""
    seeds = sweep_seeds(request)
    check_grid(request.grid, len(seeds))
    scenario_id, base = base_scenario(session, request)
    sessions = request.sessions if request.sessions is not None else base.sessions
    planned = plan_runs(base, request.grid, seeds, sessions, list(request.overrides))

    sweep = Sweep(
        id=uuid.uuid4(),
        name=request.name or base.name,
        base_spec=base.model_dump(mode="json"),
        grid=request.grid,
        seeds=seeds,
        sessions=sessions,
        status=RunStatus.queued.value,
        cancel_requested=False,
    )
    session.add(sweep)
    session.flush()
    created = [
        Run(
            id=uuid.uuid4(),
            scenario_id=scenario_id,
            spec=plan.scenario.model_dump(mode="json"),
            scenario_hash=scenario_hash(plan.scenario),
            seed=plan.scenario.seed,
            sessions=plan.scenario.sessions,
            overrides=plan.overrides,
            status=RunStatus.queued,
            attempt=0,
            progress=0.0,
            sessions_done=0,
            periods_done=0,
            cancel_requested=False,
            sweep_id=sweep.id,
            cell=plan.cell,
        )
        for plan in planned
    ]
    session.add_all(created)
    session.flush()
    session.refresh(sweep)  # created_at
    return sweep, created


def dispatch(celery: Celery, redis_client: redis.Redis, settings: Settings, created: list[Run]) -> int:
    """After commit: publish each run's `queued` event and send its task (runs/service's helpers, so a broker
    failure leaves the run queued for the sweeper). Returns how many tasks were sent."""
    sent = 0
    for run in created:
        runs.announce_queued(redis_client, settings, run)
        sent += runs.enqueue(celery, run)
    return sent


# --------------------------------------------------------------------------------------------- state


@dataclass
class SweepState:
    """A sweep's aggregate state, derived from its runs."""

    status: RunStatus
    counts: dict[str, int]
    progress: float
    runs: int
    per_cell: list[SweepCell] = field(default_factory=list)
    last_finished_at: Any = None

    def snapshot(self) -> dict[str, Any]:
        """The JSON of a stream event: overall and per-cell counts and progress."""
        return {
            "status": self.status.value,
            "runs": self.runs,
            "counts": self.counts,
            "progress": self.progress,
            "cells": [{"index": c.index, "counts": c.counts, "progress": c.progress} for c in self.per_cell],
        }


def derive_status(counts: Counter[str], cancel_requested: bool) -> RunStatus:
    """queued until a run starts, running until every run is over; then succeeded if all succeeded, cancelled if
    the sweep was cancelled (or runs were, none failing), else failed."""
    total = sum(counts.values())
    terminal = sum(counts[s.value] for s in TERMINAL_STATUSES)
    if total and terminal == total:
        if counts[RunStatus.succeeded.value] == total:
            return RunStatus.succeeded
        if cancel_requested or counts[RunStatus.failed.value] == 0:
            return RunStatus.cancelled
        return RunStatus.failed
    if counts[RunStatus.running.value] or terminal:
        return RunStatus.running
    return RunStatus.queued


def _zero_counts() -> Counter[str]:
    return Counter({name: 0 for name in STATUS_NAMES})


def sweep_state(session: Session, sweep: Sweep) -> SweepState:
    """The sweep's state from one read of its runs' light columns."""
    rows = session.execute(
        select(Run.id, Run.cell, Run.status, Run.progress, Run.finished_at)
        .where(Run.sweep_id == sweep.id)
        .order_by(Run.cell, Run.seed)
    ).all()
    values = cell_values(sweep.grid)
    cells: dict[int, list[Any]] = defaultdict(list)
    for row in rows:
        cells[row.cell].append(row)
    counts = _zero_counts()
    per_cell = []
    for index, cell in enumerate(values):
        cell_counts = _zero_counts()
        for row in cells.get(index, []):
            cell_counts[row.status.value] += 1
        counts.update(cell_counts)
        members = cells.get(index, [])
        per_cell.append(
            SweepCell(
                index=index,
                overrides=cell_overrides(cell),
                values=cell,
                counts=dict(cell_counts),
                progress=sum(r.progress for r in members) / len(members) if members else 0.0,
                run_ids=[r.id for r in members],
            )
        )
    finished = [row.finished_at for row in rows if row.finished_at is not None]
    return SweepState(
        status=derive_status(counts, sweep.cancel_requested),
        counts=dict(counts),
        progress=sum(r.progress for r in rows) / len(rows) if rows else 0.0,
        runs=len(rows),
        per_cell=per_cell,
        last_finished_at=max(finished) if finished else None,
    )


def record_if_finished(session: Session, sweep: Sweep, state: SweepState) -> None:
    """Store the terminal status and finish time the first time a reader sees every run over (a conditional
    update, so concurrent readers agree), which lets GET /sweeps list finished sweeps without reading runs."""
    if state.status in TERMINAL_STATUSES and sweep.finished_at is None:
        session.execute(
            update(Sweep)
            .where(Sweep.id == sweep.id, Sweep.finished_at.is_(None))
            .values(status=state.status.value, finished_at=state.last_finished_at or func.now())
        )
        session.flush()
        session.refresh(sweep)


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
        return SweepDetail(**fields, base_spec=sweep.base_spec, per_cell=state.per_cell)
    return SweepOut(**fields)


def get_sweep(session: Session, sweep_id: uuid.UUID) -> Sweep:
    sweep = session.get(Sweep, sweep_id)
    if sweep is None:
        raise not_found("sweep", sweep_id)
    return sweep


def read_sweep(session: Session, sweep_id: uuid.UUID, *, detail: bool = True) -> SweepOut:
    sweep = get_sweep(session, sweep_id)
    state = sweep_state(session, sweep)
    record_if_finished(session, sweep, state)
    return sweep_out(sweep, state, detail=detail)


def list_sweeps(session: Session, limit: int, offset: int) -> tuple[list[SweepOut], int]:
    """A page of sweeps, newest first, each with its derived state, and the total count."""
    total = session.execute(select(func.count()).select_from(Sweep)).scalar_one()
    sweeps = (
        session.execute(select(Sweep).order_by(Sweep.created_at.desc(), Sweep.id).limit(limit).offset(offset))
        .scalars()
        .all()
    )
    items = []
    for sweep in sweeps:
        state = sweep_state(session, sweep)
        record_if_finished(session, sweep, state)
        items.append(sweep_out(sweep, state))
    return items, total


# --------------------------------------------------------------------------------------------- cancel


def cancel_sweep(session: Session, sweep_id: uuid.UUID) -> tuple[Sweep, list[Run]]:
    """Cancel a sweep: (sweep, runs cancelled now).

    Every queued run is cancelled at once by one conditional UPDATE (a worker claiming one later finds no queued
    row, exactly as for a single run's cancel), every running one gets cancel_requested and its worker stops it
    between chunks. A sweep whose runs are all over cannot be cancelled: 409."""
    sweep = get_sweep(session, sweep_id)
    state = sweep_state(session, sweep)
    if state.status in TERMINAL_STATUSES:
        record_if_finished(session, sweep, state)
        raise ApiError(
            409,
            "sweep_finished",
            f"sweep {sweep_id} is already {state.status.value}; only a queued or running sweep can be cancelled",
            status=state.status.value,
        )
    sweep.cancel_requested = True
    cancelled_ids = (
        session.execute(
            update(Run)
            .where(Run.sweep_id == sweep_id, Run.status == RunStatus.queued)
            .values(status=RunStatus.cancelled, finished_at=func.now(), error=None)
            .returning(Run.id)
        )
        .scalars()
        .all()
    )
    session.execute(
        update(Run).where(Run.sweep_id == sweep_id, Run.status == RunStatus.running).values(cancel_requested=True)
    )
    session.flush()
    session.expire_all()
    cancelled = list(session.execute(select(Run).where(Run.id.in_(cancelled_ids))).scalars()) if cancelled_ids else []
    return get_sweep(session, sweep_id), cancelled


def announce_cancelled(redis_client: redis.Redis, settings: Settings, cancelled: list[Run]) -> None:
    """After commit: each run cancelled while queued gets its terminal event (runs/service's helper)."""
    for run in cancelled:
        runs.announce_cancelled(redis_client, settings, run)


# --------------------------------------------------------------------------------------------- metrics


def sweep_metrics(session: Session, storage: Storage, sweep_id: uuid.UUID) -> dict[str, Any]:
    """Per cell: cell_metrics over the sessions of its succeeded runs, and, when the grid has a regulation axis,
    the paired effect of each regulated cell against the cell with the same other coordinates and no regulation.

    The aggregator stores these rows as runs finish; they are read when present and current (computed from the
    cell's present succeeded runs), otherwise computed here by the same shared implementation
    (algocomp.db.sweep_metrics), so the answer never depends on whether the aggregator has caught up.
    409 while no run has succeeded."""
    sweep = get_sweep(session, sweep_id)
    state = sweep_state(session, sweep)
    record_if_finished(session, sweep, state)
    if state.counts[RunStatus.succeeded.value] == 0:
        raise ApiError(
            409,
            "not_ready",
            f"no run of sweep {sweep_id} has succeeded yet (status {state.status.value}); try again later",
            status=state.status.value,
        )
    cells = sweep_aggregates.stored_sweep_metrics(session, sweep)
    if cells is None:
        try:
            cells = sweep_aggregates.compute_sweep_metrics(session, storage, sweep_id)
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
    """One row per cell (algocomp.db.sweep_metrics.metrics_rows): the same table the aggregator writes to S3."""
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

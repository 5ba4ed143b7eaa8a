"""Run service functions: build the effective scenario, store the run, enqueue it after commit, cancel it."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import redis
from celery import Celery
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from algocomp.db import TERMINAL_STATUSES, Run, RunStatus
from algocomp.progress import ProgressChannel
from algocomp.queue import RUN_TASK, RUNS_QUEUE
from algocomp.scenarios import Scenario, apply_overrides, scenario_hash
from algocomp.settings import Settings
from algocomp_api.errors import ApiError, not_found
from algocomp_api.runs.schemas import RunCreate, RunDetail, RunLinks, RunOut
from algocomp_api.scenarios import service as scenarios

log = logging.getLogger("algocomp.api.runs")


def run_links(run: Run) -> RunLinks:
    return RunLinks(
        self=f"/runs/{run.id}",
        stream=f"/streams/{run.id}",
        results=f"/results/{run.id}",
        cancel=f"/runs/{run.id}/cancel",
        scenario=f"/scenarios/{run.scenario_id}",
    )


def run_out(run: Run, *, detail: bool = False) -> RunOut:
    fields: dict[str, Any] = {name: getattr(run, name) for name in RunOut.model_fields if name != "links"}
    if detail:
        return RunDetail(**fields, spec=run.spec, links=run_links(run))
    return RunOut(**fields, links=run_links(run))


def effective_scenario(session: Session, request: RunCreate) -> tuple[uuid.UUID, Scenario, list[str]]:
    """(stored scenario id, effective scenario, overrides recorded on the run) for a run request.

    An inline scenario or a preset is stored as a scenario first (once per fingerprint), so every run points
    at the scenario it came from. Overrides apply before seed, sessions and log interval; a failure raises
    ScenarioError naming the field."""
    record, base = scenarios.source_scenario(
        session, scenario_id=request.scenario_id, scenario=request.scenario, preset=request.preset
    )

    scenario = apply_overrides(base, request.overrides)
    recorded = list(request.overrides)
    explicit: dict[str, Any] = {}
    if request.seed is not None:
        explicit["seed"] = request.seed
    if request.sessions is not None:
        explicit["sessions"] = request.sessions
    if request.log_interval is not None:
        explicit["logging.interval"] = request.log_interval
        recorded.append(f"logging.interval={request.log_interval}")
    scenario = apply_overrides(scenario, explicit)
    return record.id, scenario, recorded


def create_run(session: Session, request: RunCreate) -> Run:
    """Insert the run as queued (not yet committed)."""
    scenario_id, scenario, overrides = effective_scenario(session, request)
    run = Run(
        id=uuid.uuid4(),
        scenario_id=scenario_id,
        spec=scenario.model_dump(mode="json"),
        scenario_hash=scenario_hash(scenario),
        seed=scenario.seed,
        sessions=scenario.sessions,
        overrides=overrides,
        status=RunStatus.queued,
        attempt=0,
        progress=0.0,
        sessions_done=0,
        periods_done=0,
        cancel_requested=False,
    )
    session.add(run)
    session.flush()
    session.refresh(run)  # server defaults: created_at, queued_at
    return run


def announce_queued(redis_client: redis.Redis, settings: Settings, run: Run) -> None:
    """Publish the run's `queued` event; a Redis failure is logged, not raised (the run is stored already)."""
    try:
        ProgressChannel.from_settings(settings, run.id, client=redis_client).publish(
            "queued", {"status": RunStatus.queued.value, "sessions_total": run.sessions}
        )
    except redis.RedisError:
        log.warning("could not publish the queued event of run %s", run.id, exc_info=True)


def enqueue(celery: Celery, run: Run) -> bool:
    """Send the run's task; False (logged) if the broker refused it. The run stays queued in Postgres and the
    sweeper (algocomp.requeue_stale) re-sends it, so a failed send never loses the run."""
    try:
        celery.send_task(RUN_TASK, args=[str(run.id)], queue=RUNS_QUEUE)
        return True
    except Exception:  # any broker error: the run is committed and the sweeper will resend it
        log.warning("could not send the task of run %s; the sweeper will resend it", run.id, exc_info=True)
        return False


def get_run(session: Session, run_id: uuid.UUID) -> Run:
    run = session.get(Run, run_id)
    if run is None:
        raise not_found("run", run_id)
    return run


def list_runs(
    session: Session, scenario_id: uuid.UUID | None, status: RunStatus | None, limit: int, offset: int
) -> tuple[list[Run], int]:
    """A page of runs, newest first, filtered by scenario and status, and the total count of the filter."""
    conditions = []
    if scenario_id is not None:
        conditions.append(Run.scenario_id == scenario_id)
    if status is not None:
        conditions.append(Run.status == status)
    total = session.execute(select(func.count()).select_from(Run).where(*conditions)).scalar_one()
    runs = session.execute(
        select(Run).where(*conditions).order_by(Run.created_at.desc(), Run.id).limit(limit).offset(offset)
    ).scalars()
    return list(runs), total


def cancel_run(session: Session, run_id: uuid.UUID) -> tuple[Run, bool]:
    """Cancel a run: (run, cancelled_now).

    A queued run is cancelled at once by a conditional UPDATE (a worker that claims it later finds no queued
    row); a running one gets cancel_requested and its worker stops between sessions. A finished run cannot be
    cancelled: 409. The conditional updates make a race with the worker's claim end in exactly one outcome."""
    get_run(session, run_id)  # 404 first
    cancelled = session.execute(
        update(Run)
        .where(Run.id == run_id, Run.status == RunStatus.queued)
        .values(status=RunStatus.cancelled, finished_at=func.now(), error=None)
        .returning(Run.id)
    ).scalar_one_or_none()
    if cancelled is None:
        session.execute(
            update(Run).where(Run.id == run_id, Run.status == RunStatus.running).values(cancel_requested=True)
        )
    session.flush()
    session.expire_all()
    run = get_run(session, run_id)
    if cancelled is None and run.status in TERMINAL_STATUSES:
        raise ApiError(
            409,
            "run_finished",
            f"run {run_id} is already {run.status.value}; only a queued or running run can be cancelled",
            status=run.status.value,
        )
    return run, cancelled is not None


def announce_cancelled(redis_client: redis.Redis, settings: Settings, run: Run) -> None:
    """Publish the terminal `cancelled` event of a run cancelled before any worker took it."""
    try:
        ProgressChannel.from_settings(settings, run.id, client=redis_client).publish(
            "cancelled",
            {
                "status": RunStatus.cancelled.value,
                "sessions_done": run.sessions_done,
                "reason": "cancelled while queued",
            },
        )
    except redis.RedisError:
        log.warning("could not publish the cancelled event of run %s", run.id, exc_info=True)

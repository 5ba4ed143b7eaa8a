"""Run service functions: the effective scenario of a request, and the HTTP side of storing and cancelling a run
(the transitions themselves are algocomp.platform.db.runs', the messages after commit the unit of work's)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import Row

from algocomp.platform.db import Run, RunStatus
from algocomp.platform.db.accounts import Principal
from algocomp.platform.db.runs import CancelOutcome, new_run
from algocomp.platform.progress import ProgressChannel
from algocomp.platform.settings import Settings
from algocomp.platform.unit_of_work import UnitOfWork
from algocomp.scenarios import Scenario, apply_overrides
from algocomp_api import limits
from algocomp_api.auth import forbid_unless_manager
from algocomp_api.errors import ApiError, not_found
from algocomp_api.quotas import check_active_runs
from algocomp_api.runs.schemas import RunCreate, RunDetail, RunLinks, RunOut
from algocomp_api.scenarios import service as scenarios

log = logging.getLogger("algocomp.api")


def run_links(run: Run | Row[Any]) -> RunLinks:
    return RunLinks.model_construct(
        self=f"/runs/{run.id}",
        stream=f"/streams/{run.id}",
        results=f"/results/{run.id}",
        cancel=f"/runs/{run.id}/cancel",
        scenario=f"/scenarios/{run.scenario_id}",
    )


# what RunOut takes from a run (the rest, `links`, is built here)
RUN_OUT_FIELDS = tuple(name for name in RunOut.model_fields if name != "links")


def run_out(run: Run | Row[Any], *, detail: bool = False) -> RunOut:
    """The run as the API shows it, from its ORM object or its read-only row (RunRepository.view and .page).

    Built without validation (model_construct): every field comes from a column of the runs table, whose types are
    the model's, and validating them again was a tenth of an API process's CPU on GET /runs (py-spy, issue 11).
    tests/services/test_fuzz.py checks the answers against the OpenAPI schema."""
    fields: dict[str, Any] = {name: getattr(run, name) for name in RUN_OUT_FIELDS}
    if detail:
        return RunDetail.model_construct(**fields, spec=run.spec, links=run_links(run))
    return RunOut.model_construct(**fields, links=run_links(run))


def check_request(request: RunCreate, settings: Settings) -> None:
    """The limits a run request can be held to before anything is loaded or stored (422 naming the field)."""
    limits.check_sessions(request.sessions, settings)
    if request.scenario is not None:
        limits.check_document(request.scenario, settings, "scenario")
    limits.check_overrides(request.overrides, settings)
    if request.log_interval is not None:
        limits.check_at_most(
            request.log_interval,
            settings.max_periods_per_session,
            "log_interval",
            "log_interval (periods per panel row)",
            "max_periods_per_session",
        )


def effective_scenario(
    uow: UnitOfWork, caller: Principal, request: RunCreate, settings: Settings
) -> tuple[uuid.UUID, Scenario, list[str]]:
    """(stored scenario id, effective scenario, overrides recorded on the run) for a run request.

    An inline scenario or a preset is stored as a scenario first (once per fingerprint), so every run points
    at the scenario it came from. Overrides apply before seed, sessions and log interval; a failure raises
    ScenarioError naming the field, a run beyond the limits (sessions, periods, their product) 422
    limit_exceeded."""
    check_request(request, settings)
    record, base = scenarios.source_scenario(
        uow, caller, scenario_id=request.scenario_id, scenario=request.scenario, preset=request.preset
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
    limits.check_run_size(scenario, settings)
    limits.check_agent_classes(scenario, settings)
    return record.id, scenario, recorded


def create_run(uow: UnitOfWork, caller: Principal, settings: Settings, request: RunCreate) -> Run:
    """Store the run as queued for the caller's team (422 beyond a limit, 429 over the team's quota); once the
    request's transaction commits, its `queued` event is published and its task sent (a failed send leaves the
    run queued for the sweeper)."""
    scenario_id, scenario, overrides = effective_scenario(uow, caller, request, settings)
    check_active_runs(uow, caller, settings, 1)
    run = new_run(scenario_id, scenario, overrides, team_id=caller.team_id, owner_id=caller.user_id)
    uow.runs.add([run])
    announce_queued(uow, run)
    return run


def announce_queued(uow: UnitOfWork, run: Run) -> None:
    """After commit: the run's `queued` event, then its task."""
    uow.publish(run.id, "queued", {"status": RunStatus.queued.value, "sessions_total": run.sessions})
    uow.enqueue_run(run.id)


def view_run(uow: UnitOfWork, caller: Principal, run_id: uuid.UUID) -> Row[Any]:
    """The run as a read-only row, if it is the caller's team's; 404 otherwise."""
    row = uow.runs.view(run_id, team_id=caller.team_id)
    if row is None:
        raise not_found("run", run_id)
    return row


def get_run(uow: UnitOfWork, caller: Principal, run_id: uuid.UUID) -> Run:
    """The run, if it is the caller's team's; 404 otherwise."""
    run = uow.runs.get(run_id, team_id=caller.team_id)
    if run is None:
        raise not_found("run", run_id)
    return run


def cancel_run(uow: UnitOfWork, caller: Principal, run_id: uuid.UUID) -> tuple[Run, bool]:
    """Cancel a run: (run, cancelled_now).

    A queued run is cancelled at once (a worker that claims it later finds no queued row) and gets its terminal
    event after commit; a running one gets cancel_requested and its worker stops between sessions. A finished run
    cannot be cancelled: 409. Only its owner or a team admin may cancel it: 403."""
    forbid_unless_manager(caller, get_run(uow, caller, run_id).owner_id, f"run {run_id}")  # 404 first
    outcome = uow.runs.cancel(run_id)
    run = get_run(uow, caller, run_id)
    if outcome is CancelOutcome.finished:
        raise ApiError(
            409,
            "run_finished",
            f"run {run_id} is already {run.status.value}; only a queued or running run can be cancelled",
            status=run.status.value,
        )
    if outcome is CancelOutcome.cancelled:
        announce_cancelled(uow, run)
    return run, outcome is CancelOutcome.cancelled


def retry_run(uow: UnitOfWork, caller: Principal, run_id: uuid.UUID, settings: Settings, redis: Redis) -> Run:
    """Queue a failed or cancelled run again (the same run: one id, one S3 folder, one result when it succeeds).

    404 for another team's run, 403 unless the caller launched it or is a team admin, 409 for a run that is
    queued, running or succeeded, or whose sweep was cancelled, 429 over the team's quota. The run's event stream
    starts afresh (a follower replaying it must not stop at the old terminal event); should the transaction then
    roll back, followers get the terminal event from the database instead."""
    run = get_run(uow, caller, run_id)
    forbid_unless_manager(caller, run.owner_id, f"run {run_id}")
    if run.status not in (RunStatus.failed, RunStatus.cancelled):
        raise not_retryable(run, "only a failed or cancelled run can be retried")
    if run.sweep_id is not None:
        sweep = uow.sweeps.get(run.sweep_id, team_id=caller.team_id)
        if sweep is not None and sweep.cancel_requested:
            raise not_retryable(run, f"it belongs to sweep {run.sweep_id}, which was cancelled")
    check_active_runs(uow, caller, settings, 1)
    if not uow.runs.retry(run_id):  # its status changed since it was read (retry reloads `run`)
        raise not_retryable(run, "only a failed or cancelled run can be retried")
    if run.sweep_id is not None:
        uow.sweeps.reopen(run.sweep_id)
    try:
        ProgressChannel(redis, run_id, prefix=settings.key_prefix).delete()
    except RedisError:  # followers replaying from the start then stop at the old terminal event; the run still goes
        log.warning("could not clear the event stream of retried run %s", run_id, exc_info=True)
    announce_queued(uow, run)
    return run


def not_retryable(run: Run, why: str) -> ApiError:
    return ApiError(409, "run_not_retryable", f"run {run.id} is {run.status.value}; {why}", status=run.status.value)


def announce_cancelled(uow: UnitOfWork, run: Run) -> None:
    """After commit: the terminal `cancelled` event of a run cancelled before any worker took it."""
    uow.publish(
        run.id,
        "cancelled",
        {"status": RunStatus.cancelled.value, "sessions_done": run.sessions_done, "reason": "cancelled while queued"},
    )

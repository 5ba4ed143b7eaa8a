"""The aggregator's tasks, registered explicitly on the app."""

from __future__ import annotations

import logging
import uuid
from functools import lru_cache
from typing import Any

from celery import Celery, Task
from sqlalchemy import Engine

from algocomp.platform.db import Run, Sweep, get_engine, session_scope
from algocomp.platform.db import sweep_metrics as sweep_aggregates
from algocomp.platform.db.follow_ups import FollowUpRepository
from algocomp.platform.logs import bind_run
from algocomp.platform.queue import RUN_FINISHED_TASK
from algocomp.platform.queue.retries import retry_or_fail
from algocomp.platform.retry import backoff_from
from algocomp.platform.settings import get_settings
from algocomp.platform.storage import Storage
from algocomp_aggregator.indicators import record_run_metrics

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def storage() -> Storage:
    """One S3 client per pool process, created on first use (after the fork), retrying transient faults for
    settings.retry_budget_s."""
    settings = get_settings()
    return Storage(settings, backoff_from(settings))


def aggregate_sweep(engine: Engine, run_id: uuid.UUID | str) -> dict[str, Any] | None:
    """If the run belongs to a sweep: recompute and upsert the metrics of the run's cell and of the cells compared
    with it (sweep_aggregates.related_cells), and once every run of the sweep is over recompute every cell and
    write metrics.csv, metrics.parquet and the plots to S3. None for a run outside any sweep.

    Every cell is recomputed too while some cell has no row yet (early in the sweep, when few runs are done), so
    the stored rows are complete from the first message on. Recomputing every cell on every message, as before,
    read every finished run's summary again each time: over the 100 runs of the Figure 1 sweep, about a second of
    the aggregator's CPU a message by its end, on the cores the runs need. The full recomputation at the end
    repairs whatever a lost message missed, before the files are written; until then the API computes the metrics
    afresh when it is asked for them and a row is stale (stored_sweep_metrics).

    The recomputation holds the sweep's advisory lock, so an older computation never overwrites a newer one; the
    files are written after the rows are committed, and every terminal run's message rewrites them (same keys),
    so a crash in between is repaired by the next message or a redelivery."""
    with session_scope(engine) as session:
        run = session.get(Run, uuid.UUID(str(run_id)))
        if run is None or run.sweep_id is None:
            return None
        sweep_id = run.sweep_id
        sweep_aggregates.lock_sweep(session, sweep_id)
        # read before computing: a run finishing in between must not count as over yet be missing from the
        # metrics (a terminal status is final, so "over" read first means every run's result is in)
        over = sweep_aggregates.sweep_over(session, sweep_id)
        sweep = session.get(Sweep, sweep_id)
        only = None
        if sweep is not None and run.cell is not None and not over:
            if sweep_aggregates.stored_cell_count(session, sweep_id) == len(sweep_aggregates.cell_values(sweep.grid)):
                only = sweep_aggregates.related_cells(sweep.grid, run.cell)
        cells = sweep_aggregates.compute_sweep_metrics(session, storage(), sweep_id, cells=only)
        sweep_aggregates.store_sweep_metrics(session, sweep_id, cells)
    outcome: dict[str, Any] = {"sweep_id": str(sweep_id), "cells": len(cells), "over": over}
    if over:
        with session_scope(engine) as session:
            sweep = session.get(Sweep, sweep_id)
            if sweep is not None:  # deleted meanwhile: nothing to write the files for
                outcome["artifacts"] = sweep_aggregates.write_sweep_artifacts(storage(), sweep, cells)
    log.info("sweep %s: %d cells aggregated%s", sweep_id, len(cells), ", sweep over, files written" if over else "")
    return outcome


def record_follow_up(run_id: str, error: str | None) -> None:
    """Mark the run's notice done (error None) or failed with `error` (algocomp.platform.db.follow_ups)."""
    with session_scope(get_engine()) as session:
        follow_ups = FollowUpRepository(session)
        if error is None:
            follow_ups.done(uuid.UUID(run_id), RUN_FINISHED_TASK)
        else:
            follow_ups.failed(uuid.UUID(run_id), RUN_FINISHED_TASK, error)


def register_tasks(app: Celery) -> None:
    """Register the aggregator's tasks on `app` under the shared task names (algocomp.platform.queue)."""

    @app.task(name=RUN_FINISHED_TASK, bind=True)
    def run_finished(self: Task, run_id: str) -> dict[str, Any] | None:
        """Store the indicators of a run that reached a terminal status (sent by the worker once per outcome) and,
        for a run of a sweep, the sweep's per-cell metrics (and its files once the sweep is over). Every step is
        an upsert or rewrites the same keys, so the task is sent again when S3 or Postgres is out of reach
        (algocomp.platform.queue.retries)."""
        with bind_run(run_id):
            try:
                metrics = record_run_metrics(get_engine(), run_id)
                sweep = aggregate_sweep(get_engine(), run_id) if metrics is not None else None
                record_follow_up(run_id, None)
            except Exception as error:
                retry_or_fail(
                    self,
                    error,
                    what=f"aggregating run {run_id}",
                    max_retries=get_settings().follow_up_max_retries,
                    record_failure=lambda text: record_follow_up(run_id, text),
                )
        if metrics is None:
            return None
        return {"run_id": run_id, "status": metrics.status, "profit_gain": metrics.profit_gain, "sweep": sweep}

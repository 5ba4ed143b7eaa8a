"""The worker's Celery tasks, registered explicitly on the app: the run, its follow-up (plots, MLflow) and the
stale-run sweeper (Celery beat). Each is a few lines over this package's modules, which can be called without
Celery: execute (the run), follow_ups, and the run repository's stale().
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from celery import Celery, Task

from algocomp.platform.logs import bind_run
from algocomp.platform.queue import FINISH_TASK, REQUEUE_TASK, RUN_TASK
from algocomp_worker.context import context_for
from algocomp_worker.execute import execute_run
from algocomp_worker.follow_ups import render_and_track as draw_plots_and_track

log = logging.getLogger(__name__)


def worker_name(task: Task) -> str:
    """Who holds a claim: the Celery node and the pool process, so an operator can find it."""
    node = task.request.hostname or socket.gethostname()
    return f"{node}/{os.getpid()}"


def register_tasks(app: Celery) -> None:
    """Register the worker's tasks on `app` under the shared task names (algocomp.platform.queue)."""

    @app.task(name=RUN_TASK, bind=True)
    def run(self: Task, run_id: str) -> dict[str, Any]:
        """Simulate one run (at-least-once delivery: a redelivery finds the run claimed and returns)."""
        with bind_run(run_id):
            return execute_run(context_for(app), run_id, worker=worker_name(self)).as_dict()

    @app.task(name=FINISH_TASK)
    def render_and_track(run_id: str) -> dict[str, str]:
        """Draw a succeeded run's plots and log it to MLflow (after the run, so it never delays the next one)."""
        with bind_run(run_id):
            return draw_plots_and_track(context_for(app), run_id)

    @app.task(name=REQUEUE_TASK)
    def requeue_stale() -> list[str]:
        """Re-send the tasks of runs stuck queued (lost enqueue) or running without a heartbeat (dead worker)."""
        context = context_for(app)
        settings = context.settings
        with context.units_of_work() as uow:
            run_ids = uow.runs.stale(requeue_after_s=settings.requeue_after_s, lease_s=settings.lease_s)
            for run_id in run_ids:
                uow.enqueue_run(run_id)
        if run_ids:
            log.info("re-sent %d stale runs: %s", len(run_ids), ", ".join(map(str, run_ids)))
        return [str(run_id) for run_id in run_ids]

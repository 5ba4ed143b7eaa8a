"""The worker's tasks, registered explicitly on the app: the run task and the stale-run sweeper (Celery beat).

Task bodies are thin: they resolve this process's connections and call algocomp_worker.runner, which holds the
logic (and can be called without Celery).
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from typing import Any

import redis
from celery import Celery, Task

from algocomp.db import get_engine
from algocomp.logs import bind_run
from algocomp.queue import (
    AGGREGATE_QUEUE,
    ARTIFACTS_QUEUE,
    FINISH_TASK,
    REQUEUE_TASK,
    RUN_FINISHED_TASK,
    RUN_TASK,
    RUNS_QUEUE,
)
from algocomp.settings import get_settings
from algocomp.storage import Storage
from algocomp_worker.runner import RunServices, execute_run, find_stale_runs
from algocomp_worker.runner import render_and_track as runner_render_and_track

log = logging.getLogger(__name__)

_services: RunServices | None = None
_services_pid: int | None = None


def services_for(app: Celery) -> RunServices:
    """This process's connections, created on first use after the fork (sockets are never shared across
    processes) and reused by every later task of the process."""
    global _services, _services_pid
    if _services is None or _services_pid != os.getpid():
        settings = get_settings()

        def notify_finished(run_id: uuid.UUID) -> None:
            app.send_task(RUN_FINISHED_TASK, args=[str(run_id)], queue=AGGREGATE_QUEUE)

        def request_follow_up(run_id: uuid.UUID) -> None:
            app.send_task(FINISH_TASK, args=[str(run_id)], queue=ARTIFACTS_QUEUE)

        _services = RunServices(
            settings=settings,
            engine=get_engine(),
            redis=redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5),
            storage=Storage(settings),
            notify_finished=notify_finished,
            request_follow_up=request_follow_up,
        )
        _services_pid = os.getpid()
    return _services


def worker_name(task: Task) -> str:
    """Who holds a claim: the Celery node and the pool process, so an operator can find it."""
    node = task.request.hostname or socket.gethostname()
    return f"{node}/{os.getpid()}"


def register_tasks(app: Celery) -> None:
    """Register the worker's tasks on `app` under the shared task names (algocomp.queue)."""

    @app.task(name=RUN_TASK, bind=True)
    def run(self: Task, run_id: str) -> dict[str, Any]:
        """Simulate one run (at-least-once delivery: a redelivery finds the run claimed and returns)."""
        with bind_run(run_id):
            outcome = execute_run(services_for(app), run_id, worker=worker_name(self))
        return outcome.as_dict()

    @app.task(name=FINISH_TASK)
    def render_and_track(run_id: str) -> dict[str, str]:
        """Draw a succeeded run's plots and log it to MLflow (after the run, so it never delays the next one)."""
        with bind_run(run_id):
            return runner_render_and_track(services_for(app), run_id)

    @app.task(name=REQUEUE_TASK)
    def requeue_stale() -> list[str]:
        """Re-send the tasks of runs stuck queued (lost enqueue) or running without a heartbeat (dead worker)."""
        settings = get_settings()
        run_ids = find_stale_runs(get_engine(), requeue_after_s=settings.requeue_after_s, lease_s=settings.lease_s)
        for run_id in run_ids:
            app.send_task(RUN_TASK, args=[str(run_id)], queue=RUNS_QUEUE)
            log.info("re-sent run %s", run_id)
        return [str(run_id) for run_id in run_ids]

"""The worker's Celery tasks, registered explicitly on the app: the run, its follow-up (MLflow), its plots (drawn
when a client first asks for one) and the stale-run sweeper (Celery beat). Each is a few lines over this package's
modules, which can be called without Celery: execute (the run), follow_ups, and the run repository's stale().

A run's task that finds its run held under a live lease ("leased") either gives up (a duplicate: the owner is
another delivery, and the sweeper re-sends the run if that owner dies) or, when its own message was redelivered
(the pool process that ran it died: Celery requeues the message of a lost worker at once), retries itself just
after the lease expires, so the run is claimed again within a lease instead of waiting for the sweeper. It keeps
retrying while the same attempt holds a live lease (`watch_attempt`), and stops once that attempt is over or
another delivery has claimed the run.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable
from typing import Any

from celery import Celery, Task

from algocomp.platform.logs import bind_run
from algocomp.platform.queue import DRAW_TASK, FINISH_TASK, LEGACY_FINISH_TASK, REQUEUE_TASK, RUN_TASK
from algocomp.platform.queue.retries import retry_or_fail
from algocomp.platform.unit_of_work import UnitOfWork
from algocomp_worker.context import WorkerContext, context_for
from algocomp_worker.execute import RunOutcome, execute_run
from algocomp_worker.follow_ups import draw_run_plots, track_run

log = logging.getLogger(__name__)

# How long after the lease's expiry a waiting delivery tries to claim (the database's clock decides; a retry that
# comes too early only waits once more).
LEASE_MARGIN_S = 1.0


def worker_name(task: Task) -> str:
    """Who holds a claim: the Celery node and the pool process, so an operator can find it."""
    node = task.request.hostname or socket.gethostname()
    return f"{node}/{os.getpid()}"


def retry_after_lease(task: Task, outcome: RunOutcome, watch_attempt: int | None) -> float | None:
    """When this delivery should try the run again (seconds), or None to give up: see the module docstring."""
    if outcome.status != "leased" or outcome.lease_left_s is None:
        return None
    redelivered = bool((task.request.delivery_info or {}).get("redelivered"))
    if watch_attempt is None and not redelivered:
        return None  # a duplicate of a live run's task
    if watch_attempt is not None and outcome.attempt != watch_attempt:
        return None  # another delivery claimed the run since: it is that one's
    return outcome.lease_left_s + LEASE_MARGIN_S


def register_tasks(app: Celery) -> None:
    """Register the worker's tasks on `app` under the shared task names (algocomp.platform.queue)."""

    # max_retries None: a waiting delivery retries once per lease for as long as the attempt it watches is alive
    @app.task(name=RUN_TASK, bind=True, max_retries=None)
    def run(self: Task, run_id: str, watch_attempt: int | None = None) -> dict[str, Any]:
        """Simulate one run (at-least-once delivery: a duplicate finds the run claimed and returns; a redelivery
        after its worker died waits for the lease to expire and claims it)."""
        with bind_run(run_id):
            outcome = execute_run(context_for(app), run_id, worker=worker_name(self))
            countdown = retry_after_lease(self, outcome, watch_attempt)
            if countdown is not None:
                log.info(
                    "run %s: attempt %s holds its lease; trying again in %.1f s", run_id, outcome.attempt, countdown
                )
                raise self.retry(args=[run_id], kwargs={"watch_attempt": outcome.attempt}, countdown=countdown)
            return outcome.as_dict()

    def follow_up(name: str, what: str, work: Callable[[WorkerContext, str], Any]) -> None:
        """Register follow-up task `name`: it does `work` for a run and records its follow-up done, or failed when
        it meets an error no retry mends or a fault outlasting its retries (sent again later meanwhile)."""

        @app.task(name=name, bind=True)
        def task(self: Task, run_id: str) -> Any:
            with bind_run(run_id):
                context = context_for(app)
                key = uuid.UUID(run_id), name

                def record(change: Callable[[UnitOfWork], None]) -> None:
                    context.units_of_work.run(change, what=f"record the {what} of run {run_id}")

                try:
                    outcome = work(context, run_id)
                    record(lambda uow: uow.follow_ups.done(*key))
                    return outcome
                except Exception as error:
                    retry_or_fail(
                        self,
                        error,
                        what=f"the {what} of run {run_id}",
                        max_retries=context.settings.follow_up_max_retries,
                        record_failure=lambda text: record(lambda uow: uow.follow_ups.failed(*key, text)),
                    )

    # Log a succeeded run to MLflow (after the run, so it never delays the next one); sent again later when S3 or
    # Postgres stays out of reach (algocomp.platform.queue.retries).
    follow_up(FINISH_TASK, "follow-up", track_run)
    follow_up(LEGACY_FINISH_TASK, "follow-up", track_run)
    # Draw a succeeded run's plots, asked for by the API on a client's first request for one.
    follow_up(DRAW_TASK, "plots", draw_run_plots)

    @app.task(name=REQUEUE_TASK)
    def requeue_stale() -> list[str]:
        """Re-send the tasks of runs stuck queued (lost enqueue) or running without a heartbeat (dead worker), and
        the follow-ups still pending; delete the records of follow-ups done longer ago than follow_up_keep_s."""
        context = context_for(app)
        settings = context.settings

        def requeue(uow: UnitOfWork) -> tuple[list[uuid.UUID], list[tuple[uuid.UUID, str, str]], int]:
            run_ids = uow.runs.stale(requeue_after_s=settings.requeue_after_s, lease_s=settings.lease_s)
            for run_id in run_ids:
                uow.enqueue_run(run_id)
            follow_ups = uow.follow_ups.due(resend_after_s=settings.requeue_after_s)
            for run_id, task, queue in follow_ups:
                uow.send_task(task, run_id, queue, description=f"re-send {task} of run {run_id}")
            purged = uow.follow_ups.purge_done(older_than_s=settings.follow_up_keep_s)
            return run_ids, follow_ups, purged

        run_ids, follow_ups, purged = context.units_of_work.run(requeue, what="re-send stale runs and follow-ups")
        if purged:
            log.info(
                "deleted the records of %d follow-ups done more than %.0f s ago", purged, settings.follow_up_keep_s
            )
        if run_ids:
            log.info("re-sent %d stale runs: %s", len(run_ids), ", ".join(map(str, run_ids)))
        for run_id, task, _ in follow_ups:
            log.info("re-sent %s of run %s (still pending)", task, run_id)
        return [str(run_id) for run_id in run_ids]

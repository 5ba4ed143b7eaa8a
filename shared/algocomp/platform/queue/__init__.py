"""The Celery application shared by the api (which only sends), the worker and the aggregator.

Task names and queues are constants here so that the api can send a task without importing the worker's code.
Long tasks acknowledge late, one at a time, with a visibility timeout longer than the longest run: a worker that
dies mid-run has its task redelivered, and the run's claim (see docs/architecture.md) keeps that from producing
a second result.
"""

from __future__ import annotations

from algocomp.extras import raise_missing_extra

try:
    from celery import Celery

    from algocomp.platform.settings import Settings, get_settings
except ImportError as _error:
    raise_missing_extra(_error, "server", "algocomp.platform.queue (the services' Celery application)")

RUN_TASK = "algocomp.run"
RUN_FINISHED_TASK = "algocomp.run_finished"
REQUEUE_TASK = "algocomp.requeue_stale"
# MLflow tracking of a succeeded run: a durable follow-up off the run's critical path, so a run is done (and the next
# one starts) as soon as its tables and summary are stored.
FINISH_TASK = "algocomp.track"
# The name the follow-up had when it drew the plots too: still registered, so a record pending from before the
# change (re-sent by the sweeper) is tracked and marked done instead of meeting an unknown task.
LEGACY_FINISH_TASK = "algocomp.render_and_track"
# A run's two PNG plots, drawn on first request (the API sends it when a client asks for a plot not drawn yet):
# ~0.3 s a run, far more than a tiny run, so no run pays for plots nobody looks at.
DRAW_TASK = "algocomp.draw_plots"
RUNS_QUEUE = "runs"
# Follow-up work (tracking): consumed by the same workers, but only when no run is waiting.
ARTIFACTS_QUEUE = "artifacts"
# Plots a client is waiting for: taken before runs (a request waits on it, with a bound), bounded by what clients
# ask for.
PLOTS_QUEUE = "plots"
# The stale-run sweeper, alone on its queue and first in the workers' order: it never waits behind a backlog of
# runs (only for a pool process to be free).
SWEEP_QUEUE = "sweep"
# The queues a run worker consumes, in priority order (see queue_order_strategy below).
WORKER_QUEUES = f"{SWEEP_QUEUE},{PLOTS_QUEUE},{RUNS_QUEUE},{ARTIFACTS_QUEUE}"
AGGREGATE_QUEUE = "aggregate"


def log_as(service: str) -> None:
    """Structured logs (algocomp.platform.logs) for a Celery service, in its main process and in every pool process.

    Connecting setup_logging also stops Celery installing its own handlers. Call it once, from the module that
    defines the service's app; a process runs one service.
    """
    from celery.signals import setup_logging, worker_process_init

    from algocomp.platform.logs import configure_logging

    def configure(**_: object) -> None:
        configure_logging(service)

    setup_logging.connect(configure, weak=False)
    worker_process_init.connect(configure, weak=False)


def create_celery(settings: Settings | None = None, *, name: str = "algocomp") -> Celery:
    settings = settings or get_settings()
    app = Celery(name, broker=settings.redis_url)
    prefix = settings.key_prefix
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.run_time_limit_s + 60,
        task_soft_time_limit=settings.run_time_limit_s,
        broker_transport_options={
            "visibility_timeout": settings.run_time_limit_s + 600,
            "global_keyprefix": prefix,
            # A worker listening on "sweep,plots,runs,artifacts" takes from "artifacts" only when "runs" is empty:
            # results first, then their tracking (the default round robin would let a backlog of follow-ups delay
            # new runs); a sweep before any, and a plot a client waits for before a run.
            "queue_order_strategy": "priority",
        },
        broker_connection_retry_on_startup=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        task_default_queue=RUNS_QUEUE,
        task_routes={
            RUN_TASK: {"queue": RUNS_QUEUE},
            REQUEUE_TASK: {"queue": SWEEP_QUEUE},
            FINISH_TASK: {"queue": ARTIFACTS_QUEUE},
            LEGACY_FINISH_TASK: {"queue": ARTIFACTS_QUEUE},
            DRAW_TASK: {"queue": PLOTS_QUEUE},
            RUN_FINISHED_TASK: {"queue": AGGREGATE_QUEUE},
        },
        beat_schedule={
            "requeue-stale-runs": {
                "task": REQUEUE_TASK,
                "schedule": settings.sweep_interval_s,
                # a sweep that waited longer than an interval is superseded by the next one: no pile-up while the
                # workers are down
                "options": {"queue": SWEEP_QUEUE, "expires": settings.sweep_interval_s},
            },
        },
        worker_hijack_root_logger=False,
        worker_send_task_events=True,
        task_send_sent_event=True,
    )
    return app

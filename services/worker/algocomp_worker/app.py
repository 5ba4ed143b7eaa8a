"""The worker's Celery application: `celery -A algocomp_worker.app:celery_app worker -Q runs,artifacts`.

Configured by the shared factory (algocomp.queue.create_celery: late acknowledgement, prefetch 1, reject on
worker lost, time limits) from the same settings as every service. Connections are opened per process, after
Celery forks its pool (see algocomp_worker.tasks), never inherited from the parent.
"""

from __future__ import annotations

from typing import Any

from algocomp.logs import configure_logging
from algocomp.queue import create_celery
from algocomp.settings import get_settings
from celery.signals import setup_logging, worker_process_init

from algocomp_worker.tasks import register_tasks

SERVICE_NAME = "worker"

celery_app = create_celery(get_settings(), name="algocomp-worker")
register_tasks(celery_app)


@setup_logging.connect
def _configure_main_process_logging(**_: Any) -> None:
    """Structured logs in the parent process too (connecting this signal stops Celery installing its own)."""
    configure_logging(SERVICE_NAME)


@worker_process_init.connect
def _configure_pool_process(**_: Any) -> None:
    """Each pool process logs in the service's format; its database engine, Redis and S3 clients are created
    lazily on first use in that process."""
    configure_logging(SERVICE_NAME)

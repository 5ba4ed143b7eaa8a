"""The aggregator's Celery application: `celery -A algocomp_aggregator.app:celery_app worker -Q aggregate`.

Its own queue and process, so aggregation never waits behind simulations (nor holds them up). Same factory and
settings as the worker; the database engine is created lazily per pool process.
"""

from __future__ import annotations

from typing import Any

from algocomp.logs import configure_logging
from algocomp.queue import create_celery
from algocomp.settings import get_settings
from celery.signals import setup_logging, worker_process_init

from algocomp_aggregator.tasks import register_tasks

SERVICE_NAME = "aggregator"

celery_app = create_celery(get_settings(), name="algocomp-aggregator")
register_tasks(celery_app)


@setup_logging.connect
def _configure_main_process_logging(**_: Any) -> None:
    """Structured logs in the parent process too (connecting this signal stops Celery installing its own)."""
    configure_logging(SERVICE_NAME)


@worker_process_init.connect
def _configure_pool_process(**_: Any) -> None:
    configure_logging(SERVICE_NAME)

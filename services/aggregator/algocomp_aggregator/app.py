"""The aggregator's Celery application: `celery -A algocomp_aggregator.app:celery_app worker -Q aggregate`.

Its own queue and process, so aggregation never waits behind simulations (nor holds them up). Same factory and
settings as the worker; the database engine is created lazily per pool process.
"""

from __future__ import annotations

from algocomp.platform.queue import create_celery, log_as
from algocomp.platform.settings import get_settings
from algocomp_aggregator.tasks import register_tasks

SERVICE_NAME = "aggregator"

celery_app = create_celery(get_settings(), name="algocomp-aggregator")
register_tasks(celery_app)
log_as(SERVICE_NAME)  # each pool process creates its database, Redis and S3 clients lazily, after the fork

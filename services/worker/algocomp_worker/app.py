"""The worker's Celery application: `celery -A algocomp_worker.app:celery_app worker -Q sweep,plots,runs,artifacts`, and
`celery -A algocomp_worker.app:celery_app beat` (the sweeper's schedule; its scheduler marks beat's liveness).

Configured by the shared factory (algocomp.platform.queue.create_celery: late acknowledgement, prefetch 1, reject on
worker lost, time limits) from the same settings as every service. Connections are opened per process, after
Celery forks its pool (see algocomp_worker.tasks), never inherited from the parent.
"""

from __future__ import annotations

from algocomp.platform.queue import create_celery, log_as
from algocomp.platform.settings import get_settings
from algocomp_worker.tasks import register_tasks

SERVICE_NAME = "worker"

celery_app = create_celery(get_settings(), name="algocomp-worker")
celery_app.conf.beat_scheduler = "algocomp_worker.beat:LivenessScheduler"
register_tasks(celery_app)
log_as(SERVICE_NAME)  # each pool process creates its database, Redis and S3 clients lazily, after the fork

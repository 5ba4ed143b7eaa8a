"""Celery beat's scheduler for the worker app: Celery's own (PersistentScheduler, the `--schedule` file) that also
writes beat's liveness mark to Redis at every tick (algocomp.platform.queue.beat), which the API's /readyz reads.
A tick happens at least once per sweep interval (the sweeper is due that often)."""

from __future__ import annotations

import logging
from typing import Any

import redis
from celery.beat import PersistentScheduler

from algocomp.platform.queue.beat import mark_beat
from algocomp.platform.settings import get_settings

log = logging.getLogger(__name__)


class LivenessScheduler(PersistentScheduler):
    """PersistentScheduler + the liveness mark. A mark that cannot be written is logged; beat goes on."""

    _redis: redis.Redis | None = None

    def tick(self, *args: Any, **kwargs: Any) -> float:
        interval = super().tick(*args, **kwargs)
        self.mark()
        return interval

    def mark(self) -> None:
        settings = get_settings()
        try:
            if self._redis is None:
                self._redis = redis.Redis.from_url(settings.redis_url, socket_timeout=5, socket_connect_timeout=5)
            mark_beat(self._redis, settings.key_prefix)
        except Exception:  # noqa: BLE001 - beat must keep scheduling; /readyz will report the missing mark
            log.warning("could not write beat's liveness mark to Redis", exc_info=True)

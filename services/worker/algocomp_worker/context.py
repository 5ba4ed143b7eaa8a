"""What a worker process needs to run tasks: its settings, its units of work (Postgres sessions and the messages
sent after commit) and its S3 client, all three retrying transient faults for settings.retry_budget_s. One per
process, created after the fork (sockets are never shared across processes) and reused by every later task of the
process."""

from __future__ import annotations

import os
from dataclasses import dataclass

import redis
from celery import Celery

from algocomp.platform.db import get_engine, sessionmaker_for
from algocomp.platform.retry import backoff_from
from algocomp.platform.settings import Settings, get_settings
from algocomp.platform.storage import Storage
from algocomp.platform.unit_of_work import Messaging, UnitOfWorkFactory


@dataclass
class WorkerContext:
    settings: Settings
    units_of_work: UnitOfWorkFactory
    storage: Storage

    @classmethod
    def open(cls, settings: Settings, celery: Celery) -> WorkerContext:
        client = redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
        # S3, Postgres and the broker are retried through transient faults for settings.retry_budget_s
        backoff = backoff_from(settings)
        messaging = Messaging.from_settings(settings, celery, client, backoff)
        units_of_work = UnitOfWorkFactory(sessionmaker_for(get_engine()), messaging, backoff)
        return cls(settings, units_of_work, Storage(settings, backoff))


_context: WorkerContext | None = None
_context_pid: int | None = None


def context_for(app: Celery) -> WorkerContext:
    """This process's context, created on first use."""
    global _context, _context_pid
    if _context is None or _context_pid != os.getpid():
        _context = WorkerContext.open(get_settings(), app)
        _context_pid = os.getpid()
    return _context

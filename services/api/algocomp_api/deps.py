"""The API's shared infrastructure, created once per process and handed to routes as FastAPI dependencies.

`ApiResources` is built in the application's lifespan (so the async Redis client belongs to the server's event
loop) and closed at shutdown. Routes never build clients themselves: they ask here for the request's unit of work
(its transaction, the run and sweep repositories, and the messages sent after commit), Redis or the storage,
which keeps one engine, one connection pool and one Celery producer per process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated

import redis
import redis.asyncio as aioredis
from celery import Celery
from fastapi import Depends, Request
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

from algocomp.platform.queue import create_celery
from algocomp.platform.settings import Settings
from algocomp.platform.storage import Storage
from algocomp.platform.unit_of_work import Messaging, UnitOfWork, UnitOfWorkFactory

# Probes and requests must fail in seconds when a backing service is down, not hang a worker thread.
CONNECT_TIMEOUT_S = 5
# Database connections beyond one per admitted request: the event streams' short reads and the readiness probe.
STREAM_CONNECTIONS = 8
# An admitted request never waits for a connection (there is one for each); a wait this long is a bug, not load.
POOL_TIMEOUT_S = 10
# Threads beyond one per admitted request, for the event streams' reads and the probes.
SPARE_THREADS = 16


def size_thread_pool(settings: Settings) -> None:
    """Give the event loop's thread pool (sync routes and dependencies run there) more threads than requests it
    admits: a request that holds a connection then never waits for a thread to go on."""
    from anyio import to_thread

    to_thread.current_default_thread_limiter().total_tokens = settings.api_concurrency * 2 + SPARE_THREADS


@dataclass
class ApiResources:
    """The clients of one API process."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: redis.Redis
    async_redis: aioredis.Redis
    storage: Storage
    celery: Celery
    units_of_work: UnitOfWorkFactory

    @classmethod
    def open(cls, settings: Settings) -> ApiResources:
        # a connection for every admitted request (middleware.AdmissionLimit), and a few for the event streams'
        # short reads; a request holds at most one
        engine = create_engine(
            settings.database_url,
            pool_pre_ping=True,
            pool_size=settings.api_concurrency,
            max_overflow=STREAM_CONNECTIONS,
            pool_timeout=POOL_TIMEOUT_S,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
        )
        sessions = sessionmaker(engine, expire_on_commit=False)
        sync_redis = redis.Redis.from_url(
            settings.redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
        )
        celery = create_celery(settings)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            redis=sync_redis,
            # no socket_timeout: the SSE endpoint blocks on XREAD for longer than a plain command takes
            async_redis=aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S),
            storage=Storage(settings),
            celery=celery,
            units_of_work=UnitOfWorkFactory(sessions, Messaging.from_settings(settings, celery, sync_redis)),
        )

    async def close(self) -> None:
        await self.async_redis.aclose()
        self.redis.close()
        self.engine.dispose()


def get_resources(request: Request) -> ApiResources:
    resources: ApiResources | None = getattr(request.app.state, "resources", None)
    if resources is None:  # only when the app is used without its lifespan (a TestClient outside `with`)
        raise RuntimeError("the API's resources are not open; run the app with its lifespan")
    return resources


Resources = Annotated[ApiResources, Depends(get_resources)]


def get_app_settings(resources: Resources) -> Settings:
    return resources.settings


def get_unit_of_work(resources: Resources) -> Iterator[UnitOfWork]:
    """A unit of work per request: committed when the route returns (then its messages are sent), rolled back
    when it raises (and its messages dropped).

    Used with scope="function" so the commit happens before the response is sent: a client that got a 2xx
    can rely on the row being there."""
    with resources.units_of_work() as uow:
        yield uow


def get_db(uow: Annotated[UnitOfWork, Depends(get_unit_of_work, scope="function")]) -> Session:
    """The request's session, for routes that only read (the same transaction as its unit of work)."""
    return uow.session


def get_redis(resources: Resources) -> redis.Redis:
    return resources.redis


def get_async_redis(resources: Resources) -> aioredis.Redis:
    return resources.async_redis


def get_storage(resources: Resources) -> Storage:
    return resources.storage


def get_celery(resources: Resources) -> Celery:
    return resources.celery


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work, scope="function")]
DbSession = Annotated[Session, Depends(get_db, scope="function")]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
AsyncRedisDep = Annotated[aioredis.Redis, Depends(get_async_redis)]
StorageDep = Annotated[Storage, Depends(get_storage)]
CeleryDep = Annotated[Celery, Depends(get_celery)]

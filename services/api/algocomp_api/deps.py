"""The API's shared infrastructure, created once per process and handed to routes as FastAPI dependencies.

`ApiResources` is built in the application's lifespan (so the async Redis client belongs to the server's event
loop) and closed at shutdown. Routes never build clients themselves: they ask for a session, Redis, the storage
or the task sender here, which keeps one engine, one connection pool and one Celery producer per process.
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

from algocomp.db import session_scope
from algocomp.queue import create_celery
from algocomp.settings import Settings
from algocomp.storage import Storage

# Probes and requests must fail in seconds when a backing service is down, not hang a worker thread.
CONNECT_TIMEOUT_S = 5


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

    @classmethod
    def open(cls, settings: Settings) -> ApiResources:
        engine = create_engine(
            settings.database_url,
            pool_pre_ping=True,
            pool_size=5,
            max_overflow=10,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S},
        )
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessionmaker(engine, expire_on_commit=False),
            redis=redis.Redis.from_url(
                settings.redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=CONNECT_TIMEOUT_S
            ),
            # no socket_timeout: the SSE endpoint blocks on XREAD for longer than a plain command takes
            async_redis=aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=CONNECT_TIMEOUT_S),
            storage=Storage(settings),
            celery=create_celery(settings),
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


def get_db(resources: Resources) -> Iterator[Session]:
    """A session per request: committed when the route returns, rolled back when it raises.

    Used with scope="function" so the commit happens before the response is sent: a client that got a 2xx
    can rely on the row being there."""
    with session_scope(factory=resources.sessions) as session:
        yield session


def get_redis(resources: Resources) -> redis.Redis:
    return resources.redis


def get_async_redis(resources: Resources) -> aioredis.Redis:
    return resources.async_redis


def get_storage(resources: Resources) -> Storage:
    return resources.storage


def get_celery(resources: Resources) -> Celery:
    return resources.celery


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
DbSession = Annotated[Session, Depends(get_db, scope="function")]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
AsyncRedisDep = Annotated[aioredis.Redis, Depends(get_async_redis)]
StorageDep = Annotated[Storage, Depends(get_storage)]
CeleryDep = Annotated[Celery, Depends(get_celery)]

"""The API's shared infrastructure, created once per process and handed to routes as FastAPI dependencies.

`ApiResources` is built in the application's lifespan (so the async Redis clients and the run fan-out belong to
the server's event loop) and closed at shutdown. Routes never build clients themselves: they ask here for the
request's unit of work (its transaction, the run and sweep repositories, and the messages sent after commit),
Redis or the storage, which keeps one engine, one connection pool and one Celery producer per process.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, TypeVar

import redis
import redis.asyncio as aioredis
from celery import Celery
from fastapi import Depends, Request
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from algocomp.platform.db.faults import retry_connections
from algocomp.platform.queue import create_celery
from algocomp.platform.retry import backoff_from
from algocomp.platform.settings import Settings
from algocomp.platform.storage import Storage
from algocomp.platform.unit_of_work import Messaging, UnitOfWork, UnitOfWorkFactory
from algocomp_api.errors import RequestAbandonedError
from algocomp_api.middleware import ABANDONMENT, Abandonment
from algocomp_api.streams.fanout import RunFanout, SnapshotFanout
from algocomp_api.streams.service import BLOCK_MS

T = TypeVar("T")

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


# Connections of the async Redis client for short commands (the SSE replays): a request waits for a free one
# (up to POOL_WAIT_S) instead of failing with "Too many connections".
ASYNC_REDIS_CONNECTIONS = 20
POOL_WAIT_S = 10
# The socket timeout of the readers' blocking XREAD: longer than a block, so silence is not taken for a dead
# connection (redis-py 8's default of 5 s ended every silent stream), short enough to notice a dead one.
READER_SOCKET_TIMEOUT_S = BLOCK_MS / 1000 + 10
# How often the sweep stream reads a sweep's state from Postgres (once per followed sweep and API process, however
# many clients follow it): a sweep's runs report through their own streams; polling the aggregate is simple,
# correct after any restart, and cheap at this rate.
SWEEP_POLL_INTERVAL_S = 0.5


def redis_client_name(settings: Settings, role: str) -> str:
    """The name the API's Redis connections carry (CLIENT LIST shows it): its key prefix and the pool's role."""
    return "".join("_" if character.isspace() else character for character in f"{settings.key_prefix}{role}")


def async_redis_clients(settings: Settings) -> tuple[aioredis.Redis, aioredis.Redis]:
    """The async Redis clients of the SSE endpoints: short commands, and the blocking reads of run readers."""
    commands = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=ASYNC_REDIS_CONNECTIONS,
        timeout=POOL_WAIT_S,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=CONNECT_TIMEOUT_S,
        client_name=redis_client_name(settings, "api"),
    )
    # one connection per followed run; when more runs are followed than that, their readers wait for a turn
    readers = aioredis.BlockingConnectionPool.from_url(
        settings.redis_url,
        max_connections=settings.sse_reader_connections,
        timeout=None,
        socket_connect_timeout=CONNECT_TIMEOUT_S,
        socket_timeout=READER_SOCKET_TIMEOUT_S,
        socket_keepalive=True,
        client_name=redis_client_name(settings, "api-reader"),
    )
    return aioredis.Redis.from_pool(commands), aioredis.Redis.from_pool(readers)


@dataclass
class ApiResources:
    """The clients of one API process."""

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    redis: redis.Redis
    async_redis: aioredis.Redis
    reader_redis: aioredis.Redis
    run_fanout: RunFanout
    sweep_fanout: SnapshotFanout
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
        # a request waits out a short Postgres outage when it connects (then 503: algocomp_api.errors)
        retry_connections(engine, backoff_from(settings, settings.api_db_retry_s))
        sessions = sessionmaker(engine, expire_on_commit=False)
        event.listen(sessions, "after_begin", remember_connection)
        sync_redis = redis.Redis.from_url(
            settings.redis_url,
            socket_connect_timeout=CONNECT_TIMEOUT_S,
            socket_timeout=CONNECT_TIMEOUT_S,
            client_name=redis_client_name(settings, "api-sync"),
        )
        async_redis, reader_redis = async_redis_clients(settings)
        celery = create_celery(settings)
        return cls(
            settings=settings,
            engine=engine,
            sessions=sessions,
            redis=sync_redis,
            async_redis=async_redis,
            reader_redis=reader_redis,
            run_fanout=RunFanout(async_redis, reader_redis, prefix=settings.key_prefix),
            sweep_fanout=SnapshotFanout(SWEEP_POLL_INTERVAL_S),
            storage=Storage(settings),
            celery=celery,
            units_of_work=UnitOfWorkFactory(sessions, Messaging.from_settings(settings, celery, sync_redis)),
        )

    async def close(self) -> None:
        await self.run_fanout.close()
        await self.sweep_fanout.close()
        await self.reader_redis.aclose()
        await self.async_redis.aclose()
        self.redis.close()
        self.engine.dispose()


async def get_resources(request: Request) -> ApiResources:
    resources: ApiResources | None = getattr(request.app.state, "resources", None)
    if resources is None:  # only when the app is used without its lifespan (a TestClient outside `with`)
        raise RuntimeError("the API's resources are not open; run the app with its lifespan")
    return resources


Resources = Annotated[ApiResources, Depends(get_resources)]


async def get_app_settings(resources: Resources) -> Settings:
    return resources.settings


# Where a session keeps the connection its transaction runs on (set by `remember_connection`).
SESSION_CONNECTION = "algocomp.connection"


def remember_connection(session: Session, transaction: object, connection: Connection) -> None:
    """(after_begin listener) Note the connection of the session's transaction, so another thread can cancel the
    query running on it (`RequestTransaction.abandon`)."""
    session.info[SESSION_CONNECTION] = connection


class RequestTransaction:
    """A request's unit of work, which the request's client can abandon: its running query is cancelled (the
    route then fails and the transaction rolls back), and its connection is closed rather than reused.

    The lock makes the cancel and the end of the transaction exclusive, so a cancel never reaches a connection that
    went back to the pool. That holds because a request's transaction ends only in `end` (no route commits its
    unit of work midway; a route that needs another transaction opens its own session)."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow
        self._lock = threading.Lock()
        self._open = True
        self.abandoned = False

    def abandon(self) -> None:
        """(in a worker thread, when the client left) Cancel the query the transaction is running, if any."""
        with self._lock:  # the transaction cannot end, and its connection go back to the pool, meanwhile
            if not self._open:
                return
            self.abandoned = True
            connection = self.uow.session.info.get(SESSION_CONNECTION)
            if connection is not None and not connection.closed and not connection.invalidated:
                connection.connection.dbapi_connection.cancel_safe(timeout=CONNECT_TIMEOUT_S)

    def end(self, error: BaseException | None) -> None:
        """(in a worker thread) Commit, or roll back when the route raised or the client left. When the client left
        and the work failed, the failure is the cancelled query's: RequestAbandonedError is raised from it (the
        client left, nothing failed)."""
        with self._lock:
            self._open = False
        connection = self.uow.session.info.pop(SESSION_CONNECTION, None)
        failure = error
        if self.abandoned:
            if connection is not None and not connection.closed:
                connection.invalidate()  # a cancel may still be on its way to it: never hand it to another request
            error = error or RequestAbandonedError()
        self.uow.__exit__(type(error) if error else None, error, error.__traceback__ if error else None)
        if self.abandoned and failure is not None:
            raise RequestAbandonedError() from failure


async def get_unit_of_work(request: Request, resources: Resources) -> AsyncIterator[UnitOfWork]:
    """A unit of work per request: committed when the route returns (then its messages are sent), rolled back
    when it raises, or when the client leaves before the answer (its running query is then cancelled, see
    middleware.AdmissionLimit), and its messages dropped.

    Used with scope="function" so the commit happens before the response is sent: a client that got a 2xx
    can rely on the row being there. Opening one does no I/O (the session takes a connection on its first
    query, in the thread of the code that makes it), so only the end, which commits or rolls back, goes to a
    worker thread: one hop of the thread pool fewer on every request."""
    transaction = RequestTransaction(resources.units_of_work())
    abandonment: Abandonment | None = request.scope.get(ABANDONMENT)
    if abandonment is not None:
        abandonment.on_abandon(transaction.abandon)
    try:
        yield transaction.uow
    except BaseException as error:
        await run_in_threadpool(transaction.end, error)
        raise
    await run_in_threadpool(transaction.end, None)


class OneTrip:
    """A whole request's database work in one trip to a worker thread: the unit of work is opened, `work(uow)`
    runs (authentication included), and the transaction ends, all in the same thread call.

    The routes read most (GET /runs, GET /runs/{id}) are written this way. Through the dependencies they would
    take three trips (the caller's authentication, the route, the end of the transaction), and under load each
    trip costs the event loop a hand-off to a thread and the wake-up after it: about a third of what an API
    process spent on such a request (py-spy, issue 11). Like `get_unit_of_work`, the transaction commits
    before the answer is sent, and a client that leaves has its query cancelled."""

    def __init__(self, request: Request, resources: ApiResources) -> None:
        self._request = request
        self._resources = resources

    async def __call__(self, work: Callable[[UnitOfWork], T]) -> T:
        transaction = RequestTransaction(self._resources.units_of_work())
        abandonment: Abandonment | None = self._request.scope.get(ABANDONMENT)
        if abandonment is not None:
            abandonment.on_abandon(transaction.abandon)

        def trip() -> T:
            try:
                result = work(transaction.uow)
            except BaseException as error:
                transaction.end(error)
                raise
            transaction.end(None)
            return result

        return await run_in_threadpool(trip)


async def get_one_trip(request: Request, resources: Resources) -> OneTrip:
    return OneTrip(request, resources)


async def get_db(uow: Annotated[UnitOfWork, Depends(get_unit_of_work, scope="function")]) -> Session:
    """The request's session, for routes that only read (the same transaction as its unit of work)."""
    return uow.session


async def get_redis(resources: Resources) -> redis.Redis:
    return resources.redis


async def get_async_redis(resources: Resources) -> aioredis.Redis:
    return resources.async_redis


async def get_storage(resources: Resources) -> Storage:
    return resources.storage


async def get_celery(resources: Resources) -> Celery:
    return resources.celery


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
UnitOfWorkDep = Annotated[UnitOfWork, Depends(get_unit_of_work, scope="function")]
OneTripDep = Annotated[OneTrip, Depends(get_one_trip)]
DbSession = Annotated[Session, Depends(get_db, scope="function")]
RedisDep = Annotated[redis.Redis, Depends(get_redis)]
AsyncRedisDep = Annotated[aioredis.Redis, Depends(get_async_redis)]
StorageDep = Annotated[Storage, Depends(get_storage)]
CeleryDep = Annotated[Celery, Depends(get_celery)]

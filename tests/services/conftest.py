"""Real services for the service-stack tests: a fresh Postgres database, a unique Redis key prefix, an S3
endpoint over HTTP (`rclone serve s3` on a temporary folder), and on demand the worker, aggregator and API as
real processes.

Nothing is shared with an earlier run: the database is created and migrated per test session and dropped at
the end, every Redis key lives under `algocomp-test-<hex>:` and is deleted at the end, and the S3 folder is a
temporary directory. Settings reach child processes through the ALGOCOMP_* environment variables set here.

Postgres and Redis are made to answer first, exactly as `make dev` does (tools/devstack.py: started, or installed
when missing and this is root, and the test role given a password login; never trust authentication). When set-up
fails, that failure is what the test report shows: the clean-up steps of what was never set up do not run, and a
clean-up step that fails after an earlier error is reported as a warning beside it instead of replacing it.

Fixtures: service_env (the Settings), db_engine, db_session, redis_client, storage, start_service (a factory of
processes stopped after the test), worker_process, aggregator_process, api_server (its base URL).

Waiting: a test never sleeps for a fixed time and then asserts. It waits with wait_until for the condition itself,
or, to show that something did NOT happen, for an event proving it would have happened by then (task_finished: the
Celery worker has logged the end of a given task), each bounded by a timeout that fails the test.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import redis
from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session

from algocomp.platform import db as algocomp_db
from algocomp.platform.queue import WORKER_QUEUES
from algocomp.platform.settings import Settings, get_settings
from devstack import (
    DevStackError,
    ensure_postgres_server,
    ensure_redis_server,
    free_port,
    migrate,
    port_open,
    rclone_s3_argv,
    rclone_s3_env,
    spawn,
    stop_group,
    wait_until_ready,
)

# A role that can log in with its password and create databases: by default `algocomp_test` with a password of
# this session's (tools/devstack.py creates the role or sets its password through the local superuser when Postgres
# refuses it; the settings refuse the development password outside development). ALGOCOMP_TEST_POSTGRES_URL
# names another role, e.g. where the tests cannot run as root.
POSTGRES_ADMIN_URL = os.environ.get(
    "ALGOCOMP_TEST_POSTGRES_URL",
    f"postgresql://algocomp_test:{secrets.token_urlsafe(18)}@127.0.0.1:5432/postgres",
)
REDIS_URL = os.environ.get("ALGOCOMP_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
S3_ACCESS_KEY = "algocomp-test"
# fresh per test session: the settings refuse the development secret outside development, and a test that looks
# for leaks searches for this one
S3_SECRET_KEY = f"algocomp-test-{secrets.token_urlsafe(24)}"
PROCESS_START_TIMEOUT_S = 90.0
OUTPUT_TAIL_CHARS = 6000


class ServiceStartError(RuntimeError):
    """A service process died or did not become ready; the message carries its captured output."""


class ServiceProcess:
    """A child process started by a test, its output captured in a file, stopped as a whole process group."""

    def __init__(self, argv: list[str], log_path: Path, env: dict[str, str] | None = None) -> None:
        self.argv = argv
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.popen = spawn(argv, self._log, {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self, tail_chars: int = OUTPUT_TAIL_CHARS) -> str:
        """The last `tail_chars` characters the process wrote (stdout and stderr)."""
        self._log.flush()
        text = self.log_path.read_text(errors="replace")
        return text[-tail_chars:]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the process group (warm shutdown), SIGKILL it after `grace_s`."""
        stop_group(self.popen.pid, grace_s if self.alive() else 0.0, lambda: not self.alive())
        try:
            self.popen.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self._log.close()


def start_process(
    argv: list[str],
    ready: Callable[[], bool],
    timeout: float = PROCESS_START_TIMEOUT_S,
    *,
    log_dir: Path | None = None,
    env: dict[str, str] | None = None,
) -> ServiceProcess:
    """Start `argv` from the repository root and wait until `ready()` is true.

    Raises ServiceStartError with the process's output if it exits first or is not ready within `timeout`
    seconds (and stops it then). Exceptions raised by `ready` count as "not ready yet".
    """
    log_dir = log_dir or Path(tempfile.mkdtemp(prefix="algocomp-test-proc-"))
    name = Path(argv[0]).name + "-" + "-".join(a for a in argv[1:4] if not a.startswith("-"))[:60]
    process = ServiceProcess(argv, log_dir / f"{name.replace('/', '_')}-{uuid.uuid4().hex[:6]}.log", env)
    failed = wait_until_ready(process.popen, ready, timeout)
    if failed is None:
        return process
    output = process.output()
    process.stop()
    raise ServiceStartError(f"{' '.join(argv)} {failed}:\n{output}")


def wait_until(
    condition: Callable[[], Any],
    what: str,
    timeout_s: float = 20.0,
    *,
    interval_s: float = 0.2,
    detail: Callable[[], str] | None = None,
) -> Any:
    """Poll `condition` until it returns a true value and return that value; fail the test after `timeout_s`
    seconds, naming `what` was awaited (and `detail()`, e.g. a process's output, when given)."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            extra = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}{extra}")
        time.sleep(interval_s)


# What a Celery worker logs when it is done with a task (celery.app.trace's formats): success, including a task
# that returned early, an exception, a retry or an ignored task.
_TASK_DONE = r"\[{id}\] (succeeded in |raised (un)?expected|INTERNAL ERROR|retry:|ignored)"


def task_finished(process: ServiceProcess, task_id: str) -> bool:
    """Whether the Celery worker `process` has logged that it finished the task `task_id` (any outcome)."""
    return re.search(_TASK_DONE.format(id=re.escape(task_id)), process.output(tail_chars=10**9)) is not None


def wait_for_task(process: ServiceProcess, task_id: str, timeout_s: float = 30.0) -> None:
    """Wait until the Celery worker `process` has finished the task `task_id`: everything that delivery would
    do is done, so a test can then assert what it did not do."""
    wait_until(
        lambda: task_finished(process, task_id),
        f"the worker to finish task {task_id}",
        timeout_s,
        detail=lambda: f"worker output:\n{process.output()}",
    )


# --------------------------------------------------------------------------------------------- the services


def _admin_connection() -> psycopg.Connection:
    return psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True, connect_timeout=5)


def _drop_database(name: str) -> None:
    with _admin_connection() as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _database_url(name: str) -> str:
    base = psycopg.conninfo.conninfo_to_dict(POSTGRES_ADMIN_URL)
    user = base.get("user", "postgres")
    password = f":{base['password']}" if base.get("password") else ""
    host = base.get("host", "127.0.0.1")
    port = base.get("port", "5432")
    return f"postgresql+psycopg://{user}{password}@{host}:{port}/{name}"


def _delete_redis_keys(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}*", count=500):
            batch.append(key)
            if len(batch) >= 500:
                client.delete(*batch)
                batch.clear()
        if batch:
            client.delete(*batch)
    finally:
        client.close()


class _Teardown:
    """Clean-up steps, registered as each resource is acquired and run in reverse order.

    Every step runs even when an earlier one fails. When the set-up or the test body already raised, a failing
    step is reported as a warning so that the first error stays the one in the report; otherwise the first
    failing step's error is raised once all steps have run.
    """

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], object]]] = []

    def add(self, what: str, step: Callable[[], object]) -> None:
        self._steps.append((what, step))

    def run(self, earlier_error: BaseException | None) -> None:
        first: BaseException | None = None
        for what, step in reversed(self._steps):
            try:
                step()
            except Exception as error:  # noqa: BLE001 - every step must run; the error is reported below
                if earlier_error is not None or first is not None:
                    warnings.warn(f"clean-up step failed ({what}): {error!r}", stacklevel=1)
                else:
                    first = error
        if first is not None:
            raise first


@contextmanager
def _teardown() -> Iterator[_Teardown]:
    teardown = _Teardown()
    try:
        yield teardown
    except BaseException as error:
        teardown.run(error)
        raise
    teardown.run(None)


def _stop_popen(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def _restore_environment(saved: dict[str, str]) -> None:
    algocomp_db.reset_engine()
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def servers() -> None:
    """Postgres (with the test role able to log in and create databases) and Redis, answering."""
    problem = None
    try:
        ensure_postgres_server(POSTGRES_ADMIN_URL, setting="ALGOCOMP_TEST_POSTGRES_URL")
        ensure_redis_server(REDIS_URL, setting="ALGOCOMP_TEST_REDIS_URL")
    except DevStackError as error:
        problem = str(error)
    if problem is not None:  # outside the except block: the report shows this one error, not a chain
        pytest.fail(f"the service tests need Postgres and Redis: {problem}", pytrace=False)


@pytest.fixture(scope="session")
def service_env(servers: None) -> Iterator[Settings]:
    """A fresh migrated database, a unique Redis prefix and a live S3 endpoint, exported as ALGOCOMP_* variables."""
    token = uuid.uuid4().hex[:12]
    database_name = f"algocomp_test_{token}"
    key_prefix = f"algocomp-test-{token}:"
    with _teardown() as teardown:
        with _admin_connection() as admin:
            admin.execute(f'CREATE DATABASE "{database_name}"')
        teardown.add(f"drop database {database_name}", lambda: _drop_database(database_name))
        teardown.add(f"delete Redis keys {key_prefix}*", lambda: _delete_redis_keys(key_prefix))
        database_url = _database_url(database_name)
        migrate(database_url)
        api_token = create_user(database_url, TEST_USER, TEST_TEAM)
        config_dir = Path(tempfile.mkdtemp(prefix="algocomp-test-config-"))
        teardown.add(f"remove {config_dir}", lambda: shutil.rmtree(config_dir, ignore_errors=True))

        s3_folder = Path(tempfile.mkdtemp(prefix="algocomp-test-s3-"))
        teardown.add(f"remove {s3_folder}", lambda: shutil.rmtree(s3_folder, ignore_errors=True))
        rclone_log = s3_folder.parent / f"{s3_folder.name}-rclone.log"
        teardown.add(f"remove {rclone_log}", lambda: rclone_log.unlink(missing_ok=True))
        s3_port = free_port()
        with rclone_log.open("wb") as log:
            rclone = subprocess.Popen(
                rclone_s3_argv(s3_folder, s3_port),
                env={**os.environ, **rclone_s3_env(S3_ACCESS_KEY, S3_SECRET_KEY)},
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        teardown.add("stop rclone serve s3", lambda: _stop_popen(rclone))
        deadline = time.monotonic() + 30
        while not port_open(s3_port):
            if rclone.poll() is not None or time.monotonic() > deadline:
                raise ServiceStartError(f"rclone serve s3 did not start:\n{rclone_log.read_text(errors='replace')}")
            time.sleep(0.1)

        saved_environment = dict(os.environ)
        teardown.add("restore the environment", lambda: _restore_environment(saved_environment))
        os.environ.update(
            {
                "ALGOCOMP_ENVIRONMENT": "test",
                "ALGOCOMP_DATABASE_URL": database_url,
                "ALGOCOMP_REDIS_URL": REDIS_URL,
                "ALGOCOMP_KEY_PREFIX": key_prefix,
                "ALGOCOMP_S3_ENDPOINT_URL": f"http://127.0.0.1:{s3_port}",
                "ALGOCOMP_S3_BUCKET": "algocomp-test",
                "ALGOCOMP_S3_ACCESS_KEY": S3_ACCESS_KEY,
                "ALGOCOMP_S3_SECRET_KEY": S3_SECRET_KEY,
                "ALGOCOMP_S3_REGION": "us-east-1",
                "ALGOCOMP_MLFLOW_TRACKING_URI": "",
                "ALGOCOMP_PROGRESS_INTERVAL_S": "0.05",
                # no Celery beat runs here (a test that needs one starts it): /readyz does not ask for it
                "ALGOCOMP_BEAT_MAX_AGE_S": "0",
                # the test user's token, which the Python client and the CLI send; and a config folder of
                # the tests' own, so no test reads or writes the developer's saved credentials
                "ALGOCOMP_API_TOKEN": api_token,
                "ALGOCOMP_CONFIG_DIR": str(config_dir),
            }
        )
        get_settings.cache_clear()
        algocomp_db.reset_engine()
        settings = get_settings()

        from algocomp.platform.storage import Storage

        Storage(settings).ensure_bucket()
        yield settings


@pytest.fixture
def in_process_logging() -> Iterator[None]:
    """For tests that run an app in this process: its lifespan configures the root logger (JSON to stderr);
    put back what pytest had afterwards."""
    import logging

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    uvicorn_state = {
        name: (list(logging.getLogger(name).handlers), logging.getLogger(name).propagate)
        for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
    }
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, (saved_handlers, propagate) in uvicorn_state.items():
        logging.getLogger(name).handlers[:] = saved_handlers
        logging.getLogger(name).propagate = propagate


TEST_USER = "tester"
TEST_TEAM = "test-team"


def create_user(database_url: str, name: str, team: str, *, admin: bool = False) -> str:
    """A user of the test database (and its team), as `algocomp users create` makes one; returns their token."""
    from algocomp.platform.db.accounts import AccountRepository

    engine = create_engine(database_url)
    try:
        with Session(engine) as session, session.begin():
            _, token = AccountRepository(session).create_user(name, team, admin=admin)
    finally:
        engine.dispose()
    return token


def team_of(engine: Engine, name: str = TEST_TEAM) -> uuid.UUID:
    """The id of team `name` (by default the test user's), for rows a test writes directly."""
    from sqlalchemy import select

    from algocomp.platform.db.models import Team

    with Session(engine) as session:
        return session.execute(select(Team.id).where(Team.name == name)).scalar_one()


def bearer(token: str) -> dict[str, str]:
    """The header that authenticates a request as the holder of `token`."""
    return {"Authorization": f"Bearer {token}"}


def api_get(url: str, **kwargs: Any) -> httpx.Response:
    """httpx.get as the session's test user (the token the service_env fixture exported)."""
    headers = {**bearer(os.environ["ALGOCOMP_API_TOKEN"]), **kwargs.pop("headers", {})}
    return httpx.get(url, headers=headers, **kwargs)


@pytest.fixture(scope="session")
def api_token(service_env: Settings) -> str:
    """The session's test user's token (member of TEST_TEAM, not an admin)."""
    return os.environ["ALGOCOMP_API_TOKEN"]


@pytest.fixture(scope="session")
def db_engine(service_env: Settings) -> Iterator[Engine]:
    engine = create_engine(service_env.database_url, pool_pre_ping=True)
    yield engine
    engine.dispose()


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction that is rolled back after the test; its commits are savepoints."""
    connection = db_engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()
        if outer.is_active:
            outer.rollback()
        connection.close()


@pytest.fixture
def redis_client(service_env: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(service_env.redis_url, decode_responses=False)
    yield client
    client.close()


@pytest.fixture(scope="session")
def storage(service_env: Settings):  # -> algocomp.platform.storage.Storage
    from algocomp.platform.storage import Storage

    return Storage(service_env)


@pytest.fixture
def start_service(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """start_service(argv, ready, timeout=...) -> ServiceProcess, stopped after the test."""
    started: list[ServiceProcess] = []

    def start(
        argv: list[str],
        ready: Callable[[], bool],
        timeout: float = PROCESS_START_TIMEOUT_S,
        env: dict[str, str] | None = None,
    ) -> ServiceProcess:
        process = start_process(argv, ready, timeout, log_dir=tmp_path, env=env)
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        process.stop()


def _celery_ping(settings: Settings, nodename: str) -> Callable[[], bool]:
    """A readiness check: the worker `nodename` answers a broadcast ping over the (prefixed) broker."""
    from algocomp.platform.queue import create_celery

    app = create_celery(settings, name="algocomp-test-ping")

    def ready() -> bool:
        return bool(app.control.ping(destination=[nodename], timeout=1.0))

    return ready


def _celery_worker(
    settings: Settings, app_path: str, queue: str, concurrency: int, node: str, log_dir: Path
) -> Iterator[ServiceProcess]:
    nodename = f"{node}-{uuid.uuid4().hex[:8]}@{socket.gethostname()}"
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        app_path,
        "worker",
        "-Q",
        queue,
        "-c",
        str(concurrency),
        "--loglevel",
        "INFO",
        "-n",
        nodename,
        "--without-gossip",
        "--without-mingle",
    ]
    process = start_process(argv, _celery_ping(settings, nodename), PROCESS_START_TIMEOUT_S, log_dir=log_dir)
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def worker_process(service_env: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The run worker (queues "runs" then "artifacts", 2 processes) as a real Celery worker process."""
    yield from _celery_worker(
        service_env, "algocomp_worker.app:celery_app", WORKER_QUEUES, 2, "runs", tmp_path_factory.mktemp("worker")
    )


@pytest.fixture(scope="session")
def aggregator_process(service_env: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """The aggregator (queue "aggregate", 1 process) as a real Celery worker process."""
    yield from _celery_worker(
        service_env,
        "algocomp_aggregator.app:celery_app",
        "aggregate",
        1,
        "aggregate",
        tmp_path_factory.mktemp("aggregator"),
    )


def start_api(log_dir: Path, env: dict[str, str] | None = None) -> tuple[ServiceProcess, str]:
    """(process, base URL) of an API process under uvicorn on a free port, with the ALGOCOMP_* settings `env` on
    top of the session's, once GET /healthz answers 200. The caller stops it."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    argv = [sys.executable, "-m", "uvicorn", "algocomp_api.main:app", "--host", "127.0.0.1", "--port", str(port)]
    process = start_process(
        argv,
        lambda: httpx.get(f"{base_url}/healthz", timeout=1.0).status_code == 200,
        PROCESS_START_TIMEOUT_S,
        log_dir=log_dir,
        env=env,
    )
    return process, base_url


@pytest.fixture(scope="session")
def api_server(service_env: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The API under uvicorn on a free port; yields its base URL (ready once GET /healthz answers 200)."""
    process, base_url = start_api(tmp_path_factory.mktemp("api"))
    try:
        yield base_url
    finally:
        process.stop()

"""A saturated API, against the real API (uvicorn) and Postgres: requests beyond the admission limit wait, then get
a quick 503 with Retry-After (not a timeout); a request whose client leaves while it waits is never run; and one
whose client leaves while it runs has its database query cancelled, which frees its slot at once (issue 11: work
went on for requests the client had abandoned).

The API here admits one request at a time and lets others wait 2 s. A test holds its requests in the database by
locking the `runs` table (a real lock in Postgres, not a stand-in): GET /runs then waits inside its query.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest
from sqlalchemy import Engine, text

from algocomp.platform.settings import Settings

from .conftest import ServiceProcess, bearer, start_api, wait_until

QUEUE_WAIT_S = 2.0


@pytest.fixture(scope="module")
def narrow_api(tmp_path_factory: pytest.TempPathFactory, service_env: Settings) -> Iterator[tuple[ServiceProcess, str]]:
    process, base_url = start_api(
        tmp_path_factory.mktemp("narrow-api"),
        env={"ALGOCOMP_API_CONCURRENCY": "1", "ALGOCOMP_API_QUEUE_WAIT_S": str(QUEUE_WAIT_S)},
    )
    try:
        yield process, base_url
    finally:
        process.stop()


@contextmanager
def runs_locked(service_env: Settings) -> Iterator[None]:
    """Hold an exclusive lock on the runs table: any query on it waits until the block ends."""
    url = service_env.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as connection:
        connection.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
        yield
        connection.rollback()


def queries_waiting_on_a_lock(db_engine: Engine) -> int:
    with db_engine.connect() as connection:
        return int(
            connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND query LIKE '%FROM runs%'"
                )
            ).scalar_one()
        )


def get_in_background(url: str, headers: dict[str, str], timeout_s: float) -> tuple[threading.Thread, list[object]]:
    """GET `url` in a thread; the list receives its response or the exception."""
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(httpx.get(url, headers=headers, timeout=timeout_s))
        except httpx.HTTPError as error:
            outcome.append(error)

    thread = threading.Thread(target=call, daemon=True)
    thread.start()
    return thread, outcome


def test_a_request_beyond_the_limit_gets_a_quick_503(
    narrow_api: tuple[ServiceProcess, str], api_token: str, service_env: Settings, db_engine: Engine
) -> None:
    _, base_url = narrow_api
    with runs_locked(service_env):
        holder, held = get_in_background(f"{base_url}/runs", bearer(api_token), timeout_s=60)
        wait_until(lambda: queries_waiting_on_a_lock(db_engine) == 1, "GET /runs waiting on the lock", 15)
        started = time.monotonic()
        refused = httpx.get(f"{base_url}/scenarios", headers=bearer(api_token), timeout=30)
        waited = time.monotonic() - started
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == str(round(QUEUE_WAIT_S))
        assert refused.json()["error"]["code"] == "overloaded"
        assert QUEUE_WAIT_S - 0.1 <= waited < QUEUE_WAIT_S + 10
        # the probes are never queued
        assert httpx.get(f"{base_url}/healthz", timeout=5).status_code == 200
    holder.join(timeout=30)
    assert isinstance(held[0], httpx.Response) and held[0].status_code == 200, held


def test_a_request_whose_client_left_while_it_waited_is_not_run(
    narrow_api: tuple[ServiceProcess, str], api_token: str, service_env: Settings, db_engine: Engine
) -> None:
    process, base_url = narrow_api
    seed = uuid.uuid4().int % 2**62
    with runs_locked(service_env):
        holder, held = get_in_background(f"{base_url}/runs", bearer(api_token), timeout_s=60)
        wait_until(lambda: queries_waiting_on_a_lock(db_engine) == 1, "GET /runs waiting on the lock", 15)
        # queued behind it; the client gives up long before the 503 would come, and the request is dropped
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{base_url}/runs",
                json={"preset": "calvano-2020-baseline", "sessions": 1, "seed": seed},
                headers=bearer(api_token),
                timeout=httpx.Timeout(30, read=0.5),
            )
        wait_until(
            lambda: "the client left while it waited for a slot" in process.output(),
            "the API noticing the client left",
            10,
            detail=process.output,
        )
    holder.join(timeout=30)
    assert isinstance(held[0], httpx.Response) and held[0].status_code == 200, held
    time.sleep(QUEUE_WAIT_S)  # had it been admitted after all, it would have run by now
    with db_engine.connect() as connection:
        created = connection.execute(text("SELECT count(*) FROM runs WHERE seed = :seed"), {"seed": seed}).scalar_one()
    assert created == 0


def test_a_request_whose_client_left_while_it_ran_has_its_query_cancelled(
    narrow_api: tuple[ServiceProcess, str], api_token: str, service_env: Settings, db_engine: Engine
) -> None:
    process, base_url = narrow_api
    with runs_locked(service_env):
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{base_url}/runs", headers=bearer(api_token), timeout=httpx.Timeout(30, read=1.0))
        # the client left: its query stops waiting although the lock is still held ...
        wait_until(
            lambda: queries_waiting_on_a_lock(db_engine) == 0,
            "the abandoned request's query to stop waiting",
            10,
            detail=process.output,
        )
        assert "the client left; stopping the request's work" in process.output()
        wait_until(lambda: "stopped, its client left" in process.output(), "the request's end", 10)
        assert "unhandled error" not in process.output()  # a client leaving is not a failure of the API
        # ... and its slot is free: another request is admitted and answered at once
        answered = httpx.get(f"{base_url}/scenarios", headers=bearer(api_token), timeout=QUEUE_WAIT_S + 5)
        assert answered.status_code == 200, answered.text
    # the connection it used was closed, not handed to the next request: the API keeps answering
    for _ in range(5):
        assert httpx.get(f"{base_url}/runs", headers=bearer(api_token), timeout=10).status_code == 200

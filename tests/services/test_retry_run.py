"""POST /runs/{id}/retry against the real API (uvicorn), Postgres and Redis: a failed or cancelled run is queued again
as the same run, its error and progress cleared and its event stream started afresh; a queued, running or
succeeded run, or one of a cancelled sweep, answers 409; only its owner or a team admin may retry it.

The API here has a key prefix of its own, so no worker of the session consumes its queue: its runs stay queued
until a test changes them, and the module cancels them at the end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis
from sqlalchemy import Engine, text

from algocomp.platform.progress import stream_key
from algocomp.platform.settings import Settings

from .conftest import TEST_TEAM, bearer, create_user, start_api

TINY = {"preset": "calvano-2020-baseline", "sessions": 1, "overrides": ["horizon.max_periods=2000"]}


@pytest.fixture(scope="module")
def prefix(service_env: Settings) -> str:
    return f"{service_env.key_prefix}retry-"


@pytest.fixture(scope="module")
def api(
    tmp_path_factory: pytest.TempPathFactory, prefix: str, api_token: str, db_engine: Engine
) -> Iterator[httpx.Client]:
    process, base_url = start_api(tmp_path_factory.mktemp("retry-api"), env={"ALGOCOMP_KEY_PREFIX": prefix})
    created: list[str] = []
    try:
        with httpx.Client(base_url=base_url, headers=bearer(api_token), timeout=30) as client:
            client.event_hooks["response"] = [lambda r: _remember(r, created)]
            yield client
    finally:
        process.stop()
        with db_engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE runs SET status = 'cancelled', finished_at = now() "
                    "WHERE status = 'queued' AND id = ANY(:ids)"
                ),
                {"ids": [uuid.UUID(run_id) for run_id in created]},
            )


def _remember(response: httpx.Response, created: list[str]) -> None:
    if response.request.method == "POST" and response.request.url.path == "/runs" and response.status_code == 202:
        response.read()
        created.append(response.json()["id"])


def events(client: redis.Redis, prefix: str, run_id: str) -> list[str]:
    return [fields[b"event"].decode() for _, fields in client.xrange(stream_key(prefix, run_id))]


def test_a_cancelled_run_is_queued_again_with_a_fresh_event_stream(
    api: httpx.Client, redis_client: redis.Redis, prefix: str
) -> None:
    run = api.post("/runs", json=TINY).json()
    assert api.post(f"/runs/{run['id']}/cancel").status_code == 200
    assert events(redis_client, prefix, run["id"]) == ["queued", "cancelled"]

    retried = api.post(f"/runs/{run['id']}/retry")
    assert retried.status_code == 202, retried.text
    assert retried.json()["id"] == run["id"]
    assert retried.json()["status"] == "queued"
    assert retried.json()["finished_at"] is None
    # a follower replaying the stream sees this attempt only, not the old terminal event
    assert events(redis_client, prefix, run["id"]) == ["queued"]
    assert api.get(f"/runs/{run['id']}").json()["status"] == "queued"

    again = api.post(f"/runs/{run['id']}/retry")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "run_not_retryable"
    assert "queued" in again.json()["error"]["message"]


def test_a_failed_run_is_queued_again_with_its_error_cleared(api: httpx.Client, db_engine: Engine) -> None:
    run = api.post("/runs", json=TINY).json()
    with db_engine.begin() as connection:  # as a worker records a run whose S3 stayed down past the retry budget
        failed = connection.execute(
            text(
                "UPDATE runs SET status = 'failed', finished_at = now(), sessions_done = 1, progress = 0.5, "
                "error = 'S3 unavailable past the retry budget' WHERE id = :id AND status = 'queued'"
            ),
            {"id": run["id"]},
        )
        assert failed.rowcount == 1
    retried = api.post(f"/runs/{run['id']}/retry")
    assert retried.status_code == 202, retried.text
    body = retried.json()
    assert (body["status"], body["error"], body["progress"], body["sessions_done"]) == ("queued", None, 0.0, 0)


def test_only_the_owner_or_a_team_admin_retries(api: httpx.Client, service_env: Settings) -> None:
    run = api.post("/runs", json=TINY).json()
    assert api.post(f"/runs/{run['id']}/cancel").status_code == 200
    colleague = create_user(service_env.database_url, f"colleague-{uuid.uuid4().hex[:8]}", TEST_TEAM)
    refused = api.post(f"/runs/{run['id']}/retry", headers=bearer(colleague))
    assert refused.status_code == 403
    admin = create_user(service_env.database_url, f"admin-{uuid.uuid4().hex[:8]}", TEST_TEAM, admin=True)
    assert api.post(f"/runs/{run['id']}/retry", headers=bearer(admin)).status_code == 202


def test_a_run_of_a_cancelled_sweep_is_not_retried(api: httpx.Client) -> None:
    sweep = api.post(
        "/sweeps",
        json={
            "preset": "calvano-2020-baseline",
            "sessions": 1,
            "overrides": TINY["overrides"],
            "grid": {"agents.alpha": [0.1]},
        },
    )
    assert sweep.status_code == 202, sweep.text
    sweep_id = sweep.json()["id"]
    assert api.post(f"/sweeps/{sweep_id}/cancel").status_code in (200, 202)
    run_id = api.get(f"/sweeps/{sweep_id}").json()["per_cell"][0]["run_ids"][0]
    refused = api.post(f"/runs/{run_id}/retry")
    assert refused.status_code == 409
    assert "cancelled" in refused.json()["error"]["message"]

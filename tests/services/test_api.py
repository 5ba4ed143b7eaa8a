"""The HTTP API against the real stack: uvicorn serving algocomp_api.main:app on a fresh migrated Postgres, a
Redis with a test-only key prefix and an S3 endpoint over HTTP (rclone).

No Celery worker runs here (the end-to-end tests start one): runs stay queued, and the tests that need a
finished run or progress events write them the way the worker does (a Result row and files on S3, events
through ProgressChannel). Runs left queued are cancelled at the end, so a worker started later in the same
session never picks them up.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import Engine, delete, text, update
from sqlalchemy.orm import Session

from algocomp.platform.db import Result, Run, RunStatus
from algocomp.platform.progress import ProgressChannel, stream_key
from algocomp.platform.settings import Settings
from algocomp.platform.storage import Storage, run_key, run_prefix
from algocomp_api.main import create_app

from .conftest import bearer

# small enough that a worker, were one started later in this session, would finish it in a moment
TINY_SCENARIO: dict[str, Any] = {
    "market": {"n_firms": 2},
    "prices": {"kind": "benchmark_grid", "m": 5},
    "agents": {"type": "qlearning", "beta": 1e-3},
    "horizon": {"max_periods": 2000, "convergence_periods": 100},
    "logging": {"interval": 100},
    "sessions": 2,
}


def tiny_scenario(**changes: Any) -> dict[str, Any]:
    """A tiny scenario with a unique name, so each test stores its own record."""
    return {**TINY_SCENARIO, "name": f"api-test-{uuid.uuid4().hex[:10]}", **changes}


@dataclass
class SseMessage:
    id: str | None
    event: str
    data: dict[str, Any]


def read_sse(
    client: httpx.Client,
    path: str,
    headers: dict[str, str] | None = None,
    timeout_s: float = 30.0,
    on_message: Callable[[SseMessage], None] | None = None,
) -> list[SseMessage]:
    """Every message of an SSE response until the server closes it (pings, i.e. comments, skipped); fails after
    `timeout_s` seconds in all, pings or not. `on_message` is called with each message as it arrives."""
    messages: list[SseMessage] = []
    fields: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    with client.stream("GET", path, headers=headers, timeout=timeout_s) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            assert time.monotonic() < deadline, f"the stream {path} did not end within {timeout_s} s: {messages}"
            if line == "":
                if "event" in fields or "data" in fields:
                    messages.append(
                        SseMessage(
                            fields.get("id"), fields.get("event", "message"), json.loads(fields.get("data", "{}"))
                        )
                    )
                    if on_message is not None:
                        on_message(messages[-1])
                fields = {}
            elif line.startswith(":"):
                continue
            else:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
    return messages


@pytest.fixture(scope="module")
def api(api_server: str, service_env: Settings, api_token: str) -> Iterator[httpx.Client]:
    """An HTTP client of the API process; at the end, every run it created that is still queued is cancelled."""
    created: list[str] = []

    def remember_runs(response: httpx.Response) -> None:
        if response.request.method == "POST" and response.request.url.path == "/runs" and response.status_code == 202:
            response.read()
            created.append(response.json()["id"])

    with httpx.Client(
        base_url=api_server, timeout=30.0, headers=bearer(api_token), event_hooks={"response": [remember_runs]}
    ) as client:
        yield client
        for run_id in created:
            run = client.get(f"/runs/{run_id}")
            if run.status_code == 200 and run.json()["status"] == "queued":  # 404: a fixture deleted it
                assert client.post(f"/runs/{run_id}/cancel").status_code == 200


@pytest.fixture
def progress(redis_client: redis.Redis, service_env: Settings):
    """progress(run_id) -> the run's ProgressChannel on the test Redis."""

    def channel(run_id: str) -> ProgressChannel:
        return ProgressChannel.from_settings(service_env, run_id, client=redis_client)

    return channel


def create_run(api: httpx.Client, **body: Any) -> dict[str, Any]:
    body.setdefault("scenario", tiny_scenario())
    response = api.post("/runs", json=body)
    assert response.status_code == 202, response.text
    return response.json()


# ------------------------------------------------------------------------------------------------ scenarios


def test_scenario_is_stored_once_per_fingerprint(api: httpx.Client) -> None:
    document = tiny_scenario()
    first = api.post("/scenarios", json={"scenario": document})
    assert first.status_code == 201, first.text
    created = first.json()
    assert first.headers["location"] == f"/scenarios/{created['id']}"
    assert created["name"] == document["name"]
    assert len(created["scenario_hash"]) == 64
    assert created["spec"]["prices"]["m"] == 5
    assert created["spec"]["agents"]["alpha"] == 0.15  # defaults spelt out

    # the same scenario written differently (a default made explicit, keys reordered) is the same record
    again = api.post("/scenarios", json={"scenario": {"sessions": 2, **document, "seed": 0}})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == created["id"]

    fetched = api.get(f"/scenarios/{created['id']}")
    assert fetched.status_code == 200
    assert fetched.json() == created


def test_scenario_from_a_preset(api: httpx.Client) -> None:
    response = api.post("/scenarios", json={"preset": "calvano-2020-baseline"})
    assert response.status_code in (200, 201), response.text
    assert response.json()["name"] == "calvano-2020-baseline"
    assert response.json()["spec"]["sessions"] == 1000
    assert api.post("/scenarios", json={"preset": "calvano-2020-baseline"}).status_code == 200

    presets = {preset["name"] for preset in api.get("/scenarios/presets").json()}
    assert {"calvano-2020-baseline", "myopic-vs-bandit"} <= presets


def test_scenario_list_is_paginated_newest_first(api: httpx.Client) -> None:
    ids = [api.post("/scenarios", json={"scenario": tiny_scenario()}).json()["id"] for _ in range(3)]
    first_page = api.get("/scenarios", params={"limit": 2, "offset": 0}).json()
    second_page = api.get("/scenarios", params={"limit": 2, "offset": 2}).json()
    assert [item["id"] for item in first_page["items"]] == [ids[2], ids[1]]
    assert second_page["items"][0]["id"] == ids[0]
    assert first_page["total"] == second_page["total"] >= 3
    assert (first_page["limit"], first_page["offset"]) == (2, 0)

    too_many = api.get("/scenarios", params={"limit": 100_000})
    assert too_many.status_code == 422
    assert too_many.json()["error"]["field"] == "limit"


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"scenario": {"agents": {"type": "qlearning", "alpha": 5}}}, "agents.alpha", "less than or equal to 1"),
        ({"scenario": {"market": {"n_firms": 2, "demnd": {}}}}, "market.demnd", "did you mean 'demand'"),
        ({"preset": "no-such-preset"}, "preset", "available presets"),
        ({"preset": "../etc/passwd"}, "preset", "not a preset name"),
    ],
)
def test_invalid_scenario_names_the_field(api: httpx.Client, body: dict[str, Any], field: str, says: str) -> None:
    response = api.post("/scenarios", json=body)
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_scenario"
    assert error["field"] == field
    assert says in error["message"]


def test_scenario_request_needs_exactly_one_source(api: httpx.Client) -> None:
    both = api.post("/scenarios", json={"preset": "calvano-2020-baseline", "scenario": tiny_scenario()})
    neither = api.post("/scenarios", json={})
    unknown_key = api.post("/scenarios", json={"name": "x"})
    for response in (both, neither, unknown_key):
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_request"
    assert unknown_key.json()["error"]["field"] == "name"


def test_unknown_scenario_is_a_json_404(api: httpx.Client) -> None:
    missing = uuid.uuid4()
    response = api.get(f"/scenarios/{missing}")
    assert response.status_code == 404
    assert response.json() == {"error": {"code": "scenario_not_found", "message": f"no scenario with id {missing}"}}
    malformed = api.get("/scenarios/not-a-uuid")
    assert malformed.status_code == 422
    assert malformed.json()["error"]["field"] == "scenario_id"
    no_route = api.get("/no/such/route")
    assert no_route.status_code == 404
    assert no_route.json()["error"]["code"] == "not_found"


# ------------------------------------------------------------------------------------------------ runs


def test_run_is_queued_with_links(api: httpx.Client, progress) -> None:
    response = api.post(
        "/runs",
        json={
            "scenario": tiny_scenario(),
            "seed": 42,
            "sessions": 3,
            "log_interval": 50,
            "overrides": ["agents.alpha=0.2"],
        },
    )
    assert response.status_code == 202, response.text
    accepted = response.json()
    run_id = accepted["id"]
    assert accepted["status"] == "queued"
    assert response.headers["location"] == f"/runs/{run_id}"
    assert accepted["links"] == {
        "self": f"/runs/{run_id}",
        "stream": f"/streams/{run_id}",
        "results": f"/results/{run_id}",
        "cancel": f"/runs/{run_id}/cancel",
        "scenario": accepted["links"]["scenario"],
    }

    run = api.get(f"/runs/{run_id}").json()
    assert run["status"] == "queued"
    assert (run["seed"], run["sessions"], run["attempt"], run["progress"]) == (42, 3, 0, 0.0)
    assert run["spec"]["seed"] == 42 and run["spec"]["sessions"] == 3
    assert run["spec"]["logging"]["interval"] == 50
    assert run["spec"]["agents"]["alpha"] == 0.2
    assert run["overrides"] == ["agents.alpha=0.2", "logging.interval=50"]
    assert run["created_at"] and run["queued_at"] and run["started_at"] is None and run["error"] is None

    # the inline scenario was stored as it was given (before overrides), and the run points at it
    scenario = api.get(accepted["links"]["scenario"]).json()
    assert scenario["spec"]["agents"]["alpha"] == 0.15 and scenario["spec"]["seed"] == 0

    events = progress(run_id).replay()
    assert [event.event for event in events] == ["queued"]
    assert events[0].data["sessions_total"] == 3


def test_run_of_a_stored_scenario_and_of_a_preset(api: httpx.Client) -> None:
    scenario = api.post("/scenarios", json={"scenario": tiny_scenario()}).json()
    run = create_run(api, scenario=None, scenario_id=scenario["id"], seed=5)
    assert api.get(run["links"]["self"]).json()["scenario_id"] == scenario["id"]

    preset_run = create_run(api, scenario=None, preset="myopic-vs-bandit", sessions=1)
    detail = api.get(preset_run["links"]["self"]).json()
    assert detail["spec"]["name"] == "myopic-vs-bandit" and detail["sessions"] == 1


@pytest.mark.parametrize(
    ("body", "status", "code", "field"),
    [
        ({"overrides": ["agents.alpha=5"]}, 422, "invalid_scenario", "agents.alpha"),
        ({"overrides": ["no_such_field=1"]}, 422, "invalid_scenario", "no_such_field"),
        ({"seed": -1}, 422, "invalid_request", "seed"),
        ({"sessions": 0}, 422, "invalid_request", "sessions"),
        ({"preset": "calvano-2020-baseline"}, 422, "invalid_request", "preset"),
        ({"scenario": None, "scenario_id": str(uuid.uuid4())}, 404, "scenario_not_found", "scenario_id"),
    ],
)
def test_invalid_run_request_names_the_field(
    api: httpx.Client, body: dict[str, Any], status: int, code: str, field: str
) -> None:
    before = api.get("/runs", params={"limit": 1}).json()["total"]
    response = api.post("/runs", json={"scenario": tiny_scenario(), **body})
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert api.get("/runs", params={"limit": 1}).json()["total"] == before  # nothing stored


def test_run_list_filters_and_paginates(api: httpx.Client) -> None:
    scenario = api.post("/scenarios", json={"scenario": tiny_scenario()}).json()
    ids = [create_run(api, scenario=None, scenario_id=scenario["id"], seed=seed)["id"] for seed in range(3)]
    other = create_run(api)["id"]
    assert api.post(f"/runs/{ids[0]}/cancel").status_code == 200

    everything = api.get("/runs", params={"scenario_id": scenario["id"]}).json()
    assert everything["total"] == 3
    assert [run["id"] for run in everything["items"]] == ids[::-1]  # newest first
    assert other not in [run["id"] for run in everything["items"]]

    page = api.get("/runs", params={"scenario_id": scenario["id"], "limit": 2, "offset": 1}).json()
    assert [run["id"] for run in page["items"]] == [ids[1], ids[0]]
    assert page["total"] == 3

    queued = api.get("/runs", params={"scenario_id": scenario["id"], "status": "queued"}).json()
    assert {run["id"] for run in queued["items"]} == {ids[1], ids[2]} and queued["total"] == 2
    cancelled = api.get("/runs", params={"scenario_id": scenario["id"], "status": "cancelled"}).json()
    assert [run["id"] for run in cancelled["items"]] == [ids[0]]
    all_cancelled = api.get("/runs", params={"status": "cancelled"}).json()
    assert ids[0] in [run["id"] for run in all_cancelled["items"]] and all_cancelled["total"] >= 1

    # past the last page: no rows, and the total still counted
    beyond = api.get("/runs", params={"scenario_id": scenario["id"], "limit": 2, "offset": 5}).json()
    assert beyond["items"] == [] and beyond["total"] == 3
    nothing = api.get("/runs", params={"scenario_id": scenario["id"], "status": "running"}).json()
    assert nothing == {"items": [], "total": 0, "limit": nothing["limit"], "offset": 0}

    bad_status = api.get("/runs", params={"status": "sleeping"})
    assert bad_status.status_code == 422 and bad_status.json()["error"]["field"] == "status"


def test_unknown_run_is_a_json_404(api: httpx.Client) -> None:
    missing = uuid.uuid4()
    for method, path in [
        ("GET", f"/runs/{missing}"),
        ("POST", f"/runs/{missing}/cancel"),
        ("GET", f"/results/{missing}"),
        ("GET", f"/results/{missing}/panel"),
        ("GET", f"/streams/{missing}"),
    ]:
        response = api.request(method, path)
        assert response.status_code == 404, (path, response.text)
        assert response.json()["error"] == {"code": "run_not_found", "message": f"no run with id {missing}"}


def test_cancel_a_queued_run_ends_its_stream(api: httpx.Client) -> None:
    run = create_run(api)
    cancelled = api.post(run["links"]["cancel"])
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    detail = api.get(run["links"]["self"]).json()
    assert detail["status"] == "cancelled" and detail["finished_at"] is not None

    messages = read_sse(api, run["links"]["stream"])
    assert [message.event for message in messages] == ["queued", "cancelled"]
    assert messages[-1].data["status"] == "cancelled"
    assert all(message.id for message in messages)

    again = api.post(run["links"]["cancel"])
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "run_finished"
    assert again.json()["error"]["status"] == "cancelled"

    not_ready = api.get(run["links"]["results"])
    assert not_ready.status_code == 409
    assert not_ready.json()["error"]["status"] == "cancelled"


def test_cancel_a_running_run_requests_it(api: httpx.Client, db_engine) -> None:
    run = create_run(api)
    with Session(db_engine) as session, session.begin():  # what a worker's claim does
        session.execute(update(Run).where(Run.id == uuid.UUID(run["id"])).values(status=RunStatus.running, attempt=1))
    response = api.post(run["links"]["cancel"])
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "running" and response.json()["cancel_requested"] is True
    with Session(db_engine) as session, session.begin():  # the worker stops between sessions
        session.execute(update(Run).where(Run.id == uuid.UUID(run["id"])).values(status=RunStatus.cancelled))


def test_results_are_not_ready_while_queued(api: httpx.Client) -> None:
    run = create_run(api)
    for path in (
        run["links"]["results"],
        f"{run['links']['results']}/panel",
        f"{run['links']['results']}/artifacts/summary",
    ):
        response = api.get(path)
        assert response.status_code == 409, response.text
        error = response.json()["error"]
        assert (error["code"], error["status"]) == ("not_ready", "queued")


# ------------------------------------------------------------------------------------------------ results


@pytest.fixture
def succeeded_run(api: httpx.Client, db_engine, storage: Storage) -> Iterator[dict[str, Any]]:
    """A run finished the way the worker finishes one: succeeded, a Result row, its files on S3."""
    run = create_run(api)
    run_id = uuid.UUID(run["id"])
    panel = b"PAR1" + bytes(range(256)) * 4096 + b"PAR1"  # 1 MiB: streamed in more than one chunk
    storage.put_bytes(run_key(run_id, "panel"), panel, "application/vnd.apache.parquet")
    summary = {"profit_gain": 0.81, "sessions": 2}
    storage.put_bytes(run_key(run_id, "summary"), json.dumps(summary).encode(), "application/json")
    with Session(db_engine) as session, session.begin():
        session.execute(
            update(Run).where(Run.id == run_id).values(status=RunStatus.succeeded, progress=1.0, sessions_done=2)
        )
        session.add(
            Result(
                run_id=run_id,
                summary=summary,
                artifacts={"panel": run_key(run_id, "panel"), "summary": run_key(run_id, "summary")},
            )
        )
    yield {**run, "panel": panel, "summary": summary}
    with Session(db_engine) as session, session.begin():
        session.execute(delete(Result).where(Result.run_id == run_id))
        session.execute(delete(Run).where(Run.id == run_id))
    storage.delete_prefix(run_prefix(run_id))


def test_results_of_a_succeeded_run(api: httpx.Client, succeeded_run: dict[str, Any]) -> None:
    run_id = succeeded_run["id"]
    result = api.get(f"/results/{run_id}")
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["run_id"] == run_id and body["summary"] == succeeded_run["summary"]
    assert set(body["artifacts"]) == {"panel", "summary"}
    panel_link = body["artifacts"]["panel"]
    assert panel_link["key"] == f"runs/{run_id}/panel.parquet"
    assert panel_link["url"] == f"/results/{run_id}/artifacts/panel"
    assert httpx.get(panel_link["presigned_url"], timeout=30).content == succeeded_run["panel"]

    panel = api.get(f"/results/{run_id}/panel")
    assert panel.status_code == 200
    assert panel.headers["content-type"] == "application/vnd.apache.parquet"
    assert f'filename="{run_id}-panel.parquet"' in panel.headers["content-disposition"]
    assert panel.content == succeeded_run["panel"]

    redirect = api.get(f"/results/{run_id}/panel", params={"redirect": "true"})
    assert redirect.status_code == 307
    assert httpx.get(redirect.headers["location"], timeout=30).content == succeeded_run["panel"]

    summary = api.get(panel_link["url"].replace("panel", "summary"))
    assert summary.headers["content-type"].startswith("application/json")
    assert summary.json() == succeeded_run["summary"]

    not_uploaded = api.get(f"/results/{run_id}/artifacts/prices_plot")
    unknown = api.get(f"/results/{run_id}/artifacts/secrets")
    for response in (not_uploaded, unknown):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "artifact_not_found"


# ------------------------------------------------------------------------------------------------ streams


def test_stream_replays_after_last_event_id_and_closes_on_the_terminal_event(api: httpx.Client, progress) -> None:
    run = create_run(api)
    channel = progress(run["id"])
    queued_id = channel.replay()[0].id
    started_id = channel.publish("started", {"status": "running", "attempt": 1})
    progress_ids = [
        channel.publish(
            "progress",
            {"sessions_done": done, "sessions_total": 2, "share_done": done / 2, "mean_price": 1.8, "profit_gain": 0.7},
        )
        for done in (1, 2)
    ]
    terminal_id = channel.publish("succeeded", {"status": "succeeded"})
    channel.publish("progress", {"sessions_done": 99})  # after the terminal event: never sent

    everything = read_sse(api, run["links"]["stream"])
    assert [(m.id, m.event) for m in everything] == [
        (queued_id, "queued"),
        (started_id, "started"),
        (progress_ids[0], "progress"),
        (progress_ids[1], "progress"),
        (terminal_id, "succeeded"),
    ]

    resumed = read_sse(api, run["links"]["stream"], headers={"Last-Event-ID": started_id})
    assert [(m.id, m.event) for m in resumed] == [
        (progress_ids[0], "progress"),
        (progress_ids[1], "progress"),
        (terminal_id, "succeeded"),
    ]
    assert [m.data.get("sessions_done") for m in resumed] == [1, 2, None]
    assert resumed[0].data["mean_price"] == 1.8

    by_query = read_sse(api, f"{run['links']['stream']}?last_event_id={progress_ids[1]}")
    assert [(m.id, m.event) for m in by_query] == [(terminal_id, "succeeded")]

    bad = api.get(run["links"]["stream"], headers={"Last-Event-ID": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "last_event_id"


def test_stream_follows_live_events(api: httpx.Client, progress) -> None:
    """A client connected before the events exist receives them as they are published.

    Each event is published only once the client has received the one before it, so the server had already read
    the history (the replay holds `queued` only) when `started` and `failed` were written: they can only reach
    the client through the live follow, never through the replay."""
    run = create_run(api)
    channel = progress(run["id"])
    assert [event.event for event in channel.replay()] == ["queued"]
    following = {
        "queued": ("started", {"status": "running"}),
        "started": ("failed", {"status": "failed", "error": "ValueError: boom"}),
    }
    published: list[str] = []

    def publish_the_next(message: SseMessage) -> None:
        if message.event in following:
            published.append(channel.publish(*following[message.event]))

    messages = read_sse(api, run["links"]["stream"], timeout_s=15, on_message=publish_the_next)
    assert [m.event for m in messages] == ["queued", "started", "failed"]
    assert [m.id for m in messages[1:]] == published  # the very entries written after the client was connected
    assert messages[-1].data["error"] == "ValueError: boom"


def test_stream_of_a_finished_run_without_events_ends_with_its_status(
    api: httpx.Client, redis_client: redis.Redis, service_env: Settings
) -> None:
    run = create_run(api)
    assert api.post(run["links"]["cancel"]).status_code == 200
    redis_client.delete(stream_key(service_env.key_prefix, run["id"]))  # the stream expired

    messages = read_sse(api, run["links"]["stream"])
    assert len(messages) == 1
    assert messages[0].event == "cancelled" and messages[0].id is None
    assert messages[0].data["status"] == "cancelled" and messages[0].data["synthetic"] is True


# ------------------------------------------------------------------------------------------------ health, docs


def test_health_and_readiness(api: httpx.Client) -> None:
    assert api.get("/healthz").json() == {"status": "ok"}
    ready = api.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json() == {"status": "ok", "checks": {"postgres": "ok", "redis": "ok", "s3": "ok"}}


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.usefixtures("in_process_logging")
def test_readiness_names_what_is_unreachable(service_env: Settings) -> None:
    broken = service_env.model_copy(
        update={
            "s3_endpoint_url": f"http://127.0.0.1:{_closed_port()}",
            "redis_url": f"redis://127.0.0.1:{_closed_port()}/0",
        }
    )
    with TestClient(create_app(broken)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["checks"]["postgres"] == "ok"
    assert body["checks"]["redis"] != "ok" and body["checks"]["s3"] != "ok"
    assert body["error"]["code"] == "not_ready" and body["error"]["failed"] == ["redis", "s3"]


@pytest.mark.usefixtures("in_process_logging")
def test_unexpected_errors_are_json_without_a_traceback(
    service_env: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(service_env)

    @app.get("/runs/{run_id}/explode")
    def explode(run_id: str) -> None:
        raise RuntimeError("secret internals")

    run_id = str(uuid.uuid4())
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get(f"/runs/{run_id}/explode")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "secret internals" not in response.text and "Traceback" not in response.text
    logged = [r for r in caplog.records if r.getMessage().startswith("unhandled error in GET")]
    assert len(logged) == 1 and logged[0].exc_info is not None and getattr(logged[0], "run_id", None) == run_id


def test_openapi_documents_every_domain_with_examples(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    assert schema["info"]["title"] == "algocomp API"
    tags = {tag for path in schema["paths"].values() for operation in path.values() for tag in operation["tags"]}
    assert tags == {"scenarios", "runs", "sweeps", "aggregates", "results", "streams", "health"}
    run_body = schema["paths"]["/runs"]["post"]["requestBody"]["content"]["application/json"]
    assert "preset" in run_body["examples"]
    # errors are documented in the shape the API returns, not FastAPI's default validation error
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    not_found = schema["paths"]["/runs/{run_id}"]["get"]["responses"]["404"]
    assert not_found["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")
    assert api.get("/docs").status_code == 200


# ------------------------------------------------------------------------------------------------ enqueueing


@pytest.fixture
def isolated_broker(service_env: Settings, redis_client: redis.Redis) -> Iterator[Settings]:
    """The test settings with a key prefix of their own: tasks sent here reach no worker of this session."""
    settings = service_env.model_copy(
        update={"key_prefix": f"{service_env.key_prefix}isolated-{uuid.uuid4().hex[:8]}:"}
    )
    yield settings
    for key in redis_client.scan_iter(match=f"{settings.key_prefix}*"):
        redis_client.delete(key)


@pytest.mark.usefixtures("in_process_logging")
def test_run_task_is_sent_after_commit(
    isolated_broker: Settings, redis_client: redis.Redis, db_engine: Engine, api_token: str
) -> None:
    """The moment the task is published (Celery's before_task_publish signal, in the API's own process), a
    separate database connection already sees the run committed as queued: a worker never gets a run it cannot find."""
    from celery.signals import before_task_publish

    from algocomp.platform.queue import RUN_TASK, RUNS_QUEUE

    seen_at_publish: list[tuple[str, str | None]] = []

    def look_from_outside(sender: str | None = None, body: Any = None, **_: Any) -> None:
        run_id = body[0][0]  # protocol 2: (args, kwargs, embed)
        with db_engine.connect() as connection:
            status = connection.execute(text("SELECT status::text FROM runs WHERE id = :id"), {"id": run_id}).scalar()
        seen_at_publish.append((run_id, status))

    before_task_publish.connect(look_from_outside, sender=RUN_TASK, weak=False)
    try:
        with TestClient(create_app(isolated_broker), headers=bearer(api_token)) as client:
            response = client.post("/runs", json={"scenario": tiny_scenario()})
            assert response.status_code == 202, response.text
            run_id = response.json()["id"]
            messages = [
                json.loads(raw) for raw in redis_client.lrange(f"{isolated_broker.key_prefix}{RUNS_QUEUE}", 0, -1)
            ]
            assert [(m["headers"]["task"], m["headers"]["argsrepr"]) for m in messages] == [(RUN_TASK, repr([run_id]))]
            assert client.post(f"/runs/{run_id}/cancel").status_code == 200
    finally:
        before_task_publish.disconnect(look_from_outside, sender=RUN_TASK)
    assert seen_at_publish == [(run_id, "queued")], "the task was published before the run was committed"


@pytest.mark.usefixtures("in_process_logging")
def test_run_stays_queued_when_the_broker_is_unreachable(
    service_env: Settings, caplog: pytest.LogCaptureFixture, api_token: str
) -> None:
    """Enqueue after commit: a lost send leaves the run queued in Postgres for the sweeper to resend."""
    broken = service_env.model_copy(update={"redis_url": f"redis://127.0.0.1:{_closed_port()}/0"})
    with TestClient(create_app(broken), headers=bearer(api_token)) as client:
        response = client.post("/runs", json={"scenario": tiny_scenario()})
        assert response.status_code == 202, response.text
        run = client.get(f"/runs/{response.json()['id']}").json()
        assert run["status"] == "queued"
        assert client.post(f"/runs/{run['id']}/cancel").status_code == 200
    sent = [r for r in caplog.records if "the sweeper will resend it" in r.getMessage()]
    assert len(sent) == 1 and getattr(sent[0], "run_id", None) == run["id"]

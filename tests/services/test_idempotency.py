"""Idempotency-Key on POST /runs and POST /sweeps against the real API (uvicorn), Postgres and Redis: a retry with
the key gets the first answer and creates nothing; the key with another body is refused; keys are per user;
concurrent requests with one key create once; a key held by a running request answers 409 after the wait; an
expired key is new again; the Python client retries a POST with its key; and, the acceptance case of issue 11,
an API killed (SIGKILL) during a burst of keyed POSTs, some committed and some not, then restarted: every request
retried with its key ends with exactly one run.

No worker runs here: runs stay queued, and every queued run of this module's teams is cancelled at the end, so a
worker started later in the session never picks them up.
"""

from __future__ import annotations

import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from sqlalchemy import Engine, text

from algocomp.client import ApiError, Client
from algocomp.platform.settings import Settings

from .conftest import ServiceProcess, bearer, create_user, start_api, wait_until

PRESET = "calvano-2020-baseline"
TEAM_PREFIX = "idem-"
KEY = "Idempotency-Key"


@dataclass(frozen=True)
class Member:
    """A user of a team of this module's: their token, id and team."""

    name: str
    token: str
    user_id: uuid.UUID
    team: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


@pytest.fixture(scope="module", autouse=True)
def cancel_queued_runs(db_engine: Engine) -> Iterator[None]:
    yield
    with db_engine.begin() as connection:
        connection.execute(
            text(
                "UPDATE runs SET status = 'cancelled', finished_at = now() WHERE status IN ('queued', 'running') "
                "AND team_id IN (SELECT id FROM teams WHERE name LIKE :teams)"
            ),
            {"teams": f"{TEAM_PREFIX}%"},
        )


@pytest.fixture
def new_member(service_env: Settings, db_engine: Engine) -> Callable[..., Member]:
    """new_member(team=None) -> a new user, in a new team of their own unless `team` is given."""

    def make(team: str | None = None) -> Member:
        name = f"idem-user-{uuid.uuid4().hex[:8]}"
        team = team or f"{TEAM_PREFIX}{uuid.uuid4().hex[:8]}"
        token = create_user(service_env.database_url, name, team)
        with db_engine.connect() as connection:
            user_id = connection.execute(text("SELECT id FROM users WHERE name = :name"), {"name": name}).scalar_one()
        return Member(name, token, user_id, team)

    return make


def run_body(seed: int = 1) -> dict[str, Any]:
    return {"preset": PRESET, "seed": seed, "sessions": 1}


def sweep_body() -> dict[str, Any]:
    return {"preset": PRESET, "grid": {"agents.alpha": [0.1, 0.15]}, "seeds": [0, 1], "sessions": 1}


def count(engine: Engine, sql: str, **params: Any) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text(sql), params).scalar_one())


def runs_of(engine: Engine, member: Member) -> int:
    return count(engine, "SELECT count(*) FROM runs WHERE owner_id = :user", user=member.user_id)


def records_of(engine: Engine, member: Member) -> dict[str, str | None]:
    """{key: location} of the member's committed idempotency records."""
    with engine.connect() as connection:
        rows = connection.execute(
            text("SELECT key, location FROM idempotency_keys WHERE user_id = :user"), {"user": member.user_id}
        ).all()
    return {key: location for key, location in rows}


def waiting_locks(engine: Engine) -> int:
    """Lock requests of this database's sessions that are waiting (a transaction id lock has no database, so
    they are matched through their session)."""
    return count(
        engine,
        "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE NOT l.granted AND a.datname = current_database()",
    )


# The per-team lock the quota check takes (RunRepository.active_count): held by a test, it stops a team's requests
# after they claimed their key and before they commit.
QUOTA_LOCK = text(
    "SELECT pg_advisory_xact_lock(hashtextextended('quota:' || (SELECT id FROM teams WHERE name = :team), 0))"
)


# --------------------------------------------------------------------------------------------- one API


def test_a_retry_with_the_key_gets_the_first_answer_and_creates_nothing(
    api_server: str, new_member: Callable[..., Member], db_engine: Engine
) -> None:
    member = new_member()
    key = str(uuid.uuid4())
    with httpx.Client(base_url=api_server, headers=member.headers, timeout=30) as http:
        first = http.post("/runs", json=run_body(), headers={KEY: key})
        assert first.status_code == 202, first.text
        assert KEY not in first.headers and "idempotent-replayed" not in first.headers
        # the same request again, its members in another order and the key in the draft's quoted form
        again = http.post("/runs", json=dict(reversed(list(run_body().items()))), headers={KEY: f'"{key}"'})
    assert again.status_code == 202
    assert again.content == first.content  # the same bytes: the body is kept as it was sent
    assert again.headers["location"] == first.headers["location"] == f"/runs/{first.json()['id']}"
    assert again.headers["idempotent-replayed"] == "true"
    assert runs_of(db_engine, member) == 1
    assert records_of(db_engine, member) == {key: first.headers["location"]}


def test_a_sweep_retried_with_its_key_is_stored_once(
    api_server: str, new_member: Callable[..., Member], db_engine: Engine
) -> None:
    member = new_member()
    key = str(uuid.uuid4())
    with httpx.Client(base_url=api_server, headers=member.headers, timeout=60) as http:
        first = http.post("/sweeps", json=sweep_body(), headers={KEY: key})
        assert first.status_code == 202, first.text
        again = http.post("/sweeps", json=sweep_body(), headers={KEY: key})
    assert (again.status_code, again.content, again.headers["location"]) == (
        202,
        first.content,
        first.headers["location"],
    )
    assert count(db_engine, "SELECT count(*) FROM sweeps WHERE owner_id = :u", u=member.user_id) == 1
    assert runs_of(db_engine, member) == first.json()["runs"] == 4


def test_the_key_with_another_request_is_422_naming_the_header(
    api_server: str, new_member: Callable[..., Member], db_engine: Engine
) -> None:
    member = new_member()
    key = str(uuid.uuid4())
    with httpx.Client(base_url=api_server, headers=member.headers, timeout=60) as http:
        assert http.post("/runs", json=run_body(seed=1), headers={KEY: key}).status_code == 202
        for path, body in (("/runs", run_body(seed=2)), ("/sweeps", sweep_body())):
            refused = http.post(path, json=body, headers={KEY: key})
            assert refused.status_code == 422, refused.text
            error = refused.json()["error"]
            assert (error["code"], error["field"]) == ("idempotency_key_reused", KEY)
        for bad in ("", "has space", "x" * 201, "tab\tkey", '"unbalanced', "ключ".encode()):
            refused = http.post("/runs", json=run_body(), headers={KEY: bad})
            assert refused.status_code == 422, (bad, refused.text)
            assert refused.json()["error"]["field"] == KEY
            assert refused.json()["error"]["code"] == "invalid_idempotency_key"
        assert http.post("/runs", json=run_body(), headers={KEY: "x" * 200}).status_code == 202
        # a refused request stores nothing: a retry is judged afresh
        missing = {"scenario_id": str(uuid.uuid4())}
        failed_key = str(uuid.uuid4())
        assert http.post("/runs", json=missing, headers={KEY: failed_key}).status_code == 404
    assert runs_of(db_engine, member) == 2
    assert set(records_of(db_engine, member)) == {key, "x" * 200}


def test_keys_belong_to_their_user(api_server: str, new_member: Callable[..., Member], db_engine: Engine) -> None:
    """The same key from another team's user and from a teammate: each is a request of its own."""
    first = new_member()
    teammate = new_member(team=first.team)
    stranger = new_member()
    key = "shared-key-1"
    answers = []
    for member in (first, teammate, stranger):
        answer = httpx.post(f"{api_server}/runs", json=run_body(), headers={**member.headers, KEY: key}, timeout=30)
        assert answer.status_code == 202 and "idempotent-replayed" not in answer.headers, answer.text
        answers.append(answer.json()["id"])
        assert runs_of(db_engine, member) == 1
    assert len(set(answers)) == 3


def test_concurrent_requests_with_one_key_create_one_run(
    api_server: str, new_member: Callable[..., Member], db_engine: Engine
) -> None:
    """Eight requests with one key, made to overlap for sure: the team's quota lock is held while they arrive, so
    the first waits for it holding the key and the seven others wait for the first on the key. Once the lock is
    released the first commits and the others return its answer."""
    member = new_member()
    key = str(uuid.uuid4())
    with httpx.Client(base_url=api_server, headers=member.headers, timeout=30) as http:
        assert http.post("/scenarios", json={"preset": PRESET}).status_code in (200, 201)
        with db_engine.connect() as holder, ThreadPoolExecutor(8) as pool:
            holder.execute(QUOTA_LOCK, {"team": member.team})
            futures = [pool.submit(http.post, "/runs", json=run_body(), headers={KEY: key}) for _ in range(8)]
            wait_until(lambda: waiting_locks(db_engine) == 8, "the eight requests to wait", 10, interval_s=0.05)
            holder.rollback()
            answers = [future.result() for future in futures]
    assert [answer.status_code for answer in answers] == [202] * 8, [answer.text for answer in answers]
    assert len({answer.content for answer in answers}) == 1
    assert sum("idempotent-replayed" in answer.headers for answer in answers) == 7
    assert runs_of(db_engine, member) == 1


def test_an_expired_key_is_new_again_and_expired_records_are_purged(
    api_server: str, new_member: Callable[..., Member], db_engine: Engine, service_env: Settings
) -> None:
    member = new_member()
    old, other = str(uuid.uuid4()), str(uuid.uuid4())
    with httpx.Client(base_url=api_server, headers=member.headers, timeout=30) as http:
        first = http.post("/runs", json=run_body(), headers={KEY: old})
        assert first.status_code == 202
        age = f"{service_env.idempotency_ttl_s + 60} seconds"
        with db_engine.begin() as connection:
            connection.execute(
                text("UPDATE idempotency_keys SET created_at = now() - CAST(:age AS interval) WHERE key = :key"),
                {"age": age, "key": old},
            )
        # expired: the key is new again, even for another body
        renewed = http.post("/runs", json=run_body(seed=9), headers={KEY: old})
        assert renewed.status_code == 202 and "idempotent-replayed" not in renewed.headers
        assert renewed.json()["id"] != first.json()["id"]
        assert records_of(db_engine, member) == {old: renewed.headers["location"]}
        # an expired record is deleted when another key is claimed
        with db_engine.begin() as connection:
            connection.execute(
                text("UPDATE idempotency_keys SET created_at = now() - CAST(:age AS interval) WHERE key = :key"),
                {"age": age, "key": old},
            )
        assert http.post("/runs", json=run_body(), headers={KEY: other}).status_code == 202
    assert set(records_of(db_engine, member)) == {other}
    assert runs_of(db_engine, member) == 3


# --------------------------------------------------------------------------------------------- the client


class LosingTransport(httpx.HTTPTransport):
    """The real transport, except that the answers of the first `lose` POSTs never arrive: each is sent and
    handled by the API, then the test raises ReadError, as when the API dies between its commit and its answer.
    With `fail_first` the first POST is answered 503 by the test instead, without reaching the API. Records
    every POST's Idempotency-Key."""

    def __init__(self, lose: int = 0, *, fail_first: bool = False) -> None:
        super().__init__()
        self.lose = lose
        self.fail_first = fail_first
        self.keys: list[str | None] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            self.keys.append(request.headers.get(KEY))
            if self.fail_first:
                self.fail_first = False
                return httpx.Response(503, json={"error": {"code": "unavailable", "message": "test"}})
        response = super().handle_request(request)
        if request.method == "POST" and self.lose > 0:
            self.lose -= 1
            response.read()
            response.close()
            raise httpx.ReadError("the answer was lost (the test)")
        return response


def test_the_client_retries_a_lost_post_with_its_key_and_creates_one_run(
    api_server: str, new_member: Callable[..., Member], db_engine: Engine
) -> None:
    member = new_member()
    transport = LosingTransport(lose=2)
    with Client(api_server, token=member.token, transport=transport, retry_backoff_s=0.01) as client:
        accepted = client.launch_run(preset=PRESET, seed=3, sessions=1)
        assert len(transport.keys) == 3 and len(set(transport.keys)) == 1  # two answers lost, one retry each
        assert runs_of(db_engine, member) == 1
        assert records_of(db_engine, member) == {transport.keys[0]: f"/runs/{accepted['id']}"}

        transport.lose = 1
        sweep = client.create_sweep(preset=PRESET, grid={"agents.alpha": [0.1]}, sessions=1)
        assert len(transport.keys) == 5 and transport.keys[3] == transport.keys[4] != transport.keys[0]
        assert count(db_engine, "SELECT count(*) FROM sweeps WHERE owner_id = :u", u=member.user_id) == 1
        assert sweep["runs"] == 1

        client.launch_run(preset=PRESET, seed=3, sessions=1)  # a new call: a new key, a new run
        assert len(set(transport.keys)) == 3
        assert runs_of(db_engine, member) == 3

        own_key = f"nightly-{uuid.uuid4().hex}"
        once = client.launch_run(preset=PRESET, seed=4, sessions=1, idempotency_key=own_key)
        assert client.launch_run(preset=PRESET, seed=4, sessions=1, idempotency_key=own_key) == once
        assert runs_of(db_engine, member) == 4

    refused = LosingTransport(fail_first=True)
    with Client(api_server, token=member.token, transport=refused, retry_backoff_s=0.01) as client:
        client.launch_run(preset=PRESET, seed=5, sessions=1)  # a 503, then the real answer
        assert len(refused.keys) == 2 and refused.keys[0] == refused.keys[1]
        with pytest.raises(ApiError) as invalid:  # a 4xx is not retried
            client.launch_run(preset=PRESET, sessions=0)
        assert invalid.value.status == 422 and len(refused.keys) == 3
    assert runs_of(db_engine, member) == 5

    with Client(api_server, token=member.token, transport=LosingTransport(lose=1), retries=0) as client:
        with pytest.raises(httpx.ReadError):  # no retries: the failure is the caller's to see
            client.launch_run(preset=PRESET, seed=6, sessions=1)


# --------------------------------------------------------------------------------------------- an API of its own


class Blackhole:
    """A TCP server that accepts connections and never answers: given to an API as its Redis, it makes every
    request hang after its commit (publishing the run's event, then sending its task), which is where a kill
    leaves a committed run whose client never got the answer."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0), backlog=128)
        self.port = self.server.getsockname()[1]
        self.connections: list[socket.socket] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.server.accept()
            except OSError:
                return
            self.connections.append(connection)

    def close(self) -> None:
        self.server.close()
        for connection in self.connections:
            connection.close()


class OwnApi:
    """API processes of a test's own (uvicorn on a free port), sharing a Redis key prefix no worker listens on,
    so nothing they queue runs; stopped after the test."""

    def __init__(self, prefix: str, log_dir: Path) -> None:
        self.prefix = prefix
        self.log_dir = log_dir
        self.started: list[ServiceProcess] = []

    def start(self, **env: str) -> tuple[ServiceProcess, str]:
        """(process, base URL) of a new API process with the ALGOCOMP_* settings `env` on top of the session's."""
        process, base_url = start_api(self.log_dir, {"ALGOCOMP_KEY_PREFIX": self.prefix, **env})
        self.started.append(process)
        return process, base_url


@pytest.fixture
def own_api(service_env: Settings, tmp_path: Path) -> Iterator[OwnApi]:
    apis = OwnApi(f"{service_env.key_prefix}idem-{uuid.uuid4().hex[:6]}:", tmp_path)
    yield apis
    for process in reversed(apis.started):
        process.stop()


def test_a_key_held_by_a_running_request_answers_409_after_the_wait(
    own_api: OwnApi, new_member: Callable[..., Member], db_engine: Engine
) -> None:
    _, base_url = own_api.start(ALGOCOMP_IDEMPOTENCY_WAIT_S="1")
    member = new_member()
    key = str(uuid.uuid4())
    with db_engine.connect() as holder:  # a request that claimed the key and has not committed
        holder.execute(
            text(
                "INSERT INTO idempotency_keys (user_id, key, method, path, fingerprint) "
                "VALUES (:user, :key, 'POST', '/runs', 'f')"
            ),
            {"user": member.user_id, "key": key},
        )
        started = time.monotonic()
        busy = httpx.post(f"{base_url}/runs", json=run_body(), headers={**member.headers, KEY: key}, timeout=30)
        assert time.monotonic() - started >= 1.0
        assert busy.status_code == 409, busy.text
        assert (busy.json()["error"]["code"], busy.json()["error"]["field"]) == ("idempotency_key_in_use", KEY)
        assert busy.headers["retry-after"] == "1"
        holder.rollback()
    done = httpx.post(f"{base_url}/runs", json=run_body(), headers={**member.headers, KEY: key}, timeout=30)
    assert done.status_code == 202
    assert runs_of(db_engine, member) == 1


def _post(base_url: str, member: Member, key: str, body: dict[str, Any]) -> httpx.Response | Exception:
    try:
        return httpx.post(f"{base_url}/runs", json=body, headers={**member.headers, KEY: key}, timeout=120)
    except httpx.TransportError as error:
        return error


def test_runs_posted_with_keys_during_a_kill_are_created_once_when_retried(
    own_api: OwnApi,
    new_member: Callable[..., Member],
    db_engine: Engine,
    service_env: Settings,
) -> None:
    """Issue 11's acceptance: SIGKILL of the API during a burst of POST /runs with keys, then a restart and a
    retry of every request with its key: each key has exactly one run.

    Made deterministic in both directions. The API's Redis is a black hole, so each request hangs right after
    its commit; and one team's quota lock is held by the test, so that team's requests hang before theirs. The
    API is killed once the first team's six runs are committed (their clients have no answer) and the second
    team's six requests all wait (nothing of theirs is committed). The retries then go to a new API process with
    the real Redis: the first six get their stored answers and queue nothing, the second six create their runs.
    """
    blackhole = Blackhole()
    committed, pending = new_member(), new_member()
    keys = {member.user_id: [str(uuid.uuid4()) for _ in range(6)] for member in (committed, pending)}
    bodies = {key: run_body(seed=index) for member_keys in keys.values() for index, key in enumerate(member_keys)}
    try:
        # twelve requests in flight at once (six waiting on the lock, six hanging on Redis after their commit)
        process, base_url = own_api.start(
            ALGOCOMP_REDIS_URL=f"redis://127.0.0.1:{blackhole.port}/0", ALGOCOMP_API_CONCURRENCY="16"
        )
        for member in (committed, pending):  # the scenario stored first, so no request waits for another's
            stored = httpx.post(f"{base_url}/scenarios", json={"preset": PRESET}, headers=member.headers, timeout=30)
            assert stored.status_code in (200, 201), stored.text
        with db_engine.connect() as holder, ThreadPoolExecutor(12) as pool:
            holder.execute(QUOTA_LOCK, {"team": pending.team})
            waiting = [pool.submit(_post, base_url, pending, key, bodies[key]) for key in keys[pending.user_id]]
            wait_until(lambda: waiting_locks(db_engine) == 6, "the second team's requests to wait", 20, interval_s=0.05)
            burst = [pool.submit(_post, base_url, committed, key, bodies[key]) for key in keys[committed.user_id]]
            wait_until(
                lambda: (
                    count(
                        db_engine,
                        "SELECT count(*) FROM idempotency_keys WHERE user_id = :u AND status_code IS NOT NULL",
                        u=committed.user_id,
                    )
                    == 6
                ),
                "the first team's six commits",
                20,
                interval_s=0.02,
            )
            os.killpg(process.pid, signal.SIGKILL)
            outcomes = [future.result() for future in burst + waiting]
            holder.rollback()
        assert all(isinstance(outcome, httpx.TransportError) for outcome in outcomes), outcomes
    finally:
        blackhole.close()

    # the killed API's sessions end: what was committed stays, what was not is gone
    wait_until(lambda: waiting_locks(db_engine) == 0, "the killed API's transactions to end", 20)
    assert runs_of(db_engine, committed) == 6 and len(records_of(db_engine, committed)) == 6
    wait_until(lambda: runs_of(db_engine, pending) == 0, "the uncommitted runs to be gone", 20)
    assert records_of(db_engine, pending) == {}

    _, base_url = own_api.start()  # restarted, with the real Redis
    queue = f"{own_api.prefix}runs"
    client = redis.Redis.from_url(service_env.redis_url)
    try:
        assert client.llen(queue) == 0
        for member in (committed, pending):
            stored = records_of(db_engine, member)
            for key in keys[member.user_id]:
                answer = _post(base_url, member, key, bodies[key])
                assert isinstance(answer, httpx.Response) and answer.status_code == 202, answer
                replayed = answer.headers.get("idempotent-replayed") == "true"
                assert replayed == (member is committed)
                if replayed:
                    assert answer.headers["location"] == stored[key] == f"/runs/{answer.json()['id']}"
                again = _post(base_url, member, key, bodies[key])  # and once more: the same answer
                assert isinstance(again, httpx.Response) and again.content == answer.content
        # the replays queued nothing; the six new runs were queued once each
        assert client.llen(queue) == 6
    finally:
        client.close()
    for member in (committed, pending):
        locations = records_of(db_engine, member)
        assert set(locations) == set(keys[member.user_id])
        assert runs_of(db_engine, member) == 6 == len(set(locations.values()))
        with db_engine.connect() as connection:
            run_ids = {
                f"/runs/{run_id}"
                for run_id in connection.execute(
                    text("SELECT id FROM runs WHERE owner_id = :u"), {"u": member.user_id}
                ).scalars()
            }
        assert run_ids == set(locations.values())  # each key has exactly one run, each run one key

"""Many SSE clients of one run against a real uvicorn API and Redis: silence does not close a stream, every
client sees every event once and in order, a reconnect with Last-Event-ID gets exactly what it missed, and the
API holds one Redis connection per followed run, not one per client.

The API under test is a uvicorn process of its own with a Redis key prefix no worker listens on (as in
test_fuzz.py): its runs stay queued and the test publishes their events itself through ProgressChannel. Its
keep-alive ping is 1 s, so a silence of 8 s (longer than redis-py's default 5 s socket timeout, which used to
end every stream) is covered by pings; the ALGOCOMP_TEST_SSE_* variables below change the figures (the issue's
30 s silence with the default 15 s ping, by hand). The clients are raw asyncio sockets: a thousand httpx streams
would cost more CPU than the server they measure on a 2-core machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import redis
import redis.asyncio as aioredis
from sqlalchemy import Engine, text

from algocomp.platform.db import RunStatus
from algocomp.platform.progress import STREAM_START, ProgressChannel
from algocomp.platform.settings import Settings
from algocomp_api.deps import ASYNC_REDIS_CONNECTIONS
from algocomp_api.streams.fanout import RunFanout
from algocomp_api.streams.service import RunState

from .conftest import bearer, start_api
from .test_api import tiny_scenario

# The figures by hand: ALGOCOMP_TEST_SSE_SILENCE_S=30 ALGOCOMP_TEST_SSE_PING_S=15 (the default ping).
FOLLOWERS = int(os.environ.get("ALGOCOMP_TEST_SSE_FOLLOWERS", "1000"))
SILENCE_S = float(os.environ.get("ALGOCOMP_TEST_SSE_SILENCE_S", "8"))  # > the 5 s socket timeout of redis-py 8
PING_S = float(os.environ.get("ALGOCOMP_TEST_SSE_PING_S", "1"))
CONNECTING_AT_ONCE = int(os.environ.get("ALGOCOMP_TEST_SSE_CONNECTING", "100"))


@dataclass
class Fanout:
    base_url: str
    prefix: str
    client_name: str


@pytest.fixture(scope="module")
def fanout_api(service_env: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fanout]:
    prefix = f"{service_env.key_prefix}fanout-{uuid.uuid4().hex[:6]}:"
    env = {"ALGOCOMP_KEY_PREFIX": prefix, "ALGOCOMP_SSE_PING_INTERVAL_S": str(PING_S)}
    process, base_url = start_api(tmp_path_factory.mktemp("fanout-api"), env)
    try:
        yield Fanout(base_url, prefix, client_name=f"{prefix}api")
    finally:
        process.stop()


@pytest.fixture
def run_id(fanout_api: Fanout, api_token: str, db_engine: Engine) -> Iterator[str]:
    """A run of the test user's team, queued through the isolated API (no worker will take it)."""
    response = httpx.post(
        f"{fanout_api.base_url}/runs", json={"scenario": tiny_scenario()}, headers=bearer(api_token), timeout=30
    )
    assert response.status_code == 202, response.text
    identifier = response.json()["id"]
    yield identifier
    with db_engine.begin() as connection:  # nothing queued here may reach a later test's sweeper
        connection.execute(
            text("UPDATE runs SET status = 'cancelled', finished_at = now() WHERE id = :id AND status = 'queued'"),
            {"id": identifier},
        )


@pytest.fixture
def channel(fanout_api: Fanout, service_env: Settings, redis_client: redis.Redis, run_id: str) -> ProgressChannel:
    return ProgressChannel(redis_client, run_id, prefix=fanout_api.prefix, maxlen=service_env.progress_maxlen)


# ------------------------------------------------------------------------------------------ a raw SSE client


@dataclass
class Follower:
    """What one SSE client received: (id, event, data) per message, the pings, how the stream ended."""

    events: list[tuple[str | None, str, dict[str, Any]]] = field(default_factory=list)
    pings: int = 0
    status: int | None = None
    error: str | None = None
    closed_at: float | None = None
    first_event: asyncio.Event = field(default_factory=asyncio.Event)
    new_event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def ids(self) -> list[str | None]:
        return [event_id for event_id, _, _ in self.events]


async def _body_lines(reader: asyncio.StreamReader) -> Any:
    """The lines of a chunked HTTP body (uvicorn sends a stream of unknown length chunked)."""
    pending = b""
    while True:
        size_line = await reader.readline()
        if not size_line:
            return
        size = int(size_line.split(b";")[0].strip() or b"0", 16)
        if size == 0:
            return
        pending += (await reader.readexactly(size + 2))[:-2]
        *lines, pending = pending.split(b"\n")
        for line in lines:
            yield line.rstrip(b"\r").decode()


async def follow(
    base_url: str,
    path: str,
    token: str,
    follower: Follower,
    *,
    last_event_id: str | None = None,
    stop_after: str | None = None,
    gate: asyncio.Semaphore | None = None,
) -> Follower:
    """GET `path` as SSE until the server closes it (or after the event with id `stop_after`)."""
    url = urlsplit(base_url)
    headers = [f"GET {path} HTTP/1.1", f"Host: {url.netloc}", f"Authorization: Bearer {token}"]
    headers += ["Accept: text/event-stream", "Cache-Control: no-cache"]
    if last_event_id is not None:
        headers.append(f"Last-Event-ID: {last_event_id}")
    writer = None
    try:
        if gate is not None:
            async with gate:
                reader, writer = await asyncio.open_connection(url.hostname, url.port)
                writer.write(("\r\n".join(headers) + "\r\n\r\n").encode())
                status_line = await reader.readline()
        else:
            reader, writer = await asyncio.open_connection(url.hostname, url.port)
            writer.write(("\r\n".join(headers) + "\r\n\r\n").encode())
            status_line = await reader.readline()
        follower.status = int(status_line.split()[1])
        while (await reader.readline()).strip():  # the response headers
            pass
        fields: dict[str, str] = {}
        async for line in _body_lines(reader):
            if line.startswith(":"):
                follower.pings += 1
            elif line == "":
                if "event" in fields or "data" in fields:
                    event_id = fields.get("id")
                    follower.events.append(
                        (event_id, fields.get("event", "message"), json.loads(fields.get("data", "{}")))
                    )
                    follower.first_event.set()
                    follower.new_event.set()
                    if stop_after is not None and event_id == stop_after:
                        return follower
                fields = {}
            else:
                name, _, value = line.partition(":")
                fields[name] = value[1:] if value.startswith(" ") else value
    except Exception as error:  # noqa: BLE001 - recorded and asserted on by the test
        follower.error = repr(error)
    finally:
        follower.closed_at = time.monotonic()
        follower.first_event.set()  # a client that failed before its first event must not hold the test up
        if writer is not None:
            writer.close()
    return follower


def api_connections(client: redis.Redis, name: str) -> list[str]:
    """The names of the Redis connections the API under test holds (its clients are named after its prefix)."""
    return [entry["name"] for entry in client.client_list() if str(entry.get("name", "")).startswith(name)]


# ------------------------------------------------------------------------------------------------ the tests


def test_a_thousand_clients_follow_one_silent_run_to_its_end(
    fanout_api: Fanout, api_token: str, run_id: str, channel: ProgressChannel, redis_client: redis.Redis
) -> None:
    """1,000 clients connect (each receives `queued`), the run is silent for 8 s, then publishes five progress
    events and `succeeded`: every client receives all seven, in order, exactly once, and no stream closed before
    the end. Meanwhile the API holds a bounded number of Redis connections (one reader for the run)."""
    queued = channel.replay()
    assert [event.event for event in queued] == ["queued"]
    measured: dict[str, Any] = {}

    async def scenario() -> list[Follower]:
        gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
        followers = [Follower() for _ in range(FOLLOWERS)]
        started = time.monotonic()
        tasks = [
            asyncio.create_task(follow(fanout_api.base_url, f"/streams/{run_id}", api_token, f, gate=gate))
            for f in followers
        ]
        await asyncio.wait([asyncio.create_task(f.first_event.wait()) for f in followers], timeout=60)
        measured["connected_s"] = time.monotonic() - started
        measured["following"] = sum(bool(f.events) and f.closed_at is None for f in followers)
        silence_started = time.monotonic()
        connections: list[int] = []
        readers: list[int] = []
        while time.monotonic() - silence_started < SILENCE_S:
            names = await asyncio.to_thread(api_connections, redis_client, fanout_api.client_name)
            connections.append(len(names))
            readers.append(names.count(f"{fanout_api.client_name}-reader"))
            await asyncio.sleep(1.0)
        measured["redis_connections_max"] = max(connections)
        measured["reader_connections_max"] = max(readers)
        measured["closed_during_silence"] = sum(f.closed_at is not None for f in followers)
        measured["pings_min"] = min(f.pings for f in followers)
        for done in range(1, 6):
            await asyncio.to_thread(channel.publish, "progress", {"sessions_done": done, "sessions_total": 5})
        await asyncio.to_thread(channel.publish, "succeeded", {"status": "succeeded"})
        await asyncio.wait(tasks, timeout=60)
        for task in tasks:
            task.cancel()
        measured["total_s"] = time.monotonic() - started
        return followers

    followers = asyncio.run(scenario())
    measured["complete"] = sum(len(f.events) == 7 for f in followers)
    measured["errors"] = sum(f.error is not None for f in followers)
    print(f"\nfan-out: {measured}")
    expected = [(event.id, event.event) for event in channel.replay()]
    assert [name for _, name in expected] == ["queued"] + ["progress"] * 5 + ["succeeded"]
    errors = [f.error for f in followers if f.error]
    assert not errors, f"{len(errors)} clients failed, e.g. {errors[:3]}"
    assert {f.status for f in followers} == {200}
    assert measured["closed_during_silence"] == 0
    assert measured["pings_min"] >= SILENCE_S // PING_S - 1, "the silence was not bridged by keep-alive pings"
    wrong = [f for f in followers if [(i, e) for i, e, _ in f.events] != expected]
    assert not wrong, f"{len(wrong)} of {FOLLOWERS} clients saw other events, e.g. {wrong[0].events}"
    assert [data.get("sessions_done") for _, _, data in followers[0].events[1:6]] == [1, 2, 3, 4, 5]
    # one blocking reader for the run, plus the small pools for short commands: nowhere near one per client
    assert measured["reader_connections_max"] == 1, measured
    assert measured["redis_connections_max"] <= ASYNC_REDIS_CONNECTIONS + 3, measured


def test_a_client_reconnecting_with_last_event_id_gets_exactly_what_it_missed(
    fanout_api: Fanout, api_token: str, run_id: str, channel: ProgressChannel
) -> None:
    """While other clients follow the run (its reader is live), one client reads up to the second progress event
    and leaves; two more events are published; it reconnects with Last-Event-ID and gets those two from the
    stream, then the live ones, without a gap or a repeat."""
    path = f"/streams/{run_id}"

    async def scenario() -> tuple[list[Follower], Follower, Follower, list[str]]:
        others = [Follower() for _ in range(20)]
        other_tasks = [asyncio.create_task(follow(fanout_api.base_url, path, api_token, f)) for f in others]
        await asyncio.wait_for(asyncio.gather(*(f.first_event.wait() for f in others)), 30)
        ids = [await asyncio.to_thread(channel.publish, "progress", {"sessions_done": n}) for n in (1, 2)]
        first = await asyncio.wait_for(follow(fanout_api.base_url, path, api_token, Follower(), stop_after=ids[1]), 30)
        ids += [await asyncio.to_thread(channel.publish, "progress", {"sessions_done": n}) for n in (3, 4)]
        second = Follower()
        resumed = asyncio.create_task(follow(fanout_api.base_url, path, api_token, second, last_event_id=ids[1]))
        while len(second.events) < 2:  # the two it missed, from the stream, before anything new is published
            second.new_event.clear()
            await asyncio.wait_for(second.new_event.wait(), 30)
        ids.append(await asyncio.to_thread(channel.publish, "progress", {"sessions_done": 5}))
        ids.append(await asyncio.to_thread(channel.publish, "succeeded", {"status": "succeeded"}))
        await asyncio.wait_for(asyncio.gather(resumed, *other_tasks), 30)
        return others, first, second, ids

    others, first, second, ids = asyncio.run(scenario())
    queued_id = channel.replay()[0].id
    assert first.error is None and second.error is None, (first.error, second.error)
    assert first.ids == [queued_id, ids[0], ids[1]]
    assert second.ids == ids[2:]
    assert [data.get("sessions_done") for _, _, data in second.events] == [3, 4, 5, None]
    assert all(f.ids == [queued_id, *ids] for f in others), [f.ids for f in others if f.ids != [queued_id, *ids]]


def test_many_clients_follow_one_sweep_through_silence_to_its_end(
    fanout_api: Fanout, api_token: str, db_engine: Engine
) -> None:
    """300 clients follow one queued sweep (the API polls Postgres once per interval for all of them, not once per
    client: 300 polls every 0.5 s would exhaust its pool of 15 connections), the sweep stays unchanged for longer
    than redis-py's old timeout, then it is cancelled: every client gets its state, then `cancelled`."""
    response = httpx.post(
        f"{fanout_api.base_url}/sweeps",
        json={"preset": "calvano-2020-baseline", "sessions": 1, "seeds": [0], "grid": {"agents.alpha": [0.1, 0.15]}},
        headers=bearer(api_token),
        timeout=30,
    )
    assert response.status_code == 202, response.text
    sweep = response.json()
    clients = 300
    measured: dict[str, Any] = {}

    async def scenario() -> list[Follower]:
        gate = asyncio.Semaphore(CONNECTING_AT_ONCE)
        followers = [Follower() for _ in range(clients)]
        tasks = [
            asyncio.create_task(follow(fanout_api.base_url, sweep["links"]["stream"], api_token, f, gate=gate))
            for f in followers
        ]
        await asyncio.wait_for(asyncio.gather(*(f.first_event.wait() for f in followers)), 60)
        await asyncio.sleep(SILENCE_S)
        measured["closed_during_silence"] = sum(f.closed_at is not None for f in followers)
        cancelled = await asyncio.to_thread(
            httpx.post, f"{fanout_api.base_url}{sweep['links']['cancel']}", headers=bearer(api_token), timeout=30
        )
        assert cancelled.status_code == 200, cancelled.text
        await asyncio.wait_for(asyncio.gather(*tasks), 60)
        return followers

    try:
        followers = asyncio.run(scenario())
    finally:
        with db_engine.begin() as connection:
            connection.execute(
                text(
                    "UPDATE runs SET status = 'cancelled', finished_at = now() "
                    "WHERE sweep_id = :id AND status = 'queued'"
                ),
                {"id": sweep["id"]},
            )
    errors = [f.error for f in followers if f.error]
    assert not errors, f"{len(errors)} clients failed, e.g. {errors[:3]}"
    assert measured["closed_during_silence"] == 0
    assert all([event for _, event, _ in f.events] == ["progress", "cancelled"] for f in followers), {
        tuple(event for _, event, _ in f.events) for f in followers
    }
    assert all(f.ids == ["1", "2"] for f in followers)
    assert all(f.events[0][2]["status"] == "queued" and f.events[1][2]["counts"]["cancelled"] == 2 for f in followers)


# ------------------------------------------------------------------------------ the fan-out itself, in process


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _running() -> RunState:
    return RunState(RunStatus.running, None, 0, 0.0)


def test_a_reader_that_loses_redis_ends_its_followers_streams_and_one_without_followers_stops(
    service_env: Settings, redis_client: redis.Redis
) -> None:
    """The followers of a reader whose blocking connection fails get a Redis error (the route ends the stream
    cleanly, the client resumes with Last-Event-ID) instead of hanging; a reader whose last follower left stops
    after its current block."""
    prefix = f"{service_env.key_prefix}fanout-unit-{uuid.uuid4().hex[:6]}:"
    run_id = str(uuid.uuid4())
    ProgressChannel(redis_client, run_id, prefix=prefix).publish("queued", {"status": "queued"})

    async def scenario() -> None:
        commands = aioredis.Redis.from_url(service_env.redis_url)
        dead = aioredis.Redis.from_url(f"redis://127.0.0.1:{_closed_port()}/0", socket_connect_timeout=1)
        broken = RunFanout(commands, dead, prefix=prefix, block_ms=200)
        received: list[str] = []
        with pytest.raises(redis.ConnectionError):
            async for event in broken.events(run_id, STREAM_START, _running):
                received.append(event.event)
        assert received == ["queued"] and broken.followed_runs == 0

        fanout = RunFanout(commands, aioredis.Redis.from_url(service_env.redis_url), prefix=prefix, block_ms=200)
        events = fanout.events(run_id, STREAM_START, _running)
        assert (await anext(events)).event == "queued"
        waiting = asyncio.ensure_future(anext(events))  # joins the reader, waits for the next event
        while fanout.followers == 0:
            await asyncio.sleep(0.01)
        assert fanout.followed_runs == 1
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        await events.aclose()
        assert fanout.followers == 0
        for _ in range(100):  # the reader ends after its current 0.2 s block
            if fanout.followed_runs == 0:
                break
            await asyncio.sleep(0.05)
        assert fanout.followed_runs == 0
        await fanout.close()
        await commands.aclose()
        await dead.aclose()

    asyncio.run(scenario())

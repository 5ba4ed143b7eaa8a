"""Progress events of a run: a capped Redis stream for replay plus a pub/sub channel for live fan-out.

Plain pub/sub loses every message nobody was subscribed for, so the stream is the record: a client that
connects late, or reconnects with Last-Event-ID, replays from the stream and then follows it with a blocking
XREAD. The pub/sub message carries the same stream id, so a pub/sub listener can switch to the stream without
gaps or duplicates. Keys (see docs/architecture.md): stream `{prefix}run:{id}:events`, channel `{prefix}run:{id}`.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Sequence
from typing import Any, NamedTuple

import redis
import redis.asyncio as aioredis

from algocomp.platform.settings import Settings

TERMINAL_EVENTS = frozenset({"succeeded", "failed", "cancelled"})
EVENT_NAMES = frozenset({"queued", "started", "progress"}) | TERMINAL_EVENTS
STREAM_START = "0-0"


class ProgressEvent(NamedTuple):
    """One stream entry: its stream id (the SSE event id), the event name and its data."""

    id: str
    event: str
    data: dict[str, Any]

    @property
    def terminal(self) -> bool:
        return self.event in TERMINAL_EVENTS


def stream_key(prefix: str, run_id: uuid.UUID | str) -> str:
    """The capped stream holding a run's events."""
    return f"{prefix}run:{run_id}:events"


def channel_key(prefix: str, run_id: uuid.UUID | str) -> str:
    """The pub/sub channel on which a run's events are also published."""
    return f"{prefix}run:{run_id}"


def is_terminal(event: str) -> bool:
    """Whether an event ends its run's stream (succeeded, failed, cancelled)."""
    return event in TERMINAL_EVENTS


def _json_default(value: Any) -> Any:
    # numpy scalars (the engine's means and counts) expose .item(); anything else becomes its text
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return str(value)


def _finite(value: Any) -> Any:
    # JSON has no NaN or infinity (a browser's JSON.parse rejects them): a mean over nothing yet becomes null
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(item) for item in value]
    return value


def encode_data(data: dict[str, Any]) -> str:
    """Event data as compact JSON: numpy scalars as numbers, NaN and infinities as null."""
    plain = json.loads(json.dumps(data, default=_json_default))
    return json.dumps(_finite(plain), separators=(",", ":"), allow_nan=False)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _decode_entries(entries: list[Any]) -> list[ProgressEvent]:
    events: list[ProgressEvent] = []
    for entry_id, fields in entries:
        decoded = {_text(key): _text(value) for key, value in fields.items()}
        events.append(ProgressEvent(_text(entry_id), decoded.get("event", ""), json.loads(decoded.get("data", "{}"))))
    return events


def _decode_xread(response: Any) -> list[ProgressEvent]:
    # XREAD answers [[stream, [(id, fields), ...]]] (RESP2) or {stream: [[...]]} (RESP3)
    if not response:
        return []
    if isinstance(response, dict):
        streams = list(response.values())
        return _decode_entries(streams[0][0] if streams and streams[0] and isinstance(streams[0][0], list) else [])
    return _decode_entries(response[0][1])


def _check_event(event: str) -> None:
    if event not in EVENT_NAMES:
        raise ValueError(f"unknown progress event {event!r}; known events: {', '.join(sorted(EVENT_NAMES))}")


def publish_events(
    client: redis.Redis, events: Sequence[tuple[uuid.UUID | str, str, dict[str, Any]]], *, prefix: str, maxlen: int
) -> list[str]:
    """Publish (run id, event, data) events, possibly of many runs, in two round trips: every XADD in one
    pipeline, then every PUBLISH (which carries the stream id the XADD returned). Returns the stream ids."""
    encoded = []
    for run_id, event, data in events:
        _check_event(event)
        encoded.append((run_id, event, encode_data(data)))
    adding = client.pipeline(transaction=False)
    for run_id, event, payload in encoded:
        adding.xadd(stream_key(prefix, run_id), {"event": event, "data": payload}, maxlen=maxlen, approximate=True)
    entry_ids = [_text(entry_id) for entry_id in adding.execute()]
    announcing = client.pipeline(transaction=False)
    for (run_id, event, payload), entry_id in zip(encoded, entry_ids, strict=True):
        message = json.dumps({"id": entry_id, "event": event, "data": json.loads(payload)})
        announcing.publish(channel_key(prefix, run_id), message)
    announcing.execute()
    return entry_ids


class ProgressChannel:
    """A run's progress events over a synchronous Redis client (the worker publishes through this)."""

    def __init__(self, client: redis.Redis, run_id: uuid.UUID | str, *, prefix: str, maxlen: int = 10_000) -> None:
        self.client = client
        self.run_id = str(run_id)
        self.prefix = prefix
        self.stream = stream_key(prefix, run_id)
        self.channel = channel_key(prefix, run_id)
        self.maxlen = maxlen

    @classmethod
    def from_settings(
        cls, settings: Settings, run_id: uuid.UUID | str, client: redis.Redis | None = None
    ) -> ProgressChannel:
        """The channel of `run_id` with the settings' Redis, key prefix and stream cap."""
        client = client or redis.Redis.from_url(settings.redis_url, socket_timeout=10, socket_connect_timeout=5)
        return cls(client, run_id, prefix=settings.key_prefix, maxlen=settings.progress_maxlen)

    def publish(self, event: str, data: dict[str, Any]) -> str:
        """Append the event to the stream (trimmed to about maxlen) and publish it live; returns its stream id."""
        return publish_events(self.client, [(self.run_id, event, data)], prefix=self.prefix, maxlen=self.maxlen)[0]

    def replay(self, after_id: str = STREAM_START, count: int | None = None) -> list[ProgressEvent]:
        """The events after `after_id` (exclusive) still in the stream, oldest first, at most `count`."""
        return _decode_xread(self.client.xread({self.stream: after_id}, count=count))

    def read(self, after_id: str, block_ms: int = 5000, count: int | None = None) -> list[ProgressEvent]:
        """Events after `after_id`, waiting up to `block_ms` for the first one; [] when none arrived."""
        return _decode_xread(self.client.xread({self.stream: after_id}, count=count, block=block_ms))

    def last(self) -> ProgressEvent | None:
        """The newest event, or None when the stream is empty (or gone)."""
        entries = self.client.xrevrange(self.stream, count=1)
        return _decode_entries(entries)[0] if entries else None

    def subscribe(self) -> redis.client.PubSub:
        """A pub/sub subscription to the live channel; messages are JSON {"id", "event", "data"}."""
        pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(self.channel)
        return pubsub

    def delete(self) -> None:
        """Forget the run's stream (e.g. when the run itself is deleted)."""
        self.client.delete(self.stream)


class AsyncProgressChannel:
    """The asyncio twin for the API's SSE endpoint (and for an API that announces `queued`)."""

    def __init__(self, client: aioredis.Redis, run_id: uuid.UUID | str, *, prefix: str, maxlen: int = 10_000) -> None:
        self.client = client
        self.run_id = str(run_id)
        self.prefix = prefix
        self.stream = stream_key(prefix, run_id)
        self.channel = channel_key(prefix, run_id)
        self.maxlen = maxlen

    @classmethod
    def from_settings(
        cls, settings: Settings, run_id: uuid.UUID | str, client: aioredis.Redis | None = None
    ) -> AsyncProgressChannel:
        # redis-py 8's default socket timeout is 5 s: a blocking read() as long as that would fail as a timeout
        client = client or aioredis.Redis.from_url(settings.redis_url, socket_connect_timeout=5, socket_timeout=15)
        return cls(client, run_id, prefix=settings.key_prefix, maxlen=settings.progress_maxlen)

    async def publish(self, event: str, data: dict[str, Any]) -> str:
        _check_event(event)
        payload = encode_data(data)
        entry_id = _text(
            await self.client.xadd(self.stream, {"event": event, "data": payload}, maxlen=self.maxlen, approximate=True)
        )
        await self.client.publish(
            self.channel, json.dumps({"id": entry_id, "event": event, "data": json.loads(payload)})
        )
        return entry_id

    async def replay(self, after_id: str = STREAM_START, count: int | None = None) -> list[ProgressEvent]:
        return _decode_xread(await self.client.xread({self.stream: after_id}, count=count))

    async def read(self, after_id: str, block_ms: int = 5000, count: int | None = None) -> list[ProgressEvent]:
        """Events after `after_id`, waiting up to `block_ms` for the first one; [] when none arrived. The client's
        socket timeout must be longer than `block_ms` (the API's readers have a client of their own for this)."""
        return _decode_xread(await self.client.xread({self.stream: after_id}, count=count, block=block_ms))

    async def last(self) -> ProgressEvent | None:
        entries = await self.client.xrevrange(self.stream, count=1)
        return _decode_entries(entries)[0] if entries else None

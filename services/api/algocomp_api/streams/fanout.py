"""Per-process fan-out of run progress: one Redis reader per followed run, shared by every SSE client of that run
in this API process.

A client (`RunFanout.events`) first replays the run's stream after its Last-Event-ID with a short, non-blocking
XREAD; if that history ends the run, it never needs a reader. Otherwise it joins the run's reader (started by
the first follower, stopped once the last one has left), replays once more, then takes the reader's events from
its own queue. The reader starts after the newest entry the stream held when it started and every follower
joins before its second replay, so replay plus queue cover every event; the follower drops any queued event
whose stream id is not after the last one it sent, so nothing is repeated.

The reader blocks on XREAD for `block_ms` at a time, reading the run's status from Postgres between blocks (one
query per run, not per client), and ends like the per-client source did: after the first terminal event, or with
a synthetic terminal event when the database says the run is over and its stream holds none (expired). Its
blocking reads go through a connection pool of their own whose socket timeout is longer than a block, so
silence never looks like a dead connection. A Redis error ends the reader and every follower's stream (the
client reconnects with its Last-Event-ID and misses nothing); a follower whose queue grows past `max_backlog`
(a client that does not read) is dropped the same way.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis
from starlette.concurrency import run_in_threadpool

from algocomp.platform.db import TERMINAL_STATUSES
from algocomp.platform.progress import STREAM_START, AsyncProgressChannel, ProgressEvent
from algocomp_api.streams.service import BLOCK_MS, TERMINAL_GRACE_MS, RunState, synthetic_terminal

log = logging.getLogger("algocomp.api.streams")

# Events waiting in one follower's queue before it is dropped (its client then reconnects and replays).
MAX_BACKLOG = 10_000


class FollowerDropped(redis.ConnectionError):
    """The follower fell too far behind the run's reader; its stream ends and the client resumes."""


@dataclass(frozen=True)
class _Failure:
    error: redis.RedisError


_Item = ProgressEvent | _Failure


def stream_position(event_id: str) -> tuple[int, int]:
    """A stream id as a comparable pair; an id without a sequence number (`1764112345678`) is its `-0`."""
    milliseconds, _, sequence = event_id.partition("-")
    return int(milliseconds), int(sequence or 0)


class _Reader:
    """The one reader of a run in this process: XREAD BLOCK on its stream, each event put in every queue."""

    def __init__(
        self,
        fanout: RunFanout,
        key: str,
        channel: AsyncProgressChannel,
        reading: AsyncProgressChannel,
        load_state: Callable[[], RunState],
    ) -> None:
        self.fanout = fanout
        self.key = key
        self.channel = channel  # short commands (the pool shared with the followers' replays)
        self.reading = reading  # the blocking reads (the readers' own pool)
        self.load_state = load_state
        self.followers: set[asyncio.Queue[_Item]] = set()
        self.ready = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def deliver(self, item: _Item) -> None:
        for queue in list(self.followers):
            if queue.qsize() >= self.fanout.max_backlog:
                self.followers.discard(queue)
                queue.put_nowait(_Failure(FollowerDropped(f"more than {self.fanout.max_backlog} events behind")))
            else:
                queue.put_nowait(item)

    async def state(self) -> RunState | None:
        """The run's state, or None when the database did not answer (the next block asks again)."""
        try:
            return await run_in_threadpool(self.load_state)
        except Exception:
            log.warning("could not read the state of run %s; reading its events on", self.key, exc_info=True)
            return None

    async def run(self) -> None:
        try:
            newest = await self.channel.last()
            last_id = newest.id if newest is not None else STREAM_START
            self.ready.set()
            while self.followers:  # a reader without followers finishes its current block, then stops
                state = await self.state()
                over = state is not None and state.status in TERMINAL_STATUSES
                events = await self.reading.read(
                    last_id, block_ms=self.fanout.grace_ms if over else self.fanout.block_ms
                )
                for event in events:
                    self.deliver(event)
                    if event.terminal:
                        return
                    last_id = event.id
                if not events and over and state is not None:
                    self.deliver(synthetic_terminal(state))
                    return
        except asyncio.CancelledError:  # the API is shutting down: end the streams, the clients will resume
            self.deliver(_Failure(redis.ConnectionError("the API is shutting down")))
            raise
        except redis.RedisError as error:
            log.warning("lost Redis while reading the events of run %s", self.key, exc_info=True)
            self.deliver(_Failure(error))
        except Exception as error:
            log.exception("the reader of run %s failed", self.key)
            self.deliver(_Failure(redis.RedisError(f"the reader failed: {error!r}")))
        finally:
            self.ready.set()  # nobody waits for a reader that could not start
            self.fanout.forget(self)


class RunFanout:
    """The readers of one API process, by run. `client` serves short commands (replays, the reader's start),
    `blocking_client` the readers' XREAD BLOCK: its socket timeout must exceed `block_ms`."""

    def __init__(
        self,
        client: aioredis.Redis,
        blocking_client: aioredis.Redis,
        *,
        prefix: str,
        block_ms: int = BLOCK_MS,
        grace_ms: int = TERMINAL_GRACE_MS,
        max_backlog: int = MAX_BACKLOG,
    ) -> None:
        self.client = client
        self.blocking_client = blocking_client
        self.prefix = prefix
        self.block_ms = block_ms
        self.grace_ms = grace_ms
        self.max_backlog = max_backlog
        self._readers: dict[str, _Reader] = {}

    @property
    def followed_runs(self) -> int:
        return len(self._readers)

    @property
    def followers(self) -> int:
        return sum(len(reader.followers) for reader in self._readers.values())

    def channel(self, run_id: uuid.UUID | str) -> AsyncProgressChannel:
        return AsyncProgressChannel(self.client, run_id, prefix=self.prefix)

    def forget(self, reader: _Reader) -> None:
        if self._readers.get(reader.key) is reader:
            del self._readers[reader.key]

    def _join(
        self, run_id: uuid.UUID | str, load_state: Callable[[], RunState]
    ) -> tuple[_Reader, asyncio.Queue[_Item]]:
        key = str(run_id)
        reader = self._readers.get(key)
        if reader is None:
            reader = _Reader(
                self,
                key,
                self.channel(key),
                AsyncProgressChannel(self.blocking_client, key, prefix=self.prefix),
                load_state,
            )
            self._readers[key] = reader
        queue: asyncio.Queue[_Item] = asyncio.Queue()
        reader.followers.add(queue)
        if reader.task is None:  # after the follower is in: a reader stops when it finds no follower
            reader.task = asyncio.create_task(reader.run(), name=f"run-events-{key}")
        return reader, queue

    async def events(
        self, run_id: uuid.UUID | str, after_id: str, load_state: Callable[[], RunState]
    ) -> AsyncGenerator[ProgressEvent]:
        """The run's events after `after_id`, in stream order, each once, ending after the first terminal event.
        Raises redis.RedisError when Redis fails (or this follower was dropped): the caller ends its stream."""
        channel = self.channel(run_id)
        position = after_id

        def is_new(event: ProgressEvent) -> bool:
            return not event.id or stream_position(event.id) > stream_position(position)

        for event in await channel.replay(position):  # the history; a finished run's ends here
            yield event
            if event.terminal:
                return
            position = event.id
        reader, queue = self._join(run_id, load_state)
        try:
            await reader.ready.wait()
            # everything up to where the reader started (and maybe more): the reader has the rest
            for event in await channel.replay(position):
                yield event
                if event.terminal:
                    return
                position = event.id
            while True:
                item = await queue.get()
                if isinstance(item, _Failure):
                    raise item.error
                if not is_new(item):
                    continue
                yield item
                if item.terminal:
                    return
                if item.id:
                    position = item.id
        finally:
            reader.followers.discard(queue)

    async def close(self) -> None:
        """Stop every reader (at shutdown)."""
        tasks = [reader.task for reader in self._readers.values() if reader.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._readers.clear()


class _Poll:
    """The one poll loop of a key: `load()` every interval in a thread; each new value wakes every follower."""

    def __init__(self, fanout: SnapshotFanout, key: str, load: Callable[[], Any]) -> None:
        self.fanout = fanout
        self.key = key
        self.load = load
        self.followers = 0
        self.version = 0
        self.latest: Any = None
        self.error: BaseException | None = None
        self.changed = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    def publish(self) -> None:
        self.version += 1
        changed, self.changed = self.changed, asyncio.Event()
        changed.set()

    async def run(self) -> None:
        try:
            while self.followers:
                try:
                    value = await run_in_threadpool(self.load)
                except Exception:  # the database did not answer: the followers keep their last value
                    log.warning("could not read %s; polling on", self.key, exc_info=True)
                else:
                    if self.version == 0 or value != self.latest:
                        self.latest = value
                        self.publish()
                    if value is None:  # gone: nothing more will come
                        return
                await asyncio.sleep(self.fanout.interval_s)
        except BaseException as error:
            self.error = error if isinstance(error, Exception) else RuntimeError("the API is shutting down")
            self.publish()
            if not isinstance(error, Exception):
                raise
            log.exception("the poll of %s failed", self.key)
        finally:
            self.fanout.forget(self)


class SnapshotFanout:
    """One poll loop per followed object (a sweep) in this process, shared by every SSE client following it: the
    database is read once per interval per object, not once per client. A follower gets the newest value whenever
    it changes (a slow client skips intermediate ones: these are snapshots, not events)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._polls: dict[str, _Poll] = {}

    @property
    def followed(self) -> int:
        return len(self._polls)

    def forget(self, poll: _Poll) -> None:
        if self._polls.get(poll.key) is poll:
            del self._polls[poll.key]

    async def values(self, key: str, load: Callable[[], Any]) -> AsyncGenerator[Any]:
        """Each new value of `load()` for `key` (the shared loop's `load`, the first follower's), from the next poll
        on; ends after a None (the object is gone); raises what the loop's `load` raised."""
        poll = self._polls.get(key)
        if poll is None:
            poll = self._polls[key] = _Poll(self, key, load)
        poll.followers += 1
        if poll.task is None:
            poll.task = asyncio.create_task(poll.run(), name=f"poll-{key}")
        seen = max(poll.version - 1, 0)  # the newest value at once (the caller drops it if it sent it already)
        try:
            while True:
                if poll.version == seen:
                    await poll.changed.wait()
                seen = poll.version
                if poll.error is not None:
                    raise poll.error
                yield poll.latest
                if poll.latest is None:
                    return
        finally:
            poll.followers -= 1

    async def close(self) -> None:
        tasks = [poll.task for poll in self._polls.values() if poll.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._polls.clear()

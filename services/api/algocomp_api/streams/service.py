"""What GET /streams/{id} needs besides its fan-out (streams/fanout.py, which replays the run's Redis stream after
a given id, follows it with one shared blocking reader per run and ends with a terminal event): the Last-Event-ID
check, the run's state from Postgres and the synthetic terminal event.

The Redis stream is the record (capped, so very old events may be trimmed, and it may have expired); Postgres
is the truth about the run's status. When the run is over but its stream holds no terminal event, the source
ends with a synthetic one built from the database, so a client never waits for an event that cannot come.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from algocomp.platform.db import RunStatus
from algocomp.platform.db.runs import RunRepository
from algocomp.platform.progress import STREAM_START, ProgressEvent
from algocomp_api.errors import ApiError

# How long one XREAD blocks before the run's reader looks at the run's status in Postgres again: a worker that died
# after committing a terminal status (but before publishing its event) is noticed within this time.
BLOCK_MS = 5000
# After the database says the run is over, how long to wait for its real terminal event (the worker commits
# the status just before it publishes the event) before sending a synthetic one.
TERMINAL_GRACE_MS = 1000

T = TypeVar("T")

_STREAM_ID = re.compile(r"^\d+(-\d+)?$")


@dataclass(frozen=True)
class RunState:
    status: RunStatus
    error: str | None
    sessions_done: int
    progress: float


def check_last_event_id(value: str | None) -> str:
    """The stream id to resume after: the client's Last-Event-ID, or the start of the stream."""
    if value is None or value.strip() == "":
        return STREAM_START
    value = value.strip()
    # Redis takes each part as an unsigned 64-bit integer and fails the XREAD (mid-stream) on anything larger
    if len(value) > 41 or not _STREAM_ID.match(value) or any(int(part) >= 2**64 for part in value.split("-")):
        raise ApiError(
            422,
            "invalid_request",
            f"Last-Event-ID {value!r} is not an event id of this stream (ids look like 1764112345678-0)",
            field="last_event_id",
        )
    return value


def synthetic_terminal(state: RunState) -> ProgressEvent:
    """A terminal event from the database, for a finished run whose stream lost (or never got) its own."""
    data: dict[str, Any] = {
        "status": state.status.value,
        "sessions_done": state.sessions_done,
        "share_done": state.progress,
        "synthetic": True,
    }
    if state.error:
        data["error"] = state.error
    return ProgressEvent("", state.status.value, data)


def run_state_loader(sessions: Any, run_id: uuid.UUID) -> Callable[[], RunState]:
    """A function reading the run's current state in a short session of its own (called from a thread)."""

    def load() -> RunState:
        with sessions() as session:
            run = RunRepository(session).get(run_id)
            if run is None:  # deleted while streaming: nothing more will come
                return RunState(RunStatus.cancelled, "the run was deleted", 0, 0.0)
            return RunState(run.status, run.error, run.sessions_done, run.progress)

    return load


def run_exists(runs: RunRepository, run_id: uuid.UUID, team_id: uuid.UUID) -> bool:
    """Whether the run exists and is the team's; `runs` is the request's (see in_request_session)."""
    return runs.get(run_id, team_id=team_id) is not None


# Threads for reads in a request's session, which already holds its pooled connection (taken to check the token).
# Not the default thread pool: when hundreds of clients connect at once, its 40 threads all wait for one of the
# database pool's 15 connections, held by requests that would need one of those threads to finish, and nothing
# moves until the pool's 30 s timeout fails them all. These threads never wait for a connection.
_SESSION_THREADS = 8


@functools.cache
def _session_limiter() -> anyio.CapacityLimiter:
    return anyio.CapacityLimiter(_SESSION_THREADS)


async def in_request_session(function: Callable[..., T], *args: Any) -> T:
    """`function(*args)` in a thread, for a read in the request's own session (unit of work)."""
    return await anyio.to_thread.run_sync(function, *args, limiter=_session_limiter())

"""The event source behind GET /streams/{id}: replay the run's Redis stream after a given id, follow it with
blocking reads, and end with a terminal event.

The Redis stream is the record (capped, so very old events may be trimmed, and it may have expired); Postgres
is the truth about the run's status. When the run is over but its stream holds no terminal event, the source
ends with a synthetic one built from the database, so a client never waits for an event that cannot come.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from algocomp.platform.db import TERMINAL_STATUSES, RunStatus
from algocomp.platform.db.runs import RunRepository
from algocomp.platform.progress import STREAM_START, AsyncProgressChannel, ProgressEvent
from algocomp_api.errors import ApiError

# How long one XREAD blocks before the source looks at the run's status in Postgres again: a worker that died
# after committing a terminal status (but before publishing its event) is noticed within this time.
BLOCK_MS = 5000
# After the database says the run is over, how long to wait for its real terminal event (the worker commits
# the status just before it publishes the event) before sending a synthetic one.
TERMINAL_GRACE_MS = 1000

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


async def run_events(
    channel: AsyncProgressChannel,
    after_id: str,
    load_state: Callable[[], RunState],
    *,
    block_ms: int = BLOCK_MS,
    grace_ms: int = TERMINAL_GRACE_MS,
) -> AsyncIterator[ProgressEvent]:
    """The run's events after `after_id`, in stream order, ending after the first terminal event."""
    last_id = after_id
    for event in await channel.replay(last_id):
        yield event
        if event.terminal:
            return
        last_id = event.id
    while True:
        state = await run_in_threadpool(load_state)
        wait_ms = grace_ms if state.status in TERMINAL_STATUSES else block_ms
        events = await channel.read(last_id, block_ms=wait_ms)
        for event in events:
            yield event
            if event.terminal:
                return
            last_id = event.id
        if not events and state.status in TERMINAL_STATUSES:
            yield synthetic_terminal(state)
            return


def run_state_loader(sessions: Any, run_id: uuid.UUID) -> Callable[[], RunState]:
    """A function reading the run's current state in a short session of its own (called from a thread)."""

    def load() -> RunState:
        with sessions() as session:
            run = RunRepository(session).get(run_id)
            if run is None:  # deleted while streaming: nothing more will come
                return RunState(RunStatus.cancelled, "the run was deleted", 0, 0.0)
            return RunState(run.status, run.error, run.sessions_done, run.progress)

    return load


def run_exists(sessions: Any, run_id: uuid.UUID, team_id: uuid.UUID) -> bool:
    """Whether the run exists and is the team's."""
    with sessions() as session:
        return RunRepository(session).get(run_id, team_id=team_id) is not None

"""Per-run progress events: a capped Redis stream (replay, resumable SSE) and a pub/sub channel (live fan-out)."""

from algocomp.extras import raise_missing_extra

try:
    from algocomp.platform.progress.channel import (
        EVENT_NAMES,
        STREAM_START,
        TERMINAL_EVENTS,
        AsyncProgressChannel,
        ProgressChannel,
        ProgressEvent,
        channel_key,
        is_terminal,
        publish_events,
        stream_key,
    )
except ImportError as _error:
    raise_missing_extra(_error, "server", "algocomp.platform.progress (run progress over Redis)")

__all__ = [
    "EVENT_NAMES",
    "STREAM_START",
    "TERMINAL_EVENTS",
    "AsyncProgressChannel",
    "ProgressChannel",
    "ProgressEvent",
    "channel_key",
    "is_terminal",
    "publish_events",
    "stream_key",
]

"""Beat's liveness mark: Celery beat writes the time to Redis each time it ticks (algocomp_worker.beat), and the
API's /readyz reports `beat` failing when the mark is missing or older than Settings.beat_max_age_s. Without beat
the stale-run sweeper never runs: lost enqueues and the runs of workers that died with their whole node would
wait forever.

Both sides read the clock of Redis (TIME), so the machines' clocks do not matter.
"""

from __future__ import annotations

from redis import Redis


def beat_key(prefix: str) -> str:
    return f"{prefix}beat:last"


def _redis_now(client: Redis) -> float:
    seconds, microseconds = client.time()
    return float(seconds) + float(microseconds) / 1e6


def mark_beat(client: Redis, prefix: str) -> None:
    """Record that beat is alive now."""
    client.set(beat_key(prefix), repr(_redis_now(client)))


def beat_age_s(client: Redis, prefix: str) -> float | None:
    """Seconds since beat's last mark; None when there is none (beat never ran against this Redis and prefix)."""
    with client.pipeline(transaction=False) as pipe:
        pipe.time()
        pipe.get(beat_key(prefix))
        (seconds, microseconds), value = pipe.execute()
    if value is None:
        return None
    return max(0.0, float(seconds) + float(microseconds) / 1e6 - float(value))

"""Readiness checks of the services the API depends on, and of Celery beat (without it the stale-run sweeper
never runs); each returns None when healthy or what failed."""

from __future__ import annotations

from sqlalchemy import text

from algocomp.platform.queue.beat import beat_age_s
from algocomp_api.deps import ApiResources


def _first_line(error: BaseException) -> str:
    message = str(error).strip().splitlines()
    return f"{type(error).__name__}: {message[0] if message else ''}".rstrip(": ")


def check_postgres(resources: ApiResources) -> str | None:
    try:
        with resources.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - a probe reports every failure instead of raising
        return _first_line(error)
    return None


def check_redis(resources: ApiResources) -> str | None:
    try:
        resources.redis.ping()
    except Exception as error:  # noqa: BLE001 - a probe reports every failure instead of raising
        return _first_line(error)
    return None


def check_s3(resources: ApiResources) -> str | None:
    try:
        resources.storage.ping()
    except Exception as error:  # noqa: BLE001 - a probe reports every failure instead of raising
        return _first_line(error)
    return None


def check_beat(resources: ApiResources) -> str | None:
    """Beat's liveness mark (algocomp.platform.queue.beat) is at most settings.beat_max_age_s old."""
    max_age_s = resources.settings.beat_max_age_s
    try:
        age_s = beat_age_s(resources.redis, resources.settings.key_prefix)
    except Exception as error:  # noqa: BLE001 - a probe reports every failure instead of raising
        return _first_line(error)
    if age_s is None:
        return "no mark of Celery beat: is it running?"
    if age_s > max_age_s:
        return f"Celery beat last ticked {age_s:.0f} s ago (more than {max_age_s:g} s): stale runs are not re-sent"
    return None


CHECKS = {"postgres": check_postgres, "redis": check_redis, "s3": check_s3, "beat": check_beat}


def readiness(resources: ApiResources) -> dict[str, str]:
    """name -> "ok" or the error of each dependency (URL passwords and the settings' secrets masked: a driver's
    message may quote its connection string)."""
    checks = {name: check for name, check in CHECKS.items() if name != "beat" or resources.settings.beat_max_age_s}
    return {name: resources.settings.redact(check(resources) or "ok") for name, check in checks.items()}

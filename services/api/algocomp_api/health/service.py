"""Readiness checks of the services the API depends on; each returns None when healthy or what failed."""

from __future__ import annotations

from sqlalchemy import text

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


CHECKS = {"postgres": check_postgres, "redis": check_redis, "s3": check_s3}


def readiness(resources: ApiResources) -> dict[str, str]:
    """name -> "ok" or the error of each dependency (URL passwords and the settings' secrets masked: a driver's
    message may quote its connection string)."""
    return {name: resources.settings.redact(check(resources) or "ok") for name, check in CHECKS.items()}

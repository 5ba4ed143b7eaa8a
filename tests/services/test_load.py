"""The API under 200 concurrent connections (issue 11: at about 100 the database pool deadlocked against the
threads that would release it; 500s, and /healthz silent for up to a minute). Here: no 5xx, no connection error,
/healthz answering throughout and right after. The latencies are printed, not asserted: `make bench-load` measures
them (benchmarks/bench_load.py)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
import pytest

from .conftest import bearer

CONNECTIONS = 200
DURATION_S = 8.0


async def _hammer(base_url: str, token: str, run_id: str, duration_s: float) -> dict[str, Any]:
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    latencies: list[float] = []
    health: list[float] = []
    health_failures: list[str] = []
    deadline = time.monotonic() + duration_s
    limits = httpx.Limits(max_connections=CONNECTIONS + 5, max_keepalive_connections=CONNECTIONS + 5)
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(token), timeout=30.0, limits=limits) as client:

        async def user(index: int) -> None:
            path = f"/runs/{run_id}" if index % 2 else "/runs?limit=20"
            while time.monotonic() < deadline:
                started = time.perf_counter()
                try:
                    response = await client.get(path)
                    statuses[response.status_code] += 1
                    latencies.append(time.perf_counter() - started)
                except httpx.HTTPError as error:
                    errors.append(repr(error))

        async def prober(until: float) -> None:
            async with httpx.AsyncClient(base_url=base_url, timeout=5.0) as probe:
                while time.monotonic() < until:
                    started = time.perf_counter()
                    try:
                        answer = await probe.get("/healthz")
                        if answer.status_code != 200:
                            health_failures.append(str(answer.status_code))
                        health.append(time.perf_counter() - started)
                    except httpx.HTTPError as error:
                        health_failures.append(repr(error))
                    await asyncio.sleep(0.05)

        await asyncio.gather(prober(deadline + 3.0), *(user(index) for index in range(CONNECTIONS)))
    return {
        "statuses": statuses,
        "errors": errors,
        "latencies": sorted(latencies),
        "health": sorted(health),
        "health_failures": health_failures,
    }


def _quantile(values: list[float], q: float) -> float:
    return values[min(len(values) - 1, int(len(values) * q))] if values else float("nan")


@pytest.mark.usefixtures("servers")
def test_200_connections_get_answers_and_healthz_keeps_answering(api_server: str, api_token: str) -> None:
    created = httpx.post(
        f"{api_server}/runs",
        json={"preset": "calvano-2020-baseline", "sessions": 1, "overrides": ["horizon.max_periods=2000"]},
        headers=bearer(api_token),
        timeout=30,
    )
    assert created.status_code == 202, created.text
    outcome = asyncio.run(_hammer(api_server, api_token, created.json()["id"], DURATION_S))
    latencies, health = outcome["latencies"], outcome["health"]
    print(
        f"\n{CONNECTIONS} connections for {DURATION_S:.0f} s: {sum(outcome['statuses'].values())} answers "
        f"{dict(outcome['statuses'])}, p50 {_quantile(latencies, 0.5) * 1000:.0f} ms, p99 "
        f"{_quantile(latencies, 0.99) * 1000:.0f} ms; /healthz {len(health)} polls, p99 "
        f"{_quantile(health, 0.99) * 1000:.0f} ms, max {max(health, default=0) * 1000:.0f} ms"
    )
    assert not outcome["errors"], outcome["errors"][:5]
    assert set(outcome["statuses"]) == {200}, outcome["statuses"]
    assert not outcome["health_failures"], outcome["health_failures"][:5]
    # and right after: the API is not wedged
    started = time.perf_counter()
    assert httpx.get(f"{api_server}/runs", headers=bearer(api_token), timeout=10).status_code == 200
    assert time.perf_counter() - started < 5

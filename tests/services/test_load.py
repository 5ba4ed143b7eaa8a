"""The API under 200 concurrent connections (issue 11: at about 100 the database pool deadlocked against the
threads that would release it; 500s, and /healthz silent for up to a minute). Here: no 5xx, no connection error,
/healthz answering throughout and right after. The load is `make bench-load`'s (benchmarks/bench_load.py), for a
shorter time; the latencies are printed, not asserted: the benchmark measures them."""

from __future__ import annotations

import asyncio
import time

import httpx
from bench_load import level

from .conftest import bearer

CONNECTIONS = 200
DURATION_S = 8.0


def test_200_connections_get_answers_and_healthz_keeps_answering(api_server: str, api_token: str) -> None:
    created = httpx.post(
        f"{api_server}/runs",
        json={"preset": "calvano-2020-baseline", "sessions": 1, "overrides": ["horizon.max_periods=2000"]},
        headers=bearer(api_token),
        timeout=30,
    )
    assert created.status_code == 202, created.text
    outcome = asyncio.run(level(api_server, api_token, created.json()["id"], CONNECTIONS, DURATION_S))
    during, after = outcome["healthz_during"], outcome["healthz_after"]
    print(
        f"\n{CONNECTIONS} connections for {DURATION_S:.0f} s: {outcome['rate']:.0f} answers/s "
        f"{outcome['statuses']}, p50 {outcome['p50'] * 1000:.0f} ms, p99 {outcome['p99'] * 1000:.0f} ms; /healthz "
        f"p99 {during[1] * 1000:.0f} ms during, max {after[2] * 1000:.0f} ms after"
    )
    assert not outcome["errors"], outcome["errors"]
    assert set(outcome["statuses"]) == {200}, outcome["statuses"]
    assert not outcome["healthz_failures"], outcome["healthz_failures"][:5]
    # and right after: the API is not wedged
    started = time.perf_counter()
    assert httpx.get(f"{api_server}/runs", headers=bearer(api_token), timeout=10).status_code == 200
    assert time.perf_counter() - started < 5

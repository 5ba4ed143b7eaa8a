"""Load on the API of the running stack (`make bench-load`; `make dev` must be up): C concurrent connections, half
on GET /runs/{id} and half on GET /runs, for D seconds, while /healthz is polled every 50 ms, and for 3 s after.

    python benchmarks/bench_load.py [--api URL] [--connections 50,100,200] [--duration 30]

Prints, per level: answers per second, the status codes, connection errors, p50/p99/max latency, and the
/healthz p50/p99/max during the load and right after it, polled from a process of its own. Targets (issue 11):
no 5xx, no connection error, p99 under 1 s, every /healthz answer under 100 ms. Traffic goes to the given URL
only (127.0.0.1 by default); each level stops by itself. What it leaves out: the fault scenarios of issue 11
(Redis, S3, worker and API kills), and the machine's other load, which it does not control: run it on a quiet
machine and quote medians of several runs.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import time
from collections import Counter
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

from algocomp.client import Client
from algocomp.client.api import DEFAULT_BASE_URL
from algocomp.client.credentials import find_token

API_URL_ENV = "ALGOCOMP_API_URL"
P99_TARGET_S = 1.0
HEALTHZ_TARGET_S = 0.1
AFTER_S = 3.0
# a request unanswered this long counts as a connection error (TimeoutError); the probe's is shorter
REQUEST_TIMEOUT_S = 60.0
PROBE_TIMEOUT_S = 10.0


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


class KeepAliveConnection:
    """One HTTP/1.1 keep-alive connection that sends GETs one after another, as a load generator's virtual user
    does (wrk's model). Hand-written on asyncio streams because a full client (httpx) spends about 1 ms of CPU a
    request, which on a 2-core machine is taken from the server being measured; this one spends a tenth of that.
    It understands what the API sends: Content-Length bodies, chunked ones, and `Connection: close`."""

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.header_lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def get(self, path: str, timeout_s: float) -> int:
        """The status of GET `path` (the body is read and dropped); raises OSError/TimeoutError/ValueError on a
        broken connection or answer, after which the next call opens a new connection."""
        try:
            return await asyncio.wait_for(self._get(path), timeout_s)
        except BaseException:
            self.close()
            raise

    async def _get(self, path: str) -> int:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        request = f"GET {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n{self.header_lines}\r\n"
        self.writer.write(request.encode("latin-1"))
        head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in header_lines if line)
        }
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while size := int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16):
                await self.reader.readexactly(size + 2)
            await self.reader.readuntil(b"\r\n")
        else:
            await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def probe(host: str, port: int, stop: float, results: Connection) -> None:
    """(in a process of its own) Poll /healthz every 50 ms on one connection until AFTER_S past `stop` (a
    time.monotonic() reading, which is system-wide); send back the latencies during and after the load, and the
    failures."""
    during: list[float] = []
    after: list[float] = []
    failures: list[str] = []

    async def poll() -> None:
        connection = KeepAliveConnection(host, port, {})
        while time.monotonic() < stop + AFTER_S:
            started = time.perf_counter()
            try:
                status = await connection.get("/healthz", PROBE_TIMEOUT_S)
                elapsed = time.perf_counter() - started
                if status != 200:
                    failures.append(f"/healthz answered {status}")
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as error:
                elapsed = float("inf")
                failures.append(repr(error))
            (during if time.monotonic() < stop else after).append(elapsed)
            await asyncio.sleep(0.05)
        connection.close()

    asyncio.run(poll())
    results.send((during, after, failures))


async def level(api: str, token: str, run_id: str, connections: int, duration_s: float) -> dict[str, Any]:
    """`connections` keep-alive connections, half on GET /runs/{run_id} and half on GET /runs, each sending its next
    request when the last is answered, for `duration_s`; /healthz is polled every 50 ms on its own connection, from
    its own process, during the load and for AFTER_S after it."""
    address = urlsplit(api)
    host, port = address.hostname or "127.0.0.1", address.port or 80
    statuses: Counter[int] = Counter()
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    stop = time.monotonic() + duration_s

    async def user(index: int) -> None:
        path = f"/runs/{run_id}" if index % 2 else "/runs?limit=20"
        connection = KeepAliveConnection(host, port, {"Authorization": f"Bearer {token}"})
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                statuses[await connection.get(path, REQUEST_TIMEOUT_S)] += 1
                latencies.append(time.perf_counter() - started)
            except (OSError, TimeoutError, ValueError, asyncio.IncompleteReadError) as error:
                errors[type(error).__name__] += 1
        connection.close()

    # the probe polls from a process of its own: on this loop, busy with the load's connections, its timings would
    # include the load generator's own delays
    probe_end, probe_results = multiprocessing.get_context("spawn").Pipe(duplex=False)
    prober = multiprocessing.get_context("spawn").Process(
        target=probe, args=(host, port, stop, probe_results), name="healthz-probe"
    )
    prober.start()
    await asyncio.gather(*(user(index) for index in range(connections)))
    during, after, health_failures = await asyncio.to_thread(probe_end.recv)
    await asyncio.to_thread(prober.join)
    return {
        "connections": connections,
        "rate": sum(statuses.values()) / duration_s,
        "statuses": dict(statuses),
        "errors": dict(errors),
        "p50": quantile(latencies, 0.5),
        "p99": quantile(latencies, 0.99),
        "max": max(latencies, default=float("nan")),
        "healthz_during": (quantile(during, 0.5), quantile(during, 0.99), max(during, default=float("nan"))),
        "healthz_after": (quantile(after, 0.5), quantile(after, 0.99), max(after, default=float("nan"))),
        "healthz_failures": health_failures,
    }


def report(result: dict[str, Any]) -> bool:
    server_errors = sum(count for status, count in result["statuses"].items() if status >= 500)
    met = (
        not server_errors
        and not result["errors"]
        and result["p99"] < P99_TARGET_S
        and result["healthz_during"][2] < HEALTHZ_TARGET_S
        and result["healthz_after"][2] < HEALTHZ_TARGET_S
    )
    ms = lambda seconds: f"{seconds * 1000:.0f}"  # noqa: E731
    during, after = result["healthz_during"], result["healthz_after"]
    print(
        f"{result['connections']:>5} connections: {result['rate']:7.1f} answers/s  statuses {result['statuses']}  "
        f"errors {result['errors'] or 0}  latency p50 {ms(result['p50'])} p99 {ms(result['p99'])} max "
        f"{ms(result['max'])} ms  /healthz during p50/p99/max {ms(during[0])}/{ms(during[1])}/{ms(during[2])} ms, "
        f"after {ms(after[0])}/{ms(after[1])}/{ms(after[2])} ms  [{'met' if met else 'NOT met'}]"
    )
    return met


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--api", default=os.environ.get(API_URL_ENV, DEFAULT_BASE_URL))
    parser.add_argument("--connections", default="50,100,200", help="comma-separated levels")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load per level")
    args = parser.parse_args()
    token = find_token(args.api)
    if not token:
        parser.error(f"no API token for {args.api}: run `make dev` (it saves one), or set ALGOCOMP_API_TOKEN")
    with Client(args.api, token=token) as client:
        run = client.launch_run(preset="calvano-2020-baseline", sessions=1, overrides=["horizon.max_periods=1000"])
    print(f"load on {args.api} (GET /runs/{{id}} and GET /runs), {args.duration:.0f} s per level")
    all_met = True
    for connections in (int(level_text) for level_text in args.connections.split(",")):
        all_met &= report(asyncio.run(level(args.api, token, run["id"], connections, args.duration)))
        time.sleep(AFTER_S)
    return 0 if all_met else 1


if __name__ == "__main__":
    raise SystemExit(main())
